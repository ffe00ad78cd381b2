"""The bridge watchdog's judgement: from one observation and the saved state, the steps to
take now, the state to keep and the journal lines. Pure (no I/O, no clock).

    interface missing         restart the tunnel (watchdog_restart_command, default
                              `systemctl restart wg-quick@IFACE`), which also re-runs the up hook;
                              not while systemd runs a job of that unit (someone else's restart)
    a jump or chain missing   re-run the up hook (watchdog_up_command, default
                              `/usr/lib/cgnat-bridge/hooks/up IFACE`; idempotent)
    homelab silent            (no handshake for watchdog_silent_after seconds) logged once per
                              silence: only the homelab can dial in, there is nothing to restart
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cgnat_bridge import conntrack
from installer.probes import HANDSHAKE_STALE as SILENT_AFTER
from installer.watchdog_state import JsonState, step_note

CGNAT_ETC = "/etc/cgnat"
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
    tunnel_job: str = ""                  # systemd's job for wg-quick@IFACE ("restart running"),
                                          # looked at while the interface is missing
    homelab_endpoint: str | None = None   # as WireGuard reports it, if the grammar takes it
                                          # (recorded by the watchdog; no step follows from it)


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
        if obs.tunnel_job:      # someone else starts or stops it: a restart of ours would start it over
            notes.append(f"waiting: systemd is running a {obs.tunnel_job.split()[0]} of wg-quick@{config.interface}")
        else:
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
