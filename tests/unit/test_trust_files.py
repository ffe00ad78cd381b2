"""Issue 18, host files: one writer that walks directories by fd and never through a symlink,
explicit directory modes, no writes into directories others may change, bytes kept as bytes,
and teardown/rename/purge that go by what setup recorded."""
import os
import stat
from pathlib import Path

import pytest

from clihelp import cgnat_setup
from filetree import tree
from installer import apply as apply_module
from installer.apply import apply
from installer.errors import SetupError
from installer.plan import FileWrite, Plan

from unitdata import HOMELAB_KEY

BRIDGE = ('role = "bridge"\n{extra}[bridge]\npublic_interface = "lo"\n'
          'public_address = "203.0.113.7"\n')
LATIN1 = b"# caf\xe9 (an old Latin-1 comment)\n"


class Answers:
    interface = "wg0"


def answers(tmp_path, extra=""):
    path = tmp_path / "bridge.toml"
    path.write_text(BRIDGE.format(extra=extra))
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# --- 1. one writer: fd walk, explicit modes --------------------------------------------

@pytest.mark.root
def test_directories_setup_creates_have_their_modes_under_umask_000(tmp_path):
    root = tmp_path / "root"
    old = os.umask(0)
    try:
        done = cgnat_setup("--answers", answers(tmp_path), "--root", root)
    finally:
        os.umask(old)
    assert done.returncode == 0, done.stderr
    assert mode(root / "etc/cgnat") == 0o755 and mode(root / "etc/wireguard") == 0o700
    assert mode(root / "var/lib/cgnat") == 0o755 and mode(root / "etc") == 0o755
    assert mode(root / "etc/cgnat/wg0.env") == 0o644 and mode(root / "etc/wireguard/wg0.conf") == 0o600
    assert not any(mode(p) & 0o022 for p in root.rglob("*"))


def test_a_directory_swapped_for_a_symlink_during_the_run_is_never_written_through(tmp_path, monkeypatch):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    elsewhere.mkdir()
    real_log = apply_module.log

    def swap_before_second_write(message):
        real_log(message)
        if message.startswith("write /etc/cgnat/b"):        # after every path was checked
            (root / "etc/cgnat").rename(root / "etc/cgnat.moved")
            (root / "etc/cgnat").symlink_to(elsewhere)

    monkeypatch.setattr(apply_module, "log", swap_before_second_write)
    plan = Plan(Answers(), files=[FileWrite("/etc/cgnat/a", "1\n"), FileWrite("/etc/cgnat/b", "2\n")])
    with pytest.raises(SetupError, match="symlink"):
        apply(plan, root)
    assert list(elsewhere.iterdir()) == []


# --- 2. no writes where others may change what root reads --------------------------------

@pytest.mark.root
@pytest.mark.parametrize("directory", ["etc/cgnat", "var/lib/cgnat", "etc/wireguard", "etc"])
def test_a_group_or_other_writable_directory_is_refused_and_nothing_changes(tmp_path, directory):
    root = tmp_path / "root"
    (root / directory).mkdir(parents=True)
    (root / directory).chmod(0o777)
    before = tree(root)
    done = cgnat_setup("--answers", answers(tmp_path), "--root", root)
    assert done.returncode == 1 and "writable by group or others" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert tree(root) == before and sorted(p.name for p in root.iterdir()) == [directory.split("/")[0]]


@pytest.mark.root
def test_an_existing_directory_of_another_owner_is_refused(tmp_path):
    root = tmp_path / "root"
    (root / "etc/cgnat").mkdir(parents=True)
    os.chown(root / "etc/cgnat", 65534, 65534)
    done = cgnat_setup("--answers", answers(tmp_path), "--root", root)
    assert done.returncode == 1 and "belongs to uid 65534" in done.stderr
    assert list((root / "etc/cgnat").iterdir()) == [] and not (root / "etc/wireguard").exists()


# --- 3. bytes, not text -----------------------------------------------------------------

def test_rollback_restores_a_latin1_file_byte_for_byte(tmp_path):
    (tmp_path / "etc/cgnat").mkdir(parents=True)
    (tmp_path / "etc/cgnat/answers.toml").write_bytes(LATIN1)
    (tmp_path / "etc/cgnat/wg0.env").write_bytes(LATIN1)
    before = tree(tmp_path)
    plan = Plan(Answers(), files=[FileWrite("/etc/cgnat/answers.toml", "new\n"),
                                  FileWrite("/etc/cgnat/wg0.env", "X=1\n")],
                commands=[["false"]])
    with pytest.raises(SetupError, match="`false` failed"):
        apply(plan, tmp_path)
    assert tree(tmp_path) == before


@pytest.mark.root
def test_replace_existing_keeps_a_latin1_config_byte_for_byte(tmp_path):
    root = tmp_path / "root"
    conf = root / "etc/wireguard/wg0.conf"
    conf.parent.mkdir(parents=True, mode=0o700)
    original = LATIN1 + f"[Interface]\nPrivateKey = {HOMELAB_KEY}\n".encode()
    conf.write_bytes(original)
    conf.chmod(0o600)
    done = cgnat_setup("--answers", answers(tmp_path), "--root", root, "--replace-existing")
    assert done.returncode == 0, done.stderr
    backup = root / "etc/wireguard/wg0.conf.before-cgnat"
    assert backup.read_bytes() == original and mode(backup) == 0o600


# --- 2. the private key file ------------------------------------------------------------

def key_answers(tmp_path, key: Path) -> Path:
    return answers(tmp_path, f'private_key_file = "{key}"\n')


def check(tmp_path, key: Path):
    return cgnat_setup("--answers", key_answers(tmp_path, key), "--check")


