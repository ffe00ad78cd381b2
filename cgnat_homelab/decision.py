"""The homelab watchdog's judgement: from one observation and the saved state, the steps to
take now, the state to keep and the journal lines. Pure (no I/O, no clock): the
configuration-matrix tests feed it simulated days.

    ladder    1. re-peer: re-resolve the endpoint and re-add the peer: a fresh handshake, to a
                 moved bridge too; after REPEER_AFTER_PROBES failed probes in a row (the
                 later ones waiting longer), not when a handshake succeeded since the failure
                 began; every REPEER_INTERVAL s at first, then calmly
              2. restart the tunnel, after restart_after seconds of failure, at once when the
                 interface is gone; at most once per restart_interval; not while the endpoint's
                 name does not resolve (a boot before DNS works: wg-quick would fail)
              3. the action (reboot, restart-tunnel or none), after action_after seconds of
                 failure that a restart did not cure; never within boot_grace of boot, at most
                 one per action_interval, at most max_reboots_per_day reboots in 24 hours, and
                 never in a bridge outage: its own ssh port does not answer either, or the
                 bridge answers the end-to-end check itself (rebooting would not help); on a
                 host with several tunnels, only when every chain is broken while the
                 bridges answer (Observation.serving_elsewhere, cgnat_homelab/host_action.py)
    held      no step at all while systemd runs a job of wg-quick@IFACE (someone else's
              restart, the boot's start): a restart of ours would make systemd start it over
"""
from __future__ import annotations

import dataclasses
import ipaddress
import typing
from dataclasses import dataclass, field

from cgnat_homelab.endtoend import EndToEnd, choose
from installer.answers import CommonAnswers
from installer.watchdog_state import JsonState, step_note

# Defaults of the optional [homelab.watchdog] keys (see cgnat_homelab/answers.py).
DEFAULTS = {
    "bridge_ssh_port": 2222,
    "check_interval": 60,
    "restart_after": 60,
    "restart_interval": 60,
    "action_after": 300,
    "action_interval": 1800,
    "boot_grace": 600,
    "max_reboots_per_day": 3,
}
REPEER_INTERVAL = 10       # seconds between two re-peers in the first minute of a failure
REPEER_INTERVAL_LATER = 60 # ... and after it
# A re-peer throws away the session under every open connection: it needs evidence that a
# loaded host (slow answers, not lost ones) does not give. So: this many probes in a row
# failed, the later ones waiting longer (probe_timeout), and no handshake since the failure
# began (a session the bridge agreed to while the probes failed needs no fresh one).
REPEER_AFTER_PROBES = 2
DAY = 24 * 3600
STEP_KINDS = ("re-peer", "restart", "action")     # every kind of Step, in the ladder's order


