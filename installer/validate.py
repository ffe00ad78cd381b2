"""Every rule about answers, in one place: structure (keys and types) and meaning.

Problems are collected, never raised one by one, so a user sees all of them at once.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import types
import typing
from pathlib import Path

from cgnat_bridge.answers import BridgeAnswers
from cgnat_homelab.answers import HomelabAnswers
from installer import ROLES, grammar
from installer.detect import HostFacts
from installer.errors import InvalidAnswers, Problem
from installer.keys import is_wireguard_key

ROLE_MODELS = {"bridge": BridgeAnswers, "homelab": HomelabAnswers}
INTERFACE_RULE = "must be 1-15 letters, digits and _.=- starting with a letter or digit, not all or default"
WATCHDOG_ACTIONS = ("reboot", "restart-tunnel", "none")
IPV6_MODES = ("auto", "off")
# Marks other tools on the same host use: clashing with them would misroute their traffic.
FOREIGN_MARKS = {"Tailscale": 0xFF0000, "kube-proxy": 0xC000}
RESERVED_TABLES = {0, 253, 254, 255}


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
    answers = ROLE_MODELS[role]()
    return answers, _fill(answers, data, prefix="")


def _fill(target, data: dict, prefix: str) -> list[Problem]:
    """Copy `data` into the dataclass `target`, reporting unknown keys and wrong types."""
    problems = []
    hints = typing.get_type_hints(type(target))
    names = {f.name for f in dataclasses.fields(target)}
    for key, value in data.items():
        path = prefix + key
        if key not in names:
            problems.append(Problem(path, f"unknown key (known here: {', '.join(sorted(names))})"))
        elif dataclasses.is_dataclass(hints[key]):
            if isinstance(value, dict):
                problems += _fill(getattr(target, key), value, prefix=path + ".")
            else:
                problems.append(Problem(path, "must be a table ([" + path + "])"))
        elif _matches(value, hints[key]):
            if any(grammar.has_control(text) for text in _strings(value)):
                problems.append(Problem(path, "holds a control character (a newline, tab, ...)"))
            setattr(target, key, value)
        else:
            problems.append(Problem(path, f"must be {_describe(hints[key])}, not {value!r}"))
    return problems


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
    problems = _check_common(answers, facts)
    if answers.role == "bridge":
        problems += _check_bridge(answers, facts)
    else:
        problems += _check_homelab(answers)
    return problems


def _check_common(a, facts) -> list[Problem]:
    problems = []
    installed = facts.installed_role if facts is not None else None
    if installed is not None and a.role != installed:
        problems.append(Problem("role", f"is {a.role!r}, but this host has the cgnat-{installed} "
                                        f"package; a {a.role} needs cgnat-{a.role} (they conflict)"))
    if not grammar.is_interface(a.interface):
        problems.append(Problem("interface", INTERFACE_RULE))
    tunnel = grammar.ipv4_network(a.tunnel)
    if tunnel is None:
        problems.append(Problem("tunnel", f"{a.tunnel!r} is not an IPv4 network like 10.0.0.0/24"))
    elif (unusable := grammar.unusable(tunnel)) is not None:
        problems.append(Problem("tunnel", f"{tunnel} overlaps {unusable}, which cannot carry a tunnel"))
    elif tunnel.prefixlen > 30:
        problems.append(Problem("tunnel", "must hold at least two hosts (a prefix of /30 or shorter)"))
    elif facts is not None:
        for dst, dev in facts.routes:
            if dev != a.interface and tunnel.overlaps(ipaddress.ip_network(dst, strict=False)):
                problems.append(Problem("tunnel", f"overlaps the route {dst} dev {dev} of this host"))
    if grammar.ula_network(a.tunnel6) is None:
        problems.append(Problem("tunnel6", f"{a.tunnel6!r} is not a unique local IPv6 network of /64 or "
                                           f"shorter, like fd63:676e:6174::/64"))
    problems += _check_port("listen_port", a.listen_port)
    if a.private_key_file is not None:
        if grammar.ABSOLUTE_PATH.fullmatch(a.private_key_file) is None:
            problems.append(Problem("private_key_file", "must be an absolute path like /root/wg.key"))
        else:
            problems += _check_key_file(Path(a.private_key_file))
    if a.peer_public_key is not None and not is_wireguard_key(a.peer_public_key):
        problems.append(Problem("peer_public_key", "is not a WireGuard key (44 characters of base64)"))
    return problems


def _check_bridge(a: BridgeAnswers, facts) -> list[Problem]:
    b = a.bridge
    problems = _check_port("bridge.ssh_port", b.ssh_port)
    if b.public_interface is not None:
        if not grammar.is_interface(b.public_interface):
            problems.append(Problem("bridge.public_interface", INTERFACE_RULE))
        elif facts is not None and b.public_interface not in facts.interfaces:
            known = ", ".join(sorted(facts.interfaces)) or "none"
            problems.append(Problem("bridge.public_interface",
                                    f"{b.public_interface!r} does not exist here (interfaces: {known})"))
    elif facts is not None and facts.default_interface is None:
        problems.append(Problem("bridge.public_interface", "no default route to detect it from; set it"))
    public = b.public_interface or (facts.default_interface if facts is not None else None)
    if b.public_address is not None:
        problems += _check_public_address(b.public_address)
    elif public in (facts.interfaces if facts is not None else {}) and facts.ipv4_address(public) is None:
        # Else the pairing token would carry no address for the homelab to dial.
        problems.append(Problem("bridge.public_address", f"{public} has no IPv4 address to detect it from; set it"))
    if b.ipv6 not in IPV6_MODES:
        problems.append(Problem("bridge.ipv6", f"must be one of {', '.join(IPV6_MODES)}, not {b.ipv6!r}"))
    if b.public_address6 is not None and not grammar.is_global_ipv6(b.public_address6):
        problems.append(Problem("bridge.public_address6", f"{b.public_address6!r} is not a global unicast "
                                                          f"IPv6 address like 2001:db8::7 (no scope id)"))
    kept = {("udp", a.listen_port): "listen_port", ("tcp", b.ssh_port): "bridge.ssh_port"}
    for i, spec in enumerate(b.keep_local):
        if grammar.port_range(spec) is None:
            problems.append(Problem(f"bridge.keep_local[{i}]", f"{spec!r} is not like \"tcp/25\" or \"udp/60000-60010\""))
    problems += _forward_problems("bridge.forward", b.forward)
    for i, spec in enumerate(b.forward if isinstance(b.forward, list) else []):
        span = grammar.port_range(spec)
        for (proto, port), owner in kept.items():
            if span and span[0] == proto and span[1] <= port <= span[2]:
                problems.append(Problem(f"bridge.forward[{i}]", f"{spec} includes {proto}/{port}, which {owner} keeps on the bridge"))
    problems += _check_watchdog_keys("bridge.", b)
    return problems


def _check_homelab(a: HomelabAnswers) -> list[Problem]:
    h = a.homelab
    problems = []
    if h.endpoint is None:
        problems.append(Problem("homelab.endpoint", "is required: the bridge's address and port, like \"203.0.113.7:51820\" (or use --pair)"))
    elif (message := grammar.endpoint_problem(h.endpoint)) is not None:
        problems.append(Problem("homelab.endpoint", message))
    if not 0 <= h.keepalive <= 65535:
        problems.append(Problem("homelab.keepalive", "must be 0 (off) to 65535 seconds"))
    tunnel = grammar.ipv4_network(a.tunnel)
    for i, subnet in enumerate(h.docker_subnets or []):
        network = grammar.ipv4_network(subnet)
        if network is None:
            problems.append(Problem(f"homelab.docker_subnets[{i}]", f"{subnet!r} is not a network like 172.19.0.0/16"))
        elif tunnel is not None and network.overlaps(tunnel):
            problems.append(Problem(f"homelab.docker_subnets[{i}]", f"{subnet} overlaps the tunnel {a.tunnel}"))
    if not 1 <= h.table < 2**32 or h.table in RESERVED_TABLES:
        problems.append(Problem("homelab.table", "must be 1 to 4294967295 and not 253-255 (default, main, local)"))
    problems += _check_fwmark(h.fwmark)
    w = h.watchdog
    if w.action not in WATCHDOG_ACTIONS:
        problems.append(Problem("homelab.watchdog.action", f"must be one of {', '.join(WATCHDOG_ACTIONS)}, not {w.action!r}"))
    if w.check_host is not None and not (grammar.is_hostname(w.check_host) or grammar.is_ipv4(w.check_host)):
        problems.append(Problem("homelab.watchdog.check_host", f"{w.check_host!r} is not a host name or address"))
    problems += _check_watchdog_keys("homelab.watchdog.", w)
    if w.bridge_forward is not None:
        problems += _forward_problems("homelab.watchdog.bridge_forward", w.bridge_forward)
    return problems


def _forward_problems(key: str, forward) -> list[Problem]:
    """A forward setting: "all", or a non-empty list of "tcp/N", "udp/N-M" and "icmp"."""
    if isinstance(forward, str):
        return [] if forward == "all" else [Problem(key, f"must be \"all\" or a list like [\"tcp/443\"], not {forward!r}")]
    if not forward:
        return [Problem(key, "an empty list forwards nothing; list ports or use \"all\"")]
    return [Problem(f"{key}[{i}]", f"{spec!r} is not like \"tcp/443\", \"udp/51900-51910\" or \"icmp\"")
            for i, spec in enumerate(forward) if spec != "icmp" and grammar.port_range(spec) is None]


# --- the watchdogs' added keys (cgnat_homelab.watchdog, cgnat_bridge.watchdog) ---
WATCHDOG_PORT_KEYS = ("check_port", "bridge_ssh_port")
WATCHDOG_SECONDS_KEYS = ("check_interval", "restart_after", "restart_interval", "action_after",
                         "action_interval", "boot_grace", "max_reboots_per_day",
                         "watchdog_silent_after")
WATCHDOG_COMMAND_KEYS = ("restart_command", "action_command",
                         "watchdog_restart_command", "watchdog_up_command")
WATCHDOG_DIRECTORY_KEYS = ("metrics_dir", "watchdog_metrics_dir")   # "" turns the metrics off


def _check_watchdog_keys(prefix: str, section) -> list[Problem]:
    """Ports are ports, durations and counts are not negative, commands are not blank, directories
    are safe absolute paths."""
    problems = []
    for name in WATCHDOG_PORT_KEYS + WATCHDOG_SECONDS_KEYS + WATCHDOG_COMMAND_KEYS + WATCHDOG_DIRECTORY_KEYS:
        value = getattr(section, name, None)
        if value is None:
            continue
        if name in WATCHDOG_PORT_KEYS:
            problems += _check_port(prefix + name, value)
        elif name in WATCHDOG_SECONDS_KEYS and value < 0:
            problems.append(Problem(prefix + name, f"must be 0 or more, not {value}"))
        elif name in WATCHDOG_COMMAND_KEYS and not value.strip():
            problems.append(Problem(prefix + name, "is empty; leave it out to use the default"))
        elif name in WATCHDOG_DIRECTORY_KEYS and value and not grammar.is_safe_directory(value):
            problems.append(Problem(prefix + name, f"{value!r} is not an absolute path of letters, digits, "
                                                   f"\"_\", \"-\" and \".\" (\"\" turns the metrics off)"))
    return problems


def _check_port(key: str, port: int) -> list[Problem]:
    return [] if 1 <= port <= 65535 else [Problem(key, f"{port} is not a port (1-65535)")]


def _check_key_file(path: Path) -> list[Problem]:
    key = "private_key_file"
    if not path.is_file():
        return [Problem(key, f"{path} does not exist")]
    if path.stat().st_mode & 0o077:
        return [Problem(key, f"{path} is readable by others (mode {path.stat().st_mode & 0o777:04o}); chmod 600 it")]
    if not is_wireguard_key(path.read_text().strip()):
        return [Problem(key, f"{path} does not hold a WireGuard private key")]
    return []


def _check_fwmark(text: str) -> list[Problem]:
    key = "homelab.fwmark"
    if grammar.FWMARK.fullmatch(text) is None:
        return [Problem(key, f"{text!r} is not a number like \"0x1000000\"")]
    mark = int(text, 0)
    if not 0 < mark < 2**32 or mark & (mark - 1):
        return [Problem(key, "must be a single bit, like 0x1000000")]
    return [Problem(key, f"{text} clashes with the marks of {tool} ({bits:#x})")
            for tool, bits in FOREIGN_MARKS.items() if mark & bits]


def _check_public_address(text: str) -> list[Problem]:
    key = "bridge.public_address"
    if not grammar.is_ipv4(text):
        return [Problem(key, f"{text!r} is not an IPv4 address")]
    if (unusable := grammar.unusable(text)) is not None:
        return [Problem(key, f"{text} is in {unusable}, which is not a public address")]
    return []


# --- warnings: setups that work, but where the homelab's watchdog cannot check everything ---

def warnings(answers, homelab_sshd: bool) -> list[Problem]:
    """What --check and a setup run say without failing (exit 0): the end-to-end check of the
    homelab's watchdog (cgnat_homelab/endtoend.py) needs a TCP port the bridge forwards.
    `homelab_sshd`: whether the homelab runs an sshd (host keys in /etc/ssh)."""
    from cgnat_homelab.decision import DEFAULTS
    from cgnat_homelab.endtoend import SSH_PORT, choose, forwards, tcp_ranges
    if answers.role == "bridge":
        b = answers.bridge
        ranges = tcp_ranges(b.forward)
        if ranges == []:
            return [Problem("bridge.forward", "warning: forwards no TCP port, so the homelab's watchdog "
                                              "cannot check the chain end to end; add one, e.g. \"tcp/22\" "
                                              "for the homelab's sshd")]
        if ranges and not forwards(b.forward, b.ssh_port, SSH_PORT):
            return [Problem("bridge.forward", f"warning: leaves out tcp/{SSH_PORT}, the homelab's default "
                                              f"end-to-end check (its sshd); it checks on tcp/{ranges[0][0]} "
                                              f"instead, where a service must listen on the homelab")]
        return []
    w = answers.homelab.watchdog
    forward = w.bridge_forward or "all"
    ssh_port = w.bridge_ssh_port or DEFAULTS["bridge_ssh_port"]
    check, missing = choose(forward, ssh_port, w.check_port, homelab_sshd)
    if check is None:
        return [Problem("homelab.watchdog", f"warning: no end-to-end check is possible: {missing}")]
    if w.check_port is not None and not forwards(forward, ssh_port, w.check_port):
        return [Problem("homelab.watchdog.check_port",
                        f"warning: the bridge does not forward tcp/{w.check_port} "
                        f"(bridge_forward {forward}): the check would reach the bridge itself; "
                        f"add tcp/{w.check_port} to the bridge's forward list or choose a forwarded port")]
    return []
