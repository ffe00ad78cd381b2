"""What setup must never do to a host: write outside --root, take over an admin's own
WireGuard config, leave a renamed interface behind, or leave units changed after a failure."""
import json
import os
import stat
from pathlib import Path

import pytest

from clihelp import cgnat_setup
from filetree import tree
from installer import cli, listen_port
from installer import apply as apply_module
from installer.apply import apply
from installer.detect import HostFacts
from installer.errors import SetupError
from installer.plan import HOLD_WATCHDOG, FileWrite, Plan, make_plan
from installer.validate import load_answers

from unitdata import BRIDGE_KEY, HOMELAB_KEY

BRIDGE = ('role = "bridge"\n{extra}[bridge]\npublic_interface = "lo"\n'
          'public_address = "203.0.113.7"\n')


def answers(tmp_path, extra=""):
    path = tmp_path / "bridge.toml"
    path.write_text(BRIDGE.format(extra=extra))
    return path


def test_a_symlink_inside_root_never_leads_a_write_outside_it(tmp_path):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    (root / "etc").mkdir(parents=True)
    elsewhere.mkdir()
    (root / "etc/wireguard").symlink_to(elsewhere)
    done = cgnat_setup("--answers", answers(tmp_path), "--root", root)
    assert done.returncode == 1 and "is a symlink" in done.stderr and "refusing" in done.stderr
    assert list(elsewhere.iterdir()) == []
    assert not (root / "etc/cgnat").exists()          # checked before the first write


def admins_vpn(root: Path) -> Path:
    conf = root / "etc/wireguard/wg0.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(f"[Interface]\nPrivateKey = {HOMELAB_KEY}\nAddress = 192.168.99.1/24\n")
    conf.chmod(0o600)
    return conf


def test_an_admins_own_wireguard_config_is_refused_and_left_alone(tmp_path):
    root = tmp_path / "root"
    conf = admins_vpn(root)
    before = tree(root)
    done = cgnat_setup("--answers", answers(tmp_path), "--root", root)
    assert done.returncode == 1
    assert f"{'/etc/wireguard/wg0.conf'} exists and cgnat-setup did not write it" in done.stderr
    assert "--replace-existing" in done.stderr
    assert tree(root) == before and conf.read_text().count(HOMELAB_KEY) == 1


@pytest.mark.root
def test_replace_existing_keeps_a_backup_and_never_takes_over_its_key(tmp_path):
    root = tmp_path / "root"
    original = admins_vpn(root).read_bytes()
    done = cgnat_setup("--answers", answers(tmp_path), "--root", root, "--replace-existing")
    assert done.returncode == 0, done.stderr
    backup = root / "etc/wireguard/wg0.conf.before-cgnat"
    assert backup.read_bytes() == original and stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert HOMELAB_KEY not in (root / "etc/wireguard/wg0.conf").read_text()
    manifest = (root / "var/lib/cgnat/manifest").read_text().split()
    assert "/etc/wireguard/wg0.conf.before-cgnat" not in manifest   # the admin's, kept on purge
    # From now on the config is ours: a re-run needs no flag and keeps our key.
    ours = (root / "etc/wireguard/wg0.conf").read_text()
    assert cgnat_setup("--answers", answers(tmp_path), "--root", root).returncode == 0
    assert (root / "etc/wireguard/wg0.conf").read_text() == ours


@pytest.mark.root
def test_renaming_the_interface_retires_the_old_one_completely(tmp_path):
    root = tmp_path / "root"
    assert cgnat_setup("--answers", answers(tmp_path), "--root", root).returncode == 0
    done = cgnat_setup("--answers", answers(tmp_path, 'interface = "wg7"\n'), "--root", root)
    assert done.returncode == 0, done.stderr
    files = set(tree(root))
    assert {"etc/wireguard/wg7.conf", "etc/cgnat/wg7.rules", "etc/cgnat/wg7.env"} <= files
    assert not files & {"etc/wireguard/wg0.conf", "etc/cgnat/wg0.rules", "etc/cgnat/wg0.env"}
    manifest = (root / "var/lib/cgnat/manifest").read_text()
    assert "wg0" not in manifest and "/etc/wireguard/wg7.conf" in manifest


