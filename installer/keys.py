"""WireGuard keys. The private key only ever goes from `wg genkey` into a 0600 file."""
from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

from installer.errors import SetupError
from installer.grammar import WIREGUARD_KEY

PRIVATE_KEY_LINE = re.compile(r"^\s*PrivateKey\s*=\s*(\S+)\s*$", re.MULTILINE)
PEER_KEY_LINE = re.compile(r"^\s*PublicKey\s*=\s*(\S+)\s*$", re.MULTILINE)


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


def peer_in_config(conf: tuple[bytes, int] | None) -> str | None:
    """The peer's PublicKey in an existing WireGuard config setup wrote (one [Peer]), if any."""
    if conf is None:
        return None
    match = PEER_KEY_LINE.search(conf[0].decode(errors="replace"))
    return match.group(1) if match and is_wireguard_key(match.group(1)) else None


def read_key_file(path: Path, group_may_read: bool = False) -> str:
    """The key in private_key_file, if that file can be trusted: a regular file of root or the
    caller, no group/other bits (but group read with `group_may_read`: a TSIG key the DNS
    server's group shares), in directories others cannot write, and no symlink to another
    owner's file. SetupError (one line, never the key) otherwise."""
    try:
        link, real = path.lstat(), path.resolve(strict=True)
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SetupError(f"{path} does not exist") from None
    except OSError as error:
        raise SetupError(f"{path} cannot be read: {error.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        trusted = (0, os.geteuid())
        if not stat.S_ISREG(st.st_mode):
            raise SetupError(f"{path} is not a regular file")
        if st.st_uid not in trusted:
            raise SetupError(f"{path} belongs to uid {st.st_uid}, not root; chown root it")
        if link.st_uid != st.st_uid:
            raise SetupError(f"{path} is a symlink of uid {link.st_uid} to a file of uid {st.st_uid}; "
                             f"name the file itself")
        if st.st_mode & (0o037 if group_may_read else 0o077):
            shared = " or writable by its group" if group_may_read else ""
            raise SetupError(f"{path} is readable by others{shared} (mode {stat.S_IMODE(st.st_mode):04o}); "
                             f"chmod {'640' if group_may_read else '600'} it")
        for directory in dict.fromkeys((path.parent, real.parent)):
            if directory.stat().st_mode & 0o022:
                raise SetupError(f"{path}: its directory {directory} is writable by group or others; "
                                 f"anyone could swap the key")
        return f.read().decode(errors="replace").strip()


def key_file_problem(path: Path) -> str | None:
    """Why private_key_file cannot be used (validation's words), None when it can."""
    try:
        key = read_key_file(path)
    except SetupError as error:
        return str(error)
    return None if is_wireguard_key(key) else f"{path} does not hold a WireGuard private key"


def _wg(verb: str, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(["wg", verb], input=stdin, capture_output=True, text=True)
    except FileNotFoundError:
        raise SetupError("`wg` not found: install wireguard-tools") from None
    if done.returncode != 0:
        # Never echo stdin: it is a private key.
        raise SetupError(f"`wg {verb}` failed: {done.stderr.strip()}")
    return done.stdout.strip()
