"""The watchdog service's runtime: the loop that cgnat-watchdog.service runs (`Type=notify`,
`WatchdogSec=`), systemd's notification socket, and the step commands it runs.

One long-lived process per host watches every tunnel of the host (installer/tunnels.py: a
homelab with several bridges has one per bridge), each with its own state file and metrics
file: every few seconds the role's watchdog (cgnat_bridge.watchdog, cgnat_homelab.watchdog)
observes (I/O), decides (pure), saves each tunnel's state when it changed
(installer/watchdog_state.py), publishes its metrics (installer/metrics.py) and only then acts.
It writes to the journal only when something changes, never on a healthy run. Only the
watchdogs import this module; setup, status and the other pure modules never do
(tests/unit/test_layers.py).
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from installer import metrics, tunnels
from installer.answers import ANSWERS_PATH
from installer.watchdog_state import PROGRAM, STATE_PATH, log, state_path

COMMAND_TIMEOUT = 120      # seconds a restart or action command may take
EXIT_BAD_ANSWERS = 2       # the unit's RestartPreventExitStatus=: restarting would not fix them


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


@dataclass(frozen=True)
class Tunnel:
    """One tunnel the watchdog watches: its answers, the role's config made from them, its own
    state file and metrics textfile (None: no metrics)."""
    answers: Any
    config: Any
    state_path: Path
    textfile: metrics.Textfile | None = None

    @property
    def interface(self) -> str:
        return self.config.interface


def answers_files(given: str | None) -> list[str]:
    """The answers files to watch: --answers FILE alone, else every saved tunnel's
    (installer/tunnels.py), the first tunnel's (ANSWERS_PATH) first."""
    if given is not None:
        return [given]
    return tunnels.answers_files(Path("/"))


def load_role_answers(path: Path, role: str):
    """The answers file, validated by the same rules as cgnat-setup, for this role only."""
    from installer import answers as answers_toml
    from installer.validate import load_answers
    answers = load_answers(answers_toml.parse_toml(answers_toml.read_file(path)), role, None)
    if answers.role != role:
        raise ValueError(f"it is for a {answers.role}, not a {role}")
    return answers


def load_tunnels(files: list[str], role: str, state: str, config_from_answers: Callable,
                 metrics_setting: Callable) -> list[Tunnel]:
    """Each file's tunnel; one whose answers cannot be used is said in the journal and left out
    (the others are watched all the same). The first file's tunnel keeps `state` and cgnat.prom,
    a further one has its own (watchdog-IFACE.json, cgnat-IFACE.prom); the metrics directory is
    the first usable tunnel's setting (a host's, as its unit's drop-in)."""
    loaded = []
    for index, file in enumerate(files):
        try:
            answers = load_role_answers(Path(file), role)
            loaded.append((answers, config_from_answers(answers), index == 0))
        except Exception as error:  # noqa: BLE001 - one line for the journal
            problems = getattr(error, "problems", None)
            detail = "; ".join(f"{q.key}: {q.message}" for q in problems) if problems else error
            log(f"cannot read {file}: {detail}")
    where = metrics.directory(metrics_setting(loaded[0][0])) if loaded else None
    return [Tunnel(answers, config, Path(state_path(config.interface, first, state)),
                   metrics.Textfile(where, config.interface, log, name=metrics.file_name(config.interface, first))
                   if where else None)
            for answers, config, first in loaded]


def main(argv: list[str] | None, *, role: str, description: str, every: float,
         config_from_answers: Callable, metrics_setting: Callable, watch: Callable) -> int:
    """`watchdog [--answers F] [--state F] [--every SECONDS] [--once]`: the service's loop over
    every tunnel of the host. `metrics_setting(answers)`: the answers' metrics directory (None:
    the default rule); `watch(tunnels)`: the role's run over them, `run(states) -> states`
    (interface -> its state after the run; None: the first run, which reads the state files)."""
    p = argparse.ArgumentParser(prog=PROGRAM, description=description)
    p.add_argument("--answers", help=f"one tunnel's answers file (default: every saved tunnel's, "
                                     f"{ANSWERS_PATH} and {tunnels.TUNNELS_DIR}/IFACE.toml)")
    p.add_argument("--state", default=STATE_PATH, help=f"the first tunnel's state file (default {STATE_PATH}; "
                                                       f"a further tunnel's is watchdog-IFACE.json beside it)")
    p.add_argument("--every", type=float, default=every, metavar="SECONDS",
                   help=f"seconds between two runs (default {every:g})")
    p.add_argument("--once", action="store_true", help="one run, then exit")
    args = p.parse_args(argv)
    watched = load_tunnels(answers_files(args.answers), role, args.state, config_from_answers, metrics_setting)
    if not watched:
        return EXIT_BAD_ANSWERS
    run = watch(watched)
    states = None

    def stop(*_):
        """systemctl stop (or the package's removal): metrics of a watchdog that no longer runs
        would tell a stale story; its files go (a killed, hung one leaves them to age)."""
        for tunnel in watched:
            if tunnel.textfile:
                tunnel.textfile.withdraw()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    notify("READY=1")
    while True:
        started = time.monotonic()
        states = run(states)
        if args.once:
            return 0
        notify("WATCHDOG=1")
        time.sleep(max(0.0, args.every - (time.monotonic() - started)))
