"""The manifest (/var/lib/cgnat/manifest): "PATH SHA256" a line, the files setup wrote and what
they held, so a later run removes only what is still ours, teardown knows every tunnel, and
purge (the postrm) knows what to delete. Version 0.1.0 wrote the path alone."""
from __future__ import annotations

import hashlib

MANIFEST_PATH = "/var/lib/cgnat/manifest"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_text(files: dict[str, bytes]) -> str:
    """The manifest of these files (path -> content)."""
    return "".join(sorted(f"{path} {digest(data)}\n" for path, data in files.items()))


def recorded_digests(manifest: bytes) -> dict[str, str | None]:
    """Path -> the digest of what setup wrote there (None from an older manifest)."""
    lines = manifest.decode(errors="replace").splitlines()
    return {fields[0]: (fields[1] if len(fields) > 1 else None)
            for fields in map(str.split, lines) if fields and fields[0].startswith("/")}
