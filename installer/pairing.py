"""Pairing tokens: the public half of one host's setup, pasted on the other host.

    cgnat2-<base32 of "role|public key|endpoint|tunnel|ssh port|forward" + its CRC-32>
    cgnat1-<base32 of "role|public key|endpoint|tunnel" + its CRC-32>      (still accepted)

Version 2 adds what the homelab's watchdog needs to know of the bridge: the bridge's own
SSH port and what it forwards ("all", or its list joined by commas); both are empty in a
homelab's token.

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

PREFIX = "cgnat2-"
FIELDS = {"cgnat1-": 4, "cgnat2-": 6}     # the number of fields of each version


class TokenError(ValueError):
    pass


@dataclass(frozen=True)
class PairingToken:
    role: str            # the role of the host that printed it
    public_key: str
    endpoint: str        # "host:port" of the bridge; "" in a homelab's token
    tunnel: str
    ssh_port: str = ""   # the bridge's own SSH port (cgnat2); "" in a homelab's or a cgnat1 token
    forward: str = ""    # the bridge's forward: "all" or "tcp/80,tcp/443,icmp" (cgnat2)

    def encode(self) -> str:
        fields = (self.role, self.public_key, self.endpoint, self.tunnel, self.ssh_port, self.forward)
        payload = "|".join(fields).encode()
        raw = payload + zlib.crc32(payload).to_bytes(4, "big")
        return PREFIX + base64.b32encode(raw).decode().rstrip("=").lower()

    @classmethod
    def decode(cls, token: str) -> "PairingToken":
        token = "".join(token.split())  # a token folded over lines by a terminal still works
        prefix = token[:len(PREFIX)]
        if prefix not in FIELDS:
            raise TokenError(f"a pairing token starts with {PREFIX!r} (or the older 'cgnat1-')")
        body = token[len(prefix):].upper()
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
        if len(fields) != FIELDS[prefix]:
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
        _fill_bridge_reach(data, token)


def _fill_bridge_reach(data: dict, token: PairingToken) -> None:
    """A cgnat2 bridge token's SSH port and forward, for the homelab's watchdog; keys the
    answers set themselves win. Judged by validation like any answer (bridge_ssh_port,
    bridge_forward)."""
    told = {}
    if token.ssh_port:
        told["bridge_ssh_port"] = int(token.ssh_port) if grammar.is_port(token.ssh_port) else token.ssh_port
    if token.forward:
        told["bridge_forward"] = "all" if token.forward == "all" else token.forward.split(",")
    homelab = data["homelab"]
    watchdog = homelab.setdefault("watchdog", {}) if told and isinstance(homelab, dict) else None
    if isinstance(watchdog, dict):    # else not a table: validation says so
        for key, value in told.items():
            watchdog.setdefault(key, value)


def token_for(answers, public_key: str) -> str:
    """The pairing token of a host set up with these (resolved) answers."""
    if answers.role != "bridge":
        return PairingToken(answers.role, public_key, "", answers.tunnel).encode()
    b = answers.bridge
    forward = b.forward if isinstance(b.forward, str) else ",".join(b.forward)
    return PairingToken(answers.role, public_key, f"{b.public_address}:{answers.listen_port}",
                        answers.tunnel, str(b.ssh_port), forward).encode()
