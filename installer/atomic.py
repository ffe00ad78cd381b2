"""One way to replace a file: a temp file beside it, its mode set before any byte is written,
renamed over it, so a reader sees the old file or the new one, never a part (setup's files,
the watchdog's state, its metrics).

Setup's files go through `HostTree`: every directory is opened by fd, component by component
from the root, never through a symlink, so no path checked first can be swapped before the
write; the directories it creates get their mode explicitly, whatever the caller's umask;
content is bytes, copied as it is.
"""
from __future__ import annotations

import errno
import os
import secrets
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from installer.errors import SetupError

DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
DIRECTORY_MODE = 0o755      # a directory setup creates, unless the tree names another mode


def write_atomic(target: Path, content: str | bytes, mode: int, durable: bool = True) -> None:
    """`durable`: fsync before the rename (a reboot right after keeps it); the metrics, rewritten
    every minute and worthless after a reboot, skip it."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        _fill(fd, content, mode, durable)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fill(fd: int, content: str | bytes, mode: int, durable: bool) -> None:
    """Set the mode (before any byte: a key is never readable by others), write, close."""
    data = content.encode() if isinstance(content, str) else content
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


class HostTree:
    """The files of a host under `root` ("/" or --root DIR), reached by fd from it.

    A directory on the way that is a symlink, writable by group or others, or owned by someone
    but root or the caller is refused (SetupError): root processes read what is below (the hooks
    source /etc/cgnat/IFACE.env, purge deletes the manifest's paths). `modes`: the mode of a
    directory it creates, by absolute path (others DIRECTORY_MODE)."""

    def __init__(self, root: Path, modes: dict[str, int] | None = None):
        self.root = root
        self.modes = modes or {}

    def check(self, path: str) -> None:
        """SetupError unless `path` could be written: its existing directories pass, and it is
        absent or a regular file. Changes nothing."""
        with self._directory(path, create=False) as (dir_fd, name):
            if dir_fd is not None:
                self._stat_file(dir_fd, name, path)

    def read(self, path: str) -> tuple[bytes, int] | None:
        """The bytes and mode of a regular file, None when absent."""
        with self._directory(path, create=False) as (dir_fd, name):
            if dir_fd is None or self._stat_file(dir_fd, name, path) is None:
                return None
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            with os.fdopen(fd, "rb") as f:
                return f.read(), stat.S_IMODE(os.fstat(f.fileno()).st_mode)

    def write(self, path: str, data: bytes, mode: int) -> None:
        """Replace `path` atomically (temp file, fsync, rename, fsync of the directory)."""
        with self._directory(path, create=True) as (dir_fd, name):
            tmp = f".{name}.{secrets.token_hex(4)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=dir_fd)
            try:
                _fill(fd, data, mode, durable=True)
                os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                os.unlink(tmp, dir_fd=dir_fd)
                raise
            os.fsync(dir_fd)

    def remove(self, path: str) -> None:
        """Unlink `path` if it is there (the name itself, never what a symlink points at)."""
        with self._directory(path, create=False) as (dir_fd, name):
            if dir_fd is not None:
                try:
                    os.unlink(name, dir_fd=dir_fd)
                except FileNotFoundError:
                    pass

    def _stat_file(self, dir_fd: int, name: str, path: str) -> os.stat_result | None:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            raise SetupError(f"{self.shown(path)} is not a regular file (a symlink?); refusing to "
                             f"replace it")
        return st

    @contextmanager
    def _directory(self, path: str, create: bool):
        """(fd of the directory holding `path`, its last component); (None, name) when a
        directory is missing and `create` is False."""
        *parts, name = [p for p in path.split("/") if p]
        if name in (".", "..") or any(p in (".", "..") for p in parts):
            raise SetupError(f"{path}: . and .. are not allowed in a path setup writes")
        if not self.root.is_dir():
            if not create:
                yield None, name
                return
            self.root.mkdir(mode=DIRECTORY_MODE, parents=True)   # --root DIR, new
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            here = ""
            for part in parts:
                here += "/" + part
                child = self._open_child(fd, part, here, create)
                os.close(fd)
                fd = child
                if fd is None:
                    break
            yield fd, name
        finally:
            if fd is not None:
                os.close(fd)

    def _open_child(self, parent: int, part: str, here: str, create: bool) -> int | None:
        made = False
        try:
            fd = os.open(part, DIRECTORY, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
            os.mkdir(part, 0o700, dir_fd=parent)
            fd, made = os.open(part, DIRECTORY, dir_fd=parent), True
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENOTDIR):   # O_NOFOLLOW met a symlink
                raise SetupError(f"{self.shown(here)} is a symlink or not a directory; refusing "
                                 f"to write through it") from None
            raise
        try:
            if made:
                os.fchmod(fd, self.modes.get(here, DIRECTORY_MODE))   # not the umask's
            self._judge(fd, here)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _judge(self, fd: int, here: str) -> None:
        st = os.fstat(fd)
        if st.st_mode & 0o022:
            raise SetupError(f"{self.shown(here)} is writable by group or others (mode "
                             f"{stat.S_IMODE(st.st_mode):04o}) and root reads what is in it; "
                             f"chmod go-w it first")
        if st.st_uid not in (0, os.geteuid()):
            raise SetupError(f"{self.shown(here)} belongs to uid {st.st_uid}, not root, and root "
                             f"reads what is in it; chown root it first")

    def shown(self, path: str) -> str:
        return str(self.root / path.lstrip("/")) if self.root != Path("/") else path
