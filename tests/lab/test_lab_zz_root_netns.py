"""Scenario 9: the runner's own network namespace is exactly as before the lab (run last:
pytest runs test files in name order, and each module's lab is gone when it ends). The
session fixture checks the same again after everything, including this file."""
import netlab


def test_root_netns_unchanged(root_netns_unchanged):
    assert netlab.root_netns_state() == root_netns_unchanged


def test_no_lab_process_left():
    root = netlab.ROOT_NETNS
    import os
    from pathlib import Path
    stray = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.stat(entry / "ns/net").st_ino != root and \
                        (entry / "comm").read_text().strip() in ("wireguard-go", "sshd", "socat", "sleep"):
                    stray.append((entry.name, (entry / "comm").read_text().strip()))
            except (FileNotFoundError, PermissionError, ProcessLookupError):
                pass
    assert not stray
