"""installer/rules_file.py: our chains' names, and reading a rules file as the hooks do."""
import subprocess
from pathlib import Path

import pytest

from installer.rules_file import BUILTINS, builtin_of, chain_name, declared_chains

LIB = Path(__file__).resolve().parents[2] / "installer" / "hooks" / "lib.sh"
LONGEST = "a-b.c=d_e-f-g-h"   # 15 characters, the kernel's limit, "-" included


@pytest.mark.parametrize("builtin", sorted(BUILTINS.values()))
def test_names_fit_iptables_and_give_their_builtin_back(builtin):
    name = chain_name(LONGEST, builtin)
    assert len(LONGEST) == 15 and name.startswith(f"CGNAT-{LONGEST}-")
    assert len(name) <= 28   # iptables: "must be under 29 chars"
    assert builtin_of(name) == builtin


def test_chains_of_older_rules_files_still_map_to_their_builtin():
    assert builtin_of("CGNAT-PREROUTING") == "PREROUTING"
    assert builtin_of("CGNAT-FORWARD") == "FORWARD"


def test_declared_chains():
    rules = ("*nat\n:CGNAT-wg0-PRE - [0:0]\n-A CGNAT-wg0-PRE -j RETURN\nCOMMIT\n"
             "*filter\n:CGNAT-wg0-FWD - [0:0]\n:OTHER - [0:0]\nCOMMIT\n")
    assert declared_chains(rules) == [("nat", "CGNAT-wg0-PRE"), ("filter", "CGNAT-wg0-FWD")]


def test_the_hooks_read_a_rules_file_as_python_does(tmp_path):
    """The shell twin (lib.sh: declared_chains, builtin_of) gives the same answers."""
    rules = "".join(f"*{t}\n:{chain_name(LONGEST, b)} - [0:0]\n:OTHER - [0:0]\nCOMMIT\n"
                    for t, b in [("nat", "PREROUTING"), ("filter", "FORWARD"), ("nat", "POSTROUTING"),
                                 ("filter", "INPUT"), ("raw", "OUTPUT")])
    (tmp_path / f"{LONGEST}.rules").write_text(rules)
    script = (f'. "{LIB}"; hook_init bridge up "$1"; '
              'for p in $(declared_chains "$RULES"); do echo "${p%%:*} ${p#*:} $(builtin_of "${p#*:}")"; done')
    done = subprocess.run(["sh", "-c", script, "hooks/up", LONGEST], capture_output=True, text=True,
                          env={"CGNAT_ETC": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{t} {c} {builtin_of(c)}" for t, c in declared_chains(rules)]


@pytest.mark.parametrize("iface", ["", "all", "default", "-h", "wg+", "../x", "a/b", "wg 0", "a" * 16])
def test_the_hooks_refuse_an_interface_name_cgnat_setup_refuses(tmp_path, iface):
    done = subprocess.run(["sh", "-c", f'. "{LIB}"; hook_init bridge up "$1"; echo accepted', "hooks/up", iface],
                          capture_output=True, text=True, env={"CGNAT_ETC": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1 and "accepted" not in done.stdout
    assert "cgnat-bridge-up: invalid interface name" in done.stderr
