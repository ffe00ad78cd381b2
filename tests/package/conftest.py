"""Fixtures of the package tests: the .debs that ./build.sh built into dist/,
and one debootstrapped chroot per Debian suite, reused by all install steps."""
from __future__ import annotations

import os
import shutil

import pytest

from built_packages import debs, version  # noqa: F401  (the fixtures: pytest finds them here)
from debchroot import Chroot

SUITES = ("bookworm", "trixie")


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
