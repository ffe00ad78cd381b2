"""What a run wrote under a root directory, in a form tests compare whole."""
from __future__ import annotations

from pathlib import Path


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """path -> (bytes, mode) of every file under root."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode & 0o7777)
            for p in sorted(root.rglob("*")) if p.is_file()}
