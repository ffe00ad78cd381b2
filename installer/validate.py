"""The rules about answers: structure (keys and types), the common keys' meaning, and the
helpers each role's own checks use (cgnat_<role>/checks.py, reached through installer.roles).

Problems are collected, never raised one by one, so a user sees all of them at once.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import types
import typing
from pathlib import Path

from installer import ROLES, grammar, roles
from installer.detect import WIREGUARD_DIR, HostFacts
from installer.errors import InvalidAnswers, Problem
from installer.keys import is_wireguard_key, key_file_problem

INTERFACE_RULE = "must be 1-15 letters, digits and _.=- starting with a letter or digit, not all or default"


def load_answers(data: dict, default_role: str | None, facts: HostFacts | None):
    """Answers from parsed TOML, or InvalidAnswers listing every problem."""
    answers, problems = answers_from_dict(data, default_role)
    if answers is not None:
        # A key with the wrong type kept its default: judge the rest, report the key once.
        bad_keys = {p.key for p in problems}
        problems += [p for p in check(answers, facts) if p.key not in bad_keys]
    if problems:
        raise InvalidAnswers(problems)
    return answers


def answers_from_dict(data: dict, default_role: str | None):
    role = data.get("role", default_role)
    if role not in ROLES:
        where = "is missing and no cgnat package is installed" if role is None else f"is {role!r}"
        return None, [Problem("role", f"{where}; must be one of {', '.join(ROLES)}")]
    role_code = roles.get(role)
    if role_code is None:
        here = ", ".join(f"cgnat-{name}" for name in roles.available()) or "none"
        return None, [Problem("role", f"is {role!r}, but this host has no cgnat-{role} package "
                                      f"(installed: {here}); a {role} needs cgnat-{role}")]
    answers = role_code.model()
    return answers, _fill(answers, data, prefix="")


def _fill(target, data: dict, prefix: str) -> list[Problem]:
    """Copy `data` into the dataclass `target`, reporting unknown keys and wrong types."""
    problems = []
    hints = typing.get_type_hints(type(target))
    names = {f.name for f in dataclasses.fields(target)}
    for key, value in data.items():
        # A quoted TOML key may hold anything: shown escaped, never as a bidi override.
        path = prefix + (key if grammar.character_problem(key) is None else ascii(key)[1:-1])
        if key not in names:
            problems.append(Problem(path, f"unknown key (known here: {', '.join(sorted(names))})"))
        elif (model := _table_model(hints[key])) is not None:
            if isinstance(value, dict):
                if getattr(target, key) is None:        # an optional table, absent by default
                    setattr(target, key, model())
                problems += _fill(getattr(target, key), value, prefix=path + ".")
            else:
                problems.append(Problem(path, "must be a table ([" + path + "])"))
        elif _matches(value, hints[key]):
            found = next(filter(None, map(grammar.character_problem, _strings(value))), None)
            if found is not None:
                problems.append(Problem(path, found))
            setattr(target, key, value)
        else:
            problems.append(Problem(path, f"must be {_describe(hints[key])}, not {value!r}"))
    return problems


def _table_model(tp):
    """The dataclass a TOML table fills: the field's type, or X of an optional `X | None`."""
    options = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    return next((option for option in options if dataclasses.is_dataclass(option)), None)


def _matches(value, tp) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(tp))
    if origin is list:
        return isinstance(value, list) and all(_matches(v, typing.get_args(tp)[0]) for v in value)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is list:
        return "a list of " + _describe(typing.get_args(tp)[0]).removeprefix("a ") + "s"
    return {int: "an integer", str: "a string"}.get(tp, tp.__name__)


def check(answers, facts: HostFacts | None) -> list[Problem]:
    """Problems with the meaning of the answers; facts=None skips the checks against the host."""
    return _check_common(answers, facts) + roles.get(answers.role).check(answers, facts)


def warnings(answers, ipv6_disabled: str | None = None) -> list[Problem]:
    """What --check and a setup run say without failing (exit 0): setups that work, but where
    the homelab's watchdog checks a port the bridge does not forward, or IPv6 is left out.
    `ipv6_disabled`: why this host has no IPv6 (None: it has)."""
    return roles.get(answers.role).warnings(answers, ipv6_disabled)


def _check_common(a, facts) -> list[Problem]:
    problems = []
    installed = facts.installed_role if facts is not None else None
    if installed is not None and a.role != installed:
        problems.append(Problem("role", f"is {a.role!r}, but this host has the cgnat-{installed} "
                                        f"package; a {a.role} needs cgnat-{a.role} (they conflict)"))
    if not grammar.is_interface(a.interface):
        problems.append(Problem("interface", INTERFACE_RULE))
    elif facts is not None:
        problems += _link_clash(a.interface, facts)
    tunnel = grammar.ipv4_network(a.tunnel)
    if tunnel is None:
        problems.append(Problem("tunnel", f"{a.tunnel!r} is not an IPv4 network like 10.0.0.0/24"))
    elif (message := grammar.tunnel_problem(tunnel)) is not None:
        problems.append(Problem("tunnel", message))
    elif facts is not None:
        problems += _route_overlaps("tunnel", tunnel, a.interface, facts)
    tunnel6 = grammar.ula_network(a.tunnel6)
    if tunnel6 is None:
        problems.append(Problem("tunnel6", f"{a.tunnel6!r} is not a unique local IPv6 network of /48 to "
                                           f"/64, like fd63:676e:6174::/64"))
    elif facts is not None:
        problems += _route_overlaps("tunnel6", tunnel6, a.interface, facts)
    problems += check_port("listen_port", a.listen_port)
    if a.private_key_file is not None:
        if grammar.ABSOLUTE_PATH.fullmatch(a.private_key_file) is None:
            problems.append(Problem("private_key_file", "must be an absolute path like /etc/wireguard/wg0.key"))
        elif facts is not None:
            # Only setup reads the key (into IFACE.conf); the watchdogs, which validate with
            # facts=None inside a sandbox that may hide it (ProtectHome=), never need it.
            problems += _check_key_file(Path(a.private_key_file))
    if a.peer_public_key is not None and not is_wireguard_key(a.peer_public_key):
        problems.append(Problem("peer_public_key", "is not a WireGuard key (44 characters of base64)"))
    return problems


