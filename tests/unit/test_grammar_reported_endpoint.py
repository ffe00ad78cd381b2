"""The one grammar of an endpoint as WireGuard reports it (installer/grammar.py,
REPORTED_ENDPOINT), which the bridge records and its up hook dials."""
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from installer import grammar


@given(address=st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(lambda a: f"[{a}]")),
       port=st.integers(1, 65535))
def test_every_address_and_port_wireguard_reports_is_taken(address, port):
    text = f"{address}:{port}"
    assert grammar.is_reported_endpoint(text) == ("." not in address or address[0] != "["), text


@pytest.mark.parametrize("text", [
    "(none)", "", "203.0.113.7", "203.0.113.7:", "203.0.113.7:0", "203.0.113.7:65536", "203.0.113.7:051820",
    "256.1.1.1:5", "01.2.3.4:5", "1.2.3:5", "2001:db8::7:51820", "[2001:db8::7]", "[fe80::1%eth0]:51820",
    "[::ffff:192.0.2.1]:5", "[2001:db8::7]:51820\n", "203.0.113.7:51820\n", " 203.0.113.7:51820",
    "203.0.113.7:51820\x00", "203.0.113.7:5\u0661", "\uff11.2.3.4:5", "[2001:db8:::7]:5",
    "bridge.example.org:51820", "203.0.113.7:51820 203.0.113.8:51820",
])
def test_anything_else_is_refused(text):
    assert not grammar.is_reported_endpoint(text)


@given(st.from_regex(grammar.REPORTED_ENDPOINT, fullmatch=True))
def test_what_it_takes_is_an_address_and_a_port(text):
    if grammar.is_reported_endpoint(text):
        host, _, port = text.rpartition(":")
        assert ipaddress.ip_address(host.strip("[]")) and 1 <= int(port) <= 65535
        assert text.isascii() and text.isprintable()
