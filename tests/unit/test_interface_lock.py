"""One lock per interface (installer/interface_lock.py, lib.sh's hook_lock): the hooks and the
watchdogs exclude each other, and a watchdog that finds it held takes no step."""
import subprocess
from pathlib import Path

import pytest

from cgnat_bridge import watchdog as bridge
from cgnat_homelab import watchdog as homelab
from installer import interface_lock

LIB = Path(__file__).resolve().parents[2] / "installer" / "hooks" / "lib.sh"


@pytest.fixture
def hook_holding_lock(lock_dir):
    """A hook's shell that took wg0's lock with lib.sh's hook_lock and waits for its stdin."""
    proc = subprocess.Popen(["sh", "-euc", f'. "{LIB}"; hook_init bridge up wg0; hook_lock; echo locked; read _ || true',
                             "up"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={"CGNAT_RUN": str(lock_dir), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert proc.stdout.readline() == "locked\n"      # the lock is held from here on
    yield proc
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0


def test_a_hook_holding_the_lock_keeps_the_watchdog_out_until_it_ends(hook_holding_lock):
    with interface_lock.held("wg0", wait=False) as free:
        assert free is False
    with interface_lock.held("wg1", wait=False) as free:    # another interface's is its own
        assert free is True
    hook_holding_lock.stdin.close()
    hook_holding_lock.wait(timeout=10)
    with interface_lock.held("wg0", wait=False) as free:
        assert free is True


def test_a_hook_waits_while_the_lock_is_held(lock_dir):
    with interface_lock.held("wg0", wait=True) as free:
        assert free
        proc = subprocess.Popen(["sh", "-euc", f'. "{LIB}"; hook_init bridge up wg0; hook_lock; echo locked', "up"],
                                stdout=subprocess.PIPE, text=True,
                                env={"CGNAT_RUN": str(lock_dir), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=1)           # still waiting for us
    assert proc.wait(timeout=10) == 0 and proc.stdout.read() == "locked\n"


def test_the_bridge_watchdog_takes_no_step_while_a_hook_holds_the_lock(hook_holding_lock, tmp_path, monkeypatch):
    monkeypatch.setattr(bridge, "observe", lambda config: pytest.fail("observed while a hook ran"))
    monkeypatch.setattr(bridge, "run_step_command", lambda *a: pytest.fail("took a step"))
    before = bridge.State(last_run_at=1.0)
    assert bridge.run_tunnel(bridge.Config(), tmp_path / "state.json", before) is before
    assert not (tmp_path / "state.json").exists()


def test_the_homelab_watchdog_takes_no_step_while_a_hook_holds_the_lock(hook_holding_lock, tmp_path, monkeypatch):
    monkeypatch.setattr(homelab.probe, "observe", lambda config, state: pytest.fail("observed while a hook ran"))
    before = homelab.State()
    tunnel = homelab.Tunnel(None, homelab.Config(interface="wg0"), tmp_path / "state.json")
    assert homelab.run_once([tunnel], {"wg0": before})["wg0"] is before