@pytest.mark.root
def test_a_rename_plan_stops_the_old_tunnel_before_touching_its_files(tmp_path):
    root = tmp_path / "root"
    assert cgnat_setup("--answers", answers(tmp_path), "--root", root).returncode == 0
    facts = HostFacts.detect(root)
    renamed = load_answers({"role": "bridge", "interface": "wg7",
                            "bridge": {"public_interface": "lo", "public_address": "203.0.113.7"}},
                           None, None)
    plan = make_plan(renamed, facts, BRIDGE_KEY, start=True)
    # The watchdog first: it would restart the old tunnel it sees going down (issue 19).
    assert plan.retire == [HOLD_WATCHDOG, ["systemctl", "disable", "--now", "wg-quick@wg0"]]
    assert sorted(plan.removals) == ["/etc/cgnat/wg0.env", "/etc/cgnat/wg0.rules", "/etc/wireguard/wg0.conf"]
    assert plan.units == ["cgnat-watchdog.service", "wg-quick@wg0", "wg-quick@wg7"]


def test_setup_stops_the_watchdog_before_it_restarts_the_tunnel(tmp_path):
    plan = make_plan(load_answers({"role": "bridge", "bridge": {"public_interface": "lo",
                                                                "public_address": "203.0.113.7"}}, None, None),
                     HostFacts.detect(tmp_path), BRIDGE_KEY, start=True)
    assert plan.commands[0] == HOLD_WATCHDOG
    assert plan.commands.index(["systemctl", "restart", "wg-quick@wg0"]) \
        < plan.commands.index(["systemctl", "restart", "cgnat-watchdog.service"])
    assert plan.units == ["cgnat-watchdog.service", "wg-quick@wg0"]    # daemon-reload is no unit


@pytest.fixture
def fake_systemctl(tmp_path, monkeypatch):
    """A systemctl on PATH that keeps unit states in a JSON file, fails `restart` of units
    listed in FAIL_RESTART, takes 30 s for the call in HANG, and writes each call to `calls`."""
    state = tmp_path / "units.json"
    state.write_text(json.dumps({"wg-quick@wg0": [True, True], "cgnat-watchdog.service": [False, False]}))
    calls = tmp_path / "calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "systemctl"
    script.write_text(f"""#!{os.sys.executable}
import json, os, sys
path = {str(state)!r}
units = json.load(open(path))
args = [a for a in sys.argv[1:] if not a.startswith("--")]
open({str(calls)!r}, "a").write(" ".join(args) + "\\n")
if " ".join(args) == os.environ.get("HANG"): import time; time.sleep(30)
now = "--now" in sys.argv
verb, unit = args[0], args[-1]
enabled, active = units.get(unit, [False, False])
if verb == "is-enabled": sys.exit(0 if enabled else 1)
if verb == "is-active": sys.exit(0 if active else 3)
if verb == "restart" and unit in os.environ.get("FAIL_RESTART", "").split(): sys.exit(1)
if verb == "enable": enabled, active = True, active or now
if verb == "disable": enabled, active = False, active and not now
if verb in ("restart", "start"): active = True
if verb == "stop": active = False
units[unit] = [enabled, active]
json.dump(units, open(path, "w"))
""")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return state


def test_a_failed_apply_puts_every_unit_back_as_it_was(tmp_path, fake_systemctl, monkeypatch):
    monkeypatch.setenv("FAIL_RESTART", "wg-quick@wg1")
    plan = Plan(answers=type("A", (), {"interface": "wg1"})(),
                files=[FileWrite("/etc/cgnat/wg1.env", "X=1\n")],
                retire=[["systemctl", "disable", "--now", "wg-quick@wg0"]],
                commands=[["systemctl", "enable", "wg-quick@wg1"], ["systemctl", "restart", "wg-quick@wg1"],
                          ["systemctl", "enable", "--now", "cgnat-watchdog.service"]])
    with pytest.raises(SetupError, match="restart wg-quick@wg1"):
        apply(plan, tmp_path)
    units = json.loads(fake_systemctl.read_text())
    assert units["wg-quick@wg0"] == [True, True]                 # the old tunnel runs again
    assert units["wg-quick@wg1"] == [False, False]               # not left enabled: no degraded boot
    assert units["cgnat-watchdog.service"] == [False, False]
    assert not (tmp_path / "etc/cgnat/wg1.env").exists()


