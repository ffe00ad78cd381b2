"""What a new user might paste or type, hostile or mistaken: every case is refused with
exit 2 and `FILE: key: message`, and nothing is written."""
import subprocess
import sys

import pytest
import tomli_w

from clihelp import REPO, cgnat_setup
from filetree import tree
from installer.detect import HostFacts
from installer.errors import InvalidAnswers
from installer.pairing import PairingToken
from installer.validate import load_answers

from unitdata import PEER_PUBLIC

HOMELAB = 'role = "homelab"\n[homelab]\nendpoint = "203.0.113.7:51820"\ndocker_subnets = []\n'
BRIDGE = 'role = "bridge"\n[bridge]\npublic_interface = "lo"\npublic_address = "203.0.113.7"\n'
INJECTED = "[fe80::1%lo]:51820\n[Interface]\nPreUp = id > /tmp/cgnat-pwned"


def refused(tmp_path, *args, stdin=None, source=None):
    """Run with --root; assert exit 2, only `SOURCE: key: message` lines, nothing written."""
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    done = cgnat_setup(*args, "--root", root, stdin=stdin)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert lines and all(line.count(": ") >= 2 for line in lines), done.stderr
    if source is not None:
        assert all(line.startswith(f"{source}: ") for line in lines), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert tree(root) == {}
    return lines


def answers_file(tmp_path, text: str | bytes):
    path = tmp_path / "answers.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_a_token_with_wg_quick_directives_in_its_endpoint_is_refused(tmp_path):
    token = PairingToken("bridge", PEER_PUBLIC, INJECTED, "10.0.0.0/24").encode()
    for extra in (["--check"], ["--plan"], []):
        lines = refused(tmp_path, "--role", "homelab", "--pair", token, *extra, source="--pair")
        assert any(line.startswith("--pair: homelab.endpoint: ") for line in lines)


def test_a_token_endpoint_without_a_port_is_invalid_input(tmp_path):
    token = PairingToken("bridge", PEER_PUBLIC, "203.0.113.7", "10.0.0.0/24").encode()
    lines = refused(tmp_path, "--role", "homelab", "--pair", token)
    assert any("homelab.endpoint: " in line and "has no port" in line for line in lines)


def test_a_token_of_unknown_role_or_bad_text_is_invalid_input(tmp_path):
    token = PairingToken("router", PEER_PUBLIC, "", "10.0.0.0/24").encode()
    assert refused(tmp_path, "--role", "bridge", "--pair", token)[0].startswith("--pair: pair: ")


@pytest.mark.parametrize("tunnel6, address6, key", [
    ("fd00::/64\n[Interface]\nPreUp = id", "", "tunnel6"), ("fd00::/64", "2001:db8::7\nPreUp = id", "pair")])
def test_a_cgnat3_tokens_ipv6_fields_are_refused_when_damaged(tmp_path, tunnel6, address6, key):
    token = PairingToken("bridge", PEER_PUBLIC, "203.0.113.7:51820", "10.0.0.0/24", "2222", "all",
                         tunnel6, address6).encode()
    lines = refused(tmp_path, "--role", "homelab", "--pair", token, source="--pair")
    assert any(line.startswith(f"--pair: {key}: ") for line in lines), lines


@pytest.mark.parametrize("endpoint", [
    "203.0.113.7:51820\n", "203.0.113.7:٥١٨٢٠", "203.0.113.7:051820", "[fe80::1%lo]:51820",
    "bridge.example.org\n:51820", "203.0.113.7", "[2001:db8::1]:51820\n"])
def test_endpoints_that_are_not_exactly_host_and_port(tmp_path, endpoint):
    text = HOMELAB.replace("203.0.113.7:51820", endpoint.replace("\n", "\\n"))
    lines = refused(tmp_path, "--answers", answers_file(tmp_path, text))
    assert any(": homelab.endpoint: " in line for line in lines), lines


@pytest.mark.parametrize("key, spec", [
    ("forward", "tcp/080"), ("forward", "tcp/04256"), ("keep_local", "udp/0053"),
    ("forward", "tcp/٨٠"), ("forward", "tcp/80\\n"), ("forward", "tcp/80-"), ("keep_local", "tcp/+80")])
def test_port_specs_with_leading_zeros_or_foreign_digits(tmp_path, key, spec):
    text = BRIDGE + f'{key} = ["{spec}"]\n'
    lines = refused(tmp_path, "--answers", answers_file(tmp_path, text))
    assert any(f": bridge.{key}[0]: " in line for line in lines), lines


@pytest.mark.parametrize("name", ["wg+", "all", "default", "-h", "wg0\\n", "wg/0", "wg:0", "wg%0", "wg٠"])
def test_interface_names_iptables_or_the_kernel_would_misread(tmp_path, name):
    for text, key in ((f'interface = "{name}"\n' + BRIDGE, "interface"),
                      (BRIDGE.replace('"lo"', f'"{name}"'), "bridge.public_interface")):
        lines = refused(tmp_path, "--answers", answers_file(tmp_path, text))
        assert any(f": {key}: " in line for line in lines), lines


@pytest.mark.parametrize("tunnel", ["127.0.0.0/24", "224.0.0.0/24", "169.254.0.0/24", "0.0.0.0/24",
                                    "240.0.0.0/24", "010.0.0.0/24", "10.0.0.0/024"])
def test_tunnels_in_networks_that_cannot_carry_one(tmp_path, tunnel):
    lines = refused(tmp_path, "--answers", answers_file(tmp_path, f'tunnel = "{tunnel}"\n' + BRIDGE))
    assert any(": tunnel: " in line for line in lines), lines


