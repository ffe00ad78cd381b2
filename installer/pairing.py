"""Pairing tokens: the public half of one host's setup, pasted on the other host.

    cgnat1-<base32 of "role|public key|endpoint|tunnel" followed by its CRC-32>

Base32 survives copy and paste from any terminal (no '+', '/', '-' or case to lose), and
the CRC-32 catches any mistyped character. A token carries public data only.
"""
from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass

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
        fields = payload.decode(errors="replace").split("|")
        if len(fields) != 4:
            raise TokenError("the token is damaged (wrong number of fields); copy it again")
        return cls(*fields)
