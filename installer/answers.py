"""The answers shared by both roles, and the TOML form of every answers object.

An answers object is plain state: the wizard edits it, an answers file fills it,
`installer.validate` judges it, `installer.plan` turns it into files and commands.
"""
from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import tomli_w   # vendored: writes TOML with every string escaped as the format requires

from installer.errors import InvalidAnswers, Problem

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (Ubuntu 22.04)
    import tomli as tomllib

ANSWERS_PATH = "/etc/cgnat/answers.toml"     # where setup saves them, the watchdogs read them


@dataclass
class CommonAnswers:
    role: str = ""
    interface: str = "wg0"
    tunnel: str = "10.0.0.0/24"
    tunnel6: str = "fd63:676e:6174::/64"   # ULA inside the tunnel ("cgnat" in hex): ::1 and ::2
    listen_port: int = 51820
    private_key_file: str | None = None
    peer_public_key: str | None = None

    # Both ends take fixed hosts of the tunnel subnets: the bridge .1 and ::1, the homelab .2 and ::2.
    @property
    def bridge_address(self) -> str:
        return _host(self.tunnel, 1)

    @property
    def homelab_address(self) -> str:
        return _host(self.tunnel, 2)

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.tunnel, strict=False).prefixlen

    @property
    def bridge_address6(self) -> str:
        return _host(self.tunnel6, 1)

    @property
    def homelab_address6(self) -> str:
        return _host(self.tunnel6, 2)

    @property
    def prefixlen6(self) -> int:
        return ipaddress.ip_network(self.tunnel6, strict=False).prefixlen


def _host(network: str, index: int) -> str:
    return str(ipaddress.ip_network(network, strict=False)[index])


MAX_BYTES = 1 << 20     # 1 MiB: an answers file is a few hundred bytes; /dev/zero is not one


def read_limited(file: BinaryIO) -> bytes:
    """An answers file's bytes, at most one more than parse_toml() takes (--answers /dev/zero),
    so that it can say the file is too long."""
    return file.read(MAX_BYTES + 1)


def read_file(path: Path) -> bytes:
    with path.open("rb") as file:
        return read_limited(file)


def parse_toml(data: bytes | str) -> dict:
    """Parsed answers; InvalidAnswers for anything that is not UTF-8 TOML of sane depth and
    size (its readers read at most MAX_BYTES + 1: read_limited)."""
    if len(data) > MAX_BYTES:
        raise InvalidAnswers([Problem("(syntax)", f"longer than {MAX_BYTES} bytes; an answers file "
                                                  f"is a few hundred")])
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return tomllib.loads(text)
    except UnicodeDecodeError as error:
        problem = f"not UTF-8 text (byte {error.start}: {error.object[error.start:error.end]!r})"
    except tomllib.TOMLDecodeError as error:
        problem = str(error)
    except RecursionError:
        problem = "nested too deeply"
    except ValueError:      # after its subclasses above: only an integer beyond Python's digit limit
        problem = "a number is too long to read (more than 4300 digits)"
    raise InvalidAnswers([Problem("(syntax)", problem)])


def to_dict(answers) -> dict:
    """The answers as nested dicts, without unset (None) values."""

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        return value

    return clean(dataclasses.asdict(answers))


def to_toml(answers) -> str:
    """A TOML answers file that replays these answers (top-level keys, then tables)."""
    return tomli_w.dumps(to_dict(answers))
