"""Scenarios 1-5: the whole chain, client -> bridge -> tunnel -> homelab (-> container),
once per homelab rp_filter mode (scenario 5 is the parametrization: 0, 1 and 2 must all
pass 1-4). One topology per mode, built by the real cgnat-setup and wg-quick."""
from __future__ import annotations

import pytest

from netlab import (BRIDGE_PUBLIC, BRIDGE_SSH_PORT, CGNAT_PUBLIC, CLIENT, HOMELAB_TUNNEL,
                    PUBLISHED_PORT, make_lab)

SERVICE_TCP, SERVICE_UDP, OUTBOUND_PORT = 8000, 5353, 9000
SSH = ("ssh -F /dev/null -i /run/lab/id_ed25519 -o BatchMode=yes -o ConnectTimeout=5 "
       "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")


@pytest.fixture(scope="module", params=[0, 1, 2], ids=lambda mode: f"rp_filter={mode}")
def lab(request, packages):
    lab = make_lab(request, packages, homelab_rp_filter=request.param)
    lab.up()
    lab.serve_peer_tcp("homelab", SERVICE_TCP)
    lab.serve_peer_udp("homelab", SERVICE_UDP)
    lab.serve_peer_tcp("ctr", 80)
    lab.serve_peer_tcp("client", OUTBOUND_PORT)
    # The client's key may log in as root on both sshds (their AuthorizedKeysFile is /run/lab).
    lab.client.sh("ssh-keygen -q -t ed25519 -N '' -f /run/lab/id_ed25519")
    public = lab.client.read("/run/lab/id_ed25519.pub")
    for role in ("bridge", "homelab"):
        lab.nodes[role].write("/run/lab/authorized_keys", public, mode=0o600)
    lab.mode = request.param
    return lab


def test_rp_filter_mode_is_in_force(lab):
    """Scenario 5's premise: the homelab really runs with the mode under test, and the
    hook made the tunnel interface loose."""
    for conf in ("all", "default", "eth0", "br0"):
        assert lab.homelab.sh(f"sysctl -n net.ipv4.conf.{conf}.rp_filter").strip() == str(lab.mode)
    assert lab.homelab.sh("sysctl -n net.ipv4.conf.wg0.rp_filter").strip() == "2"


# ---- scenario 1

def test_tcp_reaches_homelab_with_real_client_address(lab):
    assert lab.tcp_ask("client", BRIDGE_PUBLIC, SERVICE_TCP) == CLIENT


def test_udp_reaches_homelab_with_real_client_address(lab):
    assert lab.udp_ask("client", BRIDGE_PUBLIC, SERVICE_UDP) == CLIENT


def test_icmp_reaches_homelab(lab):
    lab.homelab.run("conntrack -D -p icmp", check=False)
    result = lab.ping("client", BRIDGE_PUBLIC, count=3)
    assert result["received"] == 3, result
    assert set(result["from"]) == {BRIDGE_PUBLIC}
    # The echo was answered by the homelab: its conntrack saw it, from the real client.
    seen = lab.homelab.sh("conntrack -L -p icmp 2>/dev/null")
    assert f"src={CLIENT} dst={HOMELAB_TUNNEL}" in seen, seen


# ---- scenario 2

def scanned_key(lab, port: int) -> str:
    out = lab.client.sh(f"ssh-keyscan -T 5 -t ed25519 -p {port} {BRIDGE_PUBLIC} 2>/dev/null")
    keys = [line.split()[2] for line in out.splitlines() if "ssh-ed25519" in line]
    assert len(keys) == 1, f"ssh-keyscan -p {port}: {out!r}"
    return keys[0]


def test_ssh_ports_bridge_keeps_2222_homelab_gets_22(lab):
    assert lab.host_key("bridge") != lab.host_key("homelab")
    assert scanned_key(lab, BRIDGE_SSH_PORT) == lab.host_key("bridge")
    assert scanned_key(lab, 22) == lab.host_key("homelab")


def test_ssh_login_lands_on_the_right_host(lab):
    homelab = lab.client.sh(f"{SSH} -p 22 root@{BRIDGE_PUBLIC} 'cat /run/lab/whoami; echo $SSH_CONNECTION'")
    bridge = lab.client.sh(f"{SSH} -p {BRIDGE_SSH_PORT} root@{BRIDGE_PUBLIC} 'cat /run/lab/whoami; echo $SSH_CONNECTION'")
    assert homelab.split()[0] == "homelab" and homelab.split()[1] == CLIENT, homelab
    assert bridge.split()[0] == "bridge" and bridge.split()[1] == CLIENT, bridge


def test_wireguard_port_stays_on_the_bridge(lab):
    """The tunnel itself works (it could not if 51820/udp were forwarded), and the
    bridge's WireGuard, not the homelab, knows the homelab as peer at the CGNAT's address."""
    assert f"{CGNAT_PUBLIC}:" in lab.bridge.sh("wg show wg0 endpoints")
    assert lab.ping("homelab", "10.0.0.1", count=2)["received"] == 2


# ---- scenario 3

def test_container_behind_second_nat_sees_real_client(lab):
    assert lab.tcp_ask("client", BRIDGE_PUBLIC, PUBLISHED_PORT) == CLIENT


def test_container_fails_without_connection_mark_rules(lab):
    """Remove the homelab's CONNMARK jump: the container's replies leave through the
    CGNAT and the connection fails. Put back by the (idempotent) up hook."""
    jump = "-m comment --comment cgnat:wg0 -j CGNAT-wg0-PRE"
    lab.homelab.sh(f"iptables -t mangle -D PREROUTING {jump}")
    try:
        assert lab.tcp_ask("client", BRIDGE_PUBLIC, PUBLISHED_PORT, timeout=3) is None
        # The homelab's own services still work by the source-address rule alone.
        assert lab.tcp_ask("client", BRIDGE_PUBLIC, SERVICE_TCP) == CLIENT
    finally:
        lab.homelab.sh("/usr/lib/cgnat-homelab/hooks/up wg0")
    assert lab.tcp_ask("client", BRIDGE_PUBLIC, PUBLISHED_PORT) == CLIENT


# ---- scenario 4

def test_homelab_outbound_leaves_through_cgnat(lab):
    assert lab.tcp_ask("homelab", CLIENT, OUTBOUND_PORT) == CGNAT_PUBLIC


def test_container_outbound_leaves_through_cgnat(lab):
    assert lab.tcp_ask("ctr", CLIENT, OUTBOUND_PORT) == CGNAT_PUBLIC


def test_homelab_outbound_udp_and_icmp_skip_the_tunnel(lab):
    before = int(lab.bridge.sh("wg show wg0 transfer").split()[1])
    assert lab.ping("homelab", CLIENT, count=3)["received"] == 3
    assert lab.tcp_ask("homelab", CLIENT, OUTBOUND_PORT) == CGNAT_PUBLIC
    # Nothing of it crossed the tunnel (keepalives are 32 bytes every 25 s: allow one).
    after = int(lab.bridge.sh("wg show wg0 transfer").split()[1])
    assert after - before <= 32 * 2, (before, after)
