"""Every field shows exactly the validator's message; the sshd and exposure screens say
what they must; a partial answers file asks only what is missing or wrong."""
from __future__ import annotations

import copy

import pytest

from wizardhelp import make_app, make_facts, on_screen, run, text_of, to_screen
from cgnat_bridge import wizard as bridge_wizard
from cgnat_homelab import wizard as homelab_wizard
from installer import cli, pairing
from installer.errors import InvalidAnswers
from installer.tui import screens
from installer.validate import load_answers

HOMELAB = {"role": "homelab", "homelab": {"endpoint": "203.0.113.7:51820"}}


def validator_message(data: dict, key: str) -> str:
    """What `--answers` says about `key` for this data."""
    with pytest.raises(InvalidAnswers) as raised:
        load_answers(data, None, make_facts())
    messages = [p.message for p in raised.value.problems if p.key.startswith(key)]
    assert messages, f"the validator accepts {data}"
    return "\n".join(messages)


def put(data: dict, key: str, value) -> dict:
    data = copy.deepcopy(data)
    *tables, name = key.split(".")
    target = data
    for table in tables:
        target = target.setdefault(table, {})
    target[name] = value
    return data


# (role data, screen, answers key, text typed, value the answers file would hold)
CASES = [
    ({"role": "bridge"}, bridge_wizard.PublicInterfaceScreen, "bridge.public_address", "300.1.2.3", "300.1.2.3"),
    ({"role": "bridge"}, bridge_wizard.PublicInterfaceScreen, "bridge.public_address6", "fe80::1", "fe80::1"),
    ({"role": "bridge"}, bridge_wizard.WireGuardScreen, "listen_port", "abc", "abc"),
    ({"role": "bridge"}, bridge_wizard.WireGuardScreen, "listen_port", "70000", 70000),
    ({"role": "bridge"}, bridge_wizard.WireGuardScreen, "interface", "much-too-long-name0", "much-too-long-name0"),
    ({"role": "bridge"}, bridge_wizard.WireGuardScreen, "tunnel", "10.0.0.0/31", "10.0.0.0/31"),
    ({"role": "bridge"}, bridge_wizard.WireGuardScreen, "tunnel", "10.10.0.0/16", "10.10.0.0/16"),
    ({"role": "bridge"}, bridge_wizard.SshScreen, "bridge.ssh_port", "0", 0),
    ({"role": "bridge"}, bridge_wizard.ForwardScreen, "bridge.keep_local", "smtp", ["smtp"]),
    (HOMELAB, homelab_wizard.PairScreen, "homelab.endpoint", "bridge.example.org", "bridge.example.org"),
    (HOMELAB, homelab_wizard.PairScreen, "peer_public_key", "not-a-key", "not-a-key"),
    (HOMELAB, homelab_wizard.PairScreen, "tunnel", "fd00::/64", "fd00::/64"),
    (HOMELAB, homelab_wizard.DockerScreen, "homelab.docker_subnets", "10.0.0.0/8", ["10.0.0.0/8"]),
    (HOMELAB, homelab_wizard.DockerScreen, "homelab.docker_subnets", "bogus", ["bogus"]),
    (HOMELAB, homelab_wizard.WatchdogScreen, "homelab.watchdog.check_host", "bad host!", "bad host!"),
    (HOMELAB, homelab_wizard.WatchdogScreen, "homelab.keepalive", "-1", -1),
    (HOMELAB, homelab_wizard.WatchdogScreen, "homelab.keepalive", "often", "often"),
]


@pytest.mark.parametrize("data,step,key,typed,value", CASES,
                         ids=[f"{c[2]}={c[3]}" for c in CASES])
def test_bad_input_shows_the_validators_message(tmp_path, facts, data, step, key, typed, value):
    expected = validator_message(put(data, key, value), key)
    app = make_app(facts, tmp_path, role=data["role"], data=data)
    slug = key.replace(".", "-")

    async def check(pilot, screen):
        screen.query_one(f"#in-{slug}").value = typed
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen is screen                      # it did not move on
        assert str(screen.query_one(f"#err-{slug}").render()) == expected
        assert screen.query_one(f"#err-{slug}").display
        assert app.focused is screen.query_one(f"#in-{slug}")

    on_screen(app, step, check)


