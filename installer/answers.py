"""The answers shared by both roles, and the TOML form of every answers object.

An answers object is plain state: the wizard edits it, an answers file fills it,
`installer.validate` judges it, `installer.plan` turns it into files and commands.
"""
from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (Ubuntu 22.04)
    import tomli as tomllib

TOMLError = tomllib.TOMLDecodeError
ANSWERS_PATH = "/etc/cgnat/answers.toml"     # where setup saves them, the watchdogs read them


@dataclass
class CommonAnswers:
    role: str = ""
    interface: str = "wg0"
    tunnel: str = "10.0.0.0/24"
    listen_port: int = 51820
    private_key_file: str | None = None
    peer_public_key: str | None = None

    # Both ends take fixed hosts of the tunnel subnet: the bridge .1, the homelab .2.
    @property
    def bridge_address(self) -> str:
        return str(ipaddress.ip_network(self.tunnel, strict=False)[1])

    @property
    def homelab_address(self) -> str:
        return str(ipaddress.ip_network(self.tunnel, strict=False)[2])

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.tunnel, strict=False).prefixlen


def parse_toml(text: str) -> dict:
    return tomllib.loads(text)


def to_dict(answers) -> dict:
    """The answers as nested dicts, without unset (None) values."""

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        return value

    return clean(dataclasses.asdict(answers))


def to_toml(answers) -> str:
    """A TOML answers file that replays these answers (top-level keys, then tables)."""
    return _toml_table(to_dict(answers), prefix="")


def _toml_table(table: dict, prefix: str) -> str:
    scalars = [f"{k} = {_toml_value(v)}\n" for k, v in table.items() if not isinstance(v, dict)]
    out = "".join(scalars)
    for key, sub in table.items():
        if isinstance(sub, dict):
            name = f"{prefix}{key}"
            out += f"\n[{name}]\n" + _toml_table(sub, prefix=f"{name}.")
    return out


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