def test_a_failed_apply_puts_the_watchdog_back_after_the_tunnels(tmp_path, fake_systemctl, monkeypatch):
    """Started before a tunnel is back, it would restart that tunnel while setup does (issue 19)."""
    fake_systemctl.write_text(json.dumps({"wg-quick@wg0": [True, True], "cgnat-watchdog.service": [True, True]}))
    monkeypatch.setenv("FAIL_RESTART", "wg-quick@wg0")
    plan = Plan(answers=type("A", (), {"interface": "wg0"})(), files=[FileWrite("/etc/cgnat/wg0.env", "X=2\n")],
                commands=[HOLD_WATCHDOG, ["systemctl", "enable", "wg-quick@wg0"],
                          ["systemctl", "restart", "wg-quick@wg0"], ["systemctl", "daemon-reload"],
                          ["systemctl", "restart", "cgnat-watchdog.service"]])
    with pytest.raises(SetupError, match="restart wg-quick@wg0"):
        apply(plan, tmp_path)
    changes = [line for line in (tmp_path / "calls").read_text().splitlines() if not line.startswith("is-")]
    put_back = changes[changes.index("restart wg-quick@wg0") + 1:]
    assert put_back == ["enable wg-quick@wg0", "restart wg-quick@wg0",
                        "enable cgnat-watchdog.service", "restart cgnat-watchdog.service"]
    assert json.loads(fake_systemctl.read_text())["cgnat-watchdog.service"] == [True, True]


def test_a_command_that_does_not_finish_fails_the_setup_and_rolls_back(tmp_path, fake_systemctl, monkeypatch):
    monkeypatch.setattr(apply_module, "COMMAND_TIMEOUT", 0.5)
    monkeypatch.setenv("HANG", "restart wg-quick@wg1")       # takes 30 s
    plan = Plan(answers=type("A", (), {"interface": "wg1"})(), files=[FileWrite("/etc/cgnat/wg1.env", "X=1\n")],
                commands=[["systemctl", "restart", "wg-quick@wg1"]])
    with pytest.raises(SetupError, match=r"restart wg-quick@wg1` did not finish within 0.5 s"):
        apply(plan, tmp_path)
    assert not (tmp_path / "etc/cgnat/wg1.env").exists()


def test_maintainer_scripts_never_open_the_wizard(monkeypatch):
    args = cli.parser().parse_args(["--answers", "/etc/cgnat/answers.toml"])
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    monkeypatch.delenv("DPKG_MAINTSCRIPT_NAME", raising=False)
    assert cli.can_ask(args)                      # a person at a terminal: ask what is missing
    monkeypatch.setenv("DPKG_MAINTSCRIPT_NAME", "postinst")
    assert not cli.can_ask(args)                  # dpkg's postinst: report and leave unconfigured


def test_a_port_another_program_holds_is_refused_before_anything_changes(tmp_path, fake_systemctl, monkeypatch):
    monkeypatch.setattr(listen_port, "socket_owners", lambda port: ["python3"] if port == 51821 else [])
    plan = Plan(answers=type("A", (), {"interface": "wg0"})(), files=[FileWrite("/etc/cgnat/wg0.env", "X=2\n")],
                commands=[HOLD_WATCHDOG, ["systemctl", "restart", "wg-quick@wg0"]], listen_port=51821)
    with pytest.raises(SetupError, match="UDP port 51821 is held by python3, not by WireGuard"):
        apply(plan, tmp_path)
    looks = (tmp_path / "calls").read_text().split("\n")
    assert all(call.startswith("is-") or not call for call in looks), looks    # no unit changed
    assert not (tmp_path / "etc").exists()                                        # no file written
