"""A homelab's several tunnels, one per bridge (wg0, wg1, ...): what a further tunnel takes so
that it never collides with the others, and the checks that hold each tunnel's answers to it.

Tunnel number k takes interface wgk, routing table 200+k, connection-mark bit 24+k and the
rule priorities 1000+10k and 1000+10k+1. Bits 24-31 are clear of kube-proxy (0xc000),
Tailscale (0xff0000) and wg-quick (which marks nothing with Table = off), so eight tunnels fit.
"""
from __future__ import annotations

import ipaddress

from cgnat_homelab.answers import RULE_PREF, HomelabAnswers, HomelabSection
from installer import grammar, validate
from installer.errors import InvalidAnswers, Problem

MAX_TUNNELS = 8
FIRST_MARK_BIT = 24
# What a further tunnel keeps of the first one's [homelab] and [homelab.watchdog]: how this
# host behaves, not what its bridge is (endpoint, ports, forward, check host).
HOST_KEYS = ("keepalive", "docker_subnets")
HOST_WATCHDOG_KEYS = ("action", "check_interval", "restart_after", "restart_interval", "action_after",
                      "action_interval", "boot_grace", "max_reboots_per_day", "action_command")


def slot(index: int) -> dict:
    """The answers of tunnel number `index` that set it apart from the others."""
    return {"interface": f"wg{index}",
            "homelab": {"table": HomelabSection.table + index,
                        "fwmark": f"{1 << (FIRST_MARK_BIT + index):#x}",
                        "rule_pref": RULE_PREF + 10 * index}}


def new_tunnel(saved: dict[str, tuple[str, dict]], links) -> dict:
    """The answers data of a further tunnel beside the saved ones: the first slot none of them
    (nor another link of this host, `links`) uses, with the first tunnel's host settings. The
    token fills the rest."""
    others = [_answers(data) for _, data in saved.values()]
    first = next(iter(saved.values()))[1] if saved else {}
    for index in range(1, MAX_TUNNELS):
        data = slot(index)
        if data["interface"] in links or data["interface"] in saved:
            continue
        candidate = _answers({"role": "homelab", **data})
        if not any(clash for other in others for clash in _resource_clashes(candidate, other)):
            break
    else:
        raise InvalidAnswers([Problem("pair", f"this homelab has {len(saved)} tunnels; "
                                                       f"remove one first (cgnat-setup remove-tunnel IFACE)")])
    homelab = first.get("homelab", {}) if isinstance(first.get("homelab"), dict) else {}
    watchdog = homelab.get("watchdog", {}) if isinstance(homelab.get("watchdog"), dict) else {}
    data["homelab"].update({k: homelab[k] for k in HOST_KEYS if k in homelab})
    kept = {k: watchdog[k] for k in HOST_WATCHDOG_KEYS if k in watchdog}
    if kept:
        data["homelab"]["watchdog"] = kept
    return {"role": "homelab", **data}


def sibling_problems(a: HomelabAnswers, siblings: dict[str, dict]) -> list[Problem]:
    """What these answers share with another tunnel of this host (`siblings`: interface ->
    its saved answers data): its bridge, addresses, table, mark or rule priorities."""
    problems = []
    others = {name: _answers(data) for name, data in siblings.items()}
    this = f"this bridge ({a.homelab.endpoint})" if a.homelab.endpoint else "the new bridge"
    for name, other in others.items():
        bridge = f"{name}'s bridge ({other.homelab.endpoint})"
        if a.peer_public_key and a.peer_public_key == other.peer_public_key:
            problems.append(Problem("peer_public_key", f"this bridge is already {name}'s peer: one tunnel "
                                                       f"per bridge; to change that tunnel use interface = \"{name}\""))
        for key, ours, theirs in (("tunnel", grammar.ipv4_network(a.tunnel), grammar.ipv4_network(other.tunnel)),
                                  ("tunnel6", grammar.ula_network(a.tunnel6), grammar.ula_network(other.tunnel6))):
            if ours is not None and theirs is not None and ours.overlaps(theirs):
                problems.append(Problem(key, f"{ours} overlaps the tunnel {theirs} of {bridge}: every bridge "
                                             f"needs a tunnel of its own; on {this} "
                                             f"{_fix(a, others)}, then pair again with the token it prints"))
        problems += [Problem(key, f"{message} of {name}; choose another{hint}")
                     for key, message, hint in _resource_clashes(a, other)]
    return problems


def _resource_clashes(a: HomelabAnswers, other: HomelabAnswers) -> list[tuple[str, str, str]]:
    """(key, what clashes, a hint) for each of table, mark and priorities `a` shares with `other`."""
    h, o = a.homelab, other.homelab
    clashes = []
    if h.table == o.table:
        clashes.append(("homelab.table", f"{h.table} is the routing table", ""))
    if _mark(h.fwmark) is not None and _mark(h.fwmark) == _mark(o.fwmark):
        clashes.append(("homelab.fwmark", f"{h.fwmark} is the connection mark", ""))
    if abs(h.rule_priority - o.rule_priority) <= 1:
        clashes.append(("homelab.rule_pref", f"{h.rule_priority} and {h.rule_priority + 1} meet the "
                                             f"rule priorities {o.rule_priority}-{o.rule_priority + 1}",
                        " two apart at least"))
    return clashes


def _fix(a: HomelabAnswers, others: dict[str, HomelabAnswers]) -> str:
    """The answers the second bridge needs: the first 10.0.N.0/24 and fd63:676e:6174:N::/64
    none of the other tunnels uses."""
    taken4 = [n for o in others.values() if (n := grammar.ipv4_network(o.tunnel)) is not None]
    taken6 = [n for o in others.values() if (n := grammar.ula_network(o.tunnel6)) is not None]
    for n in range(1, 256):
        v4 = ipaddress.ip_network(f"10.0.{n}.0/24")
        v6 = ipaddress.ip_network(f"fd63:676e:6174:{n:x}::/64")
        if not any(v4.overlaps(t) for t in taken4) and not any(v6.overlaps(t) for t in taken6):
            return (f"set tunnel = \"{v4}\" and tunnel6 = \"{v6}\" in /etc/cgnat/answers.toml and run "
                    f"cgnat-setup --answers /etc/cgnat/answers.toml")
    return "set a tunnel and tunnel6 no other bridge of this homelab uses"


def _answers(data: dict) -> HomelabAnswers:
    """A saved tunnel's answers, each key of the wrong type left at its default (its own replay
    reports it)."""
    answers, _ = validate.answers_from_dict({**data, "role": "homelab"}, "homelab")
    return answers


def _mark(text) -> int | None:
    return int(text, 0) if isinstance(text, str) and grammar.FWMARK.fullmatch(text) else None
