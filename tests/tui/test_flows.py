"""Both full flows through the real app; what they write equals what --answers writes."""
from __future__ import annotations

import tomllib
from pathlib import Path

from filetree import tree
from wizardhelp import FIXED_KEY, make_app, run, to_screen, until, with_key
from cgnat_bridge import wizard as bridge_wizard
from cgnat_homelab import wizard as homelab_wizard
from installer import cli, keys
from installer.atomic import HostTree
from installer.detect import HostFacts
from installer.pairing import PairingToken
from installer.tui import screens
from installer.tui.state import Outcome


def assert_replays(app, outcome, root: Path, facts, monkeypatch) -> str:
    """The wizard finished, and `cgnat-setup --answers SAVED --root OTHER` on the same host (same
    facts, same key) writes the very same files. Returns the saved answers."""
    assert isinstance(outcome, Outcome) and app.internal_error is None
    saved = root / "etc/cgnat/answers.toml"
    other = root.parent / "replay"
    monkeypatch.setattr(HostFacts, "detect", classmethod(lambda cls, root=None: facts))
    with_key(other)
    assert cli.main(["--answers", str(saved), "--root", str(other)]) == 0
    assert tree(root) == tree(other)
    return saved.read_text()


def test_bridge_flow_writes_what_the_answers_file_replays(tmp_path, facts, monkeypatch):
    root = with_key(tmp_path / "wizard")
    app = make_app(facts, root)

    async def flow():
        async with app.run_test(size=(80, 24)) as pilot:
            assert isinstance(app.screen, screens.RoleScreen)
            await pilot.press("ctrl+n")                      # bridge is preselected
            await to_screen(pilot, bridge_wizard.PublicInterfaceScreen)
            assert app.screen.query_one("OptionList").highlighted == 0   # ens3: default route
            await pilot.press("ctrl+n")
            await to_screen(pilot, bridge_wizard.WireGuardScreen)
            app.screen.query_one("#in-listen_port").value = "51900"
            await pilot.press("ctrl+n")
            await to_screen(pilot, bridge_wizard.SshScreen)
            app.screen.query_one("#in-bridge-ssh_port").value = "2200"
            await pilot.press("ctrl+n")
            await to_screen(pilot, bridge_wizard.ForwardScreen)
            await pilot.press("down", "enter")               # "Only these ports"
            app.screen.query_one("#in-bridge-forward").value = "tcp/80, tcp/443 icmp"
            await pilot.press("ctrl+n")
            review = await to_screen(pilot, screens.ReviewScreen)
            plan_text = str(review.query_one("#plan").render())
            assert "PrivateKey = (hidden)" in plan_text and FIXED_KEY not in plan_text
            assert not (root / "etc/cgnat").exists()       # nothing written before Apply
            await pilot.press("ctrl+n")
            await until(pilot, lambda: isinstance(app.screen, screens.DoneScreen), "done")
            done = app.screen
            token = PairingToken.decode(str(done.query_one("#token").render()))
            assert token.endpoint == "198.51.100.1:51900" and token.role == "bridge"
            assert str(done.query_one("#public-key").render()).strip() == keys.public_key(app.state.private_key)
            assert str(root / "etc/cgnat/answers.toml") in str(done.query_one("#saved").render())
            await pilot.press("enter")
        return app.return_value

    text = assert_replays(app, run(flow()), root, facts, monkeypatch)
    saved = tomllib.loads(text)["bridge"]
    assert saved["forward"] == ["tcp/80", "tcp/443", "icmp"] and saved["ssh_port"] == 2200
    assert (root / "etc/wireguard/wg0.conf").stat().st_mode & 0o777 == 0o600


def test_homelab_flow_with_a_token_writes_what_the_answers_file_replays(tmp_path, facts,
                                                                         monkeypatch):
    bridge_key = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
    token = PairingToken("bridge", bridge_key, "203.0.113.7:51999", "10.9.0.0/24", "2222", "all",
                         "fd12:3456:789a::/64", "2001:db8::7").encode()
    root = with_key(tmp_path / "wizard")
    app = make_app(facts, root, role="homelab")

    async def flow():
        async with app.run_test(size=(80, 24)) as pilot:
            pair = app.screen
            assert isinstance(pair, homelab_wizard.PairScreen)
            # A token folded over two lines by the terminal still pastes.
            pair.query_one("#in-pair").value = token[:60] + " " + token[60:]
            pair.query_one("#in-pair").focus()
            await pilot.press("enter")
            assert pair.query_one("#in-homelab-endpoint").value == "203.0.113.7:51999"
            assert pair.query_one("#in-peer_public_key").value == bridge_key
            assert pair.query_one("#in-tunnel").value == "10.9.0.0/24"
            assert "The bridge forwards IPv6 too: 2001:db8::7" in str(pair.query_one("#hint-pair").render())
            await pilot.press("ctrl+n")
            docker = await to_screen(pilot, homelab_wizard.DockerScreen)
            assert docker.query_one("#in-homelab-docker_subnets").value == "172.19.0.0/16"
            docker.query_one("#in-homelab-docker_subnets").value = "172.19.0.0/16 172.20.0.0/16"
            await pilot.press("ctrl+n")
            await to_screen(pilot, homelab_wizard.ExposureScreen)
            await pilot.press("ctrl+n")
            watchdog = await to_screen(pilot, homelab_wizard.WatchdogScreen)
            watchdog.query_one("#in-homelab-watchdog-check_host").value = "home.example.org"
            watchdog.query_one("#in-homelab-watchdog-action").focus()
            await pilot.press("down", "enter")               # restart-tunnel
            await pilot.press("ctrl+n")
            await to_screen(pilot, screens.ReviewScreen)
            await pilot.press("ctrl+n")
            await until(pilot, lambda: isinstance(app.screen, screens.DoneScreen), "done")
            await pilot.press("enter")
        return app.return_value

    text = assert_replays(app, run(flow()), root, facts, monkeypatch)
    for expected in ('endpoint = "203.0.113.7:51999"', f'peer_public_key = "{bridge_key}"',
                     'tunnel = "10.9.0.0/24"', 'tunnel6 = "fd12:3456:789a::/64"', 'action = "restart-tunnel"',
                     'check_host = "home.example.org"'):
        assert expected in text
    assert tomllib.loads(text)["homelab"]["docker_subnets"] == ["172.19.0.0/16", "172.20.0.0/16"]


