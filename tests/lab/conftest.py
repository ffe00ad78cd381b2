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
    """Scenario 9, as a guard around the whole session: after every lab of the session is
    closed (this fixture is set up first, so it is torn down last), no process of any lab
    node is left, and the runner's network namespace (addresses, routes, rules, iptables,
    forwarding) is the same as before. A difference is an error of the session's last test."""
    if os.geteuid() != 0:
        pytest.fail("the lab needs root (network and mount namespaces)", pytrace=False)
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the lab needs: {', '.join(missing)}", pytrace=False)
    before = netlab.root_netns_state()
    yield before
    stray = lab_processes_left()
    assert not stray, f"processes of the lab's nodes outlived the session: {stray}"
    assert netlab.root_netns_state() == before, "the lab changed the root network namespace"


def lab_processes_left() -> list[tuple[str, str]]:
    """(pid, command) of every process in a network namespace a lab node created (holders,
    wireguard-go, sshd, servers): none once every lab is closed, so every namespace and veth
    of the lab is gone with them."""
    stray = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.stat(entry / "ns/net").st_ino in netlab.CREATED_NETNS:
                    stray.append((entry.name, (entry / "comm").read_text().strip()))
            except (FileNotFoundError, PermissionError, ProcessLookupError):
                pass
    return stray


@pytest.fixture(scope="session")
def packages():
    """The built .debs, unpacked once for every lab of the session."""
    dest = Path(tempfile.mkdtemp(prefix="cgnat-lab-debs-"))
    try:
        yield netlab.stage_packages(dest)
    finally:
        shutil.rmtree(dest, ignore_errors=True)


@pytest.fixture(scope="session")
def tunnel_lab(request, packages):
    """The plain chain (forward "all", the homelab's rp_filter 1, no sshd) with the homelab
    serving tcp/80, built once for the modules that leave it as they found it: each takes
    back what it adds (test_lab_concurrency, test_lab_mss, test_lab_two_tunnels)."""
    lab = netlab.make_lab(request, packages, homelab_rp_filter=1)
    lab.up(sshd=False)
    lab.serve_peer_tcp("homelab", 80)
    return lab
