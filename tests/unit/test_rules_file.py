"""installer/rules_file.py: our chains' names, and reading a rules file as the hooks do."""
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from installer.rules_file import BUILTINS, builtin_of, chain_name, declared_chains, refusal

LIB = Path(__file__).resolve().parents[2] / "installer" / "hooks" / "lib.sh"
LONGEST = "a-b.c=d_e-f-g-h"   # 15 characters, the kernel's limit, "-" included


@pytest.mark.parametrize("builtin", sorted(BUILTINS.values()))
def test_names_fit_iptables_and_give_their_builtin_back(builtin):
    name = chain_name(LONGEST, builtin)
    assert len(LONGEST) == 15 and name.startswith(f"CGNAT-{LONGEST}-")
    assert len(name) <= 28   # iptables: "must be under 29 chars"
    assert builtin_of(name) == builtin


@pytest.mark.parametrize("chain", ["CGNAT-PREROUTING", "CGNAT-FORWARD", "CGNAT-wg0-FOO"])
def test_a_chain_without_our_abbreviation_has_no_builtin_in_either_twin(chain):
    """CGNAT-<BUILTIN> was the name of development versions' shared chains: nothing of ours now."""
    assert builtin_of(chain) == ""
    done = subprocess.run(["sh", "-c", f'. "{LIB}"; builtin_of "$1"', "sh", chain], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (1, "")


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


# ------------------------------------------------------------ only our own chains

GOOD = ("*nat\n:CGNAT-wg.0-PRE - [0:0]\n-A CGNAT-wg.0-PRE -p tcp --dport 22 -j RETURN\nCOMMIT\n"
        "# a comment\n\n*filter\n:CGNAT-wg.0-FWD - [0:0]\n-A CGNAT-wg.0-FWD\t-j DROP\nCOMMIT\n"
        "*mangle\n:CGNAT-wg.0-PRE - [0:0]\n:CGNAT-wg.0-FWD - [0:0]\nCOMMIT\n")
# Lines a hand (or an attacker) might add, each with the 1-based line it is refused at
# when put after GOOD's first COMMIT (line 4) or inside its filter table (line 10).
HOSTILE = [
    ":DOCKER-USER - [0:0]",                 # would flush Docker's chain
    ":CGNAT-wg1-FWD - [0:0]",               # another tunnel's chain
    ":CGNAT-wg.0-PRE - [0:0]",              # in filter: no PREROUTING there
    ":CGNAT-wg.0-FWD ACCEPT [0:0]",
    ":CGNAT-wg.0 - [0:0]",
    ":CGNAT-wg.0-FWDX - [0:0]",
    "-I FORWARD -j ACCEPT",
    "-A FORWARD -j ACCEPT",
    "-A DOCKER-USER -j ACCEPT",
    "-F", "-X DOCKER-USER", "-P FORWARD ACCEPT", "-N X", "-D FORWARD 1",
    "--append CGNAT-wg.0-FWD -j ACCEPT",
    " -A CGNAT-wg.0-FWD -j ACCEPT",
    "-A CGNAT-wg.0-FWDX -j ACCEPT",
    "*raw", "COMMIT\r", "*nat\r", "*n\x1b[2Jat", "*natür",
    ":CGNAT-wg.0-FWD\tX - [0:0]",
]


def check_in_shell(tmp_path, text: str, iface: str = "wg.0") -> subprocess.CompletedProcess:
    path = tmp_path / f"{iface}.rules"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    return subprocess.run(["sh", "-c", f'. "{LIB}"; IFACE="$1"; check_rules "$2"', "hooks/up", iface, str(path)],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})


def test_a_rules_file_of_our_chains_is_taken(tmp_path):
    assert refusal(GOOD, "wg.0") is None
    done = check_in_shell(tmp_path, GOOD)
    assert done.returncode == 0 and done.stdout == ""


@pytest.mark.parametrize("line", HOSTILE)
def test_a_line_that_does_more_than_fill_our_chains_is_refused_by_both_readers(tmp_path, line):
    filter_ = GOOD.index("COMMIT\n*mangle")
    for text, number in ((GOOD.replace("COMMIT\n", f"COMMIT\n{line}\n", 1), 5),
                         (GOOD[:filter_] + f"{line}\n" + GOOD[filter_:], 10)):
        why = refusal(text, "wg.0")
        assert why is not None and why.startswith(f"{number}: "), (line, why)
        done = check_in_shell(tmp_path, text)
        assert done.returncode == 1 and done.stdout == f"{tmp_path}/wg.0.rules:{why}\n", (line, done.stdout)


def test_a_table_left_open_is_refused():
    assert refusal("*nat\n:CGNAT-wg0-PRE - [0:0]\n", "wg0").startswith("2: no COMMIT after *nat")


lines = st.sampled_from(GOOD.split("\n") + HOSTILE + ["*nat", "*filter", "COMMIT", "-A CGNAT-wg.0-PRE"])


@given(st.lists(lines, max_size=12), st.sampled_from(["wg.0", "wg1", "a-b=c_d"]))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_shell_and_python_readers_refuse_the_same_files_at_the_same_line(tmp_path, chosen, iface):
    text = "\n".join(chosen) + "\n"
    why = refusal(text, iface)
    done = check_in_shell(tmp_path, text, iface)
    assert done.stdout == ("" if why is None else f"{tmp_path}/{iface}.rules:{why}\n")
    assert done.returncode == (0 if why is None else 1)
