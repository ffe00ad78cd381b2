"""The bridge's watchdog: keep the tunnel interface and our rules in place, report a silent homelab.

Run by cgnat-watchdog.timer as a oneshot (`python3 -m cgnat_bridge.watchdog`, or
/usr/lib/cgnat-bridge/watchdog). Each run observes (I/O), decides (pure: `decide()`), acts:

    interface missing         restart the tunnel (watchdog_restart_command, default
                              `systemctl restart wg-quick@IFACE`), which also re-runs the up hook
    a jump or chain missing   re-run the up hook (watchdog_up_command, default
                              `/usr/lib/cgnat-bridge/hooks/up IFACE`; idempotent)
    homelab silent            (no handshake for watchdog_silent_after seconds) logged once per
                              silence: only the homelab can dial in, there is nothing to restart

State between runs (what was already reported) is kept in /var/lib/cgnat/watchdog.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ANSWERS_PATH = "/etc/cgnat/answers.toml"
STATE_PATH = "/var/lib/cgnat/watchdog.json"
CGNAT_ETC = "/etc/cgnat"
PROGRAM = "cgnat-watchdog"
SILENT_AFTER = 180          # WireGuard re-handshakes every 2 minutes while data flows
COMMAND_TIMEOUT = 120


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
    missing_rules: tuple[str, ...] = ()   # "nat PREROUTING -> CGNAT-PREROUTING", ...


@dataclass
class State:
    last_run_at: float | None = None
    silent_reported: bool = False
    last_fix_at: float | None = None
    last_fix: str = ""
    problems: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "State":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in names})

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
    log: list[str] = []
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
            log.append(f"HOMELAB SILENT: {age}; only the homelab can re-establish the tunnel "
                       f"(is it up, is its watchdog running, is UDP open in the provider's firewall?)")
        new.silent_reported = True
    elif obs.interface_up:
        if state.silent_reported:
            log.append(f"the homelab is back (handshake {obs.handshake_age:.0f} s ago)")
        new.silent_reported = False
    for step in steps:
        new.last_fix_at, new.last_fix = obs.now, f"{step.kind} at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(obs.now))}"
        log.append(f"{step.kind}: {step.reason}")
    return steps, new, log


# ----------------------------------------------------------------------------- I/O

def log(message: str) -> None:
    print(f"{PROGRAM}: {message}", file=sys.stderr, flush=True)


def _run(argv: list[str], timeout: float = 10) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        return subprocess.CompletedProcess(argv, 127, "", str(error))


def declared_chains(rules_text: str) -> list[tuple[str, str]]:
    """(table, chain) of each CGNAT-* chain an iptables-restore file declares."""
    table, chains = None, []
    for line in rules_text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":CGNAT-") and table:
            chains.append((table, line[1:].split()[0]))
    return chains


def missing_rules(interface: str, rules_path: str) -> tuple[str, ...]:
    """The jumps (and chains) of the rules file that are not in the kernel, per `iptables -C`."""
    try:
        chains = declared_chains(Path(rules_path).read_text())
    except OSError:
        return ()
    missing = []
    for table, chain in chains:
        builtin = chain.removeprefix("CGNAT-")
        check = ["iptables", "-w", "-t", table, "-C", builtin, "-m", "comment",
                 "--comment", f"cgnat:{interface}", "-j", chain]
        if _run(check).returncode != 0:
            missing.append(f"{table} {builtin} -> {chain}")
        elif _run(["iptables", "-w", "-t", table, "-S", chain]).stdout.count("\n") <= 1:
            missing.append(f"{table} {chain} is empty")
    return tuple(missing)


def handshake_age(interface: str, now: float) -> float | None:
    out = _run(["wg", "show", interface, "latest-handshakes"]).stdout.split()
    stamps = [int(x) for x in out[1::2] if x.isdigit()]
    latest = max(stamps, default=0)
    return now - latest if latest else None


def observe(config: Config, now: float | None = None) -> Observation:
    now = time.time() if now is None else now
    up = _run(["ip", "link", "show", "dev", config.interface]).returncode == 0
    return Observation(now=now, interface_up=up,
                       handshake_age=handshake_age(config.interface, now) if up else None,
                       missing_rules=missing_rules(config.interface, config.rules_path) if up else ())


def load_state(path: Path) -> State:
    try:
        return State.from_json(path.read_text())
    except FileNotFoundError:
        return State()
    except (OSError, ValueError, TypeError) as error:
        log(f"ignoring unreadable state {path}: {error}")
        return State()


def save_state(path: Path, state: State) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as out:
        out.write(state.to_json())
    os.replace(tmp, path)


def carry_out(step: Step) -> None:
    log(f"[#] {step.command}")
    done = _run(["sh", "-c", step.command], timeout=COMMAND_TIMEOUT)
    for line in (done.stdout + done.stderr).strip().splitlines()[-10:]:
        log(f"    {line}")
    log(f"{step.kind} command exited {done.returncode}")


def run_once(config: Config, state_path: Path) -> State:
    state = load_state(state_path)
    steps, new, lines = decide(config, observe(config), state)
    for line in lines:
        log(line)
    save_state(state_path, new)
    for step in steps:
        carry_out(step)
    return new


def load_config(answers_path: Path) -> Config:
    from installer import answers as answers_toml
    from installer.validate import load_answers
    answers = load_answers(answers_toml.parse_toml(answers_path.read_text()), "bridge", None)
    if answers.role != "bridge":
        raise SystemExit(f"{PROGRAM}: {answers_path} is for a {answers.role}, not a bridge")
    return Config.from_answers(answers, os.environ.get("CGNAT_ETC", CGNAT_ETC))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cgnat-watchdog", description=__doc__.splitlines()[0])
    p.add_argument("--answers", default=ANSWERS_PATH, help=f"answers file (default {ANSWERS_PATH})")
    p.add_argument("--state", default=STATE_PATH, help=f"state file (default {STATE_PATH})")
    p.add_argument("--loop", type=float, metavar="SECONDS", help="run every SECONDS until stopped")
    args = p.parse_args(argv)
    try:
        config = load_config(Path(args.answers))
    except Exception as error:  # noqa: BLE001 - one line for the journal
        problems = getattr(error, "problems", None)
        detail = "; ".join(f"{q.key}: {q.message}" for q in problems) if problems else error
        log(f"cannot read {args.answers}: {detail}")
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        started = time.monotonic()
        run_once(config, Path(args.state))
        if args.loop is None:
            return 0
        time.sleep(max(0.0, args.loop - (time.monotonic() - started)))


if __name__ == "__main__":
    sys.exit(main())
