"""Dual stack: the bridge's public IPv6 address forwards to the homelab's tunnel ULA like
its IPv4 address does (scenarios 1-8 for IPv6). The default lab's homelab has no IPv6 of
its own at all (a CGNAT line without IPv6), and an `ip6tables -m rpfilter` rule (what
firewalld adds) in its raw table; the bridge's public interface takes router
advertisements (accept_ra 1, a SLAAC VPS)."""
from __future__ import annotations

import pytest

from netlab import (BRIDGE_PUBLIC, BRIDGE_PUBLIC6, BRIDGE_SSH_PORT, CLIENT, CLIENT6, HOMELAB_LAN6,
                    HOMELAB_TUNNEL6, INET_BRIDGE_SIDE6, WG_PORT, make_lab)

SERVICE_TCP, SERVICE_UDP, BULK, OUTBOUND_PORT, SERVICE_TCP4 = 8000, 5353, 8001, 9000, 8002
SIZE = 20_000_000
RPFILTER = "-t raw -A PREROUTING -m rpfilter --invert -j DROP"
PTB_BLACK_HOLE = "-p ipv6-icmp -m icmp6 --icmpv6-type packet-too-big -j DROP"


def scanned_key(lab, port: int) -> str:
    out = lab.client.run(f"ssh-keyscan -T 5 -t ed25519 -p {port} {BRIDGE_PUBLIC6}", check=False, timeout=20).stdout
    return out.split()[2] if out.split() else ""


def states(lab) -> dict:
    return {role: lab.nodes[role].snapshot6() for role in ("bridge", "homelab")}


def sysctl(lab, node: str, key: str) -> str:
    return lab.nodes[node].sh(f"sysctl -n {key}").strip()


@pytest.fixture(scope="module")
def lab(request, packages):
    lab = make_lab(request, packages, homelab_rp_filter=1).prepare()
    lab.homelab.sh(f"ip6tables {RPFILTER}")
    lab.bridge.sysctl(**{"net.ipv6.conf.ens3.accept_ra": 1})
    lab.before = states(lab)
    lab.start_sshd("bridge")
    lab.start_sshd("homelab")
    lab.tunnel_up()
    lab.bridge.wait_listening("tcp", BRIDGE_SSH_PORT)
    lab.homelab.wait_listening("tcp", 22)
    lab.serve_peer_tcp("homelab", SERVICE_TCP, v6=True)
    lab.serve_peer_udp("homelab", SERVICE_UDP, v6=True)
    lab.homelab.spawn(f"socat TCP6-LISTEN:{BULK},reuseaddr,fork SYSTEM:'head -c {SIZE} /dev/zero'")
    lab.homelab.wait_listening("tcp", BULK)
    return lab


def test_the_homelab_has_no_ipv6_of_its_own_and_rpfilter_is_in_force(lab):
    assert lab.homelab.sh("ip -6 addr show scope global").count("inet6") == 1   # only wg0's ULA
    assert HOMELAB_TUNNEL6 in lab.homelab.sh("ip -6 addr show dev wg0")
    assert lab.homelab.sh("ip -6 route show default").strip() == ""
    assert "-m rpfilter --invert -j DROP" in lab.homelab.sh("ip6tables-save -t raw")


def test_setup_rendered_the_ipv6_rules_for_the_detected_address(lab):
    rules6 = lab.bridge.read("/etc/cgnat/wg0.rules6")
    assert f"-d {BRIDGE_PUBLIC6} -p tcp -j DNAT --to-destination {HOMELAB_TUNNEL6}" in rules6
    assert f'public_address6 = "{BRIDGE_PUBLIC6}"' in lab.bridge.read("/etc/cgnat/answers.toml")


def test_tcp6_reaches_homelab_with_real_client_address(lab):
    assert lab.tcp_ask("client", BRIDGE_PUBLIC6, SERVICE_TCP) == CLIENT6


def test_udp6_reaches_homelab_with_real_client_address(lab):
    assert lab.udp_ask("client", BRIDGE_PUBLIC6, SERVICE_UDP) == CLIENT6


def test_icmpv6_echo_reaches_homelab(lab):
    lab.homelab.run("conntrack -D -f ipv6 -p icmpv6", check=False)
    result = lab.ping("client", BRIDGE_PUBLIC6, count=3)
    assert result["received"] == 3, result
    seen = lab.homelab.sh("conntrack -L -f ipv6 -p icmpv6 2>/dev/null")
    assert f"src={CLIENT6} dst={HOMELAB_TUNNEL6}" in seen, seen


