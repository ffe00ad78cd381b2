"""[homelab.dns]: its keys' grammar and meaning, the TSIG key file, and the follower's choices
(which addresses, which update, when to retry), with the server replaced by a recorder."""
from __future__ import annotations

import base64
import subprocess
import sys

import pytest

from cgnat_homelab import dns, tsig_key
from cgnat_homelab.dns import Follower, Target, Update
from installer import grammar
from installer.answers import to_toml
from installer.errors import InvalidAnswers
from installer.validate import load_answers
from unitdata import REPO

SECRET = base64.b64encode(bytes(range(32))).decode()
BIND_KEY = f'key "home-example-org" {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}";\n}};\n'
KNOT_KEY = (f"# hmac-sha256:home.example.org:{SECRET}\nkey:\n  - id: home.example.org\n"
            f"    algorithm: hmac-sha256\n    secret: {SECRET}\n")


@pytest.fixture
def key_path(tmp_path):
    path = tmp_path / "dns.key"
    path.write_text(BIND_KEY)
    path.chmod(0o600)
    return path


def homelab(dns_keys: dict | None, endpoint="203.0.113.7:51820", interface="wg0") -> dict:
    data = {"role": "homelab", "interface": interface, "tunnel": "10.0.0.0/24",
            "homelab": {"endpoint": endpoint, "docker_subnets": []}}
    if dns_keys is not None:
        data["homelab"]["dns"] = dns_keys
    return data


def dns_keys(key_path, **more) -> dict:
    return {"server": "192.0.2.53", "zone": "example.org", "name": "home.example.org",
            "key_file": str(key_path), **more}


def problems(data, facts=None) -> dict[str, str]:
    with pytest.raises(InvalidAnswers) as caught:
        load_answers(data, None, facts)
    return {p.key: p.message for p in caught.value.problems}


# --- the key file ------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [BIND_KEY, KNOT_KEY, "# made by tsig-keygen\n" + BIND_KEY.replace("\t", "    ")])
def test_both_tools_key_files_are_read(text):
    key = tsig_key.parse(text, "/etc/cgnat/dns.key")
    assert (key.algorithm, key.secret) == ("hmac-sha256", bytes(range(32)))
    assert key.name in ("home-example-org", "home.example.org")
    assert SECRET not in repr(key)


@pytest.mark.parametrize("text, message", [
    (BIND_KEY.replace("hmac-sha256", "hmac-md5"), "algorithm hmac-md5 is not one of"),
    (BIND_KEY.replace(SECRET, "not*base64"), "is not a TSIG key"),
    (BIND_KEY.replace(SECRET, "AAAA"), "shorter than 16"),
    (BIND_KEY.replace(SECRET, "A" * 42 + "="), "not base64"),
    (BIND_KEY + "include \"/etc/passwd\";\n", "is not a TSIG key"),
    (BIND_KEY.replace(";\n}", "\n}"), "is not a TSIG key"),
    (KNOT_KEY + "  - id: second\n", "is not a TSIG key"),
    ("", "is not a TSIG key"),
])
def test_anything_else_in_a_key_file_is_refused_without_showing_it(text, message):
    with pytest.raises(tsig_key.KeyFileError) as caught:
        tsig_key.parse(text, "/etc/cgnat/dns.key")
    assert message in str(caught.value) and "/etc/cgnat/dns.key" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_the_key_file_is_roots_and_may_be_shared_with_the_dns_servers_group(key_path):
    key_path.chmod(0o640)
    assert tsig_key.read(str(key_path)).secret == bytes(range(32))
    key_path.chmod(0o644)
    with pytest.raises(tsig_key.KeyFileError, match="readable by others"):
        tsig_key.read(str(key_path))


# --- the keys ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, parsed", [
    ("192.0.2.53", ("192.0.2.53", 53)), ("192.0.2.53:5353", ("192.0.2.53", 5353)),
    ("2001:db8::53", ("2001:db8::53", 53)), ("[2001:db8::53]:5353", ("2001:db8::53", 5353)),
    ("ns1.example.org", ("ns1.example.org", 53)), ("127.0.0.1", ("127.0.0.1", 53)),
    ("0.0.0.0", None), ("ff02::1", None), ("ns1.example.org:0", None), ("192.0.2.53:053", None),
    ("2001:db8::53:5353x", None), ("ns1 .example.org", None), ("192.0.2.53\n", None), ("1.2.3", None),
])
def test_a_server_is_an_address_or_name_with_an_optional_port(text, parsed):
    assert grammar.dns_server(text) == parsed


def test_valid_dns_keys_pass_and_replay(key_path, facts):
    answers = load_answers(homelab(dns_keys(key_path, ttl=30, addresses=["203.0.113.7", "2001:db8::7"])), None, facts)
    assert answers.homelab.dns.addresses == ["203.0.113.7", "2001:db8::7"]
    saved = to_toml(answers)
    assert "[homelab.dns]" in saved and "ttl = 30" in saved and SECRET not in saved


