"""The homelab's answers checks: the meaning of its keys, and its warnings."""
from __future__ import annotations

import ipaddress

from cgnat_homelab.answers import WATCHDOG_ACTIONS, HomelabAnswers
from cgnat_homelab.tunnels import sibling_problems
from cgnat_homelab.decision import DEFAULTS
from installer import grammar, tunnels, validate
from installer.detect import HostFacts
from installer.errors import Problem
from installer.forward import forwards

# Marks other tools on the same host use: clashing with them would misroute their traffic.
FOREIGN_MARKS = {"Tailscale": 0xFF0000, "kube-proxy": 0xC000}
RESERVED_TABLES = {0, 253, 254, 255}
MAX_RULE_PREF = 32764     # ip rule priorities: 32766 is main's, 32767 default's
# Routing tables of other tools: Tailscale's is looked up before main (all traffic would go
# into our tunnel), wg-quick's (Table = auto) is its tunnel's default route.
FOREIGN_TABLES = {"Tailscale": 52, "wg-quick": 51820}
WATCHDOG_KEYS = {"ports": ("check_port", "bridge_ssh_port"), "counts": ("max_reboots_per_day",),
                 "seconds": ("check_interval", "restart_after", "restart_interval", "action_after",
                             "action_interval", "boot_grace"),
                 "commands": ("restart_command", "action_command"), "directories": ("metrics_dir",)}


def check(a: HomelabAnswers, facts: HostFacts | None) -> list[Problem]:
    """The meaning of the homelab's own keys; facts=None skips the checks against the host."""
    h = a.homelab
    problems = []
    if h.endpoint is None:
        problems.append(Problem("homelab.endpoint", "is required: the bridge's address and port, like \"203.0.113.7:51820\" (or use --pair)"))
    elif (message := grammar.endpoint_problem(h.endpoint)) is not None:
        problems.append(Problem("homelab.endpoint", message))
    else:
        problems += _another_host("homelab.endpoint", h.endpoint.rpartition(":")[0].strip("[]"), h.endpoint,
                                  a, facts, "the tunnel cannot run through itself")
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
    problems += [Problem("homelab.table", f"{h.table} is the routing table of {tool}; choose another, like 200")
                 for tool, table in FOREIGN_TABLES.items() if h.table == table]
    if facts is not None:
        problems += [Problem("homelab.table", f"{h.table} is already looked up by this host's ip rule "
                                              f"\"{rule}\"; choose another")
                     for rule in _foreign_rules(a, facts) if rule.table == h.table][:1]
    problems += _check_fwmark(h.fwmark)
    if h.rule_pref is not None and not 1 <= h.rule_pref <= MAX_RULE_PREF:
        problems.append(Problem("homelab.rule_pref", f"must be 1 to {MAX_RULE_PREF} (it takes rule_pref + 1 "
                                                     f"too; 32766 and 32767 are main and default)"))
    if facts is not None:
        problems += sibling_problems(a, tunnels.siblings(a.interface, facts.tunnels))
    w = h.watchdog
    if w.action not in WATCHDOG_ACTIONS:
        problems.append(Problem("homelab.watchdog.action", f"must be one of {', '.join(WATCHDOG_ACTIONS)}, not {w.action!r}"))
    if w.check_host is not None:
        problems += _check_host(w.check_host, a, facts)
    problems += validate.check_watchdog_keys("homelab.watchdog.", w, **WATCHDOG_KEYS)
    if w.bridge_forward is not None:
        problems += validate.forward_problems("homelab.watchdog.bridge_forward", w.bridge_forward)
    return problems


def _check_host(host: str, a: HomelabAnswers, facts: HostFacts | None) -> list[Problem]:
    """The end-to-end check's public name or address: one that never reaches this host itself
    nor stays inside the tunnel (either would make the check always pass)."""
    key = "homelab.watchdog.check_host"
    if not (grammar.is_hostname(host) or grammar.is_ipv4(host)):
        return [Problem(key, f"{host!r} is not a host name or address")]
    if grammar.is_ipv4(host) and (message := grammar.address_problem(host)) is not None:
        return [Problem(key, message)]
    if grammar.is_loopback_name(host):
        return [Problem(key, f"{host} is this host's own name: not the address of another host")]
    return _another_host(key, host, host, a, facts, "the check would never leave it; use the public "
                                                    "name that points at the bridge")


