"""Fixtures of the package tests: the .debs that ./build.sh built into dist/,
and one debootstrapped chroot per Debian suite, reused by all install steps."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from debchroot import REPO, Chroot

ROLES = ("bridge", "homelab")
SUITES = ("bookworm", "trixie")


@pytest.fixture(scope="session")
def version() -> str:
    done = subprocess.run(["dpkg-parsechangelog", "-l", str(REPO / "debian/changelog"), "-S", "Version"],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="session")
def debs(version) -> dict[str, Path]:
    """The built packages; the tests never build them (./build.sh test does, first)."""
    found = {}
    for role in ROLES:
        path = REPO / "dist" / f"cgnat-{role}_{version}_all.deb"
        if not path.is_file():
            pytest.fail(f"{path} is missing: build the packages with ./build.sh first")
        found[role] = path
    return found


@pytest.fixture(scope="session", params=SUITES)
def chroot(request, debs):
    """A minbase chroot of the suite, with both .debs in /tmp/debs/; torn down
    (unmounted, deleted) at the end of the session, also after failures."""
    if os.geteuid() != 0:
        pytest.fail("the install tests need root (debootstrap, mount, chroot)")
    for tool in ("debootstrap", "chroot", "unshare", "mount"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: ./build.sh test installs the test dependencies")
    box = Chroot(request.param)
    try:
        box.create()
        box.debs = {role: box.put(deb, f"/tmp/debs/{deb.name}") for role, deb in debs.items()}
        box.state = {}
        yield box
    finally:
        box.close()