@dataclass(frozen=True)
class Config:
    interface: str = "wg0"
    bridge_address: str = "10.0.0.1"          # the bridge's tunnel address
    homelab_address: str = "10.0.0.2"         # ours, where the bridge forwards to
    endpoint: str | None = None               # "host:port" from the answers
    peer_public_key: str | None = None
    keepalive: int = 25
    check_host: str | None = None             # default: the endpoint's host
    action: str = "reboot"
    forward: object = "all"                   # what the bridge forwards (its token's forward list)
    check_port: int | None = None             # homelab.watchdog.check_port: always this check
    homelab_sshd: bool = True                 # this host has an sshd's host keys
    bridge_ssh_port: int = DEFAULTS["bridge_ssh_port"]
    check_interval: int = DEFAULTS["check_interval"]
    restart_after: int = DEFAULTS["restart_after"]
    restart_interval: int = DEFAULTS["restart_interval"]
    action_after: int = DEFAULTS["action_after"]
    action_interval: int = DEFAULTS["action_interval"]
    boot_grace: int = DEFAULTS["boot_grace"]
    max_reboots_per_day: int = DEFAULTS["max_reboots_per_day"]
    restart_command: str = ""
    action_command: str = ""                  # "" for action "none"

    @classmethod
    def from_answers(cls, answers, homelab_sshd: bool = True) -> "Config":
        """`homelab_sshd`: whether this host runs an sshd (on port 22) to check against."""
        h, w = answers.homelab, answers.homelab.watchdog
        tuned = {k: getattr(w, k) for k in DEFAULTS if getattr(w, k) is not None}
        restart = w.restart_command or f"systemctl restart wg-quick@{answers.interface}"
        if w.action_command:
            action_command = w.action_command
        else:
            action_command = {"reboot": "systemctl reboot", "restart-tunnel": restart}.get(w.action, "")
        return cls(interface=answers.interface, bridge_address=answers.bridge_address,
                   homelab_address=answers.homelab_address,
                   endpoint=h.endpoint, peer_public_key=answers.peer_public_key,
                   keepalive=h.keepalive, check_host=w.check_host, action=w.action,
                   restart_command=restart, action_command=action_command,
                   forward=w.bridge_forward or "all", check_port=w.check_port, homelab_sshd=homelab_sshd, **tuned)

    @property
    def e2e(self) -> EndToEnd | None:
        """The check assumed before a look at what listens (setup's warnings, tests)."""
        return self.check_for(None)[0]

    def check_for(self, listening: frozenset[int] | None) -> tuple[EndToEnd | None, str]:
        """The end-to-end check for what listens here now (None: not known; endtoend.py)."""
        return choose(self.forward, self.bridge_ssh_port, self.check_port, self.homelab_sshd, listening,
                      self.wireguard_port)

    @property
    def wireguard_port(self) -> int:
        """The bridge's WireGuard port number (the endpoint's), used over TCP: the probe touches it
        on the bridge's tunnel address, where the bridge's rules refuse it; the self check comes
        back in on it (endtoend.py). No daemon sees either, none logs them."""
        return wireguard_port(self.endpoint)

    @property
    def endpoint_host(self) -> str | None:
        return split_endpoint(self.endpoint)[0] if self.endpoint else None

    @property
    def target_host(self) -> str | None:
        """The public name of the bridge: check_host, else the endpoint's host."""
        return self.check_host or self.endpoint_host

    def check_target(self, check: EndToEnd | None) -> str:
        return f"{self.target_host}:{check.port if check else '-'}"

    @property
    def needs_dns(self) -> bool:
        return bool(self.endpoint) and not is_address(self.endpoint_host)


@dataclass(frozen=True)
class Observation:
    now: float                        # wall clock (time.time()), comparable across reboots
    uptime: float | None              # seconds since boot (None: not read, the run is healthy)
    interface_up: bool
    probe_ok: bool                    # the bridge answered through the tunnel
    e2e_ok: bool | None = None        # None: not checked in this run
    e2e_check: EndToEnd | None = None # the check made (chosen from what listens), if any
    e2e_none: str = ""                # ... or why none is possible ("": not looked at)
    e2e_foreign: bool = False         # ... the bridge answered it itself (its sshd, its refusal)
    e2e_seconds: float | None = None  # ... how long it took
    bridge_ssh_ok: bool | None = None # None: not checked, or could not tell (name does not resolve)
    endpoint: str | None = None       # the peer's current endpoint ("ip:port"), from wg
    resolved_endpoint: str | None = None  # the answers' endpoint resolved now, None if it fails
    handshake_age: float | None = None    # seconds since the last handshake, None if never
    serving_elsewhere: str = ""       # another tunnel of the host serves, or its bridge is in an
                                      # outage: the action waits ("wg1 serves"; cgnat_homelab/host_action.py)
    tunnel_job: str = ""              # systemd's job for wg-quick@IFACE ("restart running"): no step
                                      # while someone else starts or stops the tunnel


