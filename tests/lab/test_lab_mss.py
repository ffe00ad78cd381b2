"""Scenario 6: MSS clamping. A 1500-MTU container sends 20 MB to the client through
the 1420-MTU tunnel while every ICMP "fragmentation needed" is dropped on the path (a
PMTU black hole): it completes with the clamp, and stalls without it."""
from __future__ import annotations

import json

import pytest

from netlab import BRIDGE_PUBLIC, PUBLISHED_PORT

SIZE = 20_000_000
CLAMP_JUMP = "-m comment --comment cgnat:wg0 -j CGNAT-wg0-FWD"
BLACK_HOLE = "-p icmp --icmp-type fragmentation-needed -j DROP"
BLACK_HOLED = [("ctr", "INPUT"), ("client", "INPUT")] + [
    (node, chain) for node in ("homelab", "bridge", "inet") for chain in ("FORWARD", "OUTPUT")]


@pytest.fixture(scope="module")
def lab(request, tunnel_lab):
    """The shared lab (conftest) with a PMTU black hole on the path and the container
    sending SIZE bytes on port 80; both taken away again after the module."""
    lab = tunnel_lab
    # (not /sys/class/net: sysfs shows the namespace that mounted it, the host's)
    assert mtu(lab, "ctr", "eth0") == 1500 and mtu(lab, "client", "eth0") == 1500
    assert mtu(lab, "homelab", "wg0") == 1420 and mtu(lab, "bridge", "wg0") == 1420
    for node, chain in BLACK_HOLED:
        lab.nodes[node].sh(f"iptables -I {chain} {BLACK_HOLE}")
        request.addfinalizer(lambda node=node, chain=chain: lab.nodes[node].sh(f"iptables -D {chain} {BLACK_HOLE}"))
    sender = lab.ctr.spawn(f"socat TCP-LISTEN:80,reuseaddr,fork SYSTEM:'head -c {SIZE} /dev/zero'")
    request.addfinalizer(sender.kill)
    lab.ctr.wait_listening("tcp", 80)
    return lab


def mtu(lab, node: str, dev: str) -> int:
    return json.loads(lab.nodes[node].sh(f"ip -j link show {dev}"))[0]["mtu"]


def test_20mb_from_container_with_icmp_blackholed(lab):
    assert lab.download("client", BRIDGE_PUBLIC, PUBLISHED_PORT, timeout=60) == SIZE


def test_stalls_without_the_clamp(lab):
    for role in ("bridge", "homelab"):
        lab.nodes[role].sh(f"iptables -t mangle -D FORWARD {CLAMP_JUMP}")
    try:
        got = lab.download("client", BRIDGE_PUBLIC, PUBLISHED_PORT, timeout=6)
    finally:
        for role in ("bridge", "homelab"):
            lab.nodes[role].sh(f"/usr/lib/cgnat-{role}/hooks/up wg0")
    # Only what fits in the first small segments (none: every full segment is too big).
    assert got < 100_000, got
    assert lab.download("client", BRIDGE_PUBLIC, PUBLISHED_PORT, timeout=60) == SIZE
