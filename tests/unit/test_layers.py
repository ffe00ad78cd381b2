"""The pure modules (answers, validate, plan, render, setup, status, ...) import no runtime:
the watchdog service's loop (installer/watchdog_runtime.py) is the watchdogs' alone."""
import subprocess
import sys

import pytest

from unitdata import REPO

RUNTIME = "installer.watchdog_runtime"
PURE = ["installer.answers", "installer.validate", "installer.plan", "installer.render",
        "installer.setup", "installer.status", "installer.rules_file", "installer.detect",
        "installer.pairing", "installer.roles", "installer.metrics", "installer.probes",
        "installer.watchdog_state", "installer.cli", "installer.schema",
        "cgnat_homelab.role", "cgnat_homelab.checks", "cgnat_homelab.status",
        "cgnat_homelab.decision", "cgnat_homelab.endtoend", "cgnat_bridge.checks", "cgnat_bridge.decision",
        "cgnat_bridge.status",
        "cgnat_bridge.answers", "cgnat_bridge.sshd", "installer.apply"]


def modules_after_import(module: str) -> set[str]:
    """sys.modules of a fresh interpreter that imported `module` from the checkout."""
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_imports_no_watchdog_runtime(module):
    loaded = modules_after_import(module)
    assert module in loaded and RUNTIME not in loaded


def test_the_watchdogs_do_import_the_runtime():
    """The check above looks for the right name: a watchdog loads it."""
    assert RUNTIME in modules_after_import("cgnat_homelab.watchdog")