@pytest.mark.root
def test_a_key_file_of_another_owner_is_refused(tmp_path, key_file):
    os.chown(key_file, 65534, 65534)
    done = check(tmp_path, key_file)
    assert done.returncode == 2 and f"private_key_file: {key_file} belongs to uid 65534" in done.stderr


def test_a_key_file_in_a_directory_others_can_write_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)                      # like /tmp: anyone may put a file of theirs there
    key = shared / "wg.key"
    key.write_text(HOMELAB_KEY + "\n")
    key.chmod(0o600)
    done = check(tmp_path, key)
    assert done.returncode == 2 and "writable by group or others" in done.stderr
    assert HOMELAB_KEY not in done.stdout + done.stderr


@pytest.mark.root
def test_a_symlink_of_another_owner_to_a_key_file_is_refused(tmp_path, key_file):
    link = tmp_path / "link.key"
    link.symlink_to(key_file)
    os.chown(link, 65534, 65534, follow_symlinks=False)   # who made it decides what it names
    done = check(tmp_path, link)
    assert done.returncode == 2 and "is a symlink of uid 65534" in done.stderr


def test_a_trusted_key_file_and_a_symlink_of_the_same_owner_are_used(tmp_path, key_file):
    link = tmp_path / "link.key"
    link.symlink_to(key_file)
    assert check(tmp_path, key_file).returncode == 0
    assert check(tmp_path, link).returncode == 0


def test_setup_refuses_a_key_file_that_turned_untrusted_after_validation(tmp_path, key_file):
    from installer import keys
    key_file.chmod(0o640)
    with pytest.raises(SetupError, match="readable by others"):
        keys.read_key_file(key_file)


# --- 4. teardown goes by what setup recorded ---------------------------------------------

@pytest.mark.parametrize("saved", ['role = "bridge"\nrole = "bridge"\n',     # duplicate key
                                   'interface = "wg0"\n', "", None])          # no role, empty, gone
@pytest.mark.root
def test_teardown_stops_the_recorded_tunnels_whatever_the_answers_say(tmp_path, saved):
    from installer import setup
    root = tmp_path / "root"
    assert cgnat_setup("--answers", answers(tmp_path, 'interface = "wg7"\n'), "--root", root).returncode == 0
    hook = root / "usr/lib/cgnat-bridge/hooks/down"          # the installed package's
    hook.parent.mkdir(parents=True)
    for name in ("up", "down"):
        (hook.parent / name).write_text("#!/bin/sh\n")
    saved_path = root / "etc/cgnat/answers.toml"
    if saved is None:
        saved_path.unlink()
    else:
        saved_path.write_text(saved)
    steps = setup.teardown_steps(root)
    assert ["systemctl", "disable", "--now", "wg-quick@wg7"] in steps
    assert ["systemctl", "disable", "--now", "cgnat-watchdog.service"] in steps
    assert [str(hook), "wg7"] in steps
    done = cgnat_setup("teardown", "--root", root)
    assert done.returncode == 0 and "nothing was started there" in done.stderr


def test_teardown_without_a_manifest_has_nothing_to_do(tmp_path):
    from installer import setup
    assert setup.teardown_steps(tmp_path) == []
    done = cgnat_setup("teardown", "--root", tmp_path)
    assert done.returncode == 0 and "names no tunnel" in done.stderr


# --- 5. a renamed interface's files: remove only what is still ours ----------------------

@pytest.mark.root
def test_renaming_keeps_a_config_the_admin_rewrote_since(tmp_path):
    root = tmp_path / "root"
    assert cgnat_setup("--answers", answers(tmp_path), "--root", root).returncode == 0
    conf = root / "etc/wireguard/wg0.conf"
    rewritten = LATIN1 + f"[Interface]\nPrivateKey = {HOMELAB_KEY}\n".encode()
    conf.write_bytes(rewritten)
    unchanged_rules = (root / "etc/cgnat/wg0.rules").read_bytes()
    done = cgnat_setup("--answers", answers(tmp_path, 'interface = "wg7"\n'), "--root", root)
    assert done.returncode == 0, done.stderr
    kept = root / "etc/wireguard/wg0.conf.before-cgnat"
    assert kept.read_bytes() == rewritten and mode(kept) == 0o600 and not conf.exists()
    assert "keep /etc/wireguard/wg0.conf as /etc/wireguard/wg0.conf.before-cgnat (changed since" in done.stderr
    assert HOMELAB_KEY not in done.stderr + done.stdout
    assert unchanged_rules and not (root / "etc/cgnat/wg0.rules").exists()         # still ours: gone
    assert not (root / "etc/cgnat/wg0.rules.before-cgnat").exists()
    assert "before-cgnat" not in (root / "var/lib/cgnat/manifest").read_text()      # the admin's now


@pytest.mark.root
def test_a_backup_path_that_is_a_symlink_is_refused_before_any_change(tmp_path):
    root = tmp_path / "root"
    conf = root / "etc/wireguard/wg0.conf"
    conf.parent.mkdir(parents=True, mode=0o700)
    conf.write_text(f"[Interface]\nPrivateKey = {HOMELAB_KEY}\n")
    (root / "etc/wireguard/wg0.conf.before-cgnat").symlink_to(tmp_path / "elsewhere")
    before = tree(root)
    done = cgnat_setup("--answers", answers(tmp_path), "--root", root, "--replace-existing")
    assert done.returncode == 1 and "wg0.conf.before-cgnat is not a regular file" in done.stderr
    assert "[#]" not in done.stderr and tree(root) == before and not (tmp_path / "elsewhere").exists()