def _link_clash(interface: str, facts: HostFacts) -> list[Problem]:
    """An existing link of that name must be a tunnel setup may (re)configure: a kernel
    WireGuard link, or wireguard-go's "tun" link with its wg-quick config (a bare tun link is
    another VPN's, OpenVPN's say). Anything else (eth0, lo, a bridge) is never ours to take;
    whose WireGuard config it is, plan.py judges (--replace-existing)."""
    if interface not in facts.interfaces:
        return []
    kind = facts.link_kinds.get(interface, "")
    if kind == "wireguard" or kind == "tun" and f"{WIREGUARD_DIR}/{interface}.conf" in facts.wireguard_configs:
        return []
    return [Problem("interface", f"{interface} is an existing {kind or 'network'} link of this host, not a "
                                 f"WireGuard tunnel; choose another name, like wg0")]


def _route_overlaps(key: str, network, interface: str, facts: HostFacts) -> list[Problem]:
    """The host's routes (either family) that `network` overlaps, but those of our interface."""
    return [Problem(key, f"overlaps the route {dst} dev {dev} of this host")
            for dst, dev in facts.routes
            if dev != interface and network.overlaps(ipaddress.ip_network(dst, strict=False))]


def forward_problems(key: str, forward) -> list[Problem]:
    """A forward setting: "all", or a non-empty list of "tcp/N", "udp/N-M" and "icmp"."""
    if isinstance(forward, str):
        return [] if forward == "all" else [Problem(key, f"must be \"all\" or a list like [\"tcp/443\"], not {forward!r}")]
    if not forward:
        return [Problem(key, "an empty list forwards nothing; list ports or use \"all\"")]
    return [Problem(f"{key}[{i}]", f"{spec!r} is not like \"tcp/443\", \"udp/51900-51910\" or \"icmp\"")
            for i, spec in enumerate(forward) if spec != "icmp" and grammar.port_range(spec) is None]


# Every number has a bound the watchdogs' arithmetic (floats, timestamps) never overflows on.
MAX_SECONDS = 7 * 24 * 3600     # a week: longer than any sane wait or interval
MAX_COUNT = 24                  # reboots a day: one an hour is already a boot loop


def check_watchdog_keys(prefix: str, section, *, ports=(), seconds=(), counts=(), commands=(),
                        directories=()) -> list[Problem]:
    """A role's watchdog keys (each role names its own, by kind): ports are ports, durations (at
    most a week) and counts (at most MAX_COUNT) are not negative, commands are not blank,
    directories ("" turns the metrics off) are safe absolute paths. Unset (None) keys are fine."""
    problems = []
    for name in (*ports, *seconds, *counts, *commands, *directories):
        value = getattr(section, name)
        if value is None:
            continue
        if name in ports:
            problems += check_port(prefix + name, value)
        elif name in seconds:
            problems += check_range(prefix + name, value, 0, MAX_SECONDS, "seconds (a week)")
        elif name in counts:
            problems += check_range(prefix + name, value, 0, MAX_COUNT, "")
        elif name in commands and not value.strip():
            problems.append(Problem(prefix + name, "is empty; leave it out to use the default"))
        elif name in directories and value and not grammar.is_safe_directory(value):
            problems.append(Problem(prefix + name, f"{value!r} is not an absolute path of letters, digits, "
                                                   f"\"_\", \"-\" and \".\" (\"\" turns the metrics off)"))
        elif name in directories and value and _hidden_from_the_watchdog(value):
            problems.append(Problem(prefix + name, f"{value} is hidden from the watchdog's sandbox "
                                                   f"(ProtectHome=yes, PrivateTmp=yes); choose a directory "
                                                   f"under /var/lib, /srv or /var/log"))
    return problems


def _hidden_from_the_watchdog(directory: str) -> bool:
    """Under what cgnat-watchdog.service hides (ProtectHome=yes, PrivateTmp=yes): setup writes a
    drop-in that lets the watchdog write any other metrics directory (installer/metrics.py)."""
    hidden = ("/home", "/root", "/run/user", "/tmp", "/var/tmp")
    return any(directory.rstrip("/") == h or directory.startswith(h + "/") for h in hidden)


def check_port(key: str, port: int) -> list[Problem]:
    return [] if 1 <= port <= 65535 else [Problem(key, f"{number(port)} is not a port (1-65535)")]


def check_range(key: str, value: int, low: int, high: int, unit: str) -> list[Problem]:
    if value < low:
        return [Problem(key, f"must be {low} or more, not {number(value)}")]
    if value > high:
        return [Problem(key, f"must be at most {high}{' ' + unit if unit else ''}, not {number(value)}")]
    return []


def number(value: int) -> str:
    """An integer as a message shows it: a long one by its length, not its digits."""
    return str(value) if abs(value) < 10**12 else f"a number of {len(str(abs(value)))} digits"


def _check_key_file(path: Path) -> list[Problem]:
    problem = key_file_problem(path)
    return [Problem("private_key_file", problem)] if problem else []
