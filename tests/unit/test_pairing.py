import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from installer.pairing import PairingToken, TokenError

from unitdata import PEER_PUBLIC

TOKEN = PairingToken("bridge", PEER_PUBLIC, "203.0.113.7:51820", "10.0.0.0/24")


def test_round_trip():
    text = TOKEN.encode()
    assert text.startswith("cgnat1-")
    assert PairingToken.decode(text) == TOKEN


def test_token_survives_folding_and_case():
    text = TOKEN.encode()
    assert PairingToken.decode(text[:30] + "\n  " + text[30:].upper().replace("CGNAT1-", "cgnat1-")) == TOKEN


def test_token_carries_no_private_data():
    assert set(PairingToken.decode(TOKEN.encode()).__dict__) == {"role", "public_key", "endpoint", "tunnel"}


@given(st.integers(min_value=len("cgnat1-"), max_value=200), st.sampled_from("abcdefghijklmnopqrstuvwxyz234567"))
def test_every_single_mistyped_character_is_caught(position, replacement):
    text = TOKEN.encode()
    position = position % len(text)
    if position < len("cgnat1-") or text[position] == replacement:
        return
    damaged = text[:position] + replacement + text[position + 1:]
    with pytest.raises(TokenError, match="damaged"):
        PairingToken.decode(damaged)


@given(st.text(alphabet=string.printable, max_size=80))
def test_garbage_is_rejected_with_a_token_error(text):
    # Random text passes a CRC-32 about once in 4 billion tries: it must be refused.
    with pytest.raises(TokenError):
        PairingToken.decode("cgnat1-" + text)


@given(st.sampled_from(["bridge", "homelab"]), st.from_regex(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=", fullmatch=True),
       st.from_regex(r"(203\.0\.113\.[0-9]{1,2}:[0-9]{2,5})?", fullmatch=True))
def test_tokens_round_trip(role, key, endpoint):
    token = PairingToken(role, key, endpoint, "10.0.0.0/24")
    assert PairingToken.decode(token.encode()) == token


def test_wrong_prefix_is_rejected():
    with pytest.raises(TokenError, match="starts with"):
        PairingToken.decode("wg-" + TOKEN.encode())
