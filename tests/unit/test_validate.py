"""Every validation message: the key it names and what it says."""
from pathlib import Path

import pytest

from installer.errors import InvalidAnswers
from installer.validate import load_answers

from unitdata import PEER_PUBLIC


def problems(data, facts=None, role=None):
    with pytest.raises(InvalidAnswers) as raised:
        load_answers(data, role, facts)
    return {p.key: p.message for p in raised.value.problems}


def bridge(**bridge_keys):
    return {"role": "bridge", "bridge": {"public_interface": "ens3", **bridge_keys}}


def homelab(**homelab_keys):
    return {"role": "homelab", "homelab": {"endpoint": "203.0.113.7:51820", **homelab_keys}}


def test_valid_answers_pass(facts):
    assert load_answers(bridge(), None, facts).bridge.public_interface == "ens3"
    assert load_answers(homelab(), None, facts).homelab.endpoint == "203.0.113.7:51820"


@pytest.mark.parametrize("data, key, message", [
    ({"role": "router"}, "role", "is 'router'; must be one of bridge, homelab"),
    ({}, "role", "is missing and no cgnat package is installed"),
    ({**bridge(), "colour": "red"}, "colour", "unknown key"),
    (bridge(sshport=22), "bridge.sshport", "unknown key (known here: forward, ipv6, keep_local"),
    ({**bridge(), "homelab": {}}, "homelab", "unknown key"),
    ({**bridge(), "listen_port": "51820"}, "listen_port", "must be an integer, not '51820'"),
    ({**bridge(), "listen_port": True}, "listen_port", "must be an integer"),
    ({**bridge(), "listen_port": 70000}, "listen_port", "70000 is not a port (1-65535)"),
    (bridge(ssh_port=0), "bridge.ssh_port", "0 is not a port"),
    ({**bridge(), "interface": "wireguard-tunnel0"}, "interface", "must be 1-15 letters, digits"),
    ({**bridge(), "interface": "wg 0"}, "interface", "must be 1-15 letters, digits"),
    ({**bridge(), "tunnel": "10.0.0.0/33"}, "tunnel", "is not an IPv4 network"),
    ({**bridge(), "tunnel": "fd00::/64"}, "tunnel", "is not an IPv4 network"),
    ({**bridge(), "tunnel": "10.0.0.0/31"}, "tunnel", "at least two hosts"),
    ({**bridge(), "peer_public_key": "abc"}, "peer_public_key", "is not a WireGuard key"),
    ({**bridge(), "bridge": "ens3"}, "bridge", "must be a table"),
    (bridge(public_interface="eth-with-a-long-name"), "bridge.public_interface", "must be 1-15 letters, digits"),
    (bridge(public_address="203.0.113.300"), "bridge.public_address", "is not an IPv4 address"),
    ({**bridge(), "tunnel6": "10.0.0.0/24"}, "tunnel6", "is not a unique local IPv6 network of /48 to /64"),
    ({**bridge(), "tunnel6": "fd00::/96"}, "tunnel6", "is not a unique local IPv6 network"),
    (bridge(public_address6="fe80::1"), "bridge.public_address6", "is not a global unicast IPv6 address"),
    (bridge(public_address6="203.0.113.7"), "bridge.public_address6", "is not a global unicast IPv6 address"),
    (bridge(ipv6="on"), "bridge.ipv6", "must be one of auto, off, not 'on'"),
    (bridge(ipv6=True), "bridge.ipv6", "must be a string"),
    (bridge(keep_local=["smtp"]), "bridge.keep_local[0]", "is not like \"tcp/25\""),
    (bridge(keep_local=[25]), "bridge.keep_local", "must be a list of strings"),
    (bridge(forward="some"), "bridge.forward", "must be \"all\" or a list"),
    (bridge(forward=[]), "bridge.forward", "forwards nothing"),
    (bridge(forward=["tcp/80", "tcp/443-80"]), "bridge.forward[1]", "is not like"),
    (bridge(forward=["tcp/2000-3000"]), "bridge.forward[0]", "includes tcp/2222, which bridge.ssh_port keeps"),
    (bridge(forward=["udp/51820"]), "bridge.forward[0]", "includes udp/51820, which listen_port keeps"),
    (homelab(endpoint="203.0.113.7"), "homelab.endpoint", "has no port"),
    (homelab(endpoint="203.0.113.7:0"), "homelab.endpoint", "port '0' is not a port number"),
    (homelab(endpoint="203.0.113.777:51820"), "homelab.endpoint", "is not a host name or IPv4 address"),
    (homelab(endpoint="bad_name!:51820"), "homelab.endpoint", "is not a host name"),
    ({"role": "homelab"}, "homelab.endpoint", "is required"),
    (homelab(keepalive=-1), "homelab.keepalive", "0 (off) to 65535"),
    (homelab(docker_subnets=["172.19.0.0/33"]), "homelab.docker_subnets[0]", "is not a network"),
    (homelab(docker_subnets=["10.0.0.0/16"]), "homelab.docker_subnets[0]", "overlaps the tunnel 10.0.0.0/24"),
    (homelab(docker_subnets="172.19.0.0/16"), "homelab.docker_subnets", "must be a list of strings"),
    (homelab(table=254), "homelab.table", "not 253-255"),
    (homelab(fwmark="0x3"), "homelab.fwmark", "single bit"),
    (homelab(fwmark="mark"), "homelab.fwmark", "is not a number"),
    (homelab(fwmark="0x40000"), "homelab.fwmark", "clashes with the marks of Tailscale"),
    (homelab(fwmark="0x4000"), "homelab.fwmark", "clashes with the marks of kube-proxy"),
    (homelab(watchdog={"action": "panic"}), "homelab.watchdog.action", "must be one of reboot, restart-tunnel, none"),
    (homelab(watchdog={"check_host": "not a host"}), "homelab.watchdog.check_host", "is not a host name"),
    (homelab(watchdog={"when": 1}), "homelab.watchdog.when", "unknown key"),
])
def test_problem_names_key_and_says_what_is_wrong(data, key, message):
    found = problems(data)
    assert key in found, found
    assert message in found[key]