@pytest.mark.parametrize("typed", ["tcp/x", "tcp/2000-3000", ""])
def test_bad_forward_list_shows_the_validators_message(tmp_path, facts, typed):
    value = [t for t in typed.split() if t]
    expected = validator_message({"role": "bridge", "bridge": {"forward": value}}, "bridge.forward")
    app = make_app(facts, tmp_path, role="bridge")

    async def check(pilot, screen):
        await pilot.press("down", "enter")
        screen.query_one("#in-bridge-forward").value = typed
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen is screen
        assert str(screen.query_one("#err-bridge-forward").render()) == expected

    on_screen(app, bridge_wizard.ForwardScreen, check)


def test_a_bad_pairing_token_shows_the_decoders_message(tmp_path, facts):
    app = make_app(facts, tmp_path, role="homelab")
    data = {"role": "homelab"}
    with pytest.raises(InvalidAnswers) as raised:
        pairing.fill_answers(data, "cgnat1-aaaa", "homelab")
    expected = raised.value.problems[0].message

    async def flow():
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.screen
            screen.query_one("#in-pair").value = "cgnat1-aaaa"
            await pilot.press("enter")
            assert str(screen.query_one("#err-pair").render()) == expected
            await pilot.press("ctrl+n")
            assert app.screen is screen

    run(flow())


def test_sshd_conflict_screen_says_what_changes_and_why(tmp_path, facts):
    app = make_app(facts, tmp_path, role="bridge")

    async def check(pilot, screen):
        now = str(screen.query_one("#sshd-now").render())
        change = str(screen.query_one("#sshd-change").render())
        assert "sshd listens now on: 22." in now
        assert "TCP 22 of the public address belongs to the homelab" in now
        assert "/etc/ssh/sshd_config.d/cgnat-bridge.conf:\n    Port 2222\n    Port 22\n" in change
        assert "sshd -t" in change and "reload" in change
        assert "Before anything is forwarded, setup confirms sshd answers on 2222" in change
        assert "Open TCP 2222 in your provider's firewall" in change
        screen.query_one("#in-bridge-ssh_port").value = "22"
        await pilot.pause()
        assert "nothing: sshd already listens on 22." in str(screen.query_one("#sshd-change").render())
        screen.query_one("#in-bridge-ssh_port").value = "2200"
        await pilot.pause()
        assert "Port 2200\n    Port 22" in str(screen.query_one("#sshd-change").render())

    on_screen(app, bridge_wizard.SshScreen, check)


def test_exposure_preview_lists_public_sockets_and_offers_an_allowlist(tmp_path, facts):
    app = make_app(facts, tmp_path, role="homelab", data=HOMELAB)

    async def check(pilot, screen):
        shown = str(screen.query_one("#exposed").render())
        for line in ("tcp/22     on 0.0.0.0          sshd", "tcp/80     on 0.0.0.0          nginx",
                     "tcp/443", "udp/53", "udp/51820"):
            assert line in shown
        assert "5432" not in shown and "postgres" not in shown
        assert shown.count("tcp/22 ") == 1                 # IPv4 and IPv6 listed once
        assert not screen.query_one("#allowlist").display
        await pilot.press("a")
        allow = str(screen.query_one("#allowlist").render())
        assert 'forward = ["udp/53", "udp/51820", "tcp/80", "tcp/443"]' in allow \
            or 'forward = ["tcp/80", "tcp/443", "udp/53", "udp/51820"]' in allow
        assert "tcp/22" not in allow and "homelab cannot limit" in allow
        await pilot.press("a")
        assert not screen.query_one("#allowlist").display

    on_screen(app, homelab_wizard.ExposureScreen, check)


def test_port_in_use_is_pointed_out(tmp_path, facts):
    app = make_app(facts, tmp_path, role="bridge")

    async def check(pilot, screen):
        assert str(screen.query_one("#hint-listen_port").render()).startswith("UDP 51820 is in use")
        screen.query_one("#in-listen_port").value = "51821"
        await pilot.pause()
        assert str(screen.query_one("#hint-listen_port").render()) == "UDP 51821 is free on this host."

    on_screen(app, bridge_wizard.WireGuardScreen, check)


