import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import base64
import zlib

from installer.errors import InvalidAnswers
from installer.pairing import PairingToken, TokenError, fill_answers, token_for
from installer.validate import load_answers

from unitdata import PEER_PUBLIC

TUNNEL6 = "fd12:3456:789a::/64"
TOKEN = PairingToken("bridge", PEER_PUBLIC, "203.0.113.7:51820", "10.0.0.0/24", "2299", "tcp/80,tcp/443,icmp",
                     TUNNEL6, "2001:db8::7")


def encoded(prefix: str, *fields: str) -> str:
    """A token of these fields with its checksum, whatever their number, behind `prefix`."""
    payload = "|".join(fields).encode()
    raw = payload + zlib.crc32(payload).to_bytes(4, "big")
    return prefix + base64.b32encode(raw).decode().rstrip("=").lower()


def test_round_trip():
    text = TOKEN.encode()
    assert text.startswith("cgnat3-")
    assert PairingToken.decode(text) == TOKEN


@pytest.mark.parametrize("prefix, fields", [
    ("cgnat1-", ("bridge", PEER_PUBLIC, "203.0.113.7:51820", "10.0.0.0/24")),
    ("cgnat2-", ("bridge", PEER_PUBLIC, "203.0.113.7:51820", "10.0.0.0/24", "2222", "all")),
    ("CGNAT2-", ("bridge", PEER_PUBLIC, "203.0.113.7:51820", "10.0.0.0/24", "2222", "all"))])
def test_a_token_of_a_development_version_is_refused_with_what_to_do(prefix, fields):
    """cgnat1- and cgnat2- tokens were printed before the first release only."""
    with pytest.raises(TokenError) as raised:
        PairingToken.decode(encoded(prefix, *fields))
    assert str(raised.value) == (f"{prefix.lower()!r} tokens came from a development version; run "
                                 f"cgnat-setup on the other host again and paste the 'cgnat3-' token it prints")
    with pytest.raises(InvalidAnswers) as raised:
        fill_answers({"role": "homelab"}, encoded(prefix, *fields), None)
    assert [p.key for p in raised.value.problems] == ["pair"]


def test_a_token_needs_its_eight_fields():
    for fields in (("bridge", PEER_PUBLIC, "203.0.113.7:51820", "10.0.0.0/24"),
                   ("bridge", PEER_PUBLIC, "203.0.113.7:51820", "10.0.0.0/24", "2222", "all"),
                   ("bridge", PEER_PUBLIC, "203.0.113.7:51820", "10.0.0.0/24", "2222", "all", TUNNEL6, "", "")):
        with pytest.raises(TokenError, match="wrong number of fields"):
            PairingToken.decode(encoded("cgnat3-", *fields))


def test_token_survives_folding_and_case():
    text = TOKEN.encode()
    assert PairingToken.decode(text[:30] + "\n  " + text[30:].upper().replace("CGNAT3-", "cgnat3-")) == TOKEN


def test_token_carries_no_private_data():
    assert set(PairingToken.decode(TOKEN.encode()).__dict__) == {"role", "public_key", "endpoint", "tunnel",
                                                                 "ssh_port", "forward", "tunnel6", "address6"}


def test_a_token_carries_tunnel6_both_ways():
    data = {"role": "homelab"}
    fill_answers(data, TOKEN.encode(), None)
    assert data["tunnel6"] == TUNNEL6
    assert load_answers(data, None, None).homelab_address6 == "fd12:3456:789a::2"
    data = {"role": "bridge"}
    fill_answers(data, PairingToken("homelab", PEER_PUBLIC, "", "10.0.0.0/24", tunnel6=TUNNEL6).encode(), None)
    assert data["tunnel6"] == TUNNEL6


@pytest.mark.parametrize("tunnel6", ["2001:db8::/64", "fd00::/65", "fd00::/64\n", "fd00::1%lo/64", "fd0٠::/64"])
def test_a_tokens_tunnel6_passes_the_same_validation(tunnel6):
    token = PairingToken("bridge", PEER_PUBLIC, "203.0.113.7:51820", "10.0.0.0/24", "2222", "all", tunnel6)
    data = {"role": "homelab"}
    fill_answers(data, token.encode(), None)
    with pytest.raises(InvalidAnswers) as raised:
        load_answers(data, None, None)
    assert [p.key for p in raised.value.problems] == ["tunnel6"]


@pytest.mark.parametrize("role, address6", [
    ("bridge", "fd00::7"), ("bridge", "fe80::1"), ("bridge", "2001:db8::7%eth0"), ("bridge", "2001:db8::7\n"),
    ("bridge", "::ffff:203.0.113.7"), ("bridge", "203.0.113.7"), ("homelab", "2001:db8::7")])
def test_a_tokens_ipv6_address_must_be_a_bridges_global_address(role, address6):
    endpoint = "203.0.113.7:51820" if role == "bridge" else ""
    token = PairingToken(role, PEER_PUBLIC, endpoint, "10.0.0.0/24", "", "", TUNNEL6, address6)
    with pytest.raises(TokenError, match="IPv6 address"):
        PairingToken.decode(token.encode())


def test_token_for_says_the_ipv6_address_only_where_the_bridge_forwards_it():
    bridge = load_answers({"role": "bridge", "tunnel6": TUNNEL6, "bridge": {
        "public_interface": "ens3", "public_address": "203.0.113.7", "public_address6": "2001:db8::7"}}, None, None)
    assert PairingToken.decode(token_for(bridge, PEER_PUBLIC)) == PairingToken(
        "bridge", PEER_PUBLIC, "203.0.113.7:51820", "10.0.0.0/24", "2222", "all", TUNNEL6, "2001:db8::7")
    bridge.bridge.ipv6 = "off"
    assert PairingToken.decode(token_for(bridge, PEER_PUBLIC)).address6 == ""
    homelab = load_answers({"role": "homelab", "homelab": {"endpoint": "203.0.113.7:51820"}}, None, None)
    assert PairingToken.decode(token_for(homelab, PEER_PUBLIC)) == PairingToken(
        "homelab", PEER_PUBLIC, "", "10.0.0.0/24", tunnel6="fd63:676e:6174::/64")


