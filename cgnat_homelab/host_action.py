"""The homelab's action on a host with several tunnels (one per bridge): pure, as decision.py.

Each tunnel climbs its own ladder (re-peer, restart: they touch only its interface). The action
(a reboot, by default) is the host's: it comes only when every chain is broken while the
bridges themselves answer from outside. So a tunnel whose ladder reaches the action while
another tunnel serves, or while another's bridge is in an outage (a reboot would not bring that
bridge back), holds it (decision.Observation.serving_elsewhere; one journal line when which
chain serves changes) and keeps re-peering and restarting its own tunnel. Several tunnels due at
once run the action once; a reboot is recorded in every failing tunnel's state, so
max_reboots_per_day holds for the host. A host with one tunnel decides exactly as decide() alone.
"""
from __future__ import annotations

import dataclasses

from cgnat_homelab.decision import Config, Observation, State, Step, decide

Decided = tuple[list[Step], State, list[str]]


def decide_all(configs: dict[str, Config], observed: dict[str, Observation],
               states: dict[str, State]) -> dict[str, Decided]:
    """interface -> (steps, state to save, journal lines) of each tunnel looked at this run
    (`observed`; a tunnel not looked at, its lock held, counts by its saved state)."""
    alone = {iface: decide(configs[iface], obs, states[iface]) for iface, obs in observed.items()}
    after = {**states, **{iface: new for iface, (_, new, _) in alone.items()}}
    decided = {}
    for iface, obs in observed.items():
        elsewhere = serving_elsewhere(iface, after)
        decided[iface] = (decide(configs[iface], dataclasses.replace(obs, serving_elsewhere=elsewhere),
                                 states[iface]) if elsewhere else alone[iface])
    return _action_once(configs, observed, decided)


def serving_elsewhere(iface: str, after: dict[str, State]) -> str:
    """What of the other tunnels holds the action: those that serve, those whose bridge is in
    an outage ("" when every other chain is broken while its bridge answers)."""
    holding = [f"{other} serves" if state.healthy else f"{other}'s bridge is in an outage"
               for other, state in after.items()
               if other != iface and (state.healthy or state.bridge_outage)]
    return ", ".join(holding)


def _action_once(configs: dict[str, Config], observed: dict[str, Observation],
                 decided: dict[str, Decided]) -> dict[str, Decided]:
    """One run of each distinct action command (the first tunnel's step carries it; the others
    keep it in their state only); a reboot recorded in every failing tunnel's state."""
    taken = [(iface, step) for iface, (steps, _, _) in decided.items() for step in steps if step.kind == "action"]
    if not taken:
        return decided
    rebooted = any(configs[iface].action == "reboot" for iface, _ in taken)
    commands = set()
    result = {}
    for iface, (steps, new, lines) in decided.items():
        kept = []
        for step in steps:
            if step.kind == "action":
                if step.command in commands:
                    lines = [*lines, f"the action {step.command!r} runs once for the host"]
                    continue
                commands.add(step.command)
            kept.append(step)
        now = observed[iface].now
        if rebooted and not new.healthy and now not in new.reboots:
            new.reboots = [*new.reboots, now]
        result[iface] = (kept, new, lines)
    return result
