"""One way to replace a file: a temp file beside it, its mode set before any byte is written,
renamed over it, so a reader sees the old file or the new one, never a part (setup's files,
the watchdog's state, its metrics)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(target: Path, content: str, mode: int, durable: bool = True) -> None:
    """`durable`: fsync before the rename (a reboot right after keeps it); the metrics, rewritten
    every minute and worthless after a reboot, skip it."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        os.fchmod(fd, mode)  # before any byte is written: a key is never readable by others
        with os.fdopen(fd, "w") as out:
            out.write(content)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
