"""The packages ./build.sh built into dist/, as pytest fixtures shared by the folders
that install them (tests/package, tests/system): each folder's conftest imports them.
The tests never build them (./build.sh test does, first); a missing one fails loudly."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROLES = ("bridge", "homelab")


@pytest.fixture(scope="session")
def version() -> str:
    """The version in debian/changelog, which the built packages carry."""
    done = subprocess.run(["dpkg-parsechangelog", "-l", str(REPO / "debian/changelog"), "-S", "Version"],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="session")
def debs(version) -> dict[str, Path]:
    """dist/cgnat-<role>_<version>_all.deb per role."""
    found = {}
    for role in ROLES:
        path = REPO / "dist" / f"cgnat-{role}_{version}_all.deb"
        if not path.is_file():
            pytest.fail(f"{path} is missing: build the packages with ./build.sh first", pytrace=False)
        found[role] = path
    return found
