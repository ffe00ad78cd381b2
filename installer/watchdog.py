"""What the bridge's and the homelab's watchdogs share: journal lines, commands, the state file
and the entry point.

Each role's watchdog (cgnat_bridge.watchdog, cgnat_homelab.watchdog) observes (I/O), decides
(pure), saves its state and only then acts; the parts here do not depend on the role.
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
from pathlib import Path
from typing import Callable

from installer.answers import ANSWERS_PATH

STATE_PATH = "/var/lib/cgnat/watchdog.json"
PROGRAM = "cgnat-watchdog"
COMMAND_TIMEOUT = 120      # seconds a restart or action command may take


def log(message: str) -> None:
    """One line for the journal (the units send stderr there)."""
    print(f"{PROGRAM}: {message}", file=sys.stderr, flush=True)


def run(argv: list[str], timeout: float = 10) -> subprocess.CompletedProcess:
    """A probe command; a missing program or a hang is a failed run, never an exception."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        return subprocess.CompletedProcess(argv, 127, "", str(error))


def run_step_command(kind: str, command: str) -> int:
    """A configured restart/action command through sh, its output's tail logged."""
    log(f"[#] {command}")
    done = run(["sh", "-c", command], timeout=COMMAND_TIMEOUT)
    for line in (done.stdout + done.stderr).strip().splitlines()[-10:]:
        log(f"    {line}")
    log(f"{kind} command exited {done.returncode}")
    return done.returncode


def interface_exists(interface: str) -> bool:
    return run(["ip", "link", "show", "dev", interface]).returncode == 0


def step_note(kind: str, now: float) -> str:
    """The last step taken, for `cgnat-setup status`: "restart at 2026-11-25 06:00:00"."""
    return f"{kind} at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))}"


def handshake_age(interface: str, now: float) -> float | None:
    """Seconds since the interface's latest handshake with any peer; None if never."""
    out = run(["wg", "show", interface, "latest-handshakes"]).stdout.split()
    latest = max((int(x) for x in out[1::2] if x.isdigit()), default=0)
    return now - latest if latest else None


class JsonState:
    """A dataclass kept between runs as JSON; unknown keys (a newer version's) are ignored."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

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

    def save(self, path: Path) -> None:
        """Atomically and durably: a reboot right after must not lose it (the reboot count)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as out:
            out.write(self.to_json())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)


def load_role_answers(path: Path, role: str):
    """The answers file, validated by the same rules as cgnat-setup, for this role only."""
    from installer import answers as answers_toml
    from installer.validate import load_answers
    answers = load_answers(answers_toml.parse_toml(path.read_text()), role, None)
    if answers.role != role:
        raise ValueError(f"it is for a {answers.role}, not a {role}")
    return answers


def main(argv: list[str] | None, *, role: str, description: str,
         config_from_answers: Callable, run_once: Callable) -> int:
    """`watchdog [--answers F] [--state F] [--loop SECONDS]`: one run (the timer's) or a loop."""
    p = argparse.ArgumentParser(prog=PROGRAM, description=description)
    p.add_argument("--answers", default=ANSWERS_PATH, help=f"answers file (default {ANSWERS_PATH})")
    p.add_argument("--state", default=STATE_PATH, help=f"state file (default {STATE_PATH})")
    p.add_argument("--loop", type=float, metavar="SECONDS",
                   help="run every SECONDS until stopped (tests, benchmark); default: once")
    args = p.parse_args(argv)
    try:
        config = config_from_answers(load_role_answers(Path(args.answers), role))
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
