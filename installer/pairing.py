"""Pairing tokens: the public half of one host's setup, pasted on the other host.

    cgnat3-<base32 of "role|public key|endpoint|tunnel|ssh port|forward|tunnel6|address6" + its CRC-32>

Besides the key and the tunnel, a bridge's token tells the homelab's watchdog the bridge's
own SSH port and what it forwards ("all", or its list joined by commas), and the homelab's
wizard the public IPv6 address the bridge forwards (empty when it forwards none); a
homelab's token leaves those three empty. tunnel6 (the tunnel's IPv6 prefix) comes from
either host. The version is in the prefix: a later one may add fields. The prefixes
"cgnat1-" and "cgnat2-" were printed only before the first release; they are refused with
a line that says how to get a current token.

Base32 survives copy and paste from any terminal (no '+', '/', '-' or case to lose: an
upper-case "CGNAT3-..." reads the same; lower case is what is printed), and the CRC-32
catches any mistyped character. A token carries public data only.

Which fields a host's token fills, and what a host takes from its peer's, is its role's
(installer/roles.py: token_fields, take_token); this module is the format.

A token is pasted from anywhere (chat, e-mail, a forum post), so it is never trusted: its
fields go into the same answers fields an answers file fills, and through the same
validation (installer.validate), before any of them reaches a file.
"""
from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass

from installer import ROLES, grammar, roles
from installer.roles import peer
from installer.errors import InvalidAnswers, Problem

PREFIX = "cgnat3-"
FIELDS = 8                                  # the number of fields of a cgnat3- token
UNRELEASED = ("cgnat1-", "cgnat2-")         # printed by development versions only


class TokenError(ValueError):
    pass


@dataclass(frozen=True)
class PairingToken:
    role: str            # the role of the host that printed it
    public_key: str
    endpoint: str        # "host:port" of the bridge; "" in a homelab's token
    tunnel: str
    ssh_port: str = ""   # the bridge's own SSH port; "" in a homelab's token
    forward: str = ""    # the bridge's forward: "all" or "tcp/80,tcp/443,icmp"; "" in a homelab's
    tunnel6: str = ""    # the tunnel's ULA prefix
    address6: str = ""   # the public IPv6 address the bridge forwards; "" if none

    def encode(self) -> str:
        fields = (self.role, self.public_key, self.endpoint, self.tunnel, self.ssh_port, self.forward,
                  self.tunnel6, self.address6)
        payload = "|".join(fields).encode()
        raw = payload + zlib.crc32(payload).to_bytes(4, "big")
        return PREFIX + base64.b32encode(raw).decode().rstrip("=").lower()

    @classmethod
    def decode(cls, token: str) -> "PairingToken":
        token = "".join(token.split())  # a token folded over lines by a terminal still works
        prefix = token[:len(PREFIX)].lower()      # base32 and its prefix: pasted from a shouting terminal
        if prefix in UNRELEASED:
            raise TokenError(f"{prefix!r} tokens came from a development version; run cgnat-setup "
                             f"on the other host again and paste the {PREFIX!r} token it prints")
        if prefix != PREFIX:
            raise TokenError(f"a pairing token starts with {PREFIX!r}")
        body = token[len(prefix):].upper()
        try:
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
        except (binascii.Error, ValueError):
            raise TokenError("the token is damaged (not base32); copy it again") from None
        # A typo in the last character may change only its unused bits, which b32decode ignores.
        if base64.b32encode(raw).decode().rstrip("=") != body:
            raise TokenError("the token is damaged (not base32); copy it again")
        payload, checksum = raw[:-4], raw[-4:]
        if len(raw) < 5 or zlib.crc32(payload).to_bytes(4, "big") != checksum:
            raise TokenError("the token is damaged (checksum mismatch); copy it again")
        try:
            fields = payload.decode("utf-8").split("|")
        except UnicodeDecodeError:
            raise TokenError("the token is damaged (not UTF-8 text); copy it again") from None
        if len(fields) != FIELDS:
            raise TokenError("the token is damaged (wrong number of fields); copy it again")
        if fields[0] not in ROLES:
            raise TokenError(f"the token is not from a bridge or a homelab ({fields[0]!r})")
        token = cls(*fields)
        # The other fields become answers and are judged there (installer.validate); this
        # one is only shown, so it is judged here: the address a bridge forwards comes with
        # what it forwards (a homelab's token has neither).
        if token.address6 and not (token.forward and grammar.is_global_ipv6(token.address6)):
            raise TokenError(f"the token's IPv6 address {token.address6!r} is not a bridge's global "
                             f"IPv6 address; copy it again")
        return token


def fill_answers(data: dict, token_text: str, default_role: str | None) -> None:
    """Put the peer's public data from a pairing token into the answers (unvalidated,
    like every answer: load_answers judges them next)."""
    try:
        token = PairingToken.decode(token_text)
    except TokenError as error:
        raise InvalidAnswers([Problem("pair", str(error))]) from None
    role = data.get("role", default_role)
    if token.role == role:
        raise InvalidAnswers([Problem("pair", f"this token comes from a {token.role}; "
                                              f"paste it on the other host, not on a {role}")])
    data["role"] = peer(token.role)
    data["peer_public_key"] = token.public_key
    data["tunnel"] = token.tunnel
    if token.tunnel6:
        data["tunnel6"] = token.tunnel6
    ours = roles.get(data["role"])
    if ours is not None:          # else validation says this host has no such role
        ours.take_token(data, token)


def decoded(token_text: str) -> PairingToken | None:
    """The token, or None when it is not one (fill_answers says why)."""
    try:
        return PairingToken.decode(token_text)
    except TokenError:
        return None


def token_for(answers, public_key: str) -> str:
    """The pairing token of a host set up with these (resolved) answers: the common fields,
    and what its role tells the peer (a bridge: its endpoint, SSH port, forward, IPv6 address)."""
    told = {"endpoint": "", **roles.get(answers.role).token_fields(answers)}
    return PairingToken(role=answers.role, public_key=public_key, tunnel=answers.tunnel,
                        tunnel6=answers.tunnel6, **told).encode()