@dataclass
class State(JsonState):
    failing_since: float | None = None
    reasons: list[str] = field(default_factory=list)
    bridge_outage: bool = False
    last_run_at: float | None = None
    last_e2e_at: float | None = None
    last_e2e_ok: bool | None = None
    last_e2e_seconds: float | None = None
    e2e_port: int | None = None                          # the end-to-end check in use (None: none
    e2e_identity: str = ""                               # possible, or not chosen yet: "")
    last_repeer_at: float | None = None
    probe_failures: int = 0                              # probes through the tunnel failed in a row
    last_restart_at: float | None = None
    restarts_since_failing: int = 0
    last_action_at: float | None = None
    reboots: list[float] = field(default_factory=list)   # times of the reboots we started
    last_step: str = ""                                  # "re-peer at ...", for status
    action_blocked: str = ""                             # why the due action was last refused
    VOLATILE: typing.ClassVar[tuple[str, ...]] = ("last_run_at", "last_e2e_at", "last_e2e_seconds")

    @property
    def healthy(self) -> bool:
        return self.failing_since is None

    @property
    def serving(self) -> bool:
        """Whether the chain through this tunnel's bridge is taken to serve (the DNS records follow
        it, cgnat_homelab/dns.py): healthy, or failing on less evidence than a re-peer needs (a
        probe slow on a loaded host does not withdraw the bridge's address)."""
        return self.healthy or not (self.bridge_outage or self.last_e2e_ok is False
                                    or self.probe_failures >= REPEER_AFTER_PROBES)

    @property
    def check(self) -> EndToEnd | None:
        return EndToEnd(self.e2e_port, self.e2e_identity) if self.e2e_port else None

    @property
    def summary(self) -> str:
        """One line for `cgnat-setup status`."""
        if self.last_run_at is None:
            return "never ran"
        if self.failing_since is None:
            return "healthy"
        what = "bridge outage" if self.bridge_outage else "failing"
        return f"{what}: {'; '.join(self.reasons)}"


@dataclass(frozen=True)
class Step:
    kind: str        # "re-peer", "restart" or "action"
    reason: str
    command: str = ""          # restart and action: the shell command
    endpoint: str | None = None  # re-peer: the endpoint to set


def wireguard_port(endpoint: str | None) -> int:
    """The bridge's WireGuard port: the endpoint's (the default listen_port without one)."""
    return split_endpoint(endpoint)[1] if endpoint else CommonAnswers.listen_port


