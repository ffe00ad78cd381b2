"""Where each tunnel's answers live, on a host with one tunnel or several (a homelab paired
with two bridges):

    /etc/cgnat/answers.toml          the first tunnel's answers (a single-bridge host has only this)
    /etc/cgnat/tunnels/IFACE.toml    each further tunnel's, one file per interface

Each file replays its own tunnel (`cgnat-setup --answers FILE`) and nothing else: adding or
changing a further tunnel never rewrites the first one's file. A role whose host has one
tunnel only (the bridge: `several_tunnels` False) keeps today's rule: answers naming another
interface replace the tunnel (installer/plan.py, retired_interfaces).
"""
from __future__ import annotations

from pathlib import Path

from installer import answers as answers_toml
from installer import grammar
from installer.answers import ANSWERS_PATH
from installer.errors import InvalidAnswers

TUNNELS_DIR = "/etc/cgnat/tunnels"


def further_path(interface: str) -> str:
    return f"{TUNNELS_DIR}/{interface}.toml"


def saved(root: Path) -> dict[str, tuple[str, dict]]:
    """interface -> (its answers file, its parsed answers), the first tunnel first, then the
    further ones by name. A file that does not parse, or names no valid interface, is left out
    (its own replay says what is wrong); so is a further file named after another interface."""
    found: dict[str, tuple[str, dict]] = {}
    first = _parsed(root / ANSWERS_PATH.lstrip("/"))
    if first is not None:
        found[first["interface"]] = (ANSWERS_PATH, first)
    directory = root / TUNNELS_DIR.lstrip("/")
    for path in sorted(directory.glob("*.toml")) if directory.is_dir() else ():
        data = _parsed(path)
        if data is not None and path.name == f"{data['interface']}.toml" and data["interface"] not in found:
            found[data["interface"]] = (further_path(data["interface"]), data)
    return found


def answers_files(root: Path) -> list[str]:
    """Every tunnel's answers file as its readers (status, the watchdog) take them: the first
    tunnel's always, first (when it does not parse, its reader says what is wrong), then each
    further one that `saved` found."""
    return [ANSWERS_PATH, *(file for file, _ in saved(root).values() if file != ANSWERS_PATH)]


def _parsed(path: Path) -> dict | None:
    try:
        data = answers_toml.parse_toml(answers_toml.read_file(path))
    except (OSError, InvalidAnswers):
        return None
    data.setdefault("interface", "wg0")
    return data if isinstance(data["interface"], str) and grammar.is_interface(data["interface"]) else None


def answers_path(interface: str, saved_tunnels: dict[str, tuple[str, dict]], several: bool) -> str:
    """Where the answers of `interface` are saved: its own file when it has one; else, on a host
    that may have several tunnels and already has a first one, a further tunnel's file; else the
    first tunnel's file (a new host, or a single-tunnel role replacing its tunnel)."""
    if interface in saved_tunnels:
        return saved_tunnels[interface][0]
    has_first = any(path == ANSWERS_PATH for path, _ in saved_tunnels.values())
    return further_path(interface) if several and has_first else ANSWERS_PATH


def siblings(interface: str, saved_tunnels: dict[str, tuple[str, dict]]) -> dict[str, dict]:
    """The other tunnels' parsed answers (interface -> answers data)."""
    return {name: data for name, (_, data) in saved_tunnels.items() if name != interface}
