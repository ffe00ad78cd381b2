"""A homelab paired already, in the wizard: change one of its tunnels, or add another bridge
(issue 21), under a --root tree; what it writes equals what `--pair` writes."""
from __future__ import annotations

import base64

import pytest

from filetree import tree
from wizardhelp import FIXED_KEY, facts_of, make_app, make_facts, pair_homelab, run, to_screen, until, with_key
from cgnat_homelab import wizard as homelab_wizard
from installer import keys, roles
from installer.cli import parser
from installer.detect import HostFacts
from installer.pairing import PairingToken
from installer.tui import screens, starting_state
from installer.tui.app import SetupApp

KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.b64encode(b"B" * 32).decode()
KEY_C = base64.b64encode(b"C" * 32).decode()
WG0_FILES = ["etc/cgnat/answers.toml", "etc/cgnat/wg0.env", "etc/cgnat/wg0.rules", "etc/cgnat/wg0.rules6",
             "etc/wireguard/wg0.conf"]
WG1_FILES = ["etc/cgnat/tunnels/wg1.toml", "etc/cgnat/wg1.env", "etc/cgnat/wg1.rules", "etc/cgnat/wg1.rules6",
             "etc/wireguard/wg1.conf"]
MANIFEST = "var/lib/cgnat/manifest"


def token(key: str, endpoint: str, tunnel: str = "10.0.0.0/24", tunnel6: str = "fd63:676e:6174::/64") -> str:
    return PairingToken("bridge", key, endpoint, tunnel, "2222", "all", tunnel6, "").encode()


A = token(KEY_A, "203.0.113.7:51820")
B = token(KEY_B, "198.51.100.9:51820", "10.0.1.0/24", "fd63:676e:6174:1::/64")


def choices(screen) -> list[str]:
    return [str(button.label) for button in screen.query("RadioButton")]


async def choose(pilot, index: int):
    """Pick the choice at `index` on the tunnel screen and go on to the pairing screen."""
    screen = pilot.app.screen
    assert isinstance(screen, homelab_wizard.TunnelScreen)
    await pilot.press(*["down"] * index, "enter", "ctrl+n")
    await until(pilot, lambda: isinstance(pilot.app.screen, homelab_wizard.PairScreen), "pairing screen")
    return pilot.app.screen


async def paste(pilot, pair, text: str) -> None:
    pair.query_one("#in-pair").value = text
    pair.query_one("#in-pair").focus()
    await pilot.press("enter")


def wizard_paired_with_a(tmp_path):
    """The wizard on a homelab paired with bridge A: its root, its files then, the app."""
    root = with_key(tmp_path / "wizard")
    facts = pair_homelab(root, A)
    return root, tree(root), make_app(facts, root, role="homelab")


def test_adding_a_second_bridge_writes_its_tunnel_as_pair_does_and_leaves_the_first_as_it_was(tmp_path):
    root, before, app = wizard_paired_with_a(tmp_path)

    async def flow():
        async with app.run_test(size=(80, 24)) as pilot:
            assert choices(app.screen) == ["Change wg0 (bridge 203.0.113.7:51820)", "Add another bridge"]
            assert app.sub_title == "homelab: step 1 of 6"
            pair = await choose(pilot, 1)
            assert pair.query_one("#in-interface").value == "wg1"
            await paste(pilot, pair, B)
            assert pair.query_one("#in-homelab-endpoint").value == "198.51.100.9:51820"
            assert pair.query_one("#in-tunnel").value == "10.0.1.0/24"
            review = await to_screen(pilot, screens.ReviewScreen)
            shown = str(review.query_one("#plan").render())
            assert [f.path for f in app.state.plan.files] == [
                "/etc/wireguard/wg1.conf", "/etc/cgnat/wg1.rules", "/etc/cgnat/wg1.rules6", "/etc/cgnat/wg1.env",
                "/etc/cgnat/tunnels/wg1.toml", "/" + MANIFEST]
            assert "=== /etc/cgnat/answers.toml" not in shown and "wg0.conf (mode" not in shown
            await pilot.press("ctrl+n")
            await until(pilot, lambda: isinstance(app.screen, screens.DoneScreen), "done")
            done = app.screen
            told = PairingToken.decode(str(done.query_one("#token").render()))
            assert (told.role, told.tunnel, told.tunnel6) == ("homelab", "10.0.1.0/24", "fd63:676e:6174:1::/64")
            assert told.public_key == keys.public_key(app.state.private_key) != keys.public_key(FIXED_KEY)
            assert f"Answers saved to {root / 'etc/cgnat/tunnels/wg1.toml'}" in str(done.query_one("#saved").render())
            await pilot.press("enter")

    run(flow())
    assert app.internal_error is None
    after = tree(root)
    assert {p: after[p] for p in WG0_FILES} == {p: before[p] for p in WG0_FILES}
    assert sorted(set(after) - set(before)) == WG1_FILES
    # The same as `cgnat-setup --pair B` on a host paired with A: every file but wg1's key.
    other = with_key(tmp_path / "pair")
    pair_homelab(other, A)
    pair_homelab(other, B)
    by_pair = tree(other)
    assert sorted(by_pair) == sorted(after)
    assert {p: v for p, v in after.items() if p not in ("etc/wireguard/wg1.conf", MANIFEST)} == \
        {p: v for p, v in by_pair.items() if p not in ("etc/wireguard/wg1.conf", MANIFEST)}


