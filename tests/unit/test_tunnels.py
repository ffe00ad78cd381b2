"""A homelab with several tunnels, one per bridge (installer/tunnels.py, cgnat_homelab/tunnels.py):
the real cgnat-setup under --root, pairing with a second bridge's token, answers naming a new
interface, clashes between tunnels, remove-tunnel, and a single-bridge host as before."""
import base64

import pytest

from installer.pairing import PairingToken
from installer.setup import teardown_steps

from clihelp import cgnat_setup
from filetree import tree
from unitdata import PEER_PUBLIC

KEY_A = PEER_PUBLIC
KEY_B = base64.b64encode(b"B" * 32).decode()
KEY_C = base64.b64encode(b"C" * 32).decode()


def token(key: str, endpoint: str, tunnel: str = "10.0.0.0/24", tunnel6: str = "fd63:676e:6174::/64") -> str:
    return PairingToken("bridge", key, endpoint, tunnel, "2222", "all", tunnel6, "").encode()


A = token(KEY_A, "203.0.113.7:51820")
B = token(KEY_B, "198.51.100.9:51820", "10.0.1.0/24", "fd63:676e:6174:1::/64")


def setup(root, *args):
    return cgnat_setup("--root", root, "--role", "homelab", *args)


def lines(root, path) -> list[str]:
    return (root / path.lstrip("/")).read_text().splitlines()


@pytest.fixture
def two_bridges(tmp_path):
    """A homelab paired with bridge A, then with bridge B."""
    assert setup(tmp_path, "--pair", A).returncode == 0
    assert setup(tmp_path, "--pair", B).returncode == 0
    return tmp_path


def test_a_second_bridges_token_adds_a_tunnel_of_its_own_and_leaves_the_first_as_it_was(tmp_path):
    assert setup(tmp_path, "--pair", A).returncode == 0
    first = tree(tmp_path)
    done = setup(tmp_path, "--pair", B)
    assert done.returncode == 0, done.stderr
    assert "Answers saved to " + str(tmp_path / "etc/cgnat/tunnels/wg1.toml") in done.stdout
    after = tree(tmp_path)
    manifest = "var/lib/cgnat/manifest"
    assert {p: v for p, v in after.items() if p in first and p != manifest} == \
        {p: v for p, v in first.items() if p != manifest}
    assert sorted(set(after) - set(first)) == ["etc/cgnat/tunnels/wg1.toml", "etc/cgnat/wg1.env",
                                               "etc/cgnat/wg1.rules", "etc/cgnat/wg1.rules6",
                                               "etc/wireguard/wg1.conf"]
    env = lines(tmp_path, "/etc/cgnat/wg1.env")
    assert {"CGNAT_ADDRESS=10.0.1.2", "CGNAT_TABLE=201", "CGNAT_FWMARK=0x2000000/0x2000000",
            "CGNAT_RULE_PREF=1010", "CGNAT_ADDRESS6=fd63:676e:6174:1::2"} <= set(env)
    conf = lines(tmp_path, "/etc/wireguard/wg1.conf")
    assert f"PublicKey = {KEY_B}" in conf
    assert conf[0].endswith("written by cgnat-setup from /etc/cgnat/tunnels/wg1.toml.")
    assert [line.split()[0] for line in lines(tmp_path, "/" + manifest)] == sorted(
        "/" + p for p in after if p != manifest)
    assert (tmp_path / "etc/wireguard/wg1.conf").stat().st_mode & 0o777 == 0o600
    assert "PrivateKey" not in done.stdout + done.stderr


def test_a_known_bridges_token_updates_its_own_tunnel_only(two_bridges):
    before = tree(two_bridges)
    moved = token(KEY_B, "192.0.2.44:51999", "10.0.1.0/24", "fd63:676e:6174:1::/64")
    done = setup(two_bridges, "--pair", moved)
    assert done.returncode == 0, done.stderr
    after = tree(two_bridges)
    changed = sorted(p for p in after if after[p] != before.get(p))
    assert {"etc/cgnat/tunnels/wg1.toml", "etc/wireguard/wg1.conf"} <= set(changed) <= {
        "etc/cgnat/tunnels/wg1.toml", "etc/wireguard/wg1.conf", "etc/cgnat/wg1.rules",
        "etc/cgnat/wg1.rules6", "etc/cgnat/wg1.env", "var/lib/cgnat/manifest"}
    assert "Endpoint = 192.0.2.44:51999" in lines(two_bridges, "/etc/wireguard/wg1.conf")
    assert not (two_bridges / "etc/wireguard/wg2.conf").exists()


def test_a_bridge_whose_tunnel_overlaps_another_is_refused_with_the_fix_named(tmp_path):
    assert setup(tmp_path, "--pair", A).returncode == 0
    before = tree(tmp_path)
    done = setup(tmp_path, "--pair", token(KEY_B, "198.51.100.9:51820"))
    assert done.returncode == 2
    problems = done.stderr.strip().splitlines()
    assert [p.split(": ")[1] for p in problems] == ["tunnel", "tunnel6"]
    assert all(p.startswith("--pair: ") for p in problems)
    assert 'set tunnel = "10.0.1.0/24" and tunnel6 = "fd63:676e:6174:1::/64"' in problems[0]
    assert "on this bridge (198.51.100.9:51820)" in problems[0]
    assert tree(tmp_path) == before


