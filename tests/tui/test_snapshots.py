"""What each screen looks like at 80x24 (pytest-textual-snapshot; update with --snapshot-update)."""
from __future__ import annotations

import base64
import fcntl
import os
import shutil
from pathlib import Path

import pytest

from wizardhelp import make_app, make_facts, to_screen, until, with_key
from cgnat_bridge import wizard as bridge_wizard
from cgnat_homelab import wizard as homelab_wizard
from installer.tui import screens

ROOT = Path("/tmp/cgnat-tui-snapshots")   # fixed: the root is shown on some screens
HOMELAB = {"role": "homelab", "homelab": {"endpoint": "203.0.113.7:51820",
                                          "docker_subnets": ["172.19.0.0/16"]}}


@pytest.fixture
def root():
    """ROOT for one test at a time: a run of another checkout or user waits for the lock
    (readable by everyone, so a lock root made serves any user too)."""
    lock = Path(f"{ROOT}.lock")
    try:
        held = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        held = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        shutil.rmtree(ROOT, ignore_errors=True)
        assert not ROOT.exists(), f"{ROOT} is another user's, left by a run that was killed: remove it"
        yield with_key(ROOT)
        shutil.rmtree(ROOT, ignore_errors=True)
    finally:
        os.close(held)


def go(step, *keys):
    async def run_before(pilot):
        await to_screen(pilot, step)
        if keys:
            await pilot.press(*keys)
        await pilot.pause()
    return run_before


BRIDGE_STEPS = [bridge_wizard.PublicInterfaceScreen, bridge_wizard.WireGuardScreen, bridge_wizard.SshScreen,
                bridge_wizard.ForwardScreen, screens.ReviewScreen]
HOMELAB_STEPS = [homelab_wizard.PairScreen, homelab_wizard.DockerScreen, homelab_wizard.ExposureScreen,
                 homelab_wizard.WatchdogScreen, screens.ReviewScreen]


def test_role(snap_compare, root):
    assert snap_compare(make_app(make_facts(), root), terminal_size=(80, 24))


@pytest.mark.parametrize("step", BRIDGE_STEPS, ids=lambda s: s.__name__)
def test_bridge_step(snap_compare, root, step):
    app = make_app(make_facts(), root, role="bridge")
    assert snap_compare(app, terminal_size=(80, 24), run_before=go(step))


def test_public_interface_with_ipv6(snap_compare, root):
    """A dual-stack VPS: the IPv6 address that will be forwarded and the AAAA record."""
    facts = make_facts()
    facts.interfaces["ens3"].append("2001:db8::7/64")
    app = make_app(facts, root, role="bridge")
    assert snap_compare(app, terminal_size=(80, 24), run_before=go(bridge_wizard.PublicInterfaceScreen))


@pytest.mark.parametrize("step", HOMELAB_STEPS, ids=lambda s: s.__name__)
def test_homelab_step(snap_compare, root, step):
    app = make_app(make_facts(), root, role="homelab", data=HOMELAB)
    assert snap_compare(app, terminal_size=(80, 24), run_before=go(step))


def test_tunnel_choice(snap_compare, root):
    """A homelab paired with two bridges: change one of its tunnels, or add another bridge."""
    facts = make_facts()
    facts.tunnels = {name: (path, {"role": "homelab", "interface": name, "peer_public_key": key,
                                   "homelab": {"endpoint": endpoint}})
                     for name, path, key, endpoint in (
                         ("wg0", "/etc/cgnat/answers.toml", base64.b64encode(b"A" * 32).decode(),
                          "203.0.113.7:51820"),
                         ("wg1", "/etc/cgnat/tunnels/wg1.toml", base64.b64encode(b"B" * 32).decode(),
                          "198.51.100.9:51820"))}
    app = make_app(facts, root, role="homelab")
    assert snap_compare(app, terminal_size=(80, 24), run_before=go(homelab_wizard.TunnelScreen))


def test_exposure_with_allowlist(snap_compare, root):
    app = make_app(make_facts(), root, role="homelab", data=HOMELAB)
    assert snap_compare(app, terminal_size=(80, 24), run_before=go(homelab_wizard.ExposureScreen, "a"))


def test_field_error(snap_compare, root):
    app = make_app(make_facts(), root, role="bridge")

    async def run_before(pilot):
        screen = await to_screen(pilot, bridge_wizard.WireGuardScreen)
        screen.query_one("#in-listen_port").value = "70000"
        await pilot.press("ctrl+n")
        await pilot.pause()
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_help(snap_compare, root):
    app = make_app(make_facts(), root, role="bridge")

    async def run_before(pilot):
        await to_screen(pilot, bridge_wizard.SshScreen)
        pilot.app.set_focus(None)
        await pilot.press("question_mark")
        await pilot.pause()
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


@pytest.mark.parametrize("role,data", [("bridge", None), ("homelab", HOMELAB)])
def test_done(snap_compare, root, role, data):
    app = make_app(make_facts(), root, role=role, data=data)

    async def run_before(pilot):
        await to_screen(pilot, screens.ReviewScreen)
        await pilot.press("ctrl+n")
        await until(pilot, lambda: isinstance(pilot.app.screen, screens.DoneScreen), "done")
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
