"""The only part that changes the host: write the plan's files, then run its commands.

Every write is atomic (temp file in the same directory, fsync, rename). Before the first
change the old state of each path, and whether each unit the plan touches is enabled and
active, is kept in memory; any failure restores both, so a run that fails leaves the host
as it was. Under --root nothing is written outside the root, symlinks included.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from installer import atomic, sshd
from installer.errors import SetupError
from installer.plan import BACKUP_SUFFIX, FileWrite, Plan


def log(message: str) -> None:
    print(f"[#] {message}", file=sys.stderr, flush=True)


def run(argv: list[str]) -> None:
    log(" ".join(argv))
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise SetupError(f"`{' '.join(argv)}` failed: {done.stderr.strip() or done.returncode}")


def host_path(root: Path, path: str) -> Path:
    """`path` of the target host under root; SetupError where a symlink leads out of root."""
    target = root / path.lstrip("/")
    if root != Path("/") and not target.resolve().is_relative_to(root.resolve()):
        raise SetupError(f"{target} leads out of {root} (through a symlink); refusing to write there")
    return target


def write_atomic(target: Path, content: str, mode: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_atomic(target, content, mode)


class Transaction:
    """Remembers what each written path held, to put it back on failure."""

    def __init__(self, root: Path):
        self.root = root
        self.saved: dict[Path, tuple[bytes, int] | None] = {}

    def _remember(self, target: Path) -> tuple[bytes, int] | None:
        old = (target.read_bytes(), target.stat().st_mode & 0o7777) if target.exists() else None
        self.saved.setdefault(target, old)
        return old

    def write(self, f: FileWrite) -> bool:
        """Write if different; True when the file changed."""
        target = host_path(self.root, f.path)
        old = (target.read_bytes(), target.stat().st_mode & 0o7777) if target.exists() else None
        if old == (f.content.encode(), f.mode):
            return False
        self._remember(target)
        log(f"write {f.path} (mode {f.mode:04o})")
        write_atomic(target, f.content, f.mode)
        return True

    def remove(self, path: str) -> None:
        target = host_path(self.root, path)
        if self._remember(target) is not None:
            log(f"remove {path}")
            target.unlink()

    def keep_copy(self, path: str) -> None:
        """Copy a file that is about to be replaced to PATH.before-cgnat, same mode."""
        source, copy = host_path(self.root, path), host_path(self.root, path + BACKUP_SUFFIX)
        self._remember(copy)
        log(f"keep {path} as {path}{BACKUP_SUFFIX}")
        write_atomic(copy, source.read_bytes().decode(), source.stat().st_mode & 0o7777)

    def rollback(self) -> None:
        # Keep going past a file that cannot be restored: every other one still must be.
        for target, old in reversed(list(self.saved.items())):
            log(f"restore {target}")
            try:
                if old is None:
                    target.unlink(missing_ok=True)
                else:
                    write_atomic(target, old[0].decode(), old[1])
            except OSError as error:
                log(f"could not restore {target}: {error}")


class UnitStates:
    """Whether each unit was enabled and active before the run, to return it there."""

    def __init__(self, units: list[str]):
        self.before = {unit: (_systemctl_ok("is-enabled", unit), _systemctl_ok("is-active", unit))
                       for unit in units}

    def restore(self) -> None:
        for unit, (enabled, active) in reversed(list(self.before.items())):
            _run_quietly(["systemctl", "enable" if enabled else "disable", unit])
            _run_quietly(["systemctl", "restart" if active else "stop", unit])


def apply(plan: Plan, root: Path) -> list[str]:
    """Carry out the plan under root; the paths that changed. Raises SetupError after rollback."""
    for f in plan.files:
        host_path(root, f.path)          # every path checked before the first change
    tx = Transaction(root)
    units = UnitStates(plan.units) if plan.commands else None
    sshd_changed = False
    try:
        for argv in plan.retire:
            run(argv)
        for path in plan.backups:
            tx.keep_copy(path)
        for path in plan.removals:
            tx.remove(path)
        changed = [f.path for f in plan.files if tx.write(f)] + plan.removals
        if plan.commands and plan.sshd_port is not None:
            sshd_changed = bool({plan.sshd_dropin, plan.socket_dropin} & set(changed) - {None})
            _ensure_sshd_port(plan, sshd_changed)
        if plan.commands and not changed and _active(plan.service):
            log(f"nothing changed; {plan.service} keeps running")
        else:
            for argv in plan.commands:
                run(argv)
        return changed
    except BaseException:
        tx.rollback()
        if sshd_changed:
            sshd.reload_sshd(_run_quietly, socket=plan.socket_dropin is not None)
        if units is not None:
            units.restore()
        raise


def _ensure_sshd_port(plan: Plan, dropin_changed: bool) -> None:
    if dropin_changed:
        log("sshd -t")
        sshd.validate_config()
        sshd.reload_sshd(run, socket=plan.socket_dropin is not None)
    log(f"confirm sshd answers on port {plan.sshd_port}")
    sshd.confirm_listening(plan.sshd_port)


def _active(unit: str) -> bool:
    return _systemctl_ok("is-active", unit)


def _systemctl_ok(verb: str, unit: str) -> bool:
    """`systemctl VERB --quiet UNIT` succeeded; False without systemd (a chroot)."""
    try:
        return subprocess.run(["systemctl", verb, "--quiet", unit], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


def _run_quietly(argv: list[str]) -> None:
    """Best effort, for putting things back: a failure here must not hide the first one."""
    log(" ".join(argv))
    try:
        subprocess.run(argv, capture_output=True)
    except FileNotFoundError:
        pass