@pytest.mark.parametrize("address", ["0.0.0.0", "127.0.0.1", "224.0.0.1", "203.0.113.07", "203.0.113.7 "])
def test_public_addresses_that_are_not_public(tmp_path, address):
    text = BRIDGE.replace("203.0.113.7", address)
    lines = refused(tmp_path, "--answers", answers_file(tmp_path, text))
    assert any(": bridge.public_address: " in line for line in lines), lines


@pytest.mark.parametrize("address", [
    "fe80::1", "fe80::1%ens3", "::1", "::", "ff02::1", "::ffff:203.0.113.7", "fd00::7",
    "2001:db8::7/64", "2001:db8::7 ", "2001:db8::g", "[2001:db8::7]", "2001:db8::1:2:3:4:5:6:7"])
def test_public_ipv6_addresses_that_are_not_global_unicast(tmp_path, address):
    text = BRIDGE + f'public_address6 = "{address}"\n'
    lines = refused(tmp_path, "--answers", answers_file(tmp_path, text))
    assert any(": bridge.public_address6: " in line for line in lines), lines


@pytest.mark.parametrize("tunnel6", [
    "2001:db8::/64", "fd00::/65", "fe80::/64", "fd00::", "fd00::/064", "fd00::/64\n",
    "fd00::1%lo/64", "::ffff:10.0.0.0/120", "fd00::/-1", "fd63:676e:6174::/128"])
def test_tunnel6_that_is_not_a_ula_of_64_or_shorter(tmp_path, tunnel6):
    data = {"role": "homelab", "tunnel6": tunnel6, "homelab": {"endpoint": "203.0.113.7:51820"}}
    lines = refused(tmp_path, "--answers", answers_file(tmp_path, tomli_w.dumps(data)))
    assert any(": tunnel6: " in line for line in lines), lines


@pytest.mark.parametrize("key, value", [
    ("homelab.watchdog.check_host", "example.org\x00"), ("homelab.watchdog.restart_command", "true\nreboot"),
    ("homelab.fwmark", "0x1000000\t"), ("homelab.endpoint", "203.0.113.7:51820\r"),
    ("peer_public_key", PEER_PUBLIC + "\x1b"), ("homelab.fwmark", "١٦٧٧٧٢١٦"),
    ("homelab.docker_subnets", ["172.19.0.0/16\n"])])
def test_control_characters_and_foreign_digits_in_any_string(tmp_path, key, value):
    data = {"role": "homelab", "homelab": {"endpoint": "203.0.113.7:51820", "watchdog": {}}}
    *tables, name = key.split(".")
    node = data
    for table in tables:
        node = node[table]
    node[name] = value
    lines = refused(tmp_path, "--answers", answers_file(tmp_path, tomli_w.dumps(data)))
    assert any(f": {key}: " in line for line in lines), lines


def test_invalid_utf8_is_invalid_input(tmp_path):
    path = answers_file(tmp_path, HOMELAB.encode() + b"# \xff\n")
    assert refused(tmp_path, "--answers", path) == [
        f"{path}: (syntax): not UTF-8 text (byte {len(HOMELAB) + 2}: b'\\xff')"]


def test_invalid_utf8_on_standard_input_is_invalid_input(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    done = subprocess.run([sys.executable, "-m", "installer", "--answers", "-", "--root", str(root)],
                          cwd=REPO, input=b"role = \"homelab\"\n\xc3\x28\n", capture_output=True)
    assert done.returncode == 2 and done.stderr.decode().startswith("-: (syntax): not UTF-8 text")
    assert tree(root) == {}


def test_deeply_nested_arrays_are_invalid_input(tmp_path):
    text = HOMELAB + "x = " + "[" * 50000 + "]" * 50000 + "\n"
    lines = refused(tmp_path, "--answers", answers_file(tmp_path, text))
    assert lines == [f"{tmp_path / 'answers.toml'}: (syntax): nested too deeply"]


def test_a_bridge_without_an_ipv4_address_to_put_in_its_token_is_refused():
    # Else its token would tell the homelab to dial "None:51820".
    facts = HostFacts(interfaces={"ens3": ["2001:db8::7/64"]}, default_interface="ens3")
    with pytest.raises(InvalidAnswers) as raised:
        load_answers({"role": "bridge"}, None, facts)
    assert [(p.key, p.message) for p in raised.value.problems] == [
        ("bridge.public_address", "ens3 has no IPv4 address to detect it from; set it")]


def test_answers_from_dev_zero_or_with_a_5000_digit_number_are_syntax_problems(tmp_path):
    """Issue 18: read unbounded, /dev/zero was an OOM; tomllib's digit limit a traceback."""
    lines = refused(tmp_path, "--answers", "/dev/zero", "--check", source="/dev/zero")
    assert lines[0].startswith("/dev/zero: (syntax): longer than 1048576 bytes")
    path = answers_file(tmp_path, HOMELAB + "keepalive = " + "7" * 5000 + "\n")
    assert refused(tmp_path, "--answers", path, "--check") == [
        f"{path}: (syntax): a number is too long to read (more than 4300 digits)"]


def test_a_restart_interval_of_309_digits_is_exit_2_naming_the_key(tmp_path):
    path = answers_file(tmp_path, HOMELAB + "[homelab.watchdog]\nrestart_interval = 1" + "0" * 309 + "\n")
    assert refused(tmp_path, "--answers", path, "--check") == [
        f"{path}: homelab.watchdog.restart_interval: must be at most 604800 seconds (a week), "
        f"not a number of 310 digits"]
