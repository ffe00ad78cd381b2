"""Fixtures of the namespace lab (tests/lab/netlab.py). Run as root; nothing is skipped:
a missing prerequisite (root, a built .deb, a tool) fails the run loudly."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

import netlab

TOOLS = ("unshare", "nsenter", "ip", "iptables-restore", "iptables-save", "wg", "wg-quick",
         "wireguard-go", "sshd", "ssh", "ssh-keyscan", "ssh-keygen", "socat", "conntrack", "dpkg-deb")


@pytest.fixture(scope="session", autouse=True)
def root_netns_unchanged():
    """Scenario 9, as a guard around the whole session: the runner's network namespace
    (addresses, routes, rules, iptables, forwarding) is the same after the lab as before."""
    if os.geteuid() != 0:
        pytest.fail("the lab needs root (network and mount namespaces)", pytrace=False)
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the lab needs: {', '.join(missing)}", pytrace=False)
    before = netlab.root_netns_state()
    netlab.ROOT_BASELINE = before
    yield before
    after = netlab.root_netns_state()
    assert after == before, "the lab changed the root network namespace"


@pytest.fixture(scope="session")
def packages():
    """The built .debs, unpacked once for every lab of the session."""
    dest = Path(tempfile.mkdtemp(prefix="cgnat-lab-debs-"))
    try:
        yield netlab.stage_packages(dest)
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def make_lab(request, packages, **options) -> netlab.Lab:
    """A lab torn down by a finalizer registered before anything is built."""
    lab = netlab.Lab(packages, log=lambda *a: None, **options)
    request.addfinalizer(lab.close)
    return lab