def test_partial_answers_ask_only_what_is_missing_or_wrong(tmp_path, facts):
    data = {"role": "bridge", "listen_port": "51x", "bridge": {"public_interface": "ens9"}}
    app = make_app(facts, tmp_path, role="bridge", data=put(data, "bridge.sshport", 1),
                   hybrid=True)

    async def flow():
        async with app.run_test(size=(80, 24)) as pilot:
            notes = [n.message for n in app._notifications]
            assert len(notes) == 1 and notes[0].startswith("answers: bridge.sshport: unknown key")
            assert app.flow() == [bridge_wizard.PublicInterfaceScreen, bridge_wizard.WireGuardScreen,
                                  screens.ReviewScreen]
            first = app.screen
            assert isinstance(first, bridge_wizard.PublicInterfaceScreen)
            assert str(first.query_one("#err-bridge-public_interface").render()) == \
                validator_message(data, "bridge.public_interface")
            await pilot.press("ctrl+n")                      # ens3 is highlighted: fixed
            wg = await to_screen(pilot, bridge_wizard.WireGuardScreen)
            assert wg.query_one("#in-listen_port").value == "51x"
            assert str(wg.query_one("#err-listen_port").render()) == \
                validator_message(data, "listen_port")
            wg.query_one("#in-listen_port").value = "51820"
            await pilot.press("ctrl+n")
            review = await to_screen(pilot, screens.ReviewScreen)
            assert "ListenPort = 51820" in str(review.query_one("#plan").render())

    run(flow())


def test_hybrid_role_missing_asks_the_role_first(tmp_path, facts):
    app = make_app(facts, tmp_path, role=None, data={"role": "brdge"}, hybrid=True,
                   role_fixed=False)

    async def flow():
        async with app.run_test(size=(80, 24)) as pilot:
            assert isinstance(app.screen, screens.RoleScreen)
            assert "'brdge'" in str(app.screen.query_one("#err-role").render())

    run(flow())


def test_without_a_terminal_invalid_answers_still_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('role = "bridge"\nlisten_port = 0\n')
    assert cli.main(["--answers", str(bad), "--root", str(tmp_path / "root")]) == 2
    assert f"{bad}: listen_port: 0 is not a port (1-65535)" in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


def test_the_unattended_path_never_imports_textual(tmp_path):
    answers = tmp_path / "a.toml"
    answers.write_text('role = "homelab"\n[homelab]\nendpoint = "203.0.113.7:51820"\n')
    code = ("import sys; from installer import cli; "
            f"rc = cli.main(['--answers', {str(answers)!r}, '--plan', '--root', {str(tmp_path / 'root')!r}]); "
            "print(rc, sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))")
    import subprocess
    import sys
    from pathlib import Path
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stderr


def test_the_interface_screen_shows_what_each_family_forwards_and_the_dns_records(tmp_path, facts):
    facts.interfaces["ens3"].append("2001:db8::7/64")
    app = make_app(facts, tmp_path, role="bridge")

    async def check(pilot, screen):
        def shown() -> str:
            return text_of(screen, "#forwarded")
        assert shown() == ("Forwarded to the homelab: 198.51.100.1 (IPv4) and 2001:db8::7 (IPv6).\n"
                           "Publish A 198.51.100.1 and AAAA 2001:db8::7 for your names (both are "
                           "forwarded to the homelab).")
        screen.query_one("#in-bridge-public_address6").value = "2001:db8::99"
        await pilot.pause()
        assert "AAAA 2001:db8::99" in shown()
        screen.query_one("#in-bridge-ipv6").focus()
        await pilot.press("space")                        # untick "Forward IPv6 too"
        assert shown() == ('Forwarded to the homelab: 198.51.100.1 (IPv4) only.\nPublish A 198.51.100.1 for '
                           'your names; no AAAA record (IPv6 is not forwarded: ipv6 = "off").')
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, bridge_wizard.WireGuardScreen)
        assert app.state.value("bridge.ipv6") == "off"

    on_screen(app, bridge_wizard.PublicInterfaceScreen, check)


def test_the_interface_screen_says_why_an_interface_without_ipv6_forwards_none(tmp_path, facts):
    app = make_app(facts, tmp_path, role="bridge")

    async def check(pilot, screen):
        assert text_of(screen, "#forwarded") == (
            "Forwarded to the homelab: 198.51.100.1 (IPv4) only.\nPublish A 198.51.100.1 for your names; "
            "no AAAA record (IPv6 is not forwarded: no global IPv6 address on ens3).")
        screen.query_one("#in-bridge-public_address").value = "300.1.2.3"
        await pilot.pause()
        assert text_of(screen, "#forwarded") == ""        # nothing to say while a field is wrong

    on_screen(app, bridge_wizard.PublicInterfaceScreen, check)
