"""The detection parsers, fed with output captured from the real commands."""
from unitdata import DATA

from cgnat_bridge import sshd
from installer import detect


def test_interfaces_lists_addresses_per_interface():
    found = detect.interfaces((DATA / "host-addr.json").read_text())
    assert found["ens3"][0] == "198.51.100.1/24"
    assert found["docker0"][0] == "172.17.0.1/16"
    assert found["lo"][0] == "127.0.0.1/8"


def test_default_route_interface():
    assert detect.default_route_interface((DATA / "host-route.json").read_text()) == "ens3"
    assert detect.default_route_interface("[]") is None


def test_routes_exclude_default_and_keep_device():
    routes = detect.routes((DATA / "host-route.json").read_text())
    assert ("10.8.0.0/24", "ens3") in routes
    assert ("172.19.0.0/16", "br-3f2a9c1d7e60") in routes
    assert all(dst != "default" for dst, _ in routes)


def test_docker_subnets_come_from_docker_bridges_only():
    assert detect.docker_subnets((DATA / "host-addr.json").read_text()) == [
        "172.17.0.0/16", "172.19.0.0/16"]


def test_sshd_ports_from_real_sshd_T():
    assert sshd.listening_ports((DATA / "sshd-T.txt").read_text()) == [22]
    assert sshd.listening_ports("port 22\nport 2222\nlistenaddress 0.0.0.0:2222\n") == [22, 2222]


def test_listening_sockets_and_port_free():
    sockets = detect.listening_sockets((DATA / "host-ss.txt").read_text())
    assert detect.Socket("udp", "0.0.0.0", 51820, "socat") in sockets
    assert detect.Socket("tcp", "*", 443, "socat") in sockets
    assert not detect.port_free("udp", 51820, sockets)
    assert detect.port_free("tcp", 51820, sockets)
    assert all(s.public for s in sockets)
    assert not detect.Socket("tcp", "127.0.0.1", 631, "cupsd").public


def test_ipv4_address_of_interface(facts):
    assert facts.ipv4_address("ens3") == "198.51.100.1"
    assert facts.ipv4_address("missing") is None


def test_ipv6_disabled_says_which_setting_disables_it(tmp_path):
    conf = tmp_path / "conf"
    for name, value in (("default", "1"), ("wg0", "0"), ("all", "1")):
        (conf / name).mkdir(parents=True)
        (conf / name / "disable_ipv6").write_text(value + "\n")
    assert detect.ipv6_disabled("wg0", conf) is None                    # the interface's own setting
    assert detect.ipv6_disabled("wg1", conf) == "net.ipv6.conf.default.disable_ipv6 is 1"   # not created yet
    (conf / "default" / "disable_ipv6").write_text("0\n")
    assert detect.ipv6_disabled("wg1", conf) is None
    assert detect.ipv6_disabled("wg0", tmp_path / "absent") == "the kernel runs without IPv6 (booted with ipv6.disable=1)"


def test_ipv6_warnings_on_a_host_with_ipv6_disabled():
    from installer.validate import load_answers, warnings

    def ipv6_warnings(answers, disabled):     # the only warnings of these answers
        return warnings(answers, disabled)

    homelab = load_answers({"role": "homelab", "homelab": {"endpoint": "203.0.113.7:51820"}}, None, None)
    bridge = load_answers({"role": "bridge", "bridge": {"public_interface": "ens3", "public_address": "203.0.113.7"}},
                          None, None)
    assert ipv6_warnings(homelab, None) == [] and ipv6_warnings(bridge, "x") == []   # nothing to forward
    [warning] = ipv6_warnings(homelab, "net.ipv6.conf.default.disable_ipv6 is 1")
    assert warning.key == "tunnel6" and "the tunnel will carry IPv4 only" in warning.message
    bridge.bridge.public_address6 = "2001:db8::7"
    assert [w.key for w in ipv6_warnings(bridge, "x")] == ["bridge.public_address6"]
    bridge.bridge.ipv6 = "off"
    assert ipv6_warnings(bridge, "x") == []


def test_ports_that_are_not_ports_are_left_out_not_a_crash():
    """Issue 18: detected values pass the same grammar as typed ones."""
    assert sshd.listening_ports("port 22\nport abc\nport ٢٢\nlistenaddress [::]:x\nport 99999\n") == [22]
    sockets = detect.listening_sockets('tcp LISTEN 0 128 0.0.0.0:ssh 0.0.0.0:* users:(("sshd",pid=1,fd=3))\n'
                                       'tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=1,fd=3))\n')
    assert [s.port for s in sockets] == [22]
