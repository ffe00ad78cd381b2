"""Scenario 9: the runner's own network namespace is exactly as before the lab (run last:
pytest runs test files in name order, and each module's lab is gone when it ends). The
session fixture checks the same again after everything, including this file."""
import os
from pathlib import Path

import netlab


def test_root_netns_unchanged(root_netns_unchanged):
    assert netlab.root_netns_state() == root_netns_unchanged


def test_no_lab_process_left():
    """Every process of every node of this session (holders, wireguard-go, sshd, servers)
    is gone, so every namespace and veth of the lab is gone with it."""
    assert netlab.CREATED_NETNS, "no lab ran before this test"
    stray = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.stat(entry / "ns/net").st_ino in netlab.CREATED_NETNS:
                    stray.append((entry.name, (entry / "comm").read_text().strip()))
            except (FileNotFoundError, PermissionError, ProcessLookupError):
                pass
    assert not stray
