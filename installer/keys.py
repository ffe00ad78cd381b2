"""WireGuard keys. The private key only ever goes from `wg genkey` into a 0600 file."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from installer.errors import SetupError
from installer.grammar import WIREGUARD_KEY

PRIVATE_KEY_LINE = re.compile(r"^\s*PrivateKey\s*=\s*(\S+)\s*$", re.MULTILINE)


def is_wireguard_key(text: str) -> bool:
    """A WireGuard key is 32 bytes in standard base64: 43 characters (the last with its two
    low bits zero) and "="."""
    return WIREGUARD_KEY.fullmatch(text) is not None


def generate_private_key() -> str:
    return _wg("genkey")


def public_key(private_key: str) -> str:
    return _wg("pubkey", stdin=private_key + "\n")


def key_in_config(conf: tuple[bytes, int] | None) -> str | None:
    """The PrivateKey of an existing WireGuard config (its bytes and mode, None when absent),
    so a re-run keeps the same identity."""
    if conf is None:
        return None
    match = PRIVATE_KEY_LINE.search(conf[0].decode(errors="replace"))
    return match.group(1) if match and is_wireguard_key(match.group(1)) else None


def read_key_file(path: Path) -> str:
    return path.read_text().strip()


def _wg(verb: str, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(["wg", verb], input=stdin, capture_output=True, text=True)
    except FileNotFoundError:
        raise SetupError("`wg` not found: install wireguard-tools") from None
    if done.returncode != 0:
        # Never echo stdin: it is a private key.
        raise SetupError(f"`wg {verb}` failed: {done.stderr.strip()}")
    return done.stdout.strip()
