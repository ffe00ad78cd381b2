"""What every folder of tests/ shares: the markers of the folders that need root, and a test
that needs root failing loudly (never skipped) when run without it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT_FOLDERS = ("lab", "package", "system")     # every test there needs root


@pytest.hookimpl(tryfirst=True)     # before -m selects: `-m "not root"` sees these markers
def pytest_collection_modifyitems(config, items):
    for item in items:
        path = item.path.resolve()
        folder = path.relative_to(TESTS).parts[0] if path.is_relative_to(TESTS) else None
        if folder in ROOT_FOLDERS:
            item.add_marker(folder)
            item.add_marker("root")


def pytest_runtest_setup(item):
    if item.get_closest_marker("root") is not None and os.geteuid() != 0:
        pytest.fail(f"{item.nodeid} needs root (it is marked root): run it as root, "
                    "or deselect it with -m \"not root\"", pytrace=False)
