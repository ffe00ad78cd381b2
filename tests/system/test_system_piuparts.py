"""Debian's own QA tool on both packages: piuparts installs, purges and checks that
nothing is left behind, and upgrades from the previous build (served to its apt from a
local repository) to the one in dist/, then purges again. The two packages' runs go at
once (each waits on apt and dpkg most of the time); each test waits for its own."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

import rootfs

SUITE = "bookworm"
TIMEOUT = 900


@pytest.fixture(scope="module")
def previous_repos(previous_debs):
    """A flat apt repository with the previous build, for piuparts' upgrade test: one
    per role, since piuparts fails a run when any process has a file open in its chroot,
    and a repository bind-mounted into both chroots would show the other run's apt."""
    scratch = Path(tempfile.mkdtemp(prefix="cgnat-prev-repo-", dir="/var/tmp"))
    try:
        repos = {}
        for role in previous_debs:
            repos[role] = repo = scratch / role
            repo.mkdir()
            for deb in previous_debs.values():
                shutil.copy(deb, repo)
            packages = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo,
                                      capture_output=True, text=True, check=True).stdout
            (repo / "Packages").write_text(packages)
        scratch.chmod(0o755)
        yield repos
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def piuparts_runs(debs, previous_repos):
    """piuparts on each package, all started together: {role: (process, its log file,
    its output file)}. Whatever has not finished at the end is stopped (SIGTERM, which
    piuparts cleans up after; SIGKILL a minute later)."""
    base = rootfs.cached_tarball(SUITE)
    scratch = Path(tempfile.mkdtemp(prefix="cgnat-piuparts-", dir="/var/tmp"))
    runs = {}
    try:
        for role, deb in debs.items():
            log, out, repo = scratch / f"{role}.log", scratch / f"{role}.out", previous_repos[role]
            with open(out, "wb") as output:
                runs[role] = (subprocess.Popen(
                    ["piuparts", "--distribution", SUITE, "--mirror", f"{rootfs.MIRROR} main",
                     "--basetgz", str(base), "--bindmount", str(repo),
                     "--extra-repo", f"deb [trusted=yes] file://{repo} ./",
                     "--log-file", str(log), str(deb)],
                    stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                    start_new_session=True), log, out)
        yield runs
    finally:
        for proc, _, _ in runs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.mark.parametrize("role", ["bridge", "homelab"])
def test_piuparts_install_purge_and_upgrade(role, piuparts_runs, version):
    proc, log, out = piuparts_runs[role]
    try:
        code = proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"piuparts on cgnat-{role} ran longer than {TIMEOUT} s")
    text = log.read_text(errors="replace") if log.exists() else out.read_text(errors="replace")
    assert code == 0, f"piuparts failed ({code}):\n{text[-6000:]}"
    assert "PASS: All tests." in text, text[-3000:]
    # The upgrade test ran: the previous build came from apt, then dist/'s .deb.
    assert f"cgnat-{role} ({version}~prev)" in text or f"cgnat-{role}_{version}~prev" in text, \
        "piuparts did not install the previous build first (no upgrade test)"
