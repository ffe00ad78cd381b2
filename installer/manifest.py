"""The manifest (/var/lib/cgnat/manifest): "PATH SHA256" a line, the files setup wrote and what
they held, so a later run removes only what is still ours, teardown knows every tunnel, and
purge (the postrm) knows what to delete."""
from __future__ import annotations

import hashlib

MANIFEST_PATH = "/var/lib/cgnat/manifest"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_text(digests: dict[str, str]) -> str:
    """The manifest of these files (path -> the digest of its content)."""
    return "".join(sorted(f"{path} {sha}\n" for path, sha in digests.items()))


def recorded_digests(manifest: bytes) -> dict[str, str]:
    """Path -> the digest of what setup wrote there (a line of another shape is not setup's)."""
    lines = manifest.decode(errors="replace").splitlines()
    return {fields[0]: fields[1] for fields in map(str.split, lines)
            if len(fields) == 2 and fields[0].startswith("/")}
