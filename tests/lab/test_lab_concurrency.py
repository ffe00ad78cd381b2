"""Issue 19: the hooks, the bridge watchdog's repair and down run at the same time (as they do
on a real host: wg-quick@IFACE restarting while cgnat-watchdog looks) and take turns by the
interface's lock (installer/interface_lock.py, lib.sh's hook_lock). After every round, each
host holds either every rule of ours exactly once or none of them: never a jump without its
chain, a second copy, or a half-loaded set; the last up leaves exactly one copy of each."""
from __future__ import annotations

import pytest

from netlab import BRIDGE_PUBLIC, CLIENT

ROUNDS = 200
ROLES = ("bridge", "homelab")
# The bridge's repair is its watchdog's own run (it re-runs the up hook when a rule is missing);
# on the homelab, where the watchdog never runs the up hook, a second up stands in for it.
REPAIR = {"bridge": "/usr/lib/cgnat-bridge/watchdog --once --state /run/lab/watchdog.json",
          "homelab": "/usr/lib/cgnat-homelab/hooks/up wg0"}


@pytest.fixture(scope="module")
def lab(tunnel_lab):
    """The shared lab (conftest): every round ends with the tunnel's rules complete."""
    return tunnel_lab


# Every rule, chain and ip rule of ours on a node (without counters), as one checksum.
OURS = ("{ iptables-save; ip6tables-save; ip -4 rule; ip -6 rule; } | grep -e CGNAT-wg0- -e 'lookup 200'"
        " | grep -v '^#' | sed 's/ \\[[0-9]*:[0-9]*\\]//' | md5sum")


@pytest.mark.parametrize("role", ROLES)
def test_up_repair_and_down_at_once_leave_all_or_nothing(lab, role):
    node, hooks = lab.nodes[role], f"/usr/lib/cgnat-{role}/hooks"
    complete = node.sh(OURS).strip()
    node.sh(f"{hooks}/down wg0")
    nothing = node.sh(OURS).strip()
    node.sh(f"{hooks}/up wg0")
    assert node.sh(OURS).strip() == complete != nothing
    script = (f"for i in $(seq {ROUNDS}); do "
              f"{hooks}/up wg0 >/dev/null 2>&1 & {REPAIR[role]} >/dev/null 2>&1 & "
              f"{hooks}/down wg0 >/dev/null 2>&1 & wait; {OURS}; done")
    try:
        ends = node.sh(script, timeout=900).splitlines()
    finally:
        node.sh(f"{hooks}/up wg0")
    assert len(ends) == ROUNDS
    half = [i for i, end in enumerate(ends) if end not in (complete, nothing)]
    assert not half, f"rounds {half[:10]} ended neither complete nor clean"
    assert ends.count(complete) and ends.count(nothing)      # both orders happened
    assert node.sh(OURS).strip() == complete                  # the last up: one copy of each
    assert lab.tcp_ask("client", BRIDGE_PUBLIC, 80) == CLIENT