def test_rpfilter_dropped_none_of_the_forwarded_packets(lab):
    """It looks the client up from our tunnel address, which our `from` rule routes into the
    tunnel (measured: without that rule it drops every forwarded SYN)."""
    assert lab.tcp_ask("client", BRIDGE_PUBLIC6, SERVICE_TCP) == CLIENT6
    counters = lab.homelab.sh("ip6tables -t raw -L PREROUTING -v -x -n")
    rule = next(line for line in counters.splitlines() if "rpfilter" in line)
    assert int(rule.split()[0]) == 0, counters


def test_port_22_over_ipv6_belongs_to_the_homelab_and_ssh_port_stays_on_the_bridge(lab):
    assert scanned_key(lab, 22) == lab.host_key("homelab")
    assert scanned_key(lab, BRIDGE_SSH_PORT) == lab.host_key("bridge")


def test_wireguard_port_over_ipv6_stays_on_the_bridge(lab):
    lab.client.run(f"echo x | timeout 2 socat -T1 - UDP6:[{BRIDGE_PUBLIC6}]:{WG_PORT}", check=False)
    seen = lab.bridge.sh(f"conntrack -L -f ipv6 -p udp --dport {WG_PORT} 2>/dev/null")
    # Not DNATed: the reply direction comes from the bridge's own address, not the tunnel's.
    assert f"src={BRIDGE_PUBLIC6} dst={CLIENT6}" in seen and HOMELAB_TUNNEL6 not in seen, seen


def test_neighbour_discovery_on_the_public_link_still_works(lab):
    lab.bridge.sh("ip -6 neigh flush dev ens3")
    result = lab.ping("bridge", INET_BRIDGE_SIDE6, count=2)
    assert result["received"] == 2, result
    assert "lladdr" in lab.bridge.sh(f"ip -6 neigh show {INET_BRIDGE_SIDE6} dev ens3")


def test_forwarding_is_on_and_accept_ra_kept_working(lab):
    assert sysctl(lab, "bridge", "net.ipv6.conf.all.forwarding") == "1"
    assert sysctl(lab, "bridge", "net.ipv6.conf.ens3.accept_ra") == "2"


def test_status_names_a_missing_ipv6_jump_and_the_up_hook_puts_it_back(lab):
    jump = "-t nat -D PREROUTING -m comment --comment cgnat:wg0 -j CGNAT-wg0-PRE"
    lab.bridge.sh(f"ip6tables {jump}")
    try:
        shown = lab.bridge.run("cgnat-setup status", check=False).stdout
        assert "missing: IPv6 nat PREROUTING -> CGNAT-wg0-PRE" in shown, shown
    finally:
        lab.bridge.sh("/usr/lib/cgnat-bridge/hooks/up wg0")
    shown = lab.bridge.run("cgnat-setup status", check=False).stdout
    assert "IPv6" not in shown
    assert f"ok    ipv6        {BRIDGE_PUBLIC6} -> {HOMELAB_TUNNEL6} (DNAT, AAAA {BRIDGE_PUBLIC6})" in shown, shown
    assert lab.tcp_ask("client", BRIDGE_PUBLIC6, SERVICE_TCP) == CLIENT6


def test_down_leaves_every_ipv6_rule_route_and_accept_ra_as_before_and_up_is_idempotent(lab):
    lab.tunnel_down()
    try:
        assert states(lab) == lab.before
        assert sysctl(lab, "bridge", "net.ipv6.conf.ens3.accept_ra") == "1"
    finally:
        lab.tunnel_up()
    once = states(lab)
    for role in ("bridge", "homelab"):
        lab.nodes[role].sh(f"/usr/lib/cgnat-{role}/hooks/up wg0")
    assert states(lab) == once
    assert sysctl(lab, "bridge", "net.ipv6.conf.ens3.accept_ra") == "2"
    lab.tunnel_down()
    try:
        assert sysctl(lab, "bridge", "net.ipv6.conf.ens3.accept_ra") == "1"   # the first value, kept
    finally:
        lab.tunnel_up()
    assert lab.tcp_ask("client", BRIDGE_PUBLIC6, SERVICE_TCP) == CLIENT6


