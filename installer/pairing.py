"""Pairing tokens: the public half of one host's setup, pasted on the other host.

    cgnat1-<base32 of "role|public key|endpoint|tunnel" followed by its CRC-32>

Base32 survives copy and paste from any terminal (no '+', '/', '-' or case to lose), and
the CRC-32 catches any mistyped character. A token carries public data only.

A token is pasted from anywhere (chat, e-mail, a forum post), so it is never trusted: its
fields go into the same answers fields an answers file fills, and through the same
validation (installer.validate), before any of them reaches a file.
"""
from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass

from installer import ROLES, grammar
from installer.errors import InvalidAnswers, Problem

PREFIX = "cgnat1-"


class TokenError(ValueError):
    pass


@dataclass(frozen=True)
class PairingToken:
    role: str            # the role of the host that printed it
    public_key: str
    endpoint: str        # "host:port" of the bridge; "" in a homelab's token
    tunnel: str

    def encode(self) -> str:
        payload = "|".join((self.role, self.public_key, self.endpoint, self.tunnel)).encode()
        raw = payload + zlib.crc32(payload).to_bytes(4, "big")
        return PREFIX + base64.b32encode(raw).decode().rstrip("=").lower()

    @classmethod
    def decode(cls, token: str) -> "PairingToken":
        token = "".join(token.split())  # a token folded over lines by a terminal still works
        if not token.startswith(PREFIX):
            raise TokenError(f"a pairing token starts with {PREFIX!r}")
        body = token[len(PREFIX):].upper()
        try:
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
        except (binascii.Error, ValueError):
            raise TokenError("the token is damaged (not base32); copy it again") from None
        payload, checksum = raw[:-4], raw[-4:]
        if len(raw) < 5 or zlib.crc32(payload).to_bytes(4, "big") != checksum:
            raise TokenError("the token is damaged (checksum mismatch); copy it again")
        try:
            fields = payload.decode("utf-8").split("|")
        except UnicodeDecodeError:
            raise TokenError("the token is damaged (not UTF-8 text); copy it again") from None
        if len(fields) != 4:
            raise TokenError("the token is damaged (wrong number of fields); copy it again")
        if fields[0] not in ROLES:
            raise TokenError(f"the token is not from a bridge or a homelab ({fields[0]!r})")
        return cls(*fields)


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
    data["role"] = "homelab" if token.role == "bridge" else "bridge"
    data["peer_public_key"] = token.public_key
    data["tunnel"] = token.tunnel
    if token.role == "bridge":
        data.setdefault("homelab", {})["endpoint"] = token.endpoint
        port = token.endpoint.rpartition(":")[2]
        if grammar.is_port(port):     # else homelab.endpoint's check says what is wrong
            data["listen_port"] = int(port)


def token_for(answers, public_key: str) -> str:
    """The pairing token of a host set up with these (resolved) answers."""
    endpoint = ""
    if answers.role == "bridge":
        endpoint = f"{answers.bridge.public_address}:{answers.listen_port}"
    return PairingToken(answers.role, public_key, endpoint, answers.tunnel).encode()