def test_without_the_table_there_is_no_dns_and_none_is_saved():
    answers = load_answers(homelab(None), None, None)
    assert answers.homelab.dns is None and "dns" not in to_toml(answers)
    assert Follower.from_answers([answers]) is None


def test_the_table_needs_where_and_what_and_the_key():
    found = problems(homelab({"zone": "example.org"}))
    assert {key for key, message in found.items() if "is required with [homelab.dns]" in message} == {
        "homelab.dns.server", "homelab.dns.name", "homelab.dns.key_file"}


@pytest.mark.parametrize("keys, key, message", [
    ({"server": "192.0.2.53:99999"}, "homelab.dns.server", "is not an address or host name"),
    ({"zone": "example..org"}, "homelab.dns.zone", "is not a DNS name"),
    ({"name": "home.example.net"}, "homelab.dns.name", "is not in the zone example.org"),
    ({"key_file": "dns.key"}, "homelab.dns.key_file", "must be an absolute path"),
    ({"ttl": 0}, "homelab.dns.ttl", "must be 1 or more"),
    ({"addresses": []}, "homelab.dns.addresses", "an empty list publishes nothing"),
    ({"addresses": ["fe80::1"]}, "homelab.dns.addresses[0]", "link-local"),
    ({"addresses": ["203.0.113.7", "203.0.113.7"]}, "homelab.dns.addresses[1]", "listed twice"),
    ({"addresses": ["203.0.113.7/32"]}, "homelab.dns.addresses[0]", "is not an IPv4 or IPv6 address"),
    ({"addresses": ["203.0.113.7\u202e"]}, "homelab.dns.addresses", "U+202E"),
    ({"secret": SECRET}, "homelab.dns.secret", "unknown key"),
])
def test_bad_dns_keys_are_named(key_path, keys, key, message):
    found = problems(homelab({**dns_keys(key_path), **keys}))
    assert message in found[key]
    assert all(SECRET not in text for text in found.values())


def test_a_named_endpoint_needs_the_addresses_to_publish(key_path):
    found = problems(homelab(dns_keys(key_path), endpoint="bridge.example.org:51820"))
    assert "addresses = [\"203.0.113.7\"" in found["homelab.dns.addresses"]
    load_answers(homelab(dns_keys(key_path, addresses=["203.0.113.7"]), endpoint="bridge.example.org:51820"), None, None)


def test_setup_reads_the_key_file_the_watchdog_does_not(key_path, facts):
    key_path.write_text(BIND_KEY.replace("hmac-sha256", "hmac-md5"))
    assert "hmac-md5" in problems(homelab(dns_keys(key_path)), facts)["homelab.dns.key_file"]
    load_answers(homelab(dns_keys(key_path)), None, None)     # facts=None: the watchdog's sandbox


# --- the choices (pure) --------------------------------------------------------------------------

A, A6, B = "203.0.113.7", "2001:db8::7", "198.51.100.9"
ADDRESSES = {"wg0": (A, A6), "wg1": (B,)}


@pytest.mark.parametrize("healthy, want", [
    ({"wg0": True, "wg1": True}, {A, A6, B}), ({"wg0": False, "wg1": True}, {B}),
    ({"wg0": True}, {A, A6}), ({"wg0": False, "wg1": False}, None), ({}, None),
])
def test_the_wanted_records_are_the_serving_bridges(healthy, want):
    assert dns.wanted(ADDRESSES, healthy) == (None if want is None else frozenset(want))


def test_an_update_goes_out_only_for_a_change_and_never_empties_the_name():
    assert dns.next_update(frozenset({A, B}), frozenset({A, B})) is None
    assert dns.next_update(frozenset({A, B}), None) is None                  # nothing serves: leave it
    assert dns.next_update(None, frozenset({A})) == Update(True, frozenset(), frozenset({A}))   # publish once
    assert dns.next_update(frozenset({A, B}), frozenset({B})) == Update(False, frozenset({A}), frozenset({B}))
    assert dns.next_update(frozenset({B}), frozenset({A, B})) == Update(False, frozenset(), frozenset({A, B}))


def test_retries_wait_longer_and_longer_up_to_a_bound():
    delays = [dns.retry_delay(n) for n in range(1, 12)]
    assert delays[:4] == [4, 8, 16, 32] and delays[-1] == dns.RETRY_MAX and delays == sorted(delays)


def test_the_endpoints_address_is_published_unless_addresses_are_given(key_path):
    one = load_answers(homelab(dns_keys(key_path), endpoint="[2001:db8::7]:51820"), None, None)
    assert dns.bridge_addresses(one.homelab.dns, one.homelab.endpoint) == ("2001:db8::7",)
    one.homelab.dns.addresses = [A, A6]
    assert dns.bridge_addresses(one.homelab.dns, one.homelab.endpoint) == (A, A6)


