"""--no-start: validate, plan, render and write under the interface's lock, enable the units,
start nothing (no restart of wg-quick, sshd or the watchdog), and say what waits for the boot.
Applied under a temporary root with a systemctl on PATH that only records its calls."""
import os
import subprocess

import pytest

from cgnat_bridge import sshd
from installer import interface_lock, listen_port
from installer.apply import apply
from installer.atomic import HostTree
from installer.detect import HostFacts
from installer.errors import SetupError
from installer.plan import make_plan
from installer.validate import load_answers

from clihelp import cgnat_setup
from filetree import tree
from unitdata import BRIDGE_KEY

BRIDGE = {"role": "bridge", "bridge": {"public_interface": "lo", "public_address": "203.0.113.7"}}
ENABLES = [["env", "SYSTEMD_OFFLINE=1", "systemctl", "enable", "wg-quick@wg0"],
           ["env", "SYSTEMD_OFFLINE=1", "systemctl", "enable", "cgnat-watchdog.service"]]


def bridge_plan(**kw):
    # sshd listens on 22 only: the plan has a drop-in for ssh_port 2222 to write.
    return make_plan(load_answers(BRIDGE, None, None), HostFacts(role_facts={"bridge": sshd.SshdFacts(ports=[22])}), BRIDGE_KEY, **kw)


@pytest.fixture
def systemctl(tmp_path, monkeypatch):
    """A systemctl that records each call (SYSTEMD_OFFLINE, then its arguments), says no unit is enabled yet
    and fails `enable` of the units named in FAIL_ENABLE; nothing may confirm sshd or a port."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(
        f'#!/bin/sh\necho "offline=${{SYSTEMD_OFFLINE:-}} $*" >> {calls}\n[ "$1" != is-enabled ] || exit 1\n'
        'case " $FAIL_ENABLE " in *" $2 "*) [ "$1" = enable ] && exit 1 ;; esac\nexit 0\n')
    (bin_dir / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(interface_lock, "LOCK_DIR", tmp_path / "run")

    def never(*args, **kw):
        raise AssertionError(f"--no-start confirmed something: {args}")
    monkeypatch.setattr(sshd, "confirm_listening", never)
    monkeypatch.setattr(sshd, "reload_sshd", never)
    monkeypatch.setattr(listen_port, "confirm", never)
    return lambda: calls.read_text().splitlines() if calls.exists() else []


def test_the_plan_enables_both_units_and_starts_nothing():
    plan = bridge_plan(start=False, enable=True)
    assert plan.commands == ENABLES and not plan.start
    assert plan.not_started == ["wg-quick@wg0", "cgnat-watchdog.service"]
    shown = plan.describe()
    assert "=== commands\n" + "".join(" ".join(c) + "\n" for c in ENABLES) + "\n" in shown
    assert "restart" not in shown and "reload" not in shown
    assert "read at sshd's next start" in shown
    # --root: no command at all; the default: enable and restart.
    assert bridge_plan(start=False).commands == []
    assert ["systemctl", "restart", "wg-quick@wg0"] in bridge_plan().commands


def test_a_renamed_interface_is_disabled_not_stopped(tmp_path):
    root = tmp_path / "root"
    (root / "var/lib/cgnat").mkdir(parents=True)
    (root / "var/lib/cgnat/manifest").write_text("/etc/wireguard/wg9.conf 00\n")
    plan = make_plan(load_answers(BRIDGE, None, None), HostFacts.detect(root), BRIDGE_KEY,
                     start=False, enable=True)
    assert plan.retire == [["env", "SYSTEMD_OFFLINE=1", "systemctl", "disable", "wg-quick@wg9"]]


def test_apply_writes_under_the_lock_enables_and_runs_nothing_else(tmp_path, systemctl, monkeypatch):
    root = tmp_path / "root"
    held = []
    real_write = HostTree.write

    def write_and_look(self, path, data, mode):
        """Whether another process holds wg0's lock while this file is written."""
        look = subprocess.run(["flock", "--nonblock", str(tmp_path / "run/wg0.lock"), "true"])
        held.append(look.returncode != 0)
        real_write(self, path, data, mode)
    monkeypatch.setattr(HostTree, "write", write_and_look)
    changed = apply(bridge_plan(start=False, enable=True), root)
    assert "/etc/ssh/sshd_config.d/cgnat-bridge.conf" in changed and "/etc/wireguard/wg0.conf" in changed
    assert held and all(held), held                      # every file written under wg0's lock
    # Only whether each unit is enabled is read (for a rollback), then both are enabled.
    # On the file system (SYSTEMD_OFFLINE=1), never through a running systemd's bus.
    assert systemctl() == ["offline=1 is-enabled --quiet wg-quick@wg0", "offline=1 is-enabled --quiet cgnat-watchdog.service",
                           "offline=1 enable wg-quick@wg0", "offline=1 enable cgnat-watchdog.service"]
    assert set(tree(root)) >= {"etc/wireguard/wg0.conf", "etc/cgnat/wg0.env", "var/lib/cgnat/manifest"}


