"""Issue 10, the allowlist bypass: the bridge forwards between its public link and the
tunnel only the connections it DNATed. A neighbour on the bridge's public network that
routes the tunnel's addresses via the bridge reaches no homelab port, even on a stock VPS
whose FORWARD policy is ACCEPT; the homelab cannot send through the bridge either. The
ICMP errors that belong to forwarded connections (path MTU, port unreachable) still pass."""
from __future__ import annotations

import re

import pytest

from netlab import BRIDGE_PUBLIC, CLIENT, HOMELAB_TUNNEL, make_lab, wait_for

FORWARD = ["tcp/80", "tcp/8443", "udp/5355"]   # 8443: a bulk download; 5355: nobody listens
NEIGHBOUR = "198.51.100.254"                   # the inet node, on the bridge's public segment
SIZE = 2_000_000


@pytest.fixture(scope="module")
def lab(request, packages):
    lab = make_lab(request, packages, homelab_rp_filter=1, forward=FORWARD)
    lab.up(sshd=False)
    lab.bridge.sh("iptables -P FORWARD ACCEPT")   # a stock VPS (the lab's default is ufw-like)
    for port in (80, 5432):
        lab.serve_peer_tcp("homelab", port)
    lab.homelab.spawn(f"socat TCP-LISTEN:8443,reuseaddr,fork SYSTEM:'head -c {SIZE} /dev/zero'")
    lab.homelab.wait_listening("tcp", 8443)
    return lab


def packets(node, rule: str) -> int:
    """The packet counter of a rule ("-A CHAIN ..." as iptables-save prints it); 0 if absent."""
    m = re.search(rf"^\[(\d+):\d+\] {re.escape(rule)}$", node.sh("iptables-save -c -t filter"), re.M)
    return int(m.group(1)) if m else 0


def dropped(lab, inp: str, out: str) -> int:
    """Packets our DROP rule for INP -> OUT dropped on the bridge so far."""
    return packets(lab.bridge, f"-A CGNAT-wg0-FWD -i {inp} -o {out} -j DROP")


def test_forwarded_port_still_reaches_the_homelab_with_the_real_address(lab):
    assert lab.tcp_ask("client", BRIDGE_PUBLIC, 80) == CLIENT
    assert lab.tcp_ask("inet", BRIDGE_PUBLIC, 80) == NEIGHBOUR


def test_neighbour_routing_the_tunnel_via_the_bridge_is_dropped(lab):
    before = dropped(lab, "ens3", "wg0")
    lab.inet.sh(f"ip route replace 10.0.0.0/24 via {BRIDGE_PUBLIC}")
    try:
        assert lab.tcp_ask("inet", HOMELAB_TUNNEL, 5432, timeout=3) is None
        assert lab.tcp_ask("inet", HOMELAB_TUNNEL, 80, timeout=3) is None   # listed, but not DNATed
        assert lab.ping("inet", HOMELAB_TUNNEL, count=1)["received"] == 0
        assert dropped(lab, "ens3", "wg0") > before   # it did reach the bridge, and stopped there
    finally:
        lab.inet.sh("ip route del 10.0.0.0/24")
    seen = lab.homelab.sh("conntrack -L -p tcp --dport 5432 2>/dev/null")
    assert seen.strip() == "", seen


def test_homelab_cannot_send_to_the_internet_through_the_bridge(lab):
    """Only replies of DNATed connections leave the tunnel for the public link."""
    def client_saw() -> int:
        return packets(lab.client, f"-A INPUT -s {HOMELAB_TUNNEL}/32")

    lab.client.sh(f"iptables -I INPUT -s {HOMELAB_TUNNEL}")   # a counter
    lab.homelab.sh(f"ip route replace {CLIENT}/32 dev wg0 src {HOMELAB_TUNNEL}")
    try:
        before = dropped(lab, "wg0", "ens3")
        assert lab.ping("homelab", CLIENT, count=1, timeout=1)["received"] == 0
        wait_for(lambda: dropped(lab, "wg0", "ens3") > before or client_saw(), 10,
                 "the ping to reach the client or be dropped by the bridge")
        assert client_saw() == 0
        assert dropped(lab, "wg0", "ens3") > before
    finally:
        lab.homelab.sh(f"ip route del {CLIENT}/32 dev wg0")
        lab.client.sh(f"iptables -D INPUT -s {HOMELAB_TUNNEL}")


def test_port_unreachable_from_the_homelab_reaches_the_client(lab):
    """An ICMP error from the tunnel about a DNATed connection (RELATED) passes."""
    probe = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)\n"
             f"s.connect(('{BRIDGE_PUBLIC}', 5355)); s.send(b'x')\n"
             "try: s.recv(16); print('answered')\n"
             "except ConnectionRefusedError: print('refused')\n"
             "except socket.timeout: print('timeout')\n")
    assert lab.client.sh("python3", input=probe).strip() == "refused"


def test_path_mtu_errors_reach_the_homelab(lab):
    """A hop beyond the bridge with a smaller MTU than the tunnel's: its "fragmentation
    needed" to the bridge's public address must reach the homelab (RELATED to a DNATed
    connection), or the download stalls. Shown both ways: dropped by hand, it stalls."""
    lab.inet.sh("ip link set c0 mtu 1280")
    drop_icmp = "CGNAT-wg0-FWD -p icmp --icmp-type fragmentation-needed -j DROP"
    try:
        lab.bridge.sh(f"iptables -I {drop_icmp}")
        try:
            stalled = lab.download("client", BRIDGE_PUBLIC, 8443, timeout=5)
        finally:
            lab.bridge.sh(f"iptables -D {drop_icmp}")
        assert stalled < SIZE
        assert lab.download("client", BRIDGE_PUBLIC, 8443, timeout=30) == SIZE
    finally:
        lab.inet.sh("ip link set c0 mtu 1500")
