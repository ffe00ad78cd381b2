"""apply: atomic writes, modes, and rollback that leaves the host as it was."""
import pytest

from installer.apply import apply
from installer.atomic import HostTree
from installer.errors import SetupError
from installer.plan import FileWrite, Plan

from filetree import tree


class Answers:
    interface = "wg0"


def plan_of(*files, commands=()):
    return Plan(Answers(), files=list(files), commands=[list(c) for c in commands])


def test_files_are_written_with_their_modes(tmp_path):
    changed = apply(plan_of(FileWrite("/etc/wireguard/wg0.conf", "secret\n", 0o600),
                            FileWrite("/etc/cgnat/answers.toml", "role = \"bridge\"\n")), tmp_path)
    assert changed == ["/etc/wireguard/wg0.conf", "/etc/cgnat/answers.toml"]
    assert tree(tmp_path) == {"etc/wireguard/wg0.conf": (b"secret\n", 0o600),
                              "etc/cgnat/answers.toml": (b'role = "bridge"\n', 0o644)}
    assert not list(tmp_path.rglob(".*"))  # no temp files left behind


def test_a_failing_command_rolls_every_file_back(tmp_path):
    (tmp_path / "etc/cgnat").mkdir(parents=True)
    (tmp_path / "etc/cgnat/answers.toml").write_text("old\n")
    before = tree(tmp_path)
    plan = plan_of(FileWrite("/etc/cgnat/answers.toml", "new\n"),
                   FileWrite("/etc/wireguard/wg0.conf", "key\n", 0o600),
                   commands=[["false"]])
    with pytest.raises(SetupError, match="`false` failed"):
        apply(plan, tmp_path)
    assert tree(tmp_path) == before


def test_a_failing_write_half_way_rolls_back(tmp_path, monkeypatch):
    real_write = HostTree.write
    calls = []

    def write_then_fail(self, path, data, mode):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        real_write(self, path, data, mode)

    monkeypatch.setattr(HostTree, "write", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        apply(plan_of(FileWrite("/a", "1\n"), FileWrite("/b", "2\n")), tmp_path)
    assert tree(tmp_path) == {}


def test_unchanged_files_are_not_rewritten(tmp_path):
    plan = plan_of(FileWrite("/etc/cgnat/wg0.env", "X=1\n"))
    assert apply(plan, tmp_path) == ["/etc/cgnat/wg0.env"]
    assert apply(plan, tmp_path) == []


def test_rollback_goes_on_past_a_file_it_cannot_restore(tmp_path, monkeypatch):
    plan = plan_of(FileWrite("/etc/a", "1\n"), FileWrite("/etc/b", "2\n"), commands=[["false"]])
    real_remove = HostTree.remove

    def remove_fails_for_b(self, path):
        if path == "/etc/b":
            raise PermissionError("read-only")
        real_remove(self, path)

    monkeypatch.setattr(HostTree, "remove", remove_fails_for_b)
    with pytest.raises(SetupError):
        apply(plan, tmp_path)
    assert not (tmp_path / "etc/a").exists()  # restored although b could not be
