"""Driving the wizard in tests: a host described by hand (not this machine), the app on it,
and waiting for screens."""
from __future__ import annotations

import asyncio
from pathlib import Path

from cgnat_bridge.sshd import SshdFacts
from installer import setup, tunnels
from installer.detect import WIREGUARD_DIR, HostFacts, Socket
from installer.manifest import MANIFEST_PATH, digest, recorded_digests
from installer.tui.app import SetupApp
from installer.tui.state import WizardState

# A fixed private key, so snapshots and byte comparisons do not depend on `wg genkey`.
FIXED_KEY = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="


def make_facts() -> HostFacts:
    return HostFacts(
        interfaces={"lo": ["127.0.0.1/8"], "ens3": ["198.51.100.1/24", "fe80::1/64"],
                    "ens4": ["10.10.0.5/24"]},
        default_interface="ens3",
        routes=[("198.51.100.0/24", "ens3"), ("10.10.0.0/24", "ens4")],
        role_facts={"bridge": SshdFacts(ports=[22])},
        sockets=[Socket("tcp", "0.0.0.0", 22, "sshd"), Socket("tcp", "[::]", 22, "sshd"),
                 Socket("tcp", "0.0.0.0", 80, "nginx"), Socket("tcp", "0.0.0.0", 443, "nginx"),
                 Socket("tcp", "127.0.0.1", 5432, "postgres"),
                 Socket("udp", "0.0.0.0", 51820, ""), Socket("udp", "*", 53, "dnsmasq")],
        docker_subnets=["172.19.0.0/16"],
    )


def with_key(root: Path, interface: str = "wg0") -> Path:
    """An earlier run's config under root: setup keeps its key (same identity)."""
    conf = root / "etc/wireguard" / f"{interface}.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(f"[Interface]\nPrivateKey = {FIXED_KEY}\n")
    conf.chmod(0o600)
    manifest = root / "var/lib/cgnat/manifest"     # setup wrote it: not an admin's own VPN
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(f"/etc/wireguard/{interface}.conf {digest(conf.read_bytes())}\n")
    return root


def facts_of(root: Path) -> HostFacts:
    """make_facts() with what earlier setups left under root, as HostFacts.detect reads it: the
    manifest, the WireGuard configs, each tunnel's saved answers."""
    facts = make_facts()
    manifest = root / MANIFEST_PATH.lstrip("/")
    facts.written_by_setup = recorded_digests(manifest.read_bytes() if manifest.exists() else b"")
    facts.wireguard_configs = frozenset(f"{WIREGUARD_DIR}/{p.name}"
                                        for p in (root / WIREGUARD_DIR.lstrip("/")).glob("*.conf"))
    facts.tunnels = tunnels.saved(root)
    return facts


def pair_homelab(root: Path, token: str) -> HostFacts:
    """`cgnat-setup --root ROOT --role homelab --pair TOKEN` on the hand-made host (the same
    setup functions); the facts after it."""
    facts = facts_of(root)
    raw = setup.read_source(None, root, token, "homelab", facts)
    plan, _ = setup.plan(setup.load(raw, token, "homelab", facts), facts, root, start=False)
    setup.apply(plan, root)
    return facts_of(root)


def make_app(facts, root: Path, role=None, data=None, hybrid=False, role_fixed=None) -> SetupApp:
    if role_fixed is None:
        role_fixed = role is not None
    state = WizardState.from_data(facts, root, False, role, role_fixed, data)
    return SetupApp(state, hybrid=hybrid)


def run(coro):
    return asyncio.run(coro)


async def until(pilot, condition, what: str, rounds: int = 200):
    """Let the app process messages until `condition()` holds (workers included)."""
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if condition():
            return
    raise AssertionError(f"never happened: {what}; screen is {type(pilot.app.screen).__name__}")


async def to_screen(pilot, screen_class):
    """Press Ctrl+N (Next) until the wizard shows `screen_class`."""
    for _ in range(12):
        if isinstance(pilot.app.screen, screen_class):
            return pilot.app.screen
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert pilot.app.internal_error is None, pilot.app.internal_error
    raise AssertionError(f"did not reach {screen_class.__name__}; at {type(pilot.app.screen).__name__}")


def on_screen(app, screen_class, check) -> None:
    """Run the wizard to `screen_class` and `await check(pilot, screen)` there."""
    async def flow():
        async with app.run_test(size=(80, 24)) as pilot:
            await check(pilot, await to_screen(pilot, screen_class))
    run(flow())


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector).render())
