"""The only part that changes the host: write the plan's files, then run its commands.

Every write is atomic (temp file in the same directory, fsync, rename) and goes through
installer/atomic.py's HostTree: directories opened by fd from the root, never through a
symlink, never into a directory others may write. Before the first change the old bytes of
each path, and whether each unit the plan touches is enabled and active, are kept in memory;
any failure restores both, so a run that fails leaves the host as it was. A file an earlier
setup wrote and the admin changed since is kept as PATH.before-cgnat, never just deleted.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

from installer import interface_lock, listen_port
from installer.atomic import HostTree
from installer.detect import WIREGUARD_DIR
from installer.errors import SetupError
from installer.manifest import MANIFEST_PATH, digest, recorded_digests
from installer.plan import BACKUP_SUFFIX, OFFLINE_SYSTEMCTL, FileWrite, Plan
from installer.watchdog_state import UNIT as WATCHDOG_UNIT

# Seconds one command may take: a tunnel's restart waits for its hooks, which wait up to 60 s
# for the interface's lock (hooks/lib.sh). Past it setup stops waiting, says so and rolls back:
# it never hangs on a unit that does not finish (wg-quick@ is a oneshot with no start timeout).
COMMAND_TIMEOUT = 90


def log(message: str) -> None:
    print(f"[#] {message}", file=sys.stderr, flush=True)


def run(argv: list[str]) -> None:
    log(" ".join(argv))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise SetupError(f"`{' '.join(argv)}` did not finish within {COMMAND_TIMEOUT} s "
                         f"(systemctl list-jobs shows what systemd waits for)") from None
    if done.returncode != 0:
        raise SetupError(f"`{' '.join(argv)}` failed: {done.stderr.strip() or done.returncode}")


def host_path(root: Path, path: str) -> Path:
    """`path` of the target host under root, for reading (status, saved answers); SetupError
    where a symlink leads out of root. Writes go through HostTree, which never follows one."""
    target = root / path.lstrip("/")
    if root != Path("/") and not target.resolve().is_relative_to(root.resolve()):
        raise SetupError(f"{target} leads out of {root} (through a symlink); refusing to write there")
    return target


DIRECTORY_MODES = {WIREGUARD_DIR: 0o700}   # others 0755 (installer/atomic.py); keys live there


class Transaction:
    """Remembers what each written path held (bytes and mode), to put it back on failure."""

    def __init__(self, tree: HostTree):
        self.tree = tree
        self.saved: dict[str, tuple[bytes, int] | None] = {}

    def _remember(self, path: str) -> tuple[bytes, int] | None:
        old = self.tree.read(path)
        self.saved.setdefault(path, old)
        return old

    def write(self, f: FileWrite) -> bool:
        """Write if different; True when the file changed."""
        data = f.content.encode()
        if self.tree.read(f.path) == (data, f.mode):
            return False
        self._remember(f.path)
        log(f"write {f.path} (mode {f.mode:04o})")
        self.tree.write(f.path, data, f.mode)
        return True

    def remove(self, path: str) -> None:
        if self._remember(path) is not None:
            log(f"remove {path}")
            self.tree.remove(path)

    def keep_copy(self, path: str, why: str = "") -> str:
        """Copy a file that is about to be replaced or removed to PATH.before-cgnat, 0600 (it
        may hold a key); the copy's path."""
        copy = path + BACKUP_SUFFIX
        source = self.tree.read(path)
        self._remember(copy)
        log(f"keep {path} as {copy}{why}")
        if source is not None:
            self.tree.write(copy, source[0], 0o600)
        return copy

    def retire(self, path: str, written: str | None) -> list[str]:
        """Remove a file an earlier setup wrote (`written`: the digest it recorded), unless it
        changed since: then keep it as PATH.before-cgnat. The paths that changed."""
        old = self.tree.read(path)
        if old is None:
            return []
        changed = [path]
        if written is None or digest(old[0]) != written:
            changed.append(self.keep_copy(path, " (changed since cgnat-setup wrote it)"))
        self.remove(path)
        return changed

    def rollback(self) -> None:
        # Keep going past a file that cannot be restored: every other one still must be.
        for path, old in reversed(list(self.saved.items())):
            log(f"restore {path}")
            try:
                if old is None:
                    self.tree.remove(path)
                else:
                    self.tree.write(path, *old)
            except (OSError, SetupError) as error:
                log(f"could not restore {path}: {error}")


