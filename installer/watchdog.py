"""What the bridge's and the homelab's watchdogs share: journal lines, commands, the state file,
systemd's notification socket and the service loop.

cgnat-watchdog.service runs one long-lived process per host (`Type=notify`, `WatchdogSec=`):
every few seconds each role's watchdog (cgnat_bridge.watchdog, cgnat_homelab.watchdog) observes
(I/O), decides (pure), saves its state when it changed, publishes its metrics (installer/metrics.py)
and only then acts. It writes to the journal only when something changes, never on a healthy run.
"""
from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from installer import atomic, metrics
from installer.answers import ANSWERS_PATH

STATE_PATH = "/var/lib/cgnat/watchdog.json"
UNIT = "cgnat-watchdog.service"     # shipped by each package, enabled and started by cgnat-setup
PROGRAM = "cgnat-watchdog"
COMMAND_TIMEOUT = 120      # seconds a restart or action command may take
EXIT_BAD_ANSWERS = 2       # the unit's RestartPreventExitStatus=: restarting would not fix them
# Fields that change on every run without changing what the state says: not worth a write.
VOLATILE = ("last_run_at", "last_e2e_at", "last_e2e_seconds")


def log(message: str) -> None:
    """One line for the journal (the units send stderr there)."""
    print(f"{PROGRAM}: {message}", file=sys.stderr, flush=True)


def run(argv: list[str], timeout: float = 10) -> subprocess.CompletedProcess:
    """A probe command; a missing program or a hang is a failed run, never an exception."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        return subprocess.CompletedProcess(argv, 127, "", str(error))


def touch(host: str, port: int, timeout: float, refused_ok: bool) -> bool:
    """A TCP connection to host:port; a refusal counts when refused_ok (the host did answer)."""
    return connect(host, port, timeout) in (("ok", "refused") if refused_ok else ("ok",))


def connect(host: str, port: int, timeout: float) -> str:
    """"ok", "refused" or "failed": a TCP connection to host:port (an IPv4 address or name)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "ok"
    except ConnectionRefusedError:
        return "refused"
    except OSError as error:
        return "refused" if error.errno == errno.ECONNREFUSED else "failed"


def run_step_command(kind: str, command: str) -> int:
    """A configured restart/action command through sh, its output's tail logged. systemd's
    watchdog is kept fed while it runs (a tunnel restart may wait for DNS), up to COMMAND_TIMEOUT."""
    log(f"[#] {command}")
    with tempfile.TemporaryFile("w+") as output:
        proc = subprocess.Popen(["sh", "-c", command], stdout=output, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while True:
            try:
                code = proc.wait(timeout=min(5.0, max(0.1, deadline - time.monotonic())))
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    proc.kill()
                    code = proc.wait()
                    log(f"{kind} command timed out after {COMMAND_TIMEOUT} s")
                    break
                notify("WATCHDOG=1")
        output.seek(0)
        for line in output.read().strip().splitlines()[-10:]:
            log(f"    {line}")
    log(f"{kind} command exited {code}")
    return code


def notify(message: str) -> bool:
    """sd_notify(3): one datagram to $NOTIFY_SOCKET ("READY=1", "WATCHDOG=1", "STATUS=...").
    False (and nothing sent) when not run by systemd with Type=notify."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address.startswith(("/", "@")):
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]          # abstract namespace
    try:
        if _NOTIFY.get("address") != address:   # one socket for the process's life
            _NOTIFY["address"] = address
            _NOTIFY["socket"] = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        _NOTIFY["socket"].sendto(message.encode(), address)
        return True
    except OSError:
        return False


_NOTIFY: dict = {}


def interface_exists(interface: str) -> bool:
    """In this process's network namespace; no program to start (/sys may be another netns's)."""
    try:
        socket.if_nametoindex(interface)
        return True
    except OSError:
        return False


def step_note(kind: str, now: float) -> str:
    """The last step taken, for `cgnat-setup status`: "restart at 2026-11-25 06:00:00"."""
    return f"{kind} at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))}"


def handshake_age(interface: str, now: float) -> float | None:
    """Seconds since the interface's latest handshake with any peer; None if never."""
    out = run(["wg", "show", interface, "latest-handshakes"]).stdout.split()
    latest = max((int(x) for x in out[1::2] if x.isdigit()), default=0)
    return now - latest if latest else None