def _another_host(key: str, host: str, shown: str, a: HomelabAnswers, facts: HostFacts | None,
                  why: str) -> list[Problem]:
    """An endpoint's or check_host's host (`shown` as the answers wrote it) must be another
    host's: not inside the tunnel (`why` says what that would do), not one of this host's."""
    if (network := _in_tunnel(host, a)) is not None:
        return [Problem(key, f"{shown} is inside the tunnel {network}: {why}")]
    if (interface := _own_address(host, facts)) is not None:
        return [Problem(key, f"{shown} is an address of this host ({interface}): not the address of another host")]
    return []


def _own_address(host: str, facts: HostFacts | None) -> str | None:
    """The interface of this host that has the address `host`; None for a name or another's."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    for interface, addresses in (facts.interfaces.items() if facts is not None else ()):
        if any(ipaddress.ip_interface(own).ip == address for own in addresses):
            return interface
    return None


def _in_tunnel(host: str, a: HomelabAnswers):
    """The tunnel network (either family) an address is in; None for a name or outside."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    networks = (grammar.ipv4_network(a.tunnel), grammar.ula_network(a.tunnel6))
    return next((n for n in networks if n is not None and address in n), None)


def _foreign_rules(a: HomelabAnswers, facts: HostFacts) -> list:
    """The host's ip rules that are not this tunnel's: its fwmark rules (the mark is the
    tunnel's own), and its "from" rules, which select its address or, after a change of the
    tunnel, sit at rule_pref + 1 beside its fwmark rule of the same table (the up hook's pair)."""
    addresses = {str(network[2]) for network in (grammar.ipv4_network(a.tunnel), grammar.ula_network(a.tunnel6))
                 if network is not None}
    mark = int(a.homelab.fwmark, 0) if grammar.FWMARK.fullmatch(a.homelab.fwmark) else None
    marked = {rule.table for rule in facts.ip_rules if mark is not None and rule.fwmark == mark}
    return [rule for rule in facts.ip_rules
            if not (mark is not None and rule.fwmark == mark or rule.src in addresses
                    or rule.priority == a.homelab.rule_priority + 1 and rule.table in marked)]


def _check_fwmark(text: str) -> list[Problem]:
    key = "homelab.fwmark"
    if grammar.FWMARK.fullmatch(text) is None:
        return [Problem(key, f"{text!r} is not a number like \"0x1000000\"")]
    mark = int(text, 0)
    if not 0 < mark < 2**32 or mark & (mark - 1):
        return [Problem(key, "must be a single bit, like 0x1000000")]
    return [Problem(key, f"{text} clashes with the marks of {tool} ({bits:#x})")
            for tool, bits in FOREIGN_MARKS.items() if mark & bits]


def warnings(answers: HomelabAnswers, ipv6_disabled: str | None) -> list[Problem]:
    """Whether the watchdog can check the chain end to end (cgnat_homelab/endtoend.py); without
    IPv6 the tunnel carries IPv4 only (the up hook skips IPv6)."""
    ipv6 = [] if ipv6_disabled is None else [Problem(
        "tunnel6", f"warning: IPv6 is disabled here ({ipv6_disabled}): the tunnel will carry IPv4 "
                   f"only, IPv6 clients of the bridge will not reach this host; enable IPv6 and "
                   f"restart wg-quick@{answers.interface} to add it")]
    return _end_to_end_warnings(answers) + ipv6


def _end_to_end_warnings(answers: HomelabAnswers) -> list[Problem]:
    w = answers.homelab.watchdog
    forward = w.bridge_forward or "all"
    ssh_port = w.bridge_ssh_port or DEFAULTS["bridge_ssh_port"]
    if w.check_port is not None and not forwards(forward, ssh_port, w.check_port):
        return [Problem("homelab.watchdog.check_port",
                        f"warning: the bridge does not forward tcp/{w.check_port} "
                        f"(bridge_forward {forward}): the check would reach the bridge itself; "
                        f"add tcp/{w.check_port} to the bridge's forward list or choose a forwarded port")]
    return []
