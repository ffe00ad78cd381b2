"""Scenario 7: allowlist mode. With forward = ["tcp/80", "udp/5353"] only those reach the
homelab, and TCP on the WireGuard port's number, the homelab watchdog's self check (where only
its listener answers, for the few milliseconds of a check); everything else, ICMP and port 22
included, stays on the bridge."""
from __future__ import annotations

import pytest

from netlab import BRIDGE_PUBLIC, CLIENT, WG_PORT, make_lab

FORWARD = ["tcp/80", "udp/5353"]


@pytest.fixture(scope="module")
def lab(request, packages):
    lab = make_lab(request, packages, homelab_rp_filter=1, forward=FORWARD)
    lab.up()
    for port in (80, 81, 8000):
        lab.serve_peer_tcp("homelab", port)
    for port in (5353, 5354):
        lab.serve_peer_udp("homelab", port)
    return lab


def homelab_saw(lab, proto: str, port: int) -> bool:
    return bool(lab.homelab.sh(f"conntrack -L -p {proto} --dport {port} 2>/dev/null").strip())


def test_listed_ports_are_forwarded(lab):
    assert lab.tcp_ask("client", BRIDGE_PUBLIC, 80) == CLIENT
    assert lab.udp_ask("client", BRIDGE_PUBLIC, 5353) == CLIENT


@pytest.mark.parametrize("port", [81, 8000])
def test_other_tcp_ports_are_not(lab, port):
    assert lab.tcp_ask("client", BRIDGE_PUBLIC, port, timeout=3) is None
    assert not homelab_saw(lab, "tcp", port)


def test_other_udp_ports_are_not(lab):
    assert lab.udp_ask("client", BRIDGE_PUBLIC, 5354, timeout=2) is None
    assert not homelab_saw(lab, "udp", 5354)


def test_icmp_and_ssh_stay_on_the_bridge(lab):
    lab.homelab.run("conntrack -D -p icmp", check=False)
    assert lab.ping("client", BRIDGE_PUBLIC, count=2)["received"] == 2
    assert CLIENT not in lab.homelab.sh("conntrack -L -p icmp 2>/dev/null")
    bridge_key = lab.host_key("bridge")
    scan = lab.client.sh(f"ssh-keyscan -T 5 -t ed25519 -p 22 {BRIDGE_PUBLIC} 2>/dev/null")
    assert bridge_key in scan, scan


def test_rules_hold_only_the_listed_ports(lab):
    nat = lab.bridge.sh("iptables -t nat -S CGNAT-wg0-PRE")
    dnat = [line for line in nat.splitlines() if "DNAT" in line]
    assert len(dnat) == 3, nat
    assert any("-p tcp" in l and "--dport 80 " in l for l in dnat)
    assert any("-p udp" in l and "--dport 5353 " in l for l in dnat)
    assert any("-p tcp" in l and f"--dport {WG_PORT} " in l for l in dnat)     # the self check
