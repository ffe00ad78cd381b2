"""The TSIG key that signs the DNS updates ([homelab.dns] key_file), read strictly.

Two forms, as the tools that make keys print them:

    key "home" {                                  # BIND's: tsig-keygen, ddns-confgen -q;
            algorithm hmac-sha256;                #   what nsupdate -k and named.conf read
            secret "base64...";
    };

    # hmac-sha256:home:base64...                  # Knot's: keymgr -t; what knotd.conf includes
    key:
      - id: home
        algorithm: hmac-sha256
        secret: base64...

Lines that start with "#" are comments; anything else is refused. The file is root's (0600, or
0640 for the DNS server's group) like a WireGuard key (installer/keys.py); the secret is never
shown: a TsigKey's repr leaves it out, and messages name the file, never its text.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from pathlib import Path

from installer.errors import SetupError
from installer.keys import read_key_file

ALGORITHMS = ("hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512")
MIN_SECRET_BYTES = 16      # RFC 8945 5.2.2.1: not shorter than half the HMAC (hmac-sha256: 16)
MAX_FILE_BYTES = 4096

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?\.?"
_ALGORITHM = r"[a-z0-9-]{1,20}"
_SECRET = r"[A-Za-z0-9+/]{4,}={0,2}"
BIND_FORM = re.compile(rf'\s*key\s+"(?P<name>{_NAME})"\s*\{{\s*algorithm\s+"?(?P<algorithm>{_ALGORITHM})"?\s*;'
                       rf'\s*secret\s+"(?P<secret>{_SECRET})"\s*;\s*\}}\s*;\s*', re.ASCII)
KNOT_FORM = re.compile(rf"\s*key:[ \t]*\n[ \t]+-[ \t]+id:[ \t]+(?P<name>{_NAME})[ \t]*\n"
                       rf"[ \t]+algorithm:[ \t]+(?P<algorithm>{_ALGORITHM})[ \t]*\n"
                       rf"[ \t]+secret:[ \t]+(?P<secret>{_SECRET})\s*", re.ASCII)
COMMENT_LINE = re.compile(r"^[ \t]*#[^\n]*$", re.MULTILINE | re.ASCII)


@dataclass(frozen=True)
class TsigKey:
    name: str
    algorithm: str
    secret: bytes = field(repr=False)


class KeyFileError(ValueError):
    """Why a key file cannot be used: one line that names the file, never its secret."""


def parse(text: str, where: str) -> TsigKey:
    """The key a key file's text holds (`where` names the file in messages), or KeyFileError."""
    body = COMMENT_LINE.sub("", text)
    match = BIND_FORM.fullmatch(body) or KNOT_FORM.fullmatch(body)
    if match is None:
        raise KeyFileError(f"{where} is not a TSIG key as `tsig-keygen -a hmac-sha256 NAME` or "
                           f"`keymgr -t NAME` prints it")
    algorithm = match.group("algorithm").lower()
    if algorithm not in ALGORITHMS:
        raise KeyFileError(f"{where}: algorithm {algorithm} is not one of {', '.join(ALGORITHMS)}; "
                           f"make a key with `tsig-keygen -a hmac-sha256 NAME`")
    try:
        secret = base64.b64decode(match.group("secret"), validate=True)
    except binascii.Error:
        raise KeyFileError(f"{where}: the secret is not base64") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise KeyFileError(f"{where}: the secret is {len(secret)} bytes, shorter than {MIN_SECRET_BYTES}")
    return TsigKey(match.group("name").rstrip(".").lower(), algorithm, secret)


def read(path: str) -> TsigKey:
    """The key in a trusted key file (installer/keys.py's rules, group read allowed), or
    KeyFileError (a SetupError's message, or the parse's)."""
    try:
        text = read_key_file(Path(path), group_may_read=True)
    except SetupError as error:
        raise KeyFileError(str(error)) from None
    if len(text) > MAX_FILE_BYTES:
        raise KeyFileError(f"{path} is larger than {MAX_FILE_BYTES} bytes: not a key file")
    return parse(text, path)