def test_changing_the_second_tunnel_rewrites_its_files_only(tmp_path):
    root = with_key(tmp_path / "wizard")
    pair_homelab(root, A)
    facts = pair_homelab(root, B)
    before = tree(root)
    key_line = [line for line in before["etc/wireguard/wg1.conf"][0].decode().splitlines() if "PrivateKey" in line]
    app = make_app(facts, root, role="homelab")

    async def flow():
        async with app.run_test(size=(80, 24)) as pilot:
            assert choices(app.screen) == ["Change wg0 (bridge 203.0.113.7:51820)",
                                           "Change wg1 (bridge 198.51.100.9:51820)", "Add another bridge"]
            # First a third bridge as far as the review (its new key made), then back: wg1 instead.
            pair = await choose(pilot, 2)
            await paste(pilot, pair, token(KEY_C, "192.0.2.5:51820", "10.0.2.0/24", "fd63:676e:6174:2::/64"))
            await to_screen(pilot, screens.ReviewScreen)
            assert app.state.plan.answers.interface == "wg2"
            await pilot.press(*["escape"] * 5)
            tunnel = app.screen
            assert isinstance(tunnel, homelab_wizard.TunnelScreen)
            tunnel.query("RadioButton")[1].value = True
            await pilot.press("ctrl+n")
            await until(pilot, lambda: isinstance(app.screen, homelab_wizard.PairScreen), "pairing screen")
            pair = app.screen
            assert [pair.query_one(f"#in-{key}").value for key in ("interface", "homelab-endpoint", "tunnel")] == \
                ["wg1", "198.51.100.9:51820", "10.0.1.0/24"]
            pair.query_one("#in-homelab-endpoint").value = "192.0.2.44:51820"
            await to_screen(pilot, homelab_wizard.DockerScreen)
            await pilot.press("escape", "escape")            # back to the choice: kept as it was
            assert isinstance(app.screen, homelab_wizard.TunnelScreen)
            await pilot.press("ctrl+n")
            pair = await to_screen(pilot, homelab_wizard.PairScreen)
            assert pair.query_one("#in-homelab-endpoint").value == "192.0.2.44:51820"
            await to_screen(pilot, screens.ReviewScreen)
            await pilot.press("ctrl+n")
            await until(pilot, lambda: isinstance(app.screen, screens.DoneScreen), "done")
            assert f"Answers saved to {root / 'etc/cgnat/tunnels/wg1.toml'}" in \
                str(app.screen.query_one("#saved").render())
            await pilot.press("enter")

    run(flow())
    assert app.internal_error is None
    after = tree(root)
    assert sorted(after) == sorted(before)
    assert {p: after[p] for p in WG0_FILES} == {p: before[p] for p in WG0_FILES}
    conf = after["etc/wireguard/wg1.conf"][0].decode().splitlines()
    assert "Endpoint = 192.0.2.44:51820" in conf and key_line[0] in conf      # the same identity
    saved = after["etc/cgnat/tunnels/wg1.toml"][0].decode()
    assert saved == before["etc/cgnat/tunnels/wg1.toml"][0].decode().replace("198.51.100.9:51820", "192.0.2.44:51820")


def test_a_bridge_whose_tunnel_overlaps_another_is_refused_on_the_token_screen(tmp_path):
    root, before, app = wizard_paired_with_a(tmp_path)

    async def flow():
        async with app.run_test(size=(80, 24)) as pilot:
            pair = await choose(pilot, 1)
            await paste(pilot, pair, token(KEY_C, "198.51.100.9:51820"))
            refusal = str(pair.query_one("#err-tunnel").render())
            assert "10.0.0.0/24 overlaps the tunnel 10.0.0.0/24 of wg0's bridge (203.0.113.7:51820)" in refusal
            assert 'on this bridge (198.51.100.9:51820) set tunnel = "10.0.1.0/24" and tunnel6 = ' \
                   '"fd63:676e:6174:1::/64"' in refusal
            await pilot.press("ctrl+n")
            assert app.screen is pair and "overlaps" in str(pair.query_one("#err-tunnel").render())
            await pilot.press("ctrl+q")
        return app.return_value

    assert run(flow()) is None and app.internal_error is None
    assert tree(root) == before


