"""Issue 18, the values: a well-formed value is still refused when its consumer would misread
it (the kernel's routing, ip rule, wg-quick, libc's resolver, the watchdog's arithmetic)."""
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from installer import detect, grammar, setup
from installer.errors import InvalidAnswers
from installer.pairing import PairingToken
from installer.validate import load_answers

from unitdata import PEER_PUBLIC


def problems(data, facts=None):
    with pytest.raises(InvalidAnswers) as raised:
        load_answers(data, None, facts)
    return {p.key: p.message for p in raised.value.problems}


def bridge(**keys):
    return {"role": "bridge", "bridge": {"public_interface": "ens3", **keys}}


def homelab(**keys):
    return {"role": "homelab", "homelab": {"endpoint": "203.0.113.7:51820", **keys}}


# --- 1. tunnel ranges: private, CGNAT or ULA space, never too broad, clear of the host's routes ---

def test_a_tokens_tunnel_of_an_eighth_of_the_internet_is_refused():
    token = PairingToken("bridge", PEER_PUBLIC, "203.0.113.7:51820", "32.0.0.0/3", "2222", "all").encode()
    with pytest.raises(InvalidAnswers) as raised:
        setup.load(b"", token, "homelab", None)
    assert {p.key: p.message for p in raised.value.problems} == {
        "tunnel": "32.0.0.0/3 is not in private or CGNAT space (10.0.0.0/8, 172.16.0.0/12, "
                  "192.168.0.0/16, 100.64.0.0/10); like 10.0.0.0/24"}


@pytest.mark.parametrize("tunnel, message", [
    ("203.0.113.0/24", "is not in private or CGNAT space"),
    ("8.8.8.0/24", "is not in private or CGNAT space"),
    ("10.0.0.0/8", "10.0.0.0/8 is broader than /16"),
    ("100.64.0.0/10", "is broader than /16"),
    ("172.0.0.0/8", "is not in private or CGNAT space"),
    ("127.0.0.0/24", "which cannot carry a tunnel"),
])
def test_an_ipv4_tunnel_outside_private_space_or_too_broad_is_refused(tunnel, message):
    assert message in problems({**bridge(), "tunnel": tunnel})["tunnel"]


@pytest.mark.parametrize("tunnel", ["10.1.0.0/16", "172.31.255.0/24", "192.168.7.0/30", "100.127.0.0/24"])
def test_private_and_cgnat_tunnels_pass(tunnel):
    assert load_answers({**bridge(), "tunnel": tunnel}, None, None).tunnel == tunnel


@pytest.mark.parametrize("tunnel6", ["fd00::/8", "fc00::/7", "fd63:676e::/32", "fd63:676e:6174::/47", "2001:db8::/64"])
def test_a_tunnel6_outside_ula_or_broader_than_48_is_refused(tunnel6):
    assert "is not a unique local IPv6 network of /48 to /64" in problems({**bridge(), "tunnel6": tunnel6})["tunnel6"]


def test_a_tokens_tunnel6_of_a_whole_ula_is_refused():
    token = PairingToken("bridge", PEER_PUBLIC, "203.0.113.7:51820", "10.0.0.0/24", "2222", "all", "fc00::/7").encode()
    with pytest.raises(InvalidAnswers) as raised:
        setup.load(b"", token, "homelab", None)
    assert [p.key for p in raised.value.problems] == ["tunnel6"]


def test_tunnel6_on_the_lans_ula_route_is_refused(facts):
    lan = detect.routes('[{"dst":"fd63:676e:6174::/64","dev":"eth0","protocol":"ra","metric":100},'
                        '{"dst":"fe80::/64","dev":"eth0","protocol":"kernel","metric":256},'
                        '{"dst":"fd00::5","dev":"eth0"}]')
    assert lan == [("fd63:676e:6174::/64", "eth0"), ("fe80::/64", "eth0"), ("fd00::5/128", "eth0")]
    facts.routes += lan
    assert problems(bridge(), facts)["tunnel6"] == "overlaps the route fd63:676e:6174::/64 dev eth0 of this host"
    facts.routes[-3] = ("fd63:676e:6174::/64", "wg0")     # our own tunnel's route: no clash
    assert load_answers(bridge(), None, facts).tunnel6 == "fd63:676e:6174::/64"


@given(st.ip_addresses(v=4), st.integers(0, 32))
@settings(max_examples=300)
def test_every_accepted_ipv4_tunnel_is_private_or_cgnat_and_at_most_a_16(address, prefixlen):
    tunnel = f"{address}/{prefixlen}"
    try:
        answers = load_answers({**bridge(), "tunnel": tunnel}, None, None)
    except InvalidAnswers as invalid:
        assert [p.key for p in invalid.problems] == ["tunnel"]
        return
    network = ipaddress.ip_network(answers.tunnel, strict=False)
    assert 16 <= network.prefixlen <= 30
    assert any(network.subnet_of(space) for space in grammar.TUNNEL_SPACES)


@given(st.ip_addresses(v=6), st.integers(0, 128))
@settings(max_examples=300)
def test_every_accepted_tunnel6_is_ula_of_48_to_64(address, prefixlen):
    network = grammar.ula_network(f"{address}/{prefixlen}")
    if network is not None:
        assert network.subnet_of(grammar.ULA) and 48 <= network.prefixlen <= 64
