"""The wizard in a real terminal (tmux, 80x24): a whole bridge flow with --root, then the
saved answers replayed unattended write the same bytes.

Runs the BUILT package's /usr/sbin/cgnat-setup when dist/*.deb exists: the .deb is unpacked
with dpkg-deb -x and, because its launcher hardcodes /usr/lib/cgnat-bridge, that tree is
overlaid on /usr/lib in a private mount namespace (unshare -m), so the host is untouched.
In CI a missing dist/ is a failure, not a skip. Elsewhere the source tree runs instead.
"""
from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from filetree import tree
from tmux_session import TmuxSession, local_shell
from wizardhelp import FIXED_KEY, with_key

REPO = Path(__file__).resolve().parents[2]
SESSION = f"cgnat-tui-{os.getpid()}"


def built_deb() -> Path | None:
    debs = sorted((REPO / "dist").glob("cgnat-bridge_*_all.deb"))
    if not debs and os.environ.get("CI"):
        pytest.fail("dist/cgnat-bridge_*.deb is missing: build the packages (./build.sh) "
                    "before the terminal test; it must run the built program")
    return debs[-1] if debs else None


@pytest.fixture
def program(tmp_path):
    """(argv prefix to run cgnat-setup, what runs)."""
    deb = built_deb()
    if deb is None:
        python = REPO / ".venv/bin/python"
        return [str(python if python.exists() else "/usr/bin/python3"), "-m", "installer"], "source"
    tree = tmp_path / "deb"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
    overlay = f"mount -t overlay overlay -o lowerdir={tree}/usr/lib:/usr/lib /usr/lib"
    return ["unshare", "-m", "sh", "-c", f'{overlay} && exec {tree}/usr/sbin/cgnat-setup "$@"',
            "cgnat-setup"], f"package {deb.name}"


@pytest.mark.root
def test_bridge_wizard_in_a_real_terminal(tmp_path, program):
    argv, what = program
    root = with_key(tmp_path / "wizard")
    done_file = tmp_path / "exit"
    command = (" ".join(shlex.quote(a) for a in argv) + f" --root {shlex.quote(str(root))}"
               f"; echo \"EXIT=$?\" > {done_file}; echo WIZARD-CLOSED; exec sleep 600")
    term = TmuxSession(local_shell, f"sh -c {shlex.quote(command)}", SESSION, cwd=REPO)
    try:
        shown = term.wait_for("Which end of the tunnel is this host?")
        assert "^n Next" in shown and "f1 Help" in shown and "esc Back" in shown   # the Footer
        term.keys("C-n")
        shown = term.wait_for("Bridge: the public interface")
        assert "(default route)" in shown
        term.keys("C-n")
        term.wait_for("WireGuard UDP port")
        term.keys("C-n")
        shown = term.wait_for("What will change")
        assert "TCP 22 of the public address belongs to the homelab" in shown
        term.keys("F1")      # "?" would be typed into the focused port field
        term.wait_for("Help: Bridge: its own SSH port")
        term.keys("Escape")
        term.wait_for("What will change")
        term.keys("C-n")
        term.wait_for("Bridge: what to forward")
        term.keys("C-n")
        shown = term.wait_for("Review: exactly what will be written")
        assert "PrivateKey = (hidden)" in shown and FIXED_KEY not in shown
        assert not (root / "etc/cgnat").exists()
        term.keys("C-n")
        shown = term.wait_for("Pairing token")
        assert "Done: bridge configured" in shown
        term.keys("Enter")
        shown = term.wait_for("WIZARD-CLOSED")
        assert "Pairing token: cgnat3-" in shown, shown      # printed again, copyable from scrollback
        assert "Traceback" not in shown
    finally:
        term.close()
    assert done_file.read_text().strip() == "EXIT=0", what
    saved = root / "etc/cgnat/answers.toml"
    assert 'public_interface = "' in saved.read_text()
    # The same program, unattended, from the answers the wizard saved: the same bytes.
    other = with_key(tmp_path / "replay")
    replayed = subprocess.run([*argv, "--answers", str(saved), "--root", str(other)],
                              capture_output=True, text=True, cwd=REPO)
    assert replayed.returncode == 0, replayed.stderr
    assert tree(root) == tree(other)
    assert FIXED_KEY in (root / "etc/wireguard/wg0.conf").read_text()