def test_answers_naming_a_new_interface_add_a_tunnel_and_clashes_are_named(two_bridges, tmp_path_factory):
    answers = tmp_path_factory.mktemp("answers") / "wg2.toml"
    answers.write_text(f'role = "homelab"\ninterface = "wg2"\ntunnel = "10.0.2.0/24"\n'
                       f'tunnel6 = "fd63:676e:6174:2::/64"\npeer_public_key = "{KEY_A}"\n'
                       f'[homelab]\nendpoint = "192.0.2.5:51820"\ntable = 201\nrule_pref = 1011\n')
    before = tree(two_bridges)
    done = setup(two_bridges, "--answers", answers)
    assert done.returncode == 2
    keys = {line.split(": ")[1] for line in done.stderr.splitlines()}
    assert keys == {"peer_public_key", "homelab.table", "homelab.fwmark", "homelab.rule_pref"}
    assert "this bridge is already wg0's peer" in done.stderr
    assert tree(two_bridges) == before
    answers.write_text(answers.read_text().replace(KEY_A, KEY_C).replace("table = 201", "table = 202")
                       .replace("rule_pref = 1011", 'rule_pref = 1020\nfwmark = "0x4000000"'))
    done = setup(two_bridges, "--answers", answers)
    assert done.returncode == 0, done.stderr
    assert (two_bridges / "etc/cgnat/tunnels/wg2.toml").exists()
    assert "CGNAT_TABLE=202" in lines(two_bridges, "/etc/cgnat/wg2.env")
    assert tree(two_bridges)["etc/cgnat/answers.toml"] == before["etc/cgnat/answers.toml"]


def test_removing_the_first_tunnel_moves_the_next_ones_answers_into_its_file(two_bridges):
    wg1_answers = lines(two_bridges, "/etc/cgnat/tunnels/wg1.toml")
    done = cgnat_setup("--root", two_bridges, "remove-tunnel", "wg0")
    assert done.returncode == 0, done.stderr
    left = tree(two_bridges)
    assert sorted(left) == ["etc/cgnat/answers.toml", "etc/cgnat/wg1.env", "etc/cgnat/wg1.rules",
                            "etc/cgnat/wg1.rules6", "etc/wireguard/wg1.conf", "var/lib/cgnat/manifest"]
    assert lines(two_bridges, "/etc/cgnat/answers.toml")[2:] == wg1_answers[2:]
    assert lines(two_bridges, "/etc/wireguard/wg1.conf")[0].endswith("from /etc/cgnat/answers.toml.")
    manifest = [line.split()[0] for line in lines(two_bridges, "/var/lib/cgnat/manifest")]
    assert manifest == sorted("/" + p for p in left if p != "var/lib/cgnat/manifest")
    again = setup(two_bridges, "--answers", two_bridges / "etc/cgnat/answers.toml")
    assert again.returncode == 0 and "already up to date" in again.stdout


@pytest.mark.parametrize("name, code, message", [
    ("wg7", 1, "no tunnel wg7 here (tunnels: wg0, wg1)"),
    ("all", 2, "remove-tunnel: interface: must be"),
])
def test_remove_tunnel_refuses_what_is_not_a_tunnel_here(two_bridges, name, code, message):
    before = tree(two_bridges)
    done = cgnat_setup("--root", two_bridges, "remove-tunnel", name)
    assert (done.returncode, message in done.stderr) == (code, True), done.stderr
    assert tree(two_bridges) == before


def test_teardown_takes_down_every_tunnel(two_bridges):
    steps = [" ".join(step) for step in teardown_steps(two_bridges)]
    assert "systemctl disable --now wg-quick@wg0" in steps
    assert "systemctl disable --now wg-quick@wg1" in steps


def test_a_single_bridge_homelab_has_todays_files_and_no_new_key(tmp_path):
    assert setup(tmp_path, "--pair", A).returncode == 0
    assert sorted(tree(tmp_path)) == ["etc/cgnat/answers.toml", "etc/cgnat/wg0.env", "etc/cgnat/wg0.rules",
                                      "etc/cgnat/wg0.rules6", "etc/wireguard/wg0.conf", "var/lib/cgnat/manifest"]
    assert not any("rule_pref" in line for line in lines(tmp_path, "/etc/cgnat/answers.toml"))
    assert "CGNAT_RULE_PREF=1000" in lines(tmp_path, "/etc/cgnat/wg0.env")


def test_a_bridge_keeps_one_tunnel_answers_naming_another_replace_it(tmp_path, key_file):
    answers = tmp_path / "bridge.toml"
    answers.write_text(f'role = "bridge"\nprivate_key_file = "{key_file}"\n[bridge]\npublic_interface = "lo"\n')
    root = tmp_path / "root"
    root.mkdir()
    done = cgnat_setup("--root", root, "--answers", answers)
    assert done.returncode == 0, done.stderr
    answers.write_text(answers.read_text().replace('role = "bridge"', 'role = "bridge"\ninterface = "wg5"'))
    done = cgnat_setup("--root", root, "--answers", answers)
    assert done.returncode == 0, done.stderr
    assert sorted(p for p in tree(root) if p.startswith("etc/wireguard")) == ["etc/wireguard/wg5.conf"]
    assert not (root / "etc/cgnat/tunnels").exists()