@dataclass
class JsonState:
    """A dataclass kept between runs as JSON; unknown keys (a newer version's) are ignored.
    Both roles' states count the steps taken by kind and keep when health last changed (for
    the metrics and `cgnat-setup status --json`); a subclass says what `healthy` means."""
    steps_taken: dict[str, int] = field(default_factory=dict)
    health_changed_at: float | None = None

    def account(self, before, steps, now: float) -> None:
        """Count this run's steps and note a change of health (self: the state after the run,
        before: the one before it)."""
        for step in steps:   # a new dict: self may share before's (dataclasses.replace)
            self.steps_taken = {**self.steps_taken, step.kind: self.steps_taken.get(step.kind, 0) + 1}
        if self.health_changed_at is None or self.healthy != before.healthy:
            self.health_changed_at = now

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict):
        """The state from its JSON object; a value of a type its field does not hold (a string for
        a time, NaN, a list for a count: a hand's edit, a disk error) is left at the default, so a
        damaged state never crashes the watchdog later, in its arithmetic."""
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not an object")
        hints = typing.get_type_hints(cls)
        fitting = {f.name: _as_type(data[f.name], hints[f.name]) for f in dataclasses.fields(cls) if f.name in data}
        return cls(**{name: value for name, value in fitting.items() if value is not _UNFIT})

    @classmethod
    def load(cls, path: Path):
        """The saved state, or a fresh one when there is none or it cannot be read."""
        try:
            return cls.from_json(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, TypeError) as error:
            log(f"ignoring unreadable state {path}: {error}")
            return cls()

    def differs(self, other) -> bool:
        """Whether saving self over other would change what the state says (not just when)."""
        theirs = vars(other)       # shallow: runs every few seconds, asdict() would deep-copy
        return any(value != theirs.get(key) for key, value in vars(self).items() if key not in VOLATILE)

    def save_if_changed(self, path: Path, before) -> None:
        """Save unless only the time of the run changed: no write, no fsync on a healthy run.
        `before` None: the first run of this process, which always saves."""
        if before is None or self.differs(before):
            self.save(path)

    def save(self, path: Path) -> None:
        """Atomically and durably: a reboot right after must not lose it (the reboot count)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_atomic(path, self.to_json(), 0o600)


_UNFIT = object()


def _as_type(value, hint):
    """`value` as a field of type `hint` holds it (float, int, bool, str, X | None, list[X],
    dict[str, X]; numbers finite, floats as float), or _UNFIT."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return next((v for v in (_as_type(value, arg) for arg in args) if v is not _UNFIT), _UNFIT)
    if hint is type(None):
        return None if value is None else _UNFIT
    if origin is list and isinstance(value, list):
        items = [_as_type(item, args[0]) for item in value]
        return _UNFIT if any(item is _UNFIT for item in items) else items
    if origin is dict and isinstance(value, dict):
        items = {key: _as_type(item, args[1]) for key, item in value.items()}
        fits = all(isinstance(key, str) and item is not _UNFIT for key, item in items.items())
        return items if fits else _UNFIT
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) <= 1e300
    if hint is float and number:
        return float(value)
    if hint is int and number and isinstance(value, int):
        return value
    return value if hint in (bool, str) and type(value) is hint else _UNFIT


def load_role_answers(path: Path, role: str):
    """The answers file, validated by the same rules as cgnat-setup, for this role only."""
    from installer import answers as answers_toml
    from installer.validate import load_answers
    answers = load_answers(answers_toml.parse_toml(path.read_text()), role, None)
    if answers.role != role:
        raise ValueError(f"it is for a {answers.role}, not a {role}")
    return answers


def main(argv: list[str] | None, *, role: str, description: str, every: float,
         config_from_answers: Callable, metrics_setting: Callable, run_once: Callable) -> int:
    """`watchdog [--answers F] [--state F] [--every SECONDS] [--once]`: the service's loop.
    `metrics_setting(answers)`: the answers' metrics directory (None: the default rule)."""
    p = argparse.ArgumentParser(prog=PROGRAM, description=description)
    p.add_argument("--answers", default=ANSWERS_PATH, help=f"answers file (default {ANSWERS_PATH})")
    p.add_argument("--state", default=STATE_PATH, help=f"state file (default {STATE_PATH})")
    p.add_argument("--every", type=float, default=every, metavar="SECONDS",
                   help=f"seconds between two runs (default {every:g})")
    p.add_argument("--once", action="store_true", help="one run, then exit")
    args = p.parse_args(argv)
    try:
        answers = load_role_answers(Path(args.answers), role)
        config = config_from_answers(answers)
    except Exception as error:  # noqa: BLE001 - one line for the journal
        problems = getattr(error, "problems", None)
        detail = "; ".join(f"{q.key}: {q.message}" for q in problems) if problems else error
        log(f"cannot read {args.answers}: {detail}")
        return EXIT_BAD_ANSWERS
    state_path = Path(args.state)
    state = None
    where = metrics.directory(metrics_setting(answers))
    textfile = metrics.Textfile(where, answers.interface, log) if where else None

    def stop(*_):
        """systemctl stop (or the package's removal): metrics of a watchdog that no longer runs
        would tell a stale story; its file goes (a killed, hung one leaves it to age)."""
        if textfile:
            textfile.withdraw()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    notify("READY=1")
    while True:
        started = time.monotonic()
        state = run_once(config, state_path, state, textfile)
        if args.once:
            return 0
        notify("WATCHDOG=1")
        time.sleep(max(0.0, args.every - (time.monotonic() - started)))