def test_a_homelab_with_ipv6_disabled_comes_up_for_ipv4_and_gets_ipv6_once_enabled(lab):
    """IPv6 disabled before up, as an admin's sysctl.d does (all and default): wg-quick up
    succeeds (no Address it cannot set), the hook says in one line that it skips IPv6, an
    IPv4 client reaches the homelab with its own address, and down leaves every rule and
    route as they were. Enabled again, the next up carries IPv6 too."""
    lab.serve_peer_tcp("homelab", SERVICE_TCP4)
    lab.tunnel_down()
    disabled = {"net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1}
    try:
        lab.homelab.sysctl(**disabled)
        before = (lab.homelab.snapshot(), lab.homelab.snapshot6())
        lab.bridge.sh("wg-quick up wg0")
        said = [line for line in lab.homelab.run("wg-quick up wg0").stderr.splitlines() if "IPv6" in line]
        lab.wait_handshake()
        assert len(said) == 1 and "IPv6 is disabled on wg0" in said[0] and "IPv4 only" in said[0], said
        assert lab.homelab.sh("ip -6 addr show dev wg0").strip() == ""
        assert lab.tcp_ask("client", BRIDGE_PUBLIC, SERVICE_TCP4) == CLIENT
        shown = lab.homelab.run("cgnat-setup status", check=False).stdout
        assert "ok    rules       all present" in shown, shown
        assert "ok    routing     replies leave by wg0 (table 200): IPv4; IPv4 only: IPv6 is disabled" in shown, shown
        lab.tunnel_down()
        assert (lab.homelab.snapshot(), lab.homelab.snapshot6()) == before
    finally:
        lab.homelab.sysctl(**{key: 0 for key in disabled})
        lab.tunnel_up()
    assert HOMELAB_TUNNEL6 in lab.homelab.sh("ip -6 addr show dev wg0")
    assert lab.tcp_ask("client", BRIDGE_PUBLIC6, SERVICE_TCP) == CLIENT6


def test_mss_is_clamped_and_20mb_pass_with_packet_too_big_black_holed(lab):
    """(Last: it adds rules to other nodes.) The bridge's clamp rewrites the client's SYN."""
    for node in ("client", "homelab"):
        lab.nodes[node].sh(f"ip6tables -I INPUT {PTB_BLACK_HOLE}")
    for node in ("homelab", "bridge", "inet"):
        lab.nodes[node].sh(f"ip6tables -I FORWARD {PTB_BLACK_HOLE}; ip6tables -I OUTPUT {PTB_BLACK_HOLE}")
    out = lab.client.run(f"timeout 60 socat -u TCP6:[{BRIDGE_PUBLIC6}]:{BULK} - | wc -c",
                         check=False, timeout=70).stdout
    assert int(out.strip() or 0) == SIZE
    counters = lab.bridge.sh("ip6tables -t mangle -L CGNAT-wg0-FWD -v -x -n")
    clamp = next(line for line in counters.splitlines() if "TCPMSS" in line)
    assert int(clamp.split()[0]) > 0, counters


@pytest.fixture(scope="module")
def home6(request, packages):
    """A homelab with native IPv6 at home beside the CGNAT's IPv4."""
    lab = make_lab(request, packages, homelab_rp_filter=1, homelab_ipv6=True)
    lab.up(sshd=False)
    lab.serve_peer_tcp("homelab", SERVICE_TCP, v6=True)
    lab.serve_peer_tcp("client", OUTBOUND_PORT, v6=True)
    return lab


def test_homelab_own_ipv6_leaves_by_the_home_line_and_forwarded_ipv6_by_the_tunnel(home6):
    assert home6.tcp_ask("homelab", CLIENT6, OUTBOUND_PORT) == HOMELAB_LAN6
    assert home6.tcp_ask("client", BRIDGE_PUBLIC6, SERVICE_TCP) == CLIENT6
    # The homelab's own address still answers directly too (not through the bridge).
    assert home6.tcp_ask("client", HOMELAB_LAN6, SERVICE_TCP) == CLIENT6


@pytest.fixture(scope="module")
def allow6(request, packages):
    lab = make_lab(request, packages, homelab_rp_filter=1, forward=[f"tcp/{SERVICE_TCP}", "icmp"])
    lab.up(sshd=False)
    lab.serve_peer_tcp("homelab", SERVICE_TCP, v6=True)
    lab.serve_peer_tcp("homelab", BULK, v6=True)
    lab.serve_peer_udp("homelab", SERVICE_UDP, v6=True)
    return lab


def test_allowlist_forwards_only_the_listed_ports_over_ipv6(allow6):
    assert allow6.tcp_ask("client", BRIDGE_PUBLIC6, SERVICE_TCP) == CLIENT6
    assert allow6.ping("client", BRIDGE_PUBLIC6, count=2)["received"] == 2
    assert allow6.tcp_ask("client", BRIDGE_PUBLIC6, BULK, timeout=2) is None
    assert allow6.udp_ask("client", BRIDGE_PUBLIC6, SERVICE_UDP, timeout=2) is None
    assert allow6.homelab.listening("tcp", BULK) and allow6.homelab.listening("udp", SERVICE_UDP)
