"""The homelab's watchdog: probe the tunnel, check the chain end to end, heal step by step.

Run by cgnat-watchdog.timer every few seconds as a oneshot (`python3 -m cgnat_homelab.watchdog`,
or /usr/lib/cgnat-homelab/watchdog); its memory between runs is /var/lib/cgnat/watchdog.json.

Each run observes (I/O), decides (pure: `decide(config, observation, state)`), saves the new
state, and only then acts, so a reboot never loses the record that limits reboots.

    observe   the interface exists; the bridge answers through the tunnel (a TCP touch of its
              tunnel address, which is also real data, so WireGuard re-handshakes at once after
              the bridge restarted, where keepalives alone wait ~2 minutes); end to end: out the
              home line to check_host:check_port, in through the bridge to our own sshd (every
              check_interval while healthy, every run while failing), and when an sshd answers
              there, that it shows one of our host keys: the bridge's own sshd keeps port 22
              too and answers once the bridge's forwarding rules are gone; while failing,
              whether the bridge's own ssh port answers from outside (is the bridge up at all?)
    ladder    1. re-peer: re-resolve the endpoint and re-add the peer (`wg set IFACE peer KEY
                 remove`, then `... endpoint NEW ...`): a fresh handshake, to a moved bridge too
              2. restart the tunnel (restart_command), after restart_after seconds of failure,
                 at once when the interface is gone; at most once per restart_interval; not
                 while the endpoint's name does not resolve (a boot before DNS works: wg-quick
                 would fail, so wait for the name)
              3. the action (reboot, restart-tunnel or none), after action_after seconds of
                 failure that a restart did not cure; never within boot_grace of boot, at most
                 one per action_interval, at most max_reboots_per_day reboots in 24 hours, and
                 never when the bridge's own ssh port does not answer either, nor when the
                 bridge's own sshd answers the end-to-end check (bridge outage: rebooting the
                 homelab would not help; logged loudly instead)

Every decision goes to stderr (the journal) with its reason.
"""
from __future__ import annotations

import dataclasses
import errno
import ipaddress
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from installer.watchdog import JsonState, interface_exists, log, run, run_step_command, step_note
from installer.watchdog import main as watchdog_main

