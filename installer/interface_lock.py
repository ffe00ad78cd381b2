"""One lock per tunnel interface: flock(2) on /run/cgnat/IFACE.lock.

The wg-quick hooks hold it for their whole run (installer/hooks/lib.sh, hook_lock), cgnat-setup
while it writes the interface's files, the watchdogs while they look and decide. So a watchdog
never judges the rules while a hook is still loading them (and never runs a second up beside
the first), and a hook never reads a rules file and an env file of two different setups.
The watchdogs never wait: a held lock means someone is changing the interface, so that run
takes no step. Nobody holds it while running a command that runs a hook (systemctl restart
wg-quick@IFACE, the up hook): that would wait for itself.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

LOCK_DIR = Path(os.environ.get("CGNAT_RUN", "/run/cgnat"))   # lib.sh's CGNAT_RUN


@contextmanager
def held(interface: str, *, wait: bool):
    """Hold IFACE's lock for the with-block; yields False (and holds nothing) when `wait` is
    False and another process holds it."""
    LOCK_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd = os.open(LOCK_DIR / f"{interface}.lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
                 | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)     # releases the lock
