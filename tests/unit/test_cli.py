"""The unattended cgnat-setup, run as the real program against a --root."""
import configparser
import os
import subprocess
from pathlib import Path

import pytest

from clihelp import cgnat_setup
from filetree import tree

from unitdata import BRIDGE_KEY, HOMELAB_KEY

BRIDGE_TOML = """\
role = "bridge"
[bridge]
public_interface = "lo"
public_address = "203.0.113.7"
ssh_port = 2222
"""
HOMELAB_TOML = """\
role = "homelab"
[homelab]
endpoint = "203.0.113.7:51820"
docker_subnets = ["172.19.0.0/16"]
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def bridge_answers(tmp_path):
    key = write(tmp_path, "bridge.key", BRIDGE_KEY + "\n")
    key.chmod(0o600)
    return write(tmp_path, "bridge.toml", f'private_key_file = "{key}"\n' + BRIDGE_TOML)


def wg_conf(root, iface="wg0"):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string((root / f"etc/wireguard/{iface}.conf").read_text())
    return parser


@pytest.mark.root
def test_bridge_writes_the_files_of_the_design_with_the_recipes_values(tmp_path, bridge_answers):
    root = tmp_path / "root"
    done = cgnat_setup("--answers", bridge_answers, "--root", root)
    assert done.returncode == 0, done.stderr
    files = tree(root)
    assert files["etc/wireguard/wg0.conf"][1] == 0o600
    assert {"etc/cgnat/answers.toml", "etc/cgnat/wg0.rules", "etc/cgnat/wg0.env",
            "var/lib/cgnat/manifest"} <= set(files)
    conf = wg_conf(root)
    assert dict(conf["Interface"]) == {
        "Address": "10.0.0.1/24", "PrivateKey": BRIDGE_KEY, "ListenPort": "51820",
        "PostUp": "/usr/lib/cgnat-bridge/hooks/up %i", "PostDown": "/usr/lib/cgnat-bridge/hooks/down %i"}
    assert not conf.has_section("Peer")  # no peer key yet
    assert BRIDGE_KEY not in (root / "etc/cgnat/answers.toml").read_text()
    assert BRIDGE_KEY not in done.stdout + done.stderr
    assert "Pairing token: cgnat3-" in done.stdout


@pytest.mark.root
def test_second_run_changes_nothing(tmp_path):
    answers = write(tmp_path, "b.toml", BRIDGE_TOML)
    root = tmp_path / "root"
    assert cgnat_setup("--answers", answers, "--root", root).returncode == 0
    first = tree(root)
    again = cgnat_setup("--answers", answers, "--root", root)
    assert again.returncode == 0
    assert "already up to date" in again.stdout
    assert tree(root) == first  # same bytes, same modes, same (generated) key


@pytest.mark.root
def test_answers_saved_replay_the_same_setup(tmp_path, bridge_answers):
    first, second = tmp_path / "first", tmp_path / "second"
    assert cgnat_setup("--answers", bridge_answers, "--root", first).returncode == 0
    saved = first / "etc/cgnat/answers.toml"
    assert cgnat_setup("--answers", saved, "--root", second).returncode == 0
    assert tree(first) == tree(second)


@pytest.mark.root
def test_pairing_both_ways(tmp_path):
    bridge_root, homelab_root = tmp_path / "bridge", tmp_path / "homelab"
    bridge = cgnat_setup("--answers", write(tmp_path, "b.toml", BRIDGE_TOML), "--root", bridge_root)
    bridge_token = bridge.stdout.split("Pairing token: ")[1].split()[0]
    homelab = cgnat_setup("--pair", bridge_token, "--answers", write(tmp_path, "h.toml", "role = \"homelab\"\n"),
                          "--root", homelab_root)
    assert homelab.returncode == 0, homelab.stderr
    bridge_public = bridge.stdout.split("Public key:")[1].split()[0]
    peer = wg_conf(homelab_root)["Peer"]
    assert peer["PublicKey"] == bridge_public
    assert peer["Endpoint"] == "203.0.113.7:51820"
    assert peer["AllowedIPs"] == "0.0.0.0/0, ::/0"
    assert peer["PersistentKeepalive"] == "25"
    assert wg_conf(homelab_root)["Interface"]["Table"] == "off"
    # Back on the bridge: --pair alone re-applies the saved answers with the homelab's key.
    homelab_token = homelab.stdout.split("Pairing token: ")[1].split()[0]
    again = cgnat_setup("--pair", homelab_token, "--root", bridge_root)
    assert again.returncode == 0, again.stderr
    bridge_peer = wg_conf(bridge_root)["Peer"]
    assert bridge_peer["PublicKey"] == homelab.stdout.split("Public key:")[1].split()[0]
    assert bridge_peer["AllowedIPs"] == "10.0.0.2/32"
    # The bridge's own answers file again (it names no peer): the pairing stays.
    rerun = cgnat_setup("--answers", tmp_path / "b.toml", "--root", bridge_root)
    assert rerun.returncode == 0, rerun.stderr
    assert wg_conf(bridge_root)["Peer"] == bridge_peer
    assert f'peer_public_key = "{bridge_peer["PublicKey"]}"' in (bridge_root / "etc/cgnat/answers.toml").read_text()


@pytest.mark.root
def test_damaged_or_misplaced_token_is_rejected_and_nothing_written(tmp_path):
    root = tmp_path / "root"
    bridge = cgnat_setup("--answers", write(tmp_path, "b.toml", BRIDGE_TOML), "--root", tmp_path / "b")
    token = bridge.stdout.split("Pairing token: ")[1].split()[0]
    damaged = token[:20] + ("a" if token[20] != "a" else "b") + token[21:]
    done = cgnat_setup("--pair", damaged, "--role", "homelab", "--root", root)
    assert done.returncode == 2
    assert "--pair: pair: the token is damaged" in done.stderr
    wrong_host = cgnat_setup("--pair", token, "--role", "bridge", "--root", root)
    assert wrong_host.returncode == 2
    assert "this token comes from a bridge; paste it on the other host" in wrong_host.stderr
    assert not root.exists()


def test_invalid_answers_exit_2_name_each_key_and_write_nothing(tmp_path):
    answers = write(tmp_path, "bad.toml", 'role = "homelab"\nlisten_port = 0\ntypo = 1\n'
                    '[homelab]\nendpoint = "203.0.113.7"\ndocker_subnets = ["10.0.0.0/8"]\n')
    root = tmp_path / "root"
    done = cgnat_setup("--answers", answers, "--root", root)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert f"{answers}: typo: unknown key" in lines[0]
    keys = {line.split(": ")[1] for line in lines}
    assert keys == {"typo", "listen_port", "homelab.endpoint", "homelab.docker_subnets[0]"}
    assert not root.exists()


@pytest.mark.root
def test_answers_of_the_other_role_than_the_installed_package_are_refused(tmp_path):
    root = tmp_path / "root"
    hook = root / "usr/lib/cgnat-bridge/hooks/up"
    hook.parent.mkdir(parents=True)
    hook.write_text("#!/bin/sh\n")
    before = tree(root)
    done = cgnat_setup("--answers", write(tmp_path, "h.toml", HOMELAB_TOML), "--root", root)
    assert done.returncode == 2
    assert (f"{tmp_path / 'h.toml'}: role: is 'homelab', but this host has the cgnat-bridge "
            f"package; a homelab needs cgnat-homelab") in done.stderr
    assert tree(root) == before
    # and without role in the answers, the package's role is the default
    done = cgnat_setup("--answers", write(tmp_path, "b.toml", BRIDGE_TOML.replace('role = "bridge"\n', "")),
                       "--root", root)
    assert done.returncode == 0, done.stderr
    assert "bridge configured" in done.stdout


def test_toml_syntax_error_is_invalid_input(tmp_path):
    done = cgnat_setup("--answers", "-", "--check", stdin="role = \n")
    assert done.returncode == 2
    assert done.stderr.startswith("-: (syntax): ")


@pytest.mark.root
def test_check_and_plan_write_nothing(tmp_path, bridge_answers):
    root = tmp_path / "root"
    check = cgnat_setup("--answers", bridge_answers, "--check", "--root", root)
    assert (check.returncode, check.stdout.strip()) == (0, f"{bridge_answers}: ok (bridge)")
    plan = cgnat_setup("--answers", bridge_answers, "--plan", "--root", root)
    assert plan.returncode == 0
    assert not root.exists()
    assert "PrivateKey = (hidden)" in plan.stdout and BRIDGE_KEY not in plan.stdout
    assert "-A CGNAT-wg0-PRE -i lo -j DNAT --to-destination 10.0.0.2" in plan.stdout
    assert "=== /etc/cgnat/answers.toml (mode 0644)" in plan.stdout


@pytest.mark.root
def test_plan_without_root_lists_the_services_it_starts(bridge_answers):
    plan = cgnat_setup("--answers", bridge_answers, "--plan")
    assert "systemctl enable cgnat-watchdog.service\nsystemctl restart cgnat-watchdog.service" in plan.stdout
    assert "timer" not in plan.stdout
    assert "systemctl restart wg-quick@wg0" in plan.stdout


@pytest.mark.root
def test_homelab_plan_lists_routing_commands(tmp_path):
    plan = cgnat_setup("--answers", write(tmp_path, "h.toml", HOMELAB_TOML), "--plan")
    assert plan.returncode == 0, plan.stderr
    assert "ip rule add fwmark 0x1000000/0x1000000 table 200 pref 1000" in plan.stdout
    assert "ip rule add from 10.0.0.2 table 200 pref 1001" in plan.stdout


def test_failure_is_one_line_without_traceback(tmp_path):
    done = cgnat_setup("--answers", tmp_path / "missing.toml")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("cgnat-setup: ")


def test_private_key_file_is_used_and_never_copied_to_answers(tmp_path):
    key = write(tmp_path, "h.key", HOMELAB_KEY + "\n")
    os.chmod(key, 0o600)
    answers = write(tmp_path, "h.toml", f'private_key_file = "{key}"\n' + HOMELAB_TOML)
    root = tmp_path / "root"
    assert cgnat_setup("--answers", answers, "--root", root).returncode == 0
    assert wg_conf(root)["Interface"]["PrivateKey"] == HOMELAB_KEY
    saved = (root / "etc/cgnat/answers.toml").read_text()
    assert HOMELAB_KEY not in saved and f'private_key_file = "{key}"' in saved


def test_version():
    done = cgnat_setup("--version")
    assert done.returncode == 0 and done.stdout.startswith("cgnat-setup 0.")


@pytest.mark.root
def test_teardown_under_root_stops_nothing(tmp_path, bridge_answers):
    root = tmp_path / "root"
    assert cgnat_setup("--answers", bridge_answers, "--root", root).returncode == 0
    before = tree(root)
    done = cgnat_setup("teardown", "--root", root)
    assert done.returncode == 0
    assert f"--root {root}: nothing was started there, nothing to stop" in done.stderr
    assert "systemctl" not in done.stderr and "wg-quick" not in done.stderr
    assert tree(root) == before


@pytest.mark.root
def test_bridge_says_which_dns_records_to_publish_and_writes_rules6_only_for_ipv6(tmp_path):
    four = cgnat_setup("--answers", write(tmp_path, "b4.toml", BRIDGE_TOML), "--root", tmp_path / "r4")
    assert four.returncode == 0, four.stderr
    assert "Publish A 203.0.113.7 for your names; no AAAA record" in four.stdout
    assert "etc/cgnat/wg0.rules6" not in tree(tmp_path / "r4")
    dual = BRIDGE_TOML + 'public_address6 = "2001:db8::7"\n'
    six = cgnat_setup("--answers", write(tmp_path, "b6.toml", dual), "--root", tmp_path / "r6")
    assert six.returncode == 0, six.stderr
    assert "Publish A 203.0.113.7 and AAAA 2001:db8::7 for your names" in six.stdout
    assert "-d 2001:db8::7 -p tcp -j DNAT" in tree(tmp_path / "r6")["etc/cgnat/wg0.rules6"][0].decode()
    # Turning IPv6 off again removes the rules file the hooks would otherwise load.
    off = cgnat_setup("--answers", write(tmp_path, "off.toml", dual + 'ipv6 = "off"\n'), "--root", tmp_path / "r6")
    assert off.returncode == 0, off.stderr
    assert "etc/cgnat/wg0.rules6" not in tree(tmp_path / "r6")


def test_a_dry_run_without_answers_never_opens_the_wizard(tmp_path):
    """--check and --plan write nothing; the wizard can write: without --answers or --pair
    they are a usage error (exit 2), even at a terminal (issue 20)."""
    for flag in ("--check", "--plan"):
        done = cgnat_setup(flag, "--root", tmp_path)
        assert done.returncode == 2 and f"{flag} needs --answers FILE or --pair TOKEN" in done.stderr
    assert tree(tmp_path) == {}


def test_json_goes_with_status_only(tmp_path, bridge_answers):
    done = cgnat_setup("--answers", bridge_answers, "--check", "--json")
    assert done.returncode == 2 and "--json goes with status" in done.stderr


@pytest.mark.root
def test_a_token_checked_alone_names_its_source(tmp_path):
    bridge = cgnat_setup("--answers", write(tmp_path, "b.toml", BRIDGE_TOML), "--root", tmp_path / "b")
    token = bridge.stdout.split("Pairing token: ")[1].split()[0]
    done = cgnat_setup("--pair", token, "--role", "homelab", "--check", "--root", tmp_path / "h")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "--pair: ok (homelab)\n"


@pytest.mark.root
def test_python_m_installer_runs_from_the_checkout_with_debians_python(tmp_path, bridge_answers):
    """The same program from a source checkout (issue 20): Debian's python3, which has no
    tomli-w, takes it from build/vendor (./build.sh test built it before the suite)."""
    repo = Path(__file__).resolve().parents[2]
    assert (repo / "build" / "vendor" / "tomli_w").is_dir(), "run ./build.sh first"
    done = subprocess.run(["/usr/bin/python3", "-m", "installer", "--answers", str(bridge_answers),
                           "--root", str(tmp_path / "r")], cwd=repo, capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"]})
    assert done.returncode == 0, done.stderr
    assert "Pairing token: cgnat3-" in done.stdout
