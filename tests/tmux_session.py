"""A tmux session of 80x24 as an admin's terminal: the wizard as a person sees and drives it.
tmux runs wherever `shell` runs a command line: this machine (`local_shell`) or a booted host
(its `sh`)."""
from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def local_shell(command: str) -> str:
    """Run a command line here; its output, or CalledProcessError when it fails."""
    return subprocess.run(["sh", "-c", command], check=True, capture_output=True, text=True).stdout


class TmuxSession:
    def __init__(self, shell: Callable[[str], str], command: str, name: str, cwd: Path | None = None):
        self.shell, self.name = shell, shlex.quote(name)
        where = f"-c {shlex.quote(str(cwd))} " if cwd is not None else ""
        shell(f"tmux kill-session -t {self.name} 2>/dev/null; "
              f"tmux new-session -d -s {self.name} -x 80 -y 24 {where}{shlex.quote(command)}")

    def screen(self) -> str:
        """What the terminal shows (wrapped lines joined); empty once the session is gone."""
        return self.shell(f"tmux capture-pane -p -J -t {self.name} 2>/dev/null || true")

    def wait_for(self, text: str, timeout: float = 60) -> str:
        """The screen, once it shows `text`."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen()
            if text in shown:
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared in {timeout} s; the terminal shows:\n{shown}")
            time.sleep(0.1)   # polling interval, not synchronisation

    def keys(self, *keys: str) -> None:
        self.shell(f"tmux send-keys -t {self.name} " + " ".join(shlex.quote(k) for k in keys))

    def close(self) -> None:
        self.shell(f"tmux kill-session -t {self.name} 2>/dev/null || true")