# Defaults of the optional [homelab.watchdog] keys (see cgnat_homelab/answers.py).
DEFAULTS = {
    "check_port": 22,
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
PROBE_TIMEOUT = 2.0        # seconds for the touch through the tunnel
CHECK_TIMEOUT = 3.0        # seconds for each connection from outside (end to end, bridge ssh)
DAY = 24 * 3600


@dataclass(frozen=True)
class Config:
    interface: str = "wg0"
    bridge_address: str = "10.0.0.1"          # the bridge's tunnel address
    endpoint: str | None = None               # "host:port" from the answers
    peer_public_key: str | None = None
    keepalive: int = 25
    check_host: str | None = None             # default: the endpoint's host
    action: str = "reboot"
    check_port: int = DEFAULTS["check_port"]
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
    def from_answers(cls, answers) -> "Config":
        h, w = answers.homelab, answers.homelab.watchdog
        tuned = {k: getattr(w, k) for k in DEFAULTS if getattr(w, k) is not None}
        restart = w.restart_command or f"systemctl restart wg-quick@{answers.interface}"
        if w.action_command:
            action_command = w.action_command
        else:
            action_command = {"reboot": "systemctl reboot", "restart-tunnel": restart}.get(w.action, "")
        return cls(interface=answers.interface, bridge_address=answers.bridge_address,
                   endpoint=h.endpoint, peer_public_key=answers.peer_public_key,
                   keepalive=h.keepalive, check_host=w.check_host, action=w.action,
                   restart_command=restart, action_command=action_command, **tuned)

    @property
    def endpoint_host(self) -> str | None:
        return split_endpoint(self.endpoint)[0] if self.endpoint else None

    @property
    def target_host(self) -> str | None:
        """The public name of the bridge: check_host, else the endpoint's host."""
        return self.check_host or self.endpoint_host


@dataclass(frozen=True)
class Observation:
    now: float                        # wall clock (time.time()), comparable across reboots
    uptime: float                     # seconds since boot
    interface_up: bool
    probe_ok: bool                    # the bridge answered through the tunnel
    e2e_ok: bool | None = None        # None: not checked in this run
    e2e_foreign: bool = False         # ... it was answered by another host's sshd (the bridge's)
    bridge_ssh_ok: bool | None = None # None: not checked, or could not tell (name does not resolve)
    endpoint: str | None = None       # the peer's current endpoint ("ip:port"), from wg
    resolved_endpoint: str | None = None  # the answers' endpoint resolved now, None if it fails
    handshake_age: float | None = None    # seconds since the last handshake, None if never


@dataclass
class State(JsonState):
    failing_since: float | None = None
    reasons: list[str] = field(default_factory=list)
    bridge_outage: bool = False
    last_run_at: float | None = None
    last_e2e_at: float | None = None
    last_e2e_ok: bool | None = None
    last_repeer_at: float | None = None
    last_restart_at: float | None = None
    restarts_since_failing: int = 0
    last_action_at: float | None = None
    reboots: list[float] = field(default_factory=list)   # times of the reboots we started
    last_step: str = ""                                  # "re-peer at ...", for status
    action_blocked: str = ""                             # why the due action was last refused

    @property
    def healthy(self) -> bool:
        return self.failing_since is None

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
    """Whether this run checks the chain end to end: always while failing, else every check_interval."""
    return (state.failing_since is not None or state.last_e2e_at is None
            or not state.last_e2e_ok or now - state.last_e2e_at >= config.check_interval)


def _since(then: float | None, now: float) -> float:
    return float("inf") if then is None else now - then


def decide(config: Config, obs: Observation, state: State) -> tuple[list[Step], State, list[str]]:
    """The steps to take now, the state to save, and the log lines. Pure."""
    new = dataclasses.replace(state, reasons=list(state.reasons), reboots=list(state.reboots))
    new.last_run_at = obs.now
    new.reboots = [t for t in new.reboots if obs.now - t < DAY]
    notes: list[str] = []
    if obs.e2e_ok is not None:
        new.last_e2e_at, new.last_e2e_ok = obs.now, obs.e2e_ok and not obs.e2e_foreign

    reasons = []
    if not obs.interface_up:
        reasons.append(f"interface {config.interface} is missing")
    elif not obs.probe_ok:
        age = "never" if obs.handshake_age is None else f"{obs.handshake_age:.0f} s ago"
        reasons.append(f"the bridge {config.bridge_address} does not answer through the tunnel "
                       f"(last handshake {age})")
    if obs.e2e_foreign:
        reasons.append(f"{config.target_host}:{config.check_port} answers with another host's "
                       f"ssh key: the bridge does not forward it (its rules are missing?)")
    elif new.last_e2e_ok is False:
        reasons.append(f"end-to-end check {config.target_host}:{config.check_port} failed")
    # At boot DNS may not work yet: wg-quick cannot set up a named endpoint then, so a restart
    # would only fail (or hang in wg's resolver retries); wait for the name instead.
    no_dns = bool(config.endpoint and not is_address(config.endpoint_host)
                  and obs.resolved_endpoint is None)
    if reasons and no_dns:
        reasons.append(f"{config.endpoint_host} does not resolve (DNS not working yet?)")

    if not reasons:
        if state.failing_since is not None:
            notes.append(f"recovered after {obs.now - state.failing_since:.0f} s "
                       f"(was: {'; '.join(state.reasons)})")
        elif state.last_run_at is None:
            notes.append("healthy")
        new.failing_since, new.reasons, new.bridge_outage = None, [], False
        new.restarts_since_failing, new.action_blocked = 0, ""
        return [], new, notes

    # The bridge is down, or up but not forwarding: nothing the homelab does would help.
    outage = obs.bridge_ssh_ok is False or obs.e2e_foreign
    if state.failing_since is None:
        new.failing_since = obs.now
        notes.append(f"FAILING: {'; '.join(reasons)}")
    elif reasons != state.reasons:
        notes.append(f"still failing: {'; '.join(reasons)}")
    if outage and not state.bridge_outage:
        what = (f"the bridge's own sshd answers on {config.target_host}:{config.check_port}"
                if obs.e2e_foreign else f"the bridge's own ssh port {config.target_host}:"
                                        f"{config.bridge_ssh_port} does not answer from outside either")
        notes.append(f"BRIDGE OUTAGE: {what}; the homelab is not at fault: no tunnel restart "
                   f"and no action while this lasts")
    if state.bridge_outage and not outage and obs.bridge_ssh_ok is True:
        # The bridge is back: its return starts the ladder afresh (give re-peer and restart a go).
        notes.append("the bridge answers again; starting the recovery steps afresh")
        new.failing_since, new.restarts_since_failing = obs.now, 0
    new.reasons, new.bridge_outage = reasons, outage
    failed_for = obs.now - new.failing_since

    # The strongest step that is due and allowed, one per run: action, restart, re-peer.
    steps: list[Step] = []
    restarted_ago = _since(state.last_restart_at, obs.now)
    if (failed_for >= config.action_after and new.restarts_since_failing >= 1
            and restarted_ago >= config.restart_after):
        blocked = _action_blocked(config, obs, new)
        if blocked:
            kind, why = blocked
            # Said once per kind of refusal, not every run: the journal stays readable.
            if kind != state.action_blocked:
                notes.append(f"not taking the action {config.action!r}: {why}")
            new.action_blocked = kind
        else:
            steps.append(Step("action", f"failing for {failed_for:.0f} s; a tunnel restart did "
                                        f"not help; the bridge's ssh port answers",
                              config.action_command))
    restart_wait = config.restart_interval - restarted_ago
    # Re-peer often at first (a restarted bridge), then calmly (a long outage).
    repeer_interval = REPEER_INTERVAL if failed_for < 60 else REPEER_INTERVAL_LATER
    if steps:
        pass
    elif not obs.interface_up:
        if no_dns:
            pass                  # the reasons say so; the restart waits for the name
        elif restart_wait <= 0:
            steps.append(Step("restart", f"interface {config.interface} is missing",
                              config.restart_command))
        else:
            notes.append(f"waiting: interface missing, next restart allowed in {restart_wait:.0f} s")
    elif failed_for >= config.restart_after and restart_wait <= 0 and not outage and not no_dns:
        steps.append(Step("restart", f"failing for {failed_for:.0f} s", config.restart_command))
    elif not obs.probe_ok and _since(state.last_repeer_at, obs.now) >= repeer_interval:
        endpoint = obs.resolved_endpoint or obs.endpoint
        why = "the bridge does not answer through the tunnel: fresh handshake"
        if obs.resolved_endpoint and obs.endpoint and obs.resolved_endpoint != obs.endpoint:
            why = f"{config.endpoint_host} now resolves to {obs.resolved_endpoint} (was {obs.endpoint})"
        elif config.endpoint and not is_address(config.endpoint_host) and obs.resolved_endpoint is None:
            why += f" (cannot resolve {config.endpoint_host}; keeping {obs.endpoint})"
        if endpoint:
            steps.append(Step("re-peer", why, endpoint=endpoint))

    for step in steps:
        if step.kind == "re-peer":
            new.last_repeer_at = obs.now
        elif step.kind == "restart":
            new.last_restart_at = obs.now
            new.restarts_since_failing += 1
        else:
            new.last_action_at, new.action_blocked = obs.now, ""
            if config.action == "reboot":
                new.reboots.append(obs.now)
        new.last_step = step_note(step.kind, obs.now)
        notes.append(f"{step.kind}: {step.reason}")
    return steps, new, notes


def _action_blocked(config: Config, obs: Observation, state: State) -> tuple[str, str] | None:
    """(kind, why) the action must not be taken now, or None."""
    if config.action == "none" or not config.action_command:
        return "none", "the configured action is none"
    if obs.e2e_foreign:
        return "outage", (f"BRIDGE OUTAGE (the bridge's own sshd answers on "
                          f"{config.target_host}:{config.check_port})")
    if obs.bridge_ssh_ok is False:
        return "outage", (f"BRIDGE OUTAGE ({config.target_host}:{config.bridge_ssh_port} does not "
                          f"answer from outside either)")
    if obs.bridge_ssh_ok is None:
        return "unknown", f"cannot tell whether the bridge is up ({config.target_host} does not resolve?)"
    if obs.uptime < config.boot_grace:
        return "boot grace", f"booted {obs.uptime:.0f} s ago (boot_grace {config.boot_grace} s)"
    wait = config.action_interval - _since(state.last_action_at, obs.now)
    if wait > 0:
        return "rate limit", (f"rate limit: last action {obs.now - state.last_action_at:.0f} s ago, "
                              f"next in {wait:.0f} s")
    if config.action == "reboot" and len(state.reboots) >= config.max_reboots_per_day:
        return "boot-loop guard", f"boot-loop guard: {len(state.reboots)} reboots in the last 24 hours"
    return None


# ----------------------------------------------------------------------------- I/O

def touch(host: str, port: int, timeout: float, refused_ok: bool) -> bool:
    """A TCP connection to host:port; a refusal counts when refused_ok (the host did answer)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except ConnectionRefusedError:
        return refused_ok
    except OSError as error:
        return refused_ok and error.errno == errno.ECONNREFUSED


def resolve(host: str, port: int) -> str | None:
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError):
        return None
    return f"{infos[0][4][0]}:{port}" if infos else None


def another_hosts_sshd(host: str, port: int, ssh_dir: Path = Path("/etc/ssh")) -> bool:
    """Whether an sshd answers at host:port with none of this host's keys: the bridge's own
    sshd (it keeps port 22 too) once its forwarding rules are gone. False when it cannot
    tell: not an sshd there, no ssh-keyscan, no host keys of ours."""
    ours = {line.split()[1] for key in ssh_dir.glob("ssh_host_*_key.pub")
            for line in key.read_text().splitlines() if len(line.split()) >= 2}
    if not ours:
        return False
    done = run(["ssh-keyscan", "-T", str(int(CHECK_TIMEOUT)), "-p", str(port), host])
    theirs = {cols[2] for cols in (line.split() for line in done.stdout.splitlines())
              if len(cols) >= 3 and not cols[0].startswith("#")}
    return bool(theirs) and not theirs & ours


@dataclass(frozen=True)
class Peer:
    public_key: str
    endpoint: str | None
    allowed_ips: str
    handshake_age: float | None


def wg_peer(interface: str, now: float) -> Peer | None:
    """The (only) peer of the interface from `wg show IFACE dump`."""
    done = run(["wg", "show", interface, "dump"])
    lines = done.stdout.splitlines()[1:] if done.returncode == 0 else []
    for line in lines:
        cols = line.split("\t")
        if len(cols) >= 8:
            handshake = int(cols[4])
            return Peer(cols[0], None if cols[2] == "(none)" else cols[2], cols[3],
                        now - handshake if handshake else None)
    return None


def uptime() -> float:
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def observe(config: Config, state: State, now: float | None = None) -> tuple[Observation, Peer | None]:
    now = time.time() if now is None else now
    interface_up = interface_exists(config.interface)
    peer = wg_peer(config.interface, now) if interface_up else None
    probe_ok = interface_up and touch(config.bridge_address, config.bridge_ssh_port,
                                      PROBE_TIMEOUT, refused_ok=True)
    target = config.target_host
    e2e, foreign = None, False
    if probe_ok and target and e2e_due(config, state, now):
        e2e = touch(target, config.check_port, CHECK_TIMEOUT, refused_ok=False)
        foreign = e2e and another_hosts_sshd(target, config.check_port)
    # What only a failing run needs (a DNS lookup, the bridge's own port), not every healthy one.
    suspect = not (probe_ok and e2e is not False and not foreign and state.last_e2e_ok is not False)
    resolved = resolve(*split_endpoint(config.endpoint)) if suspect and config.endpoint else None
    bridge_ssh = None
    if suspect and target and (is_address(target) or resolve(target, config.bridge_ssh_port)):
        bridge_ssh = touch(target, config.bridge_ssh_port, CHECK_TIMEOUT, refused_ok=False)
    obs = Observation(now=now, uptime=uptime(), interface_up=interface_up, probe_ok=probe_ok,
                      e2e_ok=e2e, e2e_foreign=foreign, bridge_ssh_ok=bridge_ssh,
                      endpoint=peer.endpoint if peer else None, resolved_endpoint=resolved,
                      handshake_age=peer.handshake_age if peer else None)
    return obs, peer


def carry_out(step: Step, config: Config, peer: Peer | None) -> None:
    if step.kind == "re-peer":
        key = (peer.public_key if peer else None) or config.peer_public_key
        if not key:
            log("re-peer: no peer key known; skipped")
            return
        allowed = peer.allowed_ips if peer and peer.allowed_ips != "(none)" else "0.0.0.0/0"
        iface = config.interface
        for argv in (["wg", "set", iface, "peer", key, "remove"],
                     ["wg", "set", iface, "peer", key, "endpoint", step.endpoint,
                      "allowed-ips", allowed, "persistent-keepalive", str(config.keepalive or "off")]):
            log("[#] " + " ".join(argv))
            done = run(argv)
            if done.returncode != 0:
                log(f"failed ({done.returncode}): {done.stderr.strip()}")
        return
    run_step_command(step.kind, step.command)


def run_once(config: Config, state_path: Path) -> State:
    state = State.load(state_path)
    obs, peer = observe(config, state)
    steps, new, lines = decide(config, obs, state)
    for line in lines:
        log(line)
    new.save(state_path)               # before acting: a reboot must not lose the count
    for step in steps:
        carry_out(step, config, peer)
    return new


def main(argv: list[str] | None = None) -> int:
    return watchdog_main(argv, role="homelab", description=__doc__.splitlines()[0],
                         config_from_answers=Config.from_answers, run_once=run_once)


if __name__ == "__main__":
    sys.exit(main())