@pytest.mark.parametrize("pasted, interface", [
    (token(KEY_C, "192.0.2.5:51820"), "wg2"),                       # a new bridge: a new tunnel
    (token(KEY_B, "198.51.100.9:51820"), "wg1"),                    # a known one: its tunnel
], ids=["new-bridge", "known-bridge"])
def test_pair_on_a_paired_homelab_opens_the_tunnel_the_command_line_would(tmp_path, monkeypatch, pasted, interface):
    """`cgnat-setup --pair TOKEN` whose answers the command line refuses (here: the tunnel overlaps
    wg0's) opens the wizard on the token's tunnel, as --pair chose it; nothing else asked."""
    root = with_key(tmp_path / "wizard")
    pair_homelab(root, A)
    pair_homelab(root, B)
    before = tree(root)
    monkeypatch.setattr(HostFacts, "detect", classmethod(lambda cls, at=None: facts_of(at)))
    state = starting_state(parser().parse_args(["--root", str(root), "--role", "homelab", "--pair", pasted]),
                           hybrid=True)
    assert state.answers.interface == interface
    app = SetupApp(state, hybrid=True)

    async def flow():
        async with app.run_test(size=(80, 24)) as pilot:
            assert app.flow() == [homelab_wizard.PairScreen, screens.ReviewScreen]
            pair = app.screen
            assert isinstance(pair, homelab_wizard.PairScreen)
            assert pair.query_one("#in-interface").value == interface
            assert 'set tunnel = "10.0.' in str(pair.query_one("#err-tunnel").render())
            await pilot.press("ctrl+q")

    run(flow())
    assert app.internal_error is None and tree(root) == before


def test_only_the_roles_own_tunnels_are_offered(tmp_path):
    facts = make_facts()
    facts.tunnels = {"wg0": ("/etc/cgnat/answers.toml", {"role": "homelab", "interface": "wg0", "peer_public_key": KEY_A}),
                     "wg1": ("/etc/cgnat/tunnels/wg1.toml", {"role": "bridge", "interface": "wg1"})}
    assert list(make_app(facts, tmp_path, role="homelab").state.saved_tunnels()) == ["wg0"]


@pytest.mark.parametrize("role, paired", [("homelab", False), ("bridge", True)])
def test_one_tunnel_not_paired_and_a_bridge_see_todays_steps(tmp_path, role, paired):
    facts = make_facts()
    data = {"role": role, "interface": "wg0", **({"peer_public_key": KEY_A} if paired else {})}
    facts.tunnels = {"wg0": ("/etc/cgnat/answers.toml", data)}
    app = make_app(facts, tmp_path, role=role)
    assert app.flow() == [*(s for s in roles.get(role).wizard_steps() if s is not homelab_wizard.TunnelScreen),
                          screens.ReviewScreen]


def test_a_homelab_with_every_tunnel_taken_is_told_to_remove_one(tmp_path):
    facts = make_facts()
    facts.tunnels = {f"wg{n}": (f"/etc/cgnat/tunnels/wg{n}.toml",
                                {"role": "homelab", "interface": f"wg{n}", "peer_public_key": KEY_A})
                     for n in range(8)}
    app = make_app(facts, tmp_path, role="homelab")

    async def flow():
        async with app.run_test(size=(80, 24)) as pilot:
            tunnel = app.screen
            assert choices(tunnel)[-1] == "Add another bridge"
            tunnel.query("RadioButton")[-1].value = True
            await pilot.press("ctrl+n")
            await pilot.pause()
            assert app.screen is tunnel
            assert "remove one first (cgnat-setup remove-tunnel IFACE)" in str(tunnel.query_one("#status").render())

    run(flow())
    assert app.internal_error is None


def test_a_saved_tunnel_whose_answers_are_wrong_shows_what_to_fix_on_its_screen(tmp_path):
    facts = make_facts()
    facts.tunnels = {"wg0": ("/etc/cgnat/answers.toml", {"role": "homelab", "interface": "wg0", "peer_public_key": KEY_A,
                                                         "homelab": {"endpoint": "203.0.113.7:51820",
                                                                     "docker_subnets": "172.19.0.0/16"}})}
    app = make_app(facts, tmp_path, role="homelab")

    async def flow():
        async with app.run_test(size=(80, 24)) as pilot:
            assert choices(app.screen) == ["Change wg0 (bridge 203.0.113.7:51820)", "Add another bridge"]
            await choose(pilot, 0)
            docker = await to_screen(pilot, homelab_wizard.DockerScreen)
            assert "must be" in str(docker.query_one("#err-homelab-docker_subnets").render())
            assert docker.query_one("#in-homelab-docker_subnets").value == "172.19.0.0/16"
            await pilot.press("ctrl+n")
            await until(pilot, lambda: isinstance(app.screen, homelab_wizard.ExposureScreen), "fixed")
            assert app.state.value("homelab.docker_subnets") == ["172.19.0.0/16"]

    run(flow())
    assert app.internal_error is None