def test_every_problem_is_reported_at_once():
    found = problems({"role": "bridge", "listen_port": 0, "tunnel": "x",
                      "bridge": {"ssh_port": "22", "forward": "none", "typo": 1}})
    assert set(found) == {"listen_port", "tunnel", "bridge.ssh_port", "bridge.forward", "bridge.typo"}


def test_wrong_type_is_reported_once_not_twice():
    assert list(problems({**bridge(), "listen_port": "x"})) == ["listen_port"]


def test_tunnel_colliding_with_a_host_route(facts):
    facts.routes.append(("10.0.0.0/16", "eth1"))
    assert "overlaps the route 10.0.0.0/16 dev eth1" in problems(bridge(), facts)["tunnel"]


def test_tunnel_route_of_our_own_interface_is_no_collision(facts):
    facts.routes.append(("10.0.0.0/24", "wg0"))
    assert load_answers(bridge(), None, facts).tunnel == "10.0.0.0/24"


def test_public_interface_must_exist(facts):
    found = problems(bridge(public_interface="ens4"), facts)
    assert "'ens4' does not exist here (interfaces: docker0, ens3, lo)" in found["bridge.public_interface"]


def test_public_interface_needs_a_default_route_when_not_given(facts):
    facts.default_interface = None
    found = problems({"role": "bridge"}, facts)
    assert "no default route" in found["bridge.public_interface"]


def test_private_key_file_checks(tmp_path, key_file, facts):
    missing = tmp_path / "nope.key"
    assert "does not exist" in problems({**bridge(), "private_key_file": str(missing)}, facts)["private_key_file"]
    key_file.chmod(0o644)
    assert "readable by others (mode 0644)" in problems({**bridge(), "private_key_file": str(key_file)}, facts)["private_key_file"]
    key_file.write_text("not a key\n")
    key_file.chmod(0o600)
    assert "does not hold a WireGuard private key" in problems({**bridge(), "private_key_file": str(key_file)}, facts)["private_key_file"]


