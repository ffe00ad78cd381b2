"""Debian's own QA tool on both packages: piuparts installs, purges and checks that
nothing is left behind, and upgrades from the previous build (served to its apt from a
local repository) to the one in dist/, then purges again."""
from __future__ import annotations

import subprocess
import tempfile
import shutil
from pathlib import Path

import pytest

import rootfs

SUITE = "bookworm"


@pytest.fixture(scope="module")
def previous_repo(previous_debs):
    """A flat apt repository with the previous build, for piuparts' upgrade test."""
    repo = Path(tempfile.mkdtemp(prefix="cgnat-prev-repo-", dir="/var/tmp"))
    try:
        for deb in previous_debs.values():
            shutil.copy(deb, repo)
        packages = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo,
                                  capture_output=True, text=True, check=True).stdout
        (repo / "Packages").write_text(packages)
        repo.chmod(0o755)
        yield repo
    finally:
        shutil.rmtree(repo, ignore_errors=True)


@pytest.mark.parametrize("role", ["bridge", "homelab"])
def test_piuparts_install_purge_and_upgrade(role, debs, previous_repo, version):
    base = rootfs.cached_tarball(SUITE)
    log = Path(tempfile.mkdtemp(prefix="cgnat-piuparts-", dir="/var/tmp")) / "piuparts.log"
    try:
        done = subprocess.run(
            ["piuparts", "--distribution", SUITE, "--mirror", f"{rootfs.MIRROR} main",
             "--basetgz", str(base), "--bindmount", str(previous_repo),
             "--extra-repo", f"deb [trusted=yes] file://{previous_repo} ./",
             "--log-file", str(log), str(debs[role])],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900)
        text = log.read_text(errors="replace") if log.exists() else done.stdout + done.stderr
        assert done.returncode == 0, f"piuparts failed ({done.returncode}):\n{text[-6000:]}"
        assert "PASS: All tests." in text, text[-3000:]
        # The upgrade test ran: the previous build came from apt, then dist/'s .deb.
        assert f"cgnat-{role} ({version}~prev)" in text or f"cgnat-{role}_{version}~prev" in text, \
            "piuparts did not install the previous build first (no upgrade test)"
    finally:
        shutil.rmtree(log.parent, ignore_errors=True)
