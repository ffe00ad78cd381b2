"""The bridge's watchdog: keep the tunnel interface and our rules in place, report a silent homelab.

cgnat-watchdog.service runs it as one long-lived process (`/usr/lib/cgnat-bridge/watchdog`, or
`python3 -m cgnat_bridge.watchdog`), a run every EVERY seconds; each run observes (I/O: the
interface, one `iptables-save`, one `wg show`), decides (pure: `decide()`), acts:

    interface missing         restart the tunnel (watchdog_restart_command, default
                              `systemctl restart wg-quick@IFACE`), which also re-runs the up hook
    a jump or chain missing   re-run the up hook (watchdog_up_command, default
                              `/usr/lib/cgnat-bridge/hooks/up IFACE`; idempotent)
    homelab silent            (no handshake for watchdog_silent_after seconds) logged once per
                              silence: only the homelab can dial in, there is nothing to restart

State between runs (what was already reported, the steps taken) is kept in
/var/lib/cgnat/watchdog.json, written when it changes; the metrics (installer/metrics.py) add
whether the rules are in place, when the homelab was last seen and how full the connection
tracking table is (cgnat_bridge/conntrack.py: two /proc reads, no step ever follows from it).
Silent while healthy: a journal line for each change and each step.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cgnat_bridge import conntrack
from installer import interface_lock, metrics
from installer.probes import HANDSHAKE_STALE as SILENT_AFTER
from installer.probes import handshake_age, interface_exists
from installer.rules_file import missing_rules
from installer.watchdog_runtime import Tunnel
from installer.watchdog_runtime import main as watchdog_main
from installer.watchdog_runtime import run_step_command
from installer.watchdog_state import JsonState, log, step_note

CGNAT_ETC = "/etc/cgnat"
EVERY = 30.0               # seconds between two runs: two small programs a run (iptables-save, wg)
STEP_KINDS = ("restart", "up-hook")


@dataclass(frozen=True)
class Config:
    interface: str = "wg0"
    silent_after: int = SILENT_AFTER
    restart_command: str = "systemctl restart wg-quick@wg0"
    up_command: str = "/usr/lib/cgnat-bridge/hooks/up wg0"
    rules_path: str = "/etc/cgnat/wg0.rules"

    @classmethod
    def from_answers(cls, answers, cgnat_etc: str = CGNAT_ETC) -> "Config":
        b, iface = answers.bridge, answers.interface
        return cls(interface=iface,
                   silent_after=b.watchdog_silent_after if b.watchdog_silent_after is not None else SILENT_AFTER,
                   restart_command=b.watchdog_restart_command or f"systemctl restart wg-quick@{iface}",
                   up_command=b.watchdog_up_command or f"/usr/lib/cgnat-bridge/hooks/up {iface}",
                   rules_path=f"{cgnat_etc}/{iface}.rules")


@dataclass(frozen=True)
class Observation:
    now: float
    interface_up: bool
    handshake_age: float | None           # None: never (since the interface came up)
    missing_rules: tuple[str, ...] = ()   # "nat PREROUTING -> CGNAT-wg0-PRE", ...
    conntrack: conntrack.Table | None = None   # None: nf_conntrack not loaded


@dataclass
class State(JsonState):
    last_run_at: float | None = None
    silent_reported: bool = False
    last_step_at: float | None = None
    last_step: str = ""                   # "up-hook at ...", for status
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def summary(self) -> str:
        if self.last_run_at is None:
            return "never ran"
        return "; ".join(self.problems) if self.problems else "healthy"


@dataclass(frozen=True)
class Step:
    kind: str        # "restart" or "up-hook"
    reason: str
    command: str


def decide(config: Config, obs: Observation, state: State) -> tuple[list[Step], State, list[str]]:
    """The steps to take, the state to save, the log lines. Pure."""
    new = dataclasses.replace(state, last_run_at=obs.now, problems=[])
    notes: list[str] = []
    steps: list[Step] = []
    if not obs.interface_up:
        new.problems.append(f"interface {config.interface} is missing")
        steps.append(Step("restart", f"interface {config.interface} is missing", config.restart_command))
    elif obs.missing_rules:
        what = ", ".join(obs.missing_rules)
        new.problems.append(f"rules missing: {what}")
        steps.append(Step("up-hook", f"our rules are missing ({what})", config.up_command))
    silent = obs.interface_up and (obs.handshake_age is None or obs.handshake_age > config.silent_after)
    if silent:
        age = "no handshake yet" if obs.handshake_age is None else f"last handshake {obs.handshake_age:.0f} s ago"
        new.problems.append(f"homelab silent ({age})")
        if not state.silent_reported:
            notes.append(f"HOMELAB SILENT: {age}; only the homelab can re-establish the tunnel "
                       f"(is it up, is its watchdog running, is UDP open in the provider's firewall?)")
        new.silent_reported = True
    elif obs.interface_up:
        if state.silent_reported:
            notes.append(f"the homelab is back (handshake {obs.handshake_age:.0f} s ago)")
        new.silent_reported = False
    for step in steps:
        new.last_step_at, new.last_step = obs.now, step_note(step.kind, obs.now)
        notes.append(f"{step.kind}: {step.reason}")
    return steps, new, notes


# ----------------------------------------------------------------------------- I/O

def observe(config: Config, now: float | None = None) -> Observation:
    now = time.time() if now is None else now
    up = interface_exists(config.interface)
    return Observation(now=now, interface_up=up,
                       handshake_age=handshake_age(config.interface, now) if up else None,
                       missing_rules=missing_rules(config.interface, config.rules_path) if up else (),
                       conntrack=conntrack.read())


def samples(obs: Observation, state: State) -> list[metrics.Sample]:
    """The bridge's metrics after a run (installer/metrics.py names them)."""
    found = metrics.common_samples(state, STEP_KINDS, obs.interface_up, obs.handshake_age)
    if obs.interface_up:
        found.append(("cgnat_rules_ok", {}, not obs.missing_rules))
    if obs.handshake_age is not None:
        found.append(("cgnat_homelab_last_seen_timestamp_seconds", {}, round(obs.now - obs.handshake_age)))
    if obs.conntrack is not None:
        found += [("cgnat_nf_conntrack_count", {}, obs.conntrack.count),
                  ("cgnat_nf_conntrack_max", {}, obs.conntrack.max)]
    return found


