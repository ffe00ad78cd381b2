"""Fixtures of the booted-host tests (tests/system/). Run as root; nothing is skipped: a
missing prerequisite (root, a built .deb, a tool) fails the run loudly."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import bootlab
import netlab
from built_packages import debs, version  # noqa: F401  (the fixtures: pytest finds them here)

TOOLS = ("systemd-nspawn", "mmdebstrap", "nsenter", "unshare", "ip", "iptables-save", "dpkg-deb",
         "ssh-keygen", "ssh-keyscan", "ssh", "socat", "curl", "dockerd", "docker", "busybox", "piuparts")


@pytest.fixture(scope="session", autouse=True)
def root_netns_unchanged():
    """The runner's network namespace (addresses, routes, rules, iptables, forwarding) is
    the same after the booted lab, real Docker and piuparts as before."""
    if os.geteuid() != 0:
        pytest.fail("the booted-host tests need root (namespaces, systemd-nspawn)", pytrace=False)
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the booted-host tests need: {', '.join(missing)} (./build.sh test installs them)",
                    pytrace=False)
    before = netlab.root_netns_state()
    yield before
    assert netlab.root_netns_state() == before, "the booted lab changed the root network namespace"


@pytest.fixture(scope="session")
def previous_debs(debs, version):
    """The "previous build": the same packages repacked with a lower version
    (VERSION~prev), so an upgrade to dist/ runs every upgrade path of the maintainer
    scripts (prerm upgrade, postinst configure OLD-VERSION)."""
    scratch = Path(tempfile.mkdtemp(prefix="cgnat-prev-", dir="/var/tmp"))
    try:
        found = {}
        for role, deb in debs.items():
            tree = scratch / role
            subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
            control = tree / "DEBIAN/control"
            text = control.read_text()
            assert f"\nVersion: {version}\n" in text, text
            control.write_text(text.replace(f"\nVersion: {version}\n", f"\nVersion: {version}~prev\n"))
            out = scratch / f"cgnat-{role}_{version}~prev_all.deb"
            subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(tree), str(out)],
                           check=True, capture_output=True)
            found[role] = out
        yield found
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


SETUP_FAILED: dict[str, str] = {}


@pytest.fixture(scope="module", params=bootlab.SUITES)
def lab(request, previous_debs):
    """Both hosts booted on `suite`, the previous build installed with apt from preseeded
    answers, and the chain serving. Torn down (containers powered off, namespaces and
    overlays gone) even on failure; a failed setup fails the suite's other tests at once
    instead of being tried again for each."""
    if request.param in SETUP_FAILED:
        pytest.fail(f"the {request.param} lab could not be set up: {SETUP_FAILED[request.param]}")
    try:
        return booted_lab(request, previous_debs, request.param)
    except BaseException as error:
        SETUP_FAILED[request.param] = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise


def booted_lab(request, debs, suite) -> bootlab.BootLab:
    lab = bootlab.BootLab(debs, suite)
    request.addfinalizer(lab.close)
    lab.build()
    lab.boot()
    lab.prepare_hosts()
    lab.before = {role: host.snapshot() for role, host in lab.hosts.items()}
    lab.install_output = lab.install_preseeded(debs)
    lab.wait_serving(timeout=120)
    return lab


@pytest.fixture(scope="session")
def timings(request):
    """(suite, host, seconds to booted, seconds to serving) of each reboot, printed at the end."""
    found = []
    request.config._cgnat_reboot_timings = found
    return found


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    found = getattr(config, "_cgnat_reboot_timings", None)
    if found:
        terminalreporter.section("reboot to serving (tests/system)")
        for suite, role, booted, serving in found:
            terminalreporter.write_line(f"{suite:9} {role:8} booted {booted:5.1f} s   client served {serving:5.1f} s")
