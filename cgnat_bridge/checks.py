"""The bridge's answers checks: the meaning of its keys, and its warnings."""
from __future__ import annotations

from cgnat_bridge.answers import BridgeAnswers
from installer import detect, grammar, validate
from installer.detect import HostFacts
from installer.errors import Problem

IPV6_MODES = ("auto", "off")
WATCHDOG_KEYS = {"seconds": ("watchdog_silent_after",), "directories": ("watchdog_metrics_dir",),
                 "commands": ("watchdog_restart_command", "watchdog_up_command")}


def check(a: BridgeAnswers, facts: HostFacts | None) -> list[Problem]:
    """The meaning of the bridge's own keys; facts=None skips the checks against the host."""
    b = a.bridge
    problems = validate.check_port("bridge.ssh_port", b.ssh_port)
    if b.public_interface is not None:
        if not grammar.is_interface(b.public_interface):
            problems.append(Problem("bridge.public_interface", validate.INTERFACE_RULE))
        elif b.public_interface == a.interface:
            problems.append(Problem("bridge.public_interface", f"{b.public_interface} is the tunnel's own "
                                                               f"interface (interface); name the public one"))
        elif facts is not None and b.public_interface not in facts.interfaces:
            known = ", ".join(sorted(facts.interfaces)) or "none"
            problems.append(Problem("bridge.public_interface",
                                    f"{b.public_interface!r} does not exist here (interfaces: {known})"))
    elif facts is not None and facts.default_interface is None:
        bad = facts.refused.get(detect.DEFAULT_INTERFACE)
        problems.append(Problem("bridge.public_interface", "no default route to detect it from; set it" if bad is None
                                else f"the default route's interface {bad!r} is not a valid name; set it"))
    public = b.public_interface or (facts.default_interface if facts is not None else None)
    if b.public_address is not None:
        problems += _check_public_address(b.public_address)
    elif public in (facts.interfaces if facts is not None else {}) and facts.ipv4_address(public) is None:
        # Else the pairing token would carry no address for the homelab to dial.
        bad = facts.refused.get(detect.address_of(public))
        problems.append(Problem("bridge.public_address", f"{public} has no IPv4 address to detect it from; set it"
                                if bad is None else f"{public}'s address {bad!r} is not a valid address; set it"))
    if b.ipv6 not in IPV6_MODES:
        problems.append(Problem("bridge.ipv6", f"must be one of {', '.join(IPV6_MODES)}, not {b.ipv6!r}"))
    if b.public_address6 is not None and not grammar.is_global_ipv6(b.public_address6):
        problems.append(Problem("bridge.public_address6", f"{b.public_address6!r} is not a global unicast "
                                                          f"IPv6 address like 2001:db8::7 (no scope id)"))
    kept = {("udp", a.listen_port): "listen_port", ("tcp", b.ssh_port): "bridge.ssh_port"}
    for i, spec in enumerate(b.keep_local):
        if grammar.port_range(spec) is None:
            problems.append(Problem(f"bridge.keep_local[{i}]", f"{spec!r} is not like \"tcp/25\" or \"udp/60000-60010\""))
    problems += validate.forward_problems("bridge.forward", b.forward)
    problems += _kept_and_forwarded(b.keep_local, b.forward)
    for i, spec in enumerate(b.forward if isinstance(b.forward, list) else []):
        span = grammar.port_range(spec)
        for (proto, port), owner in kept.items():
            if span and span[0] == proto and span[1] <= port <= span[2]:
                problems.append(Problem(f"bridge.forward[{i}]", f"{spec} includes {proto}/{port}, which {owner} keeps on the bridge"))
    problems += validate.check_watchdog_keys("bridge.", b, **WATCHDOG_KEYS)
    return problems


def _kept_and_forwarded(keep_local: list[str], forward) -> list[Problem]:
    """A port both kept and forwarded would be kept silently (keep_local wins): say so. With
    forward = "all", keep_local is how ports are left out: nothing to say."""
    problems = []
    for i, kept in enumerate(keep_local):
        for j, spec in enumerate(forward if isinstance(forward, list) else []):
            k, f = grammar.port_range(kept), grammar.port_range(spec)
            if k and f and k[0] == f[0] and k[1] <= f[2] and f[1] <= k[2]:
                problems.append(Problem(f"bridge.keep_local[{i}]", f"{kept} overlaps bridge.forward[{j}] {spec}: "
                                                                   f"the bridge would keep what it is told to "
                                                                   f"forward; remove it from one of them"))
    return problems


def _check_public_address(text: str) -> list[Problem]:
    key = "bridge.public_address"
    if not grammar.is_ipv4(text):
        return [Problem(key, f"{text!r} is not an IPv4 address")]
    if (unusable := grammar.unusable(text)) is not None:
        return [Problem(key, f"{text} is in {unusable}, which is not a public address")]
    return []


def warnings(answers: BridgeAnswers, ipv6_disabled: str | None) -> list[Problem]:
    """A bridge told to forward IPv6 needs it (wg-quick fails on the tunnel's IPv6 address)."""
    if ipv6_disabled is None or not answers.forwards_ipv6:
        return []
    return [Problem("bridge.public_address6", f"warning: IPv6 is disabled here ({ipv6_disabled}): wg-quick "
                                              f"cannot set the tunnel's IPv6 address; enable IPv6 or set "
                                              f"bridge.ipv6 = \"off\"")]