# --- the follower, its server replaced by a recorder ---------------------------------------------

class Server:
    """Takes updates like a server would (replace, delete, add), or fails as told."""

    def __init__(self):
        self.records: set[str] = {"192.0.2.99"}     # a stale record from before
        self.updates: list[Update] = []
        self.failure: Exception | None = None

    def send(self, target, key, ttl, update):
        assert (target, key.algorithm, ttl) == (Target("192.0.2.53", 53, "example.org.", "home.example.org."), "hmac-sha256", 60)
        self.updates.append(update)
        if self.failure is not None:
            raise self.failure
        self.records = (set() if update.replace else self.records - update.withdraw) | update.put


@pytest.fixture
def follower(key_path):
    tunnels = [load_answers(homelab(dns_keys(key_path, addresses=[A, A6])), None, None),
               load_answers(homelab(dns_keys(key_path), endpoint=f"{B}:51820", interface="wg1"), None, None),
               load_answers(homelab(None, interface="wg2"), None, None)]
    follower = Follower.from_answers(tunnels)
    server = Server()
    (record_set,) = follower.record_sets
    assert record_set.addresses == {"wg0": (A, A6), "wg1": (B,)}
    record_set.send = server.send
    return follower, server


def test_the_records_follow_health(follower, capsys):
    follower, server = follower
    both, a_broken, none = {"wg0": True, "wg1": True, "wg2": True}, {"wg0": False, "wg1": True}, {}
    follower.follow(both, 0)
    assert server.records == {A, A6, B} and server.updates[-1].replace       # published once, stale one gone
    follower.follow(both, 2)
    assert len(server.updates) == 1                                          # no change, no update
    follower.follow(a_broken, 4)
    assert server.records == {B} and server.updates[-1].withdraw == {A, A6}
    follower.follow(none, 6)
    assert server.records == {B} and len(server.updates) == 2               # never empty
    follower.follow(both, 8)
    assert server.records == {A, A6, B} and len(server.updates) == 3
    assert capsys.readouterr().err.splitlines() == [
        f"cgnat-watchdog: dns: home.example.org. now 198.51.100.9 {A6} {A}",
        f"cgnat-watchdog: dns: home.example.org. now 198.51.100.9 (withdrew {A6} {A})",
        f"cgnat-watchdog: dns: home.example.org. now 198.51.100.9 {A6} {A}"]


def test_a_failed_update_is_one_line_and_retried_later_whole(follower, capsys):
    follower, server = follower
    follower.follow({"wg0": True, "wg1": True}, 0)
    server.failure = dns.UpdateFailed("REFUSED")
    follower.follow({"wg1": True}, 10)
    assert server.records == {A, A6, B}
    assert capsys.readouterr().err.splitlines()[-1] == (
        "cgnat-watchdog: dns: update of home.example.org. at 192.0.2.53 failed: REFUSED; trying again in 4 s")
    follower.follow({"wg1": True}, 13)
    assert len(server.updates) == 2                                          # waits its turn
    follower.follow({"wg1": True}, 14)
    assert len(server.updates) == 3 and "trying again in 8 s" in capsys.readouterr().err
    server.failure = None
    follower.follow({"wg1": True}, 21)
    assert len(server.updates) == 3
    follower.follow({"wg1": True}, 22)
    assert server.records == {B} and server.updates[-1].replace              # outcome unknown: whole
    follower.follow({"wg1": True}, 24)
    assert len(server.updates) == 4


@pytest.mark.parametrize("failure", [OSError("Connection refused"), RuntimeError("a bug"), None])
def test_nothing_raises_into_the_watchdog(follower, key_path, capsys, failure):
    follower, server = follower
    server.failure = failure
    if failure is None:
        key_path.chmod(0o644)
    follower.follow({"wg0": True}, 0)
    (line,) = capsys.readouterr().err.splitlines()
    assert "failed: " in line and "trying again in 4 s" in line and SECRET not in line
    assert ("readable by others" if failure is None else str(failure)) in line


def test_tunnels_naming_other_names_keep_their_own_records(key_path):
    tunnels = [load_answers(homelab(dns_keys(key_path)), None, None),
               load_answers(homelab(dns_keys(key_path, name="other.example.org"), endpoint=f"{B}:51820",
                                    interface="wg1"), None, None)]
    names = [(s.target.name, s.addresses) for s in Follower.from_answers(tunnels).record_sets]
    assert names == [("home.example.org.", {"wg0": (A,)}), ("other.example.org.", {"wg1": (B,)})]


def test_setup_and_check_never_load_dnspython():
    """Only the watchdog's first update loads dnspython: `cgnat-setup --check` stays light."""
    code = "import sys, cgnat_homelab.checks, cgnat_homelab.dns; print('dns.update' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
