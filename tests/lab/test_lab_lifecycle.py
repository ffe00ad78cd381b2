"""Scenario 8: the hooks' life cycle. up twice leaves one copy of everything; down (by
wg-quick, which deletes the interface first, or by hand with the interface present)
gives back exactly the rule sets, ip rules and routes of every node from before; a
failed up rolls back; other tools' rules (Docker-like, ufw-like) are never touched."""
from __future__ import annotations

import pytest

from netlab import NODES, make_lab

HOOK = "/usr/lib/cgnat-{role}/hooks/{verb} wg0"
ROLES = ("bridge", "homelab")


@pytest.fixture(scope="module")
def lab(request, packages):
    lab = make_lab(request, packages, homelab_rp_filter=1).prepare()
    lab.before = {name: lab.nodes[name].snapshot() for name in NODES}
    return lab


def snapshots(lab) -> dict:
    return {name: lab.nodes[name].snapshot() for name in NODES}


def hook(lab, role: str, verb: str, check=True, **kw):
    return lab.nodes[role].run(HOOK.format(role=role, verb=verb), check=check, **kw)


def tagged(lab, role: str) -> list[str]:
    return [line for line in lab.nodes[role].sh("iptables-save").splitlines() if "cgnat:wg0" in line]


def declared_chains(lab, role: str) -> list[str]:
    return [line for line in lab.nodes[role].read("/etc/cgnat/wg0.rules").splitlines()
            if line.startswith(":CGNAT-")]


def foreign(ruleset: dict) -> dict:
    """Everything in a normalized rule set that is not ours."""
    return {table: ([c for c in chains if not c[0].startswith("CGNAT-")],
                    [r for r in rules if "CGNAT-" not in r])
            for table, (chains, rules) in ruleset.items()}


def test_up_twice_leaves_one_copy(lab):
    lab.tunnel_up()
    once = snapshots(lab)
    for role in ROLES:
        hook(lab, role, "up")
    assert snapshots(lab) == once
    for role in ROLES:
        assert len(tagged(lab, role)) == len(declared_chains(lab, role)) > 0
    rules = lab.homelab.sh("ip rule show")
    assert rules.count("lookup 200") == 2, rules
    assert lab.homelab.sh("ip route show table 200").strip() == "default dev wg0 scope link"


def test_foreign_rules_untouched_while_up(lab):
    for name in NODES:
        now = foreign(lab.nodes[name].ruleset())
        was = lab.before[name]["iptables"]
        for table, (chains, rules) in was.items():
            assert now[table] == (chains, rules), f"{name} {table}"
    assert "ufw-before-input" in lab.bridge.sh("iptables -S INPUT")
    assert "DOCKER" in lab.homelab.sh("iptables -t nat -S PREROUTING")


def test_wg_quick_down_removes_everything_after_the_interface_vanished(lab):
    for role in ROLES:
        done = lab.nodes[role].run("wg-quick down wg0", check=False)
        assert done.returncode == 0, done.stderr
        # wg-quick deleted wg0 before PostDown ran, and the hook still removed our rules.
        log = done.stderr
        assert log.index("[#] ip link delete dev wg0") < log.index("--comment cgnat:wg0"), log
        assert not lab.nodes[role].ok("ip link show wg0")
    assert snapshots(lab) == lab.before


def test_down_again_is_harmless(lab):
    for role in ROLES:
        done = hook(lab, role, "down", check=False)
        assert done.returncode == 0, done.stderr
        assert "[#]" not in done.stderr   # nothing left to remove, nothing done
    assert snapshots(lab) == lab.before


def test_down_by_hand_with_the_interface_present(lab):
    lab.tunnel_up()
    for role in ROLES:
        hook(lab, role, "down")
    now = snapshots(lab)
    for name in NODES:
        assert now[name]["iptables"] == lab.before[name]["iptables"], name
        assert now[name]["rules"] == lab.before[name]["rules"], name
        # Only the interface's own address route remains, until wg-quick removes the link.
        extra = [r for r in now[name]["routes"] if r not in lab.before[name]["routes"]]
        assert all(r.get("dev") == "wg0" and r.get("protocol") == "kernel" for r in extra), extra
    for role in ROLES:
        assert lab.nodes[role].run("wg-quick down wg0", check=False).returncode == 0
    assert snapshots(lab) == lab.before


def test_failed_up_rolls_back(lab):
    """Without the interface the homelab's route cannot be added: up fails, and what it
    had already installed (chains, jumps) is gone again."""
    done = hook(lab, "homelab", "up", check=False)
    assert done.returncode != 0
    assert "undoing what this run added" in done.stderr
    assert snapshots(lab) == lab.before


def test_teardown_as_the_prerm_runs_it_gives_everything_back(lab):
    """`cgnat-setup teardown` (prerm remove) on a tunnel that systemd did not start: no
    systemd here, so wg-quick down and the down hook do the work; twice is harmless."""
    lab.tunnel_up()
    assert lab.bridge.ok("ip link show wg0") and tagged(lab, "bridge")
    for first in (True, False):
        for role in ROLES:
            done = lab.nodes[role].run("cgnat-setup teardown", check=False)
            assert done.returncode == 0, done.stderr
            assert ("[#] wg-quick down wg0" in done.stderr) == first, done.stderr
            assert f"[#] /usr/lib/cgnat-{role}/hooks/down wg0" in done.stderr
        assert snapshots(lab) == lab.before