def test_a_failed_enable_rolls_back_files_and_enabled_state_and_starts_or_stops_nothing(tmp_path, systemctl,
                                                                                        monkeypatch):
    monkeypatch.setenv("FAIL_ENABLE", "cgnat-watchdog.service")
    root = tmp_path / "root"
    with pytest.raises(SetupError, match="enable cgnat-watchdog.service"):
        apply(bridge_plan(start=False, enable=True), root)
    assert tree(root) == {}
    calls = systemctl()
    assert calls[-2:] == ["offline=1 disable wg-quick@wg0", "offline=1 disable cgnat-watchdog.service"]   # as they were (the watchdog last)
    assert all(c.startswith("offline=1 ") for c in calls), calls
    assert not [c for c in calls if c.split()[1] in ("start", "restart", "stop", "reload", "is-active")], calls


def test_without_systemctl_the_files_are_written_and_nothing_is_enabled(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(interface_lock, "LOCK_DIR", tmp_path / "run")
    root = tmp_path / "root"
    apply(bridge_plan(start=False, enable=True), root)
    assert "etc/wireguard/wg0.conf" in tree(root)
    assert "no systemctl here: wg-quick@wg0, cgnat-watchdog.service not enabled" in capsys.readouterr().err


def test_the_report_says_what_waits_for_the_boot():
    lines = bridge_plan(start=False, enable=True).left_for_boot()
    assert lines == ["Nothing was started (--no-start): wg-quick@wg0 cgnat-watchdog.service start at the next "
                     "boot, or now with: systemctl start wg-quick@wg0 cgnat-watchdog.service",
                     "sshd listens on port 2222 from its next start (not confirmed now)"]
    assert bridge_plan().left_for_boot() == [] and bridge_plan(start=False).left_for_boot() == []


@pytest.mark.parametrize("args", [["--root", "ROOT"], ["teardown"], ["status"], []])
def test_no_start_goes_with_unattended_setup_alone(tmp_path, args):
    answers = tmp_path / "b.toml"
    answers.write_text('role = "bridge"\n[bridge]\npublic_interface = "lo"\npublic_address = "203.0.113.7"\n')
    extra = [] if args in (["teardown"], ["status"], []) else ["--answers", answers]
    done = cgnat_setup(*[str(tmp_path / "r") if a == "ROOT" else a for a in args], *extra, "--no-start")
    assert done.returncode == 2 and "--no-start" in done.stderr, done.stderr
    assert not (tmp_path / "r").exists()


def test_plan_no_start_prints_the_enables_only(tmp_path):
    answers = tmp_path / "b.toml"
    answers.write_text('role = "bridge"\n[bridge]\npublic_interface = "lo"\npublic_address = "203.0.113.7"\n')
    done = cgnat_setup("--answers", answers, "--plan", "--no-start")
    assert done.returncode == 0, done.stderr
    commands = done.stdout.split("=== commands\n")[1].split("\n\n")[0]
    assert commands.splitlines() == [" ".join(c) for c in ENABLES]