def test_a_bridge_token_tells_the_homelab_its_ssh_port_and_forward():
    data = {"role": "homelab"}
    fill_answers(data, TOKEN.encode(), None)
    assert data["homelab"]["watchdog"] == {"bridge_ssh_port": 2299, "bridge_forward": ["tcp/80", "tcp/443", "icmp"]}
    everything = PairingToken("bridge", PEER_PUBLIC, "203.0.113.7:51820", "10.0.0.0/24", "2222", "all")
    # Saved answers of an earlier pairing: the bridge's new word wins (a re-pair after its change).
    data = {"role": "homelab", "homelab": {"watchdog": {"bridge_ssh_port": 2200, "bridge_forward": ["tcp/80"],
                                                        "check_port": 443}}}
    fill_answers(data, everything.encode(), None)
    assert data["homelab"]["watchdog"] == {"bridge_ssh_port": 2222, "bridge_forward": "all", "check_port": 443}
    data = {"role": "homelab"}
    fill_answers(data, PairingToken("bridge", PEER_PUBLIC, "203.0.113.7:51820", "10.0.0.0/24").encode(), None)
    assert "watchdog" not in data["homelab"] and "tunnel6" not in data   # none told: the defaults


def test_a_homelab_token_tells_the_bridge_nothing_more():
    data = {"role": "bridge"}
    fill_answers(data, PairingToken("homelab", PEER_PUBLIC, "", "10.0.0.0/24").encode(), None)
    assert set(data) == {"role", "peer_public_key", "tunnel"}


@pytest.mark.parametrize("ssh_port, forward, key", [
    ("22x", "all", "homelab.watchdog.bridge_ssh_port"), ("0", "all", "homelab.watchdog.bridge_ssh_port"),
    ("٢٢", "all", "homelab.watchdog.bridge_ssh_port"), ("2222", "tcp/080", "homelab.watchdog.bridge_forward[0]"),
    ("2222", "tcp/80\n", "homelab.watchdog.bridge_forward[0]"), ("2222", "everything", "homelab.watchdog.bridge_forward[0]")])
def test_a_tokens_bridge_fields_pass_the_same_validation(ssh_port, forward, key):
    token = PairingToken("bridge", PEER_PUBLIC, "203.0.113.7:51820", "10.0.0.0/24", ssh_port, forward)
    data = {"role": "homelab"}
    fill_answers(data, token.encode(), None)
    with pytest.raises(InvalidAnswers) as raised:
        load_answers(data, None, None)
    assert key in [p.key for p in raised.value.problems]
    assert {p.key.split("[")[0] for p in raised.value.problems} == {key.split("[")[0]}


@given(st.integers(min_value=len("cgnat3-"), max_value=300), st.sampled_from("abcdefghijklmnopqrstuvwxyz234567"))
def test_every_single_mistyped_character_is_caught(position, replacement):
    text = TOKEN.encode()
    position = position % len(text)
    assume(position >= len("cgnat3-") and text[position] != replacement)
    damaged = text[:position] + replacement + text[position + 1:]
    with pytest.raises(TokenError, match="damaged"):
        PairingToken.decode(damaged)


@given(st.sampled_from(["cgnat3-", "CGNAT3-"]), st.text(alphabet=string.printable, max_size=80))
def test_garbage_is_rejected_with_a_token_error(prefix, text):
    # Random text passes a CRC-32 about once in 4 billion tries: it must be refused.
    with pytest.raises(TokenError):
        PairingToken.decode(prefix + text)


@given(st.sampled_from(["bridge", "homelab"]), st.from_regex(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=", fullmatch=True),
       st.from_regex(r"(203\.0\.113\.[0-9]{1,2}:[0-9]{2,5})?", fullmatch=True),
       st.from_regex(r"fd[0-9a-f]{2}(:[0-9a-f]{1,4}){0,3}::/(4[89]|5[0-9]|6[0-4])", fullmatch=True),
       st.from_regex(r"(2001:db8(:[0-9a-f]{1,4}){0,4}::[0-9a-f]{1,4})?", fullmatch=True))
def test_tokens_round_trip(role, key, endpoint, tunnel6, address6):
    bridge = role == "bridge"
    token = PairingToken(role, key, endpoint, "10.0.0.0/24", "2222" if bridge else "", "all" if bridge else "",
                         tunnel6, address6 if bridge else "")
    assert PairingToken.decode(token.encode()) == token


def test_wrong_prefix_is_rejected():
    with pytest.raises(TokenError, match="starts with"):
        PairingToken.decode("wg-" + TOKEN.encode())


def test_an_upper_case_token_decodes_to_the_same_answers_and_lower_case_is_printed():
    """Issue 18: base32 is case-insensitive; people paste from shouting terminals."""
    token = PairingToken("bridge", PEER_PUBLIC, "203.0.113.7:51820", "10.0.0.0/24", "2222", "all", TUNNEL6)
    text = token.encode()
    assert text == text.lower() and text.startswith("cgnat3-")
    for pasted in (text.upper(), "CGNAT3-" + text[7:], text[:7] + text[7:].upper()):
        assert PairingToken.decode(pasted) == token
        shouted, calm = {"role": "homelab"}, {"role": "homelab"}
        fill_answers(shouted, pasted, None)
        fill_answers(calm, text, None)
        assert shouted == calm
