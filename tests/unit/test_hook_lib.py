"""installer/hooks/lib.sh's add_rules and del_rules, in a throwaway network namespace
(`unshare --net`: the host's firewall is never touched)."""
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.root     # unshare --net

LIB = Path(__file__).resolve().parents[2] / "installer" / "hooks" / "lib.sh"
# A rules file as a hand might leave it: no newline after the last COMMIT.
RULES = ("*nat\n:CGNAT-wg-x.1-PRE - [0:0]\n-A CGNAT-wg-x.1-PRE -p tcp --dport 80 -j RETURN\nCOMMIT\n"
         "*filter\n:CGNAT-wg-x.1-FWD - [0:0]\n-A CGNAT-wg-x.1-FWD -i wg-x.1 -j DROP\nCOMMIT")


def in_netns(tmp_path, script: str) -> subprocess.CompletedProcess:
    (tmp_path / "wg-x.1.rules").write_text(RULES)
    return subprocess.run(["unshare", "--net", "sh", "-euc", f'. "{LIB}"; hook_init bridge up wg-x.1; {script}',
                           str(tmp_path / "up")], capture_output=True, text=True,
                          env={"CGNAT_ETC": str(tmp_path), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


def ours(save: str) -> list[str]:
    return [line for line in save.splitlines() if "CGNAT-" in line and not line.startswith("#")]


def test_add_rules_twice_leaves_one_jump_per_chain_and_del_rules_removes_all(tmp_path):
    done = in_netns(tmp_path, "add_rules iptables $RULES; add_rules iptables $RULES; iptables-save; echo ===; del_rules iptables $RULES; iptables-save")
    assert done.returncode == 0, done.stderr
    up, down = done.stdout.split("===\n")
    assert ours(up) == [
        ":CGNAT-wg-x.1-FWD - [0:0]",
        '-A FORWARD -m comment --comment "cgnat:wg-x.1" -j CGNAT-wg-x.1-FWD',
        "-A CGNAT-wg-x.1-FWD -i wg-x.1 -j DROP",
        ":CGNAT-wg-x.1-PRE - [0:0]",
        '-A PREROUTING -m comment --comment "cgnat:wg-x.1" -j CGNAT-wg-x.1-PRE',
        "-A CGNAT-wg-x.1-PRE -p tcp -m tcp --dport 80 -j RETURN",
    ], up
    assert ours(down) == [], down
    # The first run added the two jumps, the second none; every change was echoed.
    assert done.stderr.count("(+ jumps:") == 1
    assert "[#] iptables -w -t nat -D PREROUTING -m comment --comment cgnat:wg-x.1 -j CGNAT-wg-x.1-PRE" in done.stderr


def test_the_same_verbs_load_and_remove_ip6tables_rules(tmp_path):
    (tmp_path / "wg-x.1.rules6").write_text(RULES)
    done = in_netns(tmp_path, "add_rules ip6tables $RULES6; add_rules ip6tables $RULES6; iptables-save; "
                              "echo ===; ip6tables-save; echo ===; del_rules ip6tables $RULES6; ip6tables-save")
    assert done.returncode == 0, done.stderr
    v4, up, down = done.stdout.split("===\n")
    assert ours(v4) == []
    assert len([line for line in ours(up) if "--comment" in line]) == 2, up
    assert "-A CGNAT-wg-x.1-PRE -p tcp -m tcp --dport 80 -j RETURN" in ours(up)
    assert ours(down) == [], down
    assert "[#] ip6tables-restore -w --noflush < " in done.stderr


def test_ipv6_enabled_reads_the_interfaces_disable_ipv6(tmp_path):
    done = in_netns(tmp_path, "ip tuntap add wg-x.1 mode tun; ipv6_enabled && echo on; "
                              "sysctl -qw net.ipv6.conf.wg-x/1.disable_ipv6=1; ipv6_enabled || echo off; "
                              "IFACE=absent; ipv6_enabled || echo absent")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["on", "off", "absent"]


def test_down_takes_a_chain_name_that_looks_like_a_glob_literally(tmp_path):
    """del_rules splits its "TABLE:CHAIN" list into words: a tagged jump to CGNAT-?-FWD (a
    hand's) must not expand to the name of a file in the working directory."""
    (tmp_path / "filter:CGNAT-a-FWD").write_text("")
    done = in_netns(tmp_path, f'cd "{tmp_path}"; iptables -N "CGNAT-?-FWD"; '
                              'iptables -I FORWARD -m comment --comment "cgnat:wg-x.1" -j "CGNAT-?-FWD"; '
                              'del_rules iptables $RULES; iptables-save')
    assert done.returncode == 0, done.stderr
    assert "CGNAT-" not in done.stdout and "CGNAT-a-FWD" not in done.stderr


def test_a_failed_repair_leaves_the_rules_an_earlier_up_added(tmp_path):
    """The watchdog re-runs up to repair; when that run fails, its rollback undoes only what
    it added, never the chains and jumps already in place (issue 19)."""
    done = in_netns(tmp_path, "add_rules iptables $RULES; iptables -t filter -D FORWARD -m comment "
                              "--comment cgnat:wg-x.1 -j CGNAT-wg-x.1-FWD; "
                              "(begin_up; add_rules iptables $RULES; false) || true; iptables-save")
    assert done.returncode == 0, done.stderr
    assert "undoing what this run added" in done.stderr
    # The repair had put back the FORWARD jump: that one goes again; the PREROUTING jump and
    # both chains (which the earlier up added) stay.
    assert "[#] iptables -w -t filter -D FORWARD -m comment --comment cgnat:wg-x.1 -j CGNAT-wg-x.1-FWD" in done.stderr
    assert ours(done.stdout) == [
        ":CGNAT-wg-x.1-FWD - [0:0]",
        "-A CGNAT-wg-x.1-FWD -i wg-x.1 -j DROP",
        ":CGNAT-wg-x.1-PRE - [0:0]",
        '-A PREROUTING -m comment --comment "cgnat:wg-x.1" -j CGNAT-wg-x.1-PRE',
        "-A CGNAT-wg-x.1-PRE -p tcp -m tcp --dport 80 -j RETURN",
    ], done.stdout


def test_a_failed_first_up_leaves_nothing_of_ours(tmp_path):
    done = in_netns(tmp_path, "(begin_up; add_rules iptables $RULES; false) || true; iptables-save")
    assert done.returncode == 0, done.stderr
    assert ours(done.stdout) == [], done.stdout


def homelab_up(tmp_path, env: str, rules6: bool) -> subprocess.CompletedProcess:
    """The homelab's up hook, installed as the package does (lib.sh beside it), on files of
    our own, in a throwaway network namespace."""
    hooks = tmp_path / "hooks"
    hooks.mkdir(parents=True)
    repo = LIB.parents[2]
    for source in (repo / "cgnat_homelab/hooks/up", LIB):
        (hooks / source.name).write_bytes(source.read_bytes())
    (tmp_path / "wg0.rules").write_text("*mangle\n:CGNAT-wg0-PRE - [0:0]\nCOMMIT\n")
    if rules6:
        (tmp_path / "wg0.rules6").write_text("*mangle\n:CGNAT-wg0-PRE - [0:0]\nCOMMIT\n")
    (tmp_path / "wg0.env").write_text(env)
    return subprocess.run(["unshare", "--net", "sh", str(hooks / "up"), "wg0"], capture_output=True, text=True,
                          env={"CGNAT_ETC": str(tmp_path), "CGNAT_RUN": str(tmp_path / "run"),
                               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


HOMELAB_ENV = ("CGNAT_ROLE=homelab\nCGNAT_ADDRESS=10.0.0.2\nCGNAT_TABLE=200\nCGNAT_FWMARK=0x1000000/0x1000000\n"
               "CGNAT_RULE_PREF=1000\nCGNAT_ADDRESS6=fd63:676e:6174::2\nCGNAT_PREFIXLEN6=64\n")


def test_the_homelab_up_refuses_files_without_the_ipv6_half_before_any_change(tmp_path):
    """Every setup writes CGNAT_PREFIXLEN6 and the homelab's rules6: files without them are no
    setup's (the development versions' IPv4-only fallback is gone)."""
    without = HOMELAB_ENV.replace("CGNAT_PREFIXLEN6=64\n", "")
    done = homelab_up(tmp_path / "a", without, rules6=True)
    assert done.returncode == 1 and done.stderr.endswith("wg0.env: CGNAT_PREFIXLEN6 is not set\n"), done.stderr
    assert "[#]" not in done.stderr
    done = homelab_up(tmp_path / "b", HOMELAB_ENV, rules6=False)
    assert done.returncode == 1 and done.stderr.endswith("wg0.rules6 (run cgnat-setup again)\n"), done.stderr
    assert "[#]" not in done.stderr