class UnitStates:
    """Whether each unit was enabled and active before the run, to return it there (a run that
    starts nothing, --no-start, puts back only whether each is enabled). The watchdog goes
    back last, once the tunnels are as they were: started earlier, it would find a tunnel
    down and restart it while setup does (two restarts of one unit: systemd re-runs the
    first and kills the start in progress; issue 19)."""

    def __init__(self, units: list[str], start: bool):
        self.start = start
        self.systemctl = ["systemctl"] if start else OFFLINE_SYSTEMCTL
        self.before = {unit: (_systemctl_ok("is-enabled", unit, self.systemctl),
                              start and _systemctl_ok("is-active", unit)) for unit in units}

    def restore(self) -> None:
        for unit, (enabled, active) in sorted(reversed(list(self.before.items())),
                                              key=lambda item: item[0] == WATCHDOG_UNIT):
            _run_quietly([*self.systemctl, "enable" if enabled else "disable", unit])
            if self.start:
                _run_quietly(["systemctl", "restart" if active else "stop", unit])


def apply(plan: Plan, root: Path) -> list[str]:
    """Carry out the plan under root; the paths that changed. Raises SetupError after rollback."""
    tree = HostTree(root, DIRECTORY_MODES)
    kept = plan.removals + plan.backups
    for path in [f.path for f in plan.files] + kept + [p + BACKUP_SUFFIX for p in kept]:
        tree.check(path)                 # every path checked before the first change
    manifest = tree.read(MANIFEST_PATH)
    recorded = recorded_digests(manifest[0] if manifest else b"")
    tx = Transaction(tree)
    units = UnitStates(plan.units, plan.start) if plan.commands else None
    starts = plan.start and bool(plan.commands)       # not --no-start, not --root
    # --no-start where systemd is not even installed (a bare chroot): the files alone
    enables = bool(plan.commands) and (plan.start or shutil.which("systemctl") is not None)
    # (--no-start: what the role does before forwarding, such as sshd's reload, waits for the boot)
    before_forwarding = plan.before_forwarding if starts else None
    if starts and plan.listen_port is not None:     # before any change: nothing to put back
        listen_port.refuse_taken(plan.answers.interface, plan.listen_port)
    changed: list[str] = []
    try:
        for argv in plan.retire if enables else []:
            run(argv)
        for path in plan.backups:
            tx.keep_copy(path)
        removed = [p for path in plan.removals for p in tx.retire(path, recorded.get(path))]
        # The hooks must never read the rules of one run with the env of another: the files are
        # written under the interface's lock (interface_lock.py), also with --no-start (a
        # running tunnel's watchdog may run up meanwhile); not under --root, where no hook runs.
        with interface_lock.held(plan.answers.interface, wait=True) if plan.commands else nullcontext():
            changed = [f.path for f in plan.files if tx.write(f)] + removed
        if before_forwarding is not None:
            before_forwarding.take(changed, run)     # the bridge: sshd on its port, or stop here
        if starts and not changed and _active(plan.service):
            log(f"nothing changed; {plan.service} keeps running")
        elif plan.commands and not enables:
            log(f"no systemctl here: {', '.join(plan.not_started)} not enabled")
        else:
            for argv in plan.commands:
                run(argv)
            if starts and plan.listen_port is not None:
                log(f"confirm {plan.answers.interface} holds UDP port {plan.listen_port}")
                listen_port.confirm(plan.answers.interface, plan.listen_port)
        return changed
    except BaseException:
        tx.rollback()
        if before_forwarding is not None:
            before_forwarding.give_back(changed, _run_quietly)
        if units is not None:
            units.restore()
        raise


def _active(unit: str) -> bool:
    return _systemctl_ok("is-active", unit)


def _systemctl_ok(verb: str, unit: str, systemctl: list[str] = ["systemctl"]) -> bool:  # noqa: B006
    """`systemctl VERB --quiet UNIT` succeeded; False without systemd (a chroot)."""
    try:
        return subprocess.run([*systemctl, verb, "--quiet", unit], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


def _run_quietly(argv: list[str]) -> None:
    """Best effort, for putting things back: a failure here must not hide the first one."""
    log(" ".join(argv))
    try:
        subprocess.run(argv, capture_output=True, timeout=COMMAND_TIMEOUT)
    except FileNotFoundError:
        pass
    except subprocess.TimeoutExpired:
        log(f"`{' '.join(argv)}` did not finish within {COMMAND_TIMEOUT} s")