def test_apply_failure_rolls_back_and_says_so(tmp_path, facts, monkeypatch):
    root = with_key(tmp_path / "wizard")
    write = HostTree.write

    def failing_write(tree, path, data, mode):               # the last write fails
        if path == "/var/lib/cgnat/manifest":
            raise IsADirectoryError(21, "Is a directory", path)
        return write(tree, path, data, mode)

    monkeypatch.setattr(HostTree, "write", failing_write)
    app = make_app(facts, root, role="bridge")

    async def flow():
        async with app.run_test(size=(80, 24)) as pilot:
            await to_screen(pilot, screens.ReviewScreen)
            await pilot.press("ctrl+n")
            await until(pilot, lambda: "Setup failed" in str(
                app.screen.query_one("#result").render()), "failure shown")
            result = str(app.screen.query_one("#result").render())
            log = "\n".join(app.screen.query_one("Log").lines)
            assert "write /etc/cgnat/wg0.rules" in log and "restore" in log
            assert "Is a directory" in result
            assert "put back as it was" in result
            await pilot.press("escape")
            assert isinstance(app.screen, screens.ReviewScreen)

    run(flow())
    assert not (root / "etc/cgnat").exists() or not any((root / "etc/cgnat").iterdir())
    assert (root / "etc/wireguard/wg0.conf").read_text() == f"[Interface]\nPrivateKey = {FIXED_KEY}\n"
    assert app.internal_error is None


def test_escape_goes_back_and_keeps_what_was_typed(tmp_path, facts):
    app = make_app(facts, tmp_path, role="bridge")

    async def flow():
        async with app.run_test(size=(80, 24)) as pilot:
            await to_screen(pilot, bridge_wizard.WireGuardScreen)
            app.screen.query_one("#in-listen_port").value = "5x"
            app.screen.query_one("#in-tunnel").value = "10.7.0.0/24"
            await pilot.press("escape")
            assert isinstance(app.screen, bridge_wizard.PublicInterfaceScreen)
            await pilot.press("ctrl+n")
            screen = await to_screen(pilot, bridge_wizard.WireGuardScreen)
            assert screen.query_one("#in-listen_port").value == "5x"
            assert screen.query_one("#in-tunnel").value == "10.7.0.0/24"
            await pilot.press("escape", "escape")
            assert isinstance(app.screen, bridge_wizard.PublicInterfaceScreen)   # first step stays

    run(flow())


def test_help_opens_and_closes_on_every_step(tmp_path, facts):
    app = make_app(facts, tmp_path, data={"homelab": {"endpoint": "203.0.113.7:51820"}},
                   role="homelab")

    async def flow():
        async with app.run_test(size=(80, 24)) as pilot:
            for step in (homelab_wizard.PairScreen, homelab_wizard.DockerScreen, homelab_wizard.ExposureScreen,
                         homelab_wizard.WatchdogScreen, screens.ReviewScreen):
                screen = await to_screen(pilot, step)
                app.set_focus(None)
                await pilot.press("question_mark")
                assert isinstance(app.screen, screens.HelpScreen)
                assert step.HELP.split(".")[0] in str(app.screen.query("Static")[1].render())
                await pilot.press("escape")
                assert app.screen is screen
                inputs = screen.query("Input")
                if inputs:   # in a text field "?" is a character; F1 still helps
                    inputs.first().focus()
                    await pilot.press("f1")
                    assert isinstance(app.screen, screens.HelpScreen)
                    await pilot.press("escape")
                    assert app.screen is screen

    run(flow())


def test_an_error_in_a_handler_is_one_line_not_a_crash(tmp_path, facts, monkeypatch):
    app = make_app(facts, tmp_path, role="bridge")

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    async def flow():
        async with app.run_test(size=(80, 24)) as pilot:
            monkeypatch.setattr(app.state, "submit", broken)
            await pilot.press("ctrl+n")
            await pilot.pause()
            messages = [n.message for n in app._notifications]
            assert messages == ["internal error: RuntimeError: disk on fire"]
            assert isinstance(app.screen, bridge_wizard.PublicInterfaceScreen)   # still running
            assert app.is_running

    run(flow())
    assert app.internal_error is None