def run_once(tunnels: list[Tunnel], states: dict[str, State] | None = None) -> dict[str, State]:
    """One run over the host's tunnels (a bridge keeps one); `states`: the previous run's."""
    return {t.interface: run_tunnel(t.config, t.state_path, None if states is None else states[t.interface],
                                    t.textfile) for t in tunnels}


def run_tunnel(config: Config, state_path: Path, state: State | None = None,
               textfile: metrics.Textfile | None = None) -> State:
    """One run of one tunnel; `state` is the previous run's (None: read it from state_path)."""
    first = state is None
    state = State.load(state_path, config.interface) if first else state
    with interface_lock.held(config.interface, wait=False) as free:
        if not free:        # a hook or setup is changing the interface: look again next run
            return state
        obs = observe(config)
    steps, new, lines = decide(config, obs, state)
    new.account(state, steps, obs.now)
    for line in lines:
        log(line)
    new.save_if_changed(state_path, None if first else state)
    if textfile:
        textfile.publish(samples(obs, new), obs.now)
    for step in steps:
        run_step_command(step.kind, step.command)
    return new


def main(argv: list[str] | None = None) -> int:
    return watchdog_main(argv, role="bridge", description=__doc__.splitlines()[0], every=EVERY,
                         config_from_answers=lambda answers: Config.from_answers(
                             answers, os.environ.get("CGNAT_ETC", CGNAT_ETC)),
                         metrics_setting=lambda answers: answers.bridge.watchdog_metrics_dir,
                         watch=lambda tunnels: functools.partial(run_once, tunnels))


if __name__ == "__main__":
    sys.exit(main())