def test_the_watchdogs_never_read_the_key_file(tmp_path, monkeypatch):
    """The watchdogs validate with facts=None inside a sandbox that may hide the key
    (ProtectHome=yes and a key under /root): they must not need it (issue 18, HIGH)."""
    hidden = tmp_path / "root" / "wg.key"
    monkeypatch.setattr(Path, "read_text", lambda *a, **k: pytest.fail("read the key file"))
    answers = load_answers({**bridge(), "private_key_file": str(hidden)}, None, None)
    assert answers.private_key_file == str(hidden)


def test_role_comes_from_the_installed_package_when_absent():
    data = {"homelab": {"endpoint": "bridge.example.org:51820"}}
    assert load_answers(data, "homelab", None).role == "homelab"


def test_allowlist_and_icmp_are_valid():
    answers = load_answers(bridge(forward=["tcp/80", "udp/51900-51910", "icmp"]), None, None)
    assert answers.bridge.forward == ["tcp/80", "udp/51900-51910", "icmp"]
    assert load_answers({**bridge(), "peer_public_key": PEER_PUBLIC}, None, None).peer_public_key == PEER_PUBLIC


@pytest.mark.parametrize("forward, key, message", [
    ("everything", "homelab.watchdog.bridge_forward", "must be \"all\" or a list like"),
    ([], "homelab.watchdog.bridge_forward", "an empty list forwards nothing"),
    (["tcp/80", "tcp/0443"], "homelab.watchdog.bridge_forward[1]", "'tcp/0443' is not like \"tcp/443\""),
    (["tcp/٨٠"], "homelab.watchdog.bridge_forward[0]", "is not like"),
])
def test_what_the_bridge_forwards_has_the_bridges_grammar(forward, key, message):
    assert message in problems(homelab(watchdog={"bridge_forward": forward}))[key]


def _warnings(data):
    from installer.validate import warnings
    return {p.key: p.message for p in warnings(load_answers(data, None, None))}


def test_warnings_name_a_check_port_the_bridge_does_not_forward():
    """The self check needs nothing of the forward list: every forward mode, no warning
    (cgnat_homelab/endtoend.py); only a check_port the bridge does not forward is worth one."""
    for forward in ("all", ["tcp/22", "tcp/80"], ["udp/53", "tcp/443"], ["udp/53", "icmp"]):
        assert _warnings(bridge(forward=forward)) == {}
    assert _warnings(homelab()) == {}
    allowlist = homelab(watchdog={"bridge_forward": ["tcp/443"], "check_port": 22})
    assert "the bridge does not forward tcp/22" in _warnings(allowlist)["homelab.watchdog.check_port"]
    assert _warnings(homelab(watchdog={"bridge_forward": ["tcp/443"]})) == {}   # checks on 443


def test_check_prints_warnings_and_still_exits_0(tmp_path, capsys):
    from installer import cli
    answers = tmp_path / "h.toml"
    answers.write_text('role = "homelab"\n[homelab]\nendpoint = "203.0.113.7:51820"\n'
                       '[homelab.watchdog]\nbridge_forward = ["udp/5353"]\ncheck_port = 443\n')
    assert cli.main(["--answers", str(answers), "--check", "--root", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"{answers}: homelab.watchdog.check_port: warning: the bridge does not forward tcp/443" in err


def test_dual_stack_keys_and_their_addresses(facts):
    answers = load_answers({**bridge(public_address6="2001:DB8::7", ipv6="auto"),
                            "tunnel6": "fd12:3456:789a:1::/56"}, None, facts)
    assert (answers.bridge_address6, answers.homelab_address6, answers.prefixlen6) == (
        "fd12:3456:789a::1", "fd12:3456:789a::2", 56)
    default = load_answers(homelab(), None, facts)
    assert (default.tunnel6, default.homelab_address6) == ("fd63:676e:6174::/64", "fd63:676e:6174::2")
