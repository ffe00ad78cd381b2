"""Issue 10: two tunnels on one host. Each interface has its own chains (CGNAT-wg0-*,
CGNAT-wg1-*), so the hooks of one never re-declare, flush or remove the other's rules:
up of one (twice) and down of one leave the other's rules exactly as they were.

wg1 is a second tunnel's files as cgnat-setup writes them (its own fwmark, routing
table and rule priority on the homelab) on a spare veth link; wg0 is the lab's real tunnel,
which keeps forwarding throughout."""
from __future__ import annotations

import pytest

from netlab import BRIDGE_PUBLIC, CLIENT

ROLES = ("bridge", "homelab")
WG1 = ("s/wg0/wg1/g; s/0x1000000/0x2000000/g; "
       "s/^CGNAT_TABLE=.*/CGNAT_TABLE=201/; s/^CGNAT_RULE_PREF=.*/CGNAT_RULE_PREF=1010/")


@pytest.fixture(scope="module")
def lab(request, tunnel_lab):
    """The shared lab (conftest) with wg1 beside wg0 on both hosts; wg1 (its rules, its link,
    its files) gone again after the module."""
    lab = tunnel_lab
    for role in ROLES:
        node = lab.nodes[role]
        request.addfinalizer(lambda node=node, role=role: node.sh(
            f"set -e; if [ -e /etc/cgnat/wg1.env ]; then /usr/lib/cgnat-{role}/hooks/down wg1; fi;"
            "ip link del wg1 2>/dev/null || true; rm -f /etc/cgnat/wg1.rules /etc/cgnat/wg1.rules6 /etc/cgnat/wg1.env"))
        node.sh(f"set -e; ip link add wg1 type veth peer name wg1-peer; ip link set wg1 up;"
                f"sed '{WG1}' /etc/cgnat/wg0.rules > /etc/cgnat/wg1.rules;"
                f"if [ -e /etc/cgnat/wg0.rules6 ]; then sed '{WG1}' /etc/cgnat/wg0.rules6 > /etc/cgnat/wg1.rules6; fi;"
                f"sed '{WG1}' /etc/cgnat/wg0.env > /etc/cgnat/wg1.env")
    return lab


def hook(lab, role: str, verb: str, iface: str) -> None:
    lab.nodes[role].sh(f"/usr/lib/cgnat-{role}/hooks/{verb} {iface}")


def state(lab, role: str) -> dict:
    node = lab.nodes[role]
    return {"iptables": node.ruleset(), "rules": node.ip_rules()}


def without(snapshot: dict, iface: str) -> dict:
    """A snapshot minus everything of `iface`'s (its chains, its tagged jumps, its ip rules)."""
    mine = f"CGNAT-{iface}-"
    tables = {}
    for table, (chains, rules) in snapshot["iptables"].items():
        chains = [c for c in chains if not c[0].startswith(mine)]
        rules = [r for r in rules if mine not in r]
        if rules or any(policy != "ACCEPT" for _, policy in chains):
            tables[table] = (chains, rules)
    own_table = "201" if iface == "wg1" else "200"
    return {"iptables": tables,
            "rules": [r for r in snapshot["rules"] if str(r.get("table")) != own_table]}


def count_of(snapshot: dict, needle: str) -> int:
    return sum(needle in r for _, rules in snapshot["iptables"].values() for r in rules)


@pytest.mark.parametrize("role", ROLES)
def test_up_of_one_twice_leaves_the_other_as_it_was(lab, role):
    before = state(lab, role)
    assert count_of(before, "cgnat:wg1") == 0 and count_of(before, "cgnat:wg0") > 0
    hook(lab, role, "up", "wg1")
    hook(lab, role, "up", "wg1")
    after = state(lab, role)
    assert without(after, "wg1") == before
    declared = lab.nodes[role].read("/etc/cgnat/wg1.rules").count("\n:CGNAT-wg1-")
    assert count_of(after, "cgnat:wg1") == declared > 0   # one jump per chain, not two
    assert after["iptables"] != before["iptables"]
    assert lab.tcp_ask("client", BRIDGE_PUBLIC, 80) == CLIENT


@pytest.mark.parametrize("role", ROLES)
def test_down_of_one_leaves_the_other_as_it_was(lab, role):
    hook(lab, role, "up", "wg1")
    both = state(lab, role)
    hook(lab, role, "down", "wg1")
    assert state(lab, role) == without(both, "wg1")
    assert lab.tcp_ask("client", BRIDGE_PUBLIC, 80) == CLIENT
    # and the other way round: wg0's down leaves wg1's rules alone
    hook(lab, role, "up", "wg1")
    both = state(lab, role)
    hook(lab, role, "down", "wg0")
    try:
        assert state(lab, role) == without(both, "wg0")
        assert count_of(state(lab, role), "cgnat:wg1") > 0
    finally:
        hook(lab, role, "up", "wg0")
        hook(lab, role, "down", "wg1")
    assert lab.tcp_ask("client", BRIDGE_PUBLIC, 80) == CLIENT