def split_endpoint(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


def is_address(host: str | None) -> bool:
    try:
        ipaddress.ip_address(host or "")
        return True
    except ValueError:
        return False


def e2e_due(config: Config, state: State, now: float) -> bool:
    """Whether this run looks at what listens and checks the chain end to end: always while
    failing or after a failed check, else every check_interval."""
    return (state.failing_since is not None or state.last_e2e_at is None
            or state.last_e2e_ok is False or now - state.last_e2e_at >= config.check_interval)


def _since(then: float | None, now: float) -> float:
    return float("inf") if then is None else now - then


def decide(config: Config, obs: Observation, state: State) -> tuple[list[Step], State, list[str]]:
    """The steps to take now, the state to save, and the journal lines."""
    new = dataclasses.replace(state, reasons=list(state.reasons), last_run_at=obs.now,
                              reboots=[t for t in state.reboots if obs.now - t < DAY])
    notes = _check_chosen(obs, state, new)
    if obs.e2e_ok is not None:
        new.last_e2e_at, new.last_e2e_ok = obs.now, obs.e2e_ok and not obs.e2e_foreign
        new.last_e2e_seconds = obs.e2e_seconds
    elif obs.e2e_none:
        new.last_e2e_at, new.last_e2e_ok, new.last_e2e_seconds = obs.now, None, None
    new.probe_failures = 0 if obs.probe_ok or not obs.interface_up else state.probe_failures + 1
    reasons = _reasons(config, obs, new)
    if not reasons:
        return [], new, notes + _healthy(state, new, obs)
    notes += _failing(config, obs, state, new, reasons)
    step = _next_step(config, obs, state, new, notes)
    if step:
        _record(config, step, new, obs.now)
        notes.append(f"{step.kind}: {step.reason}")
    return [step] if step else [], new, notes


def _reasons(config: Config, obs: Observation, new: State) -> list[str]:
    """What is wrong now; empty when all is well."""
    reasons = []
    if not obs.interface_up:
        reasons.append(f"interface {config.interface} is missing")
    elif not obs.probe_ok:
        age = "never" if obs.handshake_age is None else f"{obs.handshake_age:.0f} s ago"
        reasons.append(f"the bridge {config.bridge_address} does not answer through the tunnel "
                       f"(last handshake {age})")
    if obs.e2e_foreign:
        reasons.append(f"{config.check_target(new.check)} is answered by the bridge itself "
                       f"({_foreign_sign(new.check)}): the bridge does not forward it (its rules are missing?)")
    elif new.last_e2e_ok is False:
        reasons.append(f"end-to-end check {config.check_target(new.check)} failed")
    if reasons and _no_dns(config, obs):
        reasons.append(f"{config.endpoint_host} does not resolve (DNS not working yet?)")
    if reasons and obs.tunnel_job:
        reasons.append(f"systemd is running a {obs.tunnel_job.split()[0]} of wg-quick@{config.interface} "
                       f"(not ours): no step until it ends")
    return reasons


def _check_chosen(obs: Observation, state: State, new: State) -> list[str]:
    """Record the check this run chose (when it looked at what listens); a line when it changed."""
    if obs.e2e_check is None and not obs.e2e_none:
        return []
    new.e2e_port = obs.e2e_check.port if obs.e2e_check else None
    new.e2e_identity = obs.e2e_check.identity if obs.e2e_check else "none"
    if (new.e2e_port, new.e2e_identity) == (state.e2e_port, state.e2e_identity):
        return []
    if obs.e2e_check is None:
        return [f"no end-to-end check is possible: {obs.e2e_none}; the tunnel's probe alone "
                f"decides (never the action on end-to-end grounds)"]
    was = f" (was {state.check})" if state.check else ""
    return [f"end-to-end check: {obs.e2e_check}{was}"]


def _foreign_sign(check: EndToEnd | None) -> str:
    if check and check.identity == "ssh":
        return "another host's ssh key"
    if check and check.identity == "self":
        return "refused, while our own watchdog listens on it"
    return "refused, while our own service listens on it"


def _no_dns(config: Config, obs: Observation) -> bool:
    """At boot DNS may not work yet: wg-quick cannot set up a named endpoint then, so a
    restart would only fail (or hang in wg's resolver retries); wait for the name instead."""
    return config.needs_dns and obs.resolved_endpoint is None


def _healthy(state: State, new: State, obs: Observation) -> list[str]:
    new.failing_since, new.reasons, new.bridge_outage = None, [], False
    new.restarts_since_failing, new.action_blocked = 0, ""
    if state.failing_since is not None:
        return [f"recovered after {obs.now - state.failing_since:.0f} s (was: {'; '.join(state.reasons)})"]
    return ["healthy"] if state.last_run_at is None else []


def _outage(obs: Observation) -> bool:
    """The bridge is down, or up but not forwarding: nothing the homelab does would help."""
    return obs.bridge_ssh_ok is False or obs.e2e_foreign


def _failing(config: Config, obs: Observation, state: State, new: State, reasons: list[str]) -> list[str]:
    """Record the failure in `new`; the lines that say what changed (none if nothing did)."""
    notes = []
    outage = _outage(obs)
    if state.failing_since is None:
        new.failing_since = obs.now
        notes.append(f"FAILING: {'; '.join(reasons)}")
    elif reasons != state.reasons:
        notes.append(f"still failing: {'; '.join(reasons)}")
    if outage and not state.bridge_outage:
        what = (f"the bridge answers {config.check_target(new.check)} itself" if obs.e2e_foreign else
                f"the bridge's own ssh port {config.target_host}:{config.bridge_ssh_port} does not "
                f"answer from outside either")
        notes.append(f"BRIDGE OUTAGE: {what}; the homelab is not at fault: no tunnel restart "
                     f"and no action while this lasts")
    if state.bridge_outage and not outage and obs.bridge_ssh_ok is True:
        # The bridge is back: its return starts the ladder afresh (give re-peer and restart a go).
        notes.append("the bridge answers again; starting the recovery steps afresh")
        new.failing_since, new.restarts_since_failing = obs.now, 0
    new.reasons, new.bridge_outage = reasons, outage
    return notes


def _next_step(config: Config, obs: Observation, state: State, new: State, notes: list[str]) -> Step | None:
    """The strongest step that is due and allowed, one per run: action, restart, re-peer."""
    if obs.tunnel_job:              # the reasons say so; systemd's job comes first
        return None
    failed_for = obs.now - new.failing_since
    restarted_ago = _since(state.last_restart_at, obs.now)
    if (failed_for >= config.action_after and new.restarts_since_failing >= 1
            and restarted_ago >= config.restart_after):
        blocked = _action_blocked(config, obs, new)
        if not blocked:
            return Step("action", f"failing for {failed_for:.0f} s; a tunnel restart did not help; "
                                  f"the bridge's ssh port answers", config.action_command)
        kind, why = blocked
        if kind != state.action_blocked:      # said once per kind of refusal, not every run
            notes.append(f"not taking the action {config.action!r}: {why}")
        new.action_blocked = kind
    restart_wait = config.restart_interval - restarted_ago
    no_dns = _no_dns(config, obs)
    if not obs.interface_up:
        if no_dns:
            return None             # the reasons say so; the restart waits for the name
        if restart_wait <= 0:
            return Step("restart", f"interface {config.interface} is missing", config.restart_command)
        notes.append(f"waiting: interface missing, next restart allowed in {restart_wait:.0f} s")
        return None
    if failed_for >= config.restart_after and restart_wait <= 0 and not _outage(obs) and not no_dns:
        return Step("restart", f"failing for {failed_for:.0f} s", config.restart_command)
    repeer_interval = REPEER_INTERVAL if failed_for < 60 else REPEER_INTERVAL_LATER
    if (not obs.probe_ok and new.probe_failures >= REPEER_AFTER_PROBES
            and _since(state.last_repeer_at, obs.now) >= repeer_interval
            and not (obs.handshake_age is not None and obs.handshake_age < failed_for)):
        return _repeer(config, obs)
    return None


def probe_timeout(state: State, first: float) -> float:
    """Seconds the next probe through the tunnel waits: `first`, twice that after a failure (a
    loaded host answers late, a dead tunnel never; more would delay the re-peer that heals a
    restarted bridge: 2 + 4 s)."""
    return first * 2 if state.probe_failures else first


def _repeer(config: Config, obs: Observation) -> Step | None:
    endpoint = obs.resolved_endpoint or obs.endpoint
    if not endpoint:
        return None
    why = "the bridge does not answer through the tunnel: fresh handshake"
    if obs.resolved_endpoint and obs.endpoint and obs.resolved_endpoint != obs.endpoint:
        why = f"{config.endpoint_host} now resolves to {obs.resolved_endpoint} (was {obs.endpoint})"
    elif _no_dns(config, obs):
        why += f" (cannot resolve {config.endpoint_host}; keeping {obs.endpoint})"
    return Step("re-peer", why, endpoint=endpoint)


def _record(config: Config, step: Step, new: State, now: float) -> None:
    if step.kind == "re-peer":
        new.last_repeer_at = now
    elif step.kind == "restart":
        new.last_restart_at = now
        new.restarts_since_failing += 1
    else:
        new.last_action_at, new.action_blocked = now, ""
        if config.action == "reboot":
            new.reboots.append(now)
    new.last_step = step_note(step.kind, now)


def _action_blocked(config: Config, obs: Observation, state: State) -> tuple[str, str] | None:
    """(kind, why) the action must not be taken now, or None."""
    if config.action == "none" or not config.action_command:
        return "none", "the configured action is none"
    if obs.serving_elsewhere:      # the kind names them: a line when which chain serves changes
        return (f"elsewhere: {obs.serving_elsewhere}",
                f"not every chain is broken ({obs.serving_elsewhere}); this tunnel heals alone")
    if obs.e2e_foreign:
        return "outage", f"BRIDGE OUTAGE (the bridge answers {config.check_target(state.check)} itself)"
    if obs.bridge_ssh_ok is False:
        return "outage", (f"BRIDGE OUTAGE ({config.target_host}:{config.bridge_ssh_port} does not "
                          f"answer from outside either)")
    if obs.bridge_ssh_ok is None:
        return "unknown", f"cannot tell whether the bridge is up ({config.target_host} does not resolve?)"
    if obs.uptime is not None and obs.uptime < config.boot_grace:
        return "boot grace", f"booted {obs.uptime:.0f} s ago (boot_grace {config.boot_grace} s)"
    wait = config.action_interval - _since(state.last_action_at, obs.now)
    if wait > 0:
        return "rate limit", (f"rate limit: last action {obs.now - state.last_action_at:.0f} s ago, "
                              f"next in {wait:.0f} s")
    if config.action == "reboot" and len(state.reboots) >= config.max_reboots_per_day:
        return "boot-loop guard", f"boot-loop guard: {len(state.reboots)} reboots in the last 24 hours"
    return None
