"""DNS that follows health against a real authoritative server: Debian's Knot (knotd 3.2) in a
namespace of the test, its TSIG key made by its own `keymgr -t`, and the homelab's follower
(cgnat_homelab/dns.py, from the built package) in another, driven by tests/lab/dns_driver.py
with the health a watchdog would report for two tunnels, one per bridge:

    homelab 192.0.2.10, 2001:db8:53::10 -- dns 192.0.2.53, 2001:db8:53::53 (knotd, example.test.)

wg0's bridge publishes 203.0.113.7 and 2001:db8:a::7 (addresses = [...]), wg1's its endpoint's
address 198.51.100.9. The zone starts with a stale record (192.0.2.99) of home.example.test.
"""
from __future__ import annotations

import base64
import json
import secrets

import pytest

import knotlab
import netlab

SERVER, SERVER6, HOMELAB, HOMELAB6 = "192.0.2.53", "2001:db8:53::53", "192.0.2.10", "2001:db8:53::10"
ZONE, NAME = "example.test", "home.example.test"
A, A6, B, STALE = "203.0.113.7", "2001:db8:a::7", "198.51.100.9", "192.0.2.99"
KEY_FILE = "/etc/cgnat/dns.key"
DRIVER = netlab.LAB_DIR / "dns_driver.py"


def answers(interface: str, tunnel: str, endpoint: str, addresses: str = "") -> str:
    return (f'role = "homelab"\ninterface = "{interface}"\ntunnel = "{tunnel}"\n\n'
            f'[homelab]\nendpoint = "{endpoint}"\ndocker_subnets = []\n\n'
            f'[homelab.dns]\nserver = "{SERVER}"\nzone = "{ZONE}"\nname = "{NAME}"\n'
            f'key_file = "{KEY_FILE}"\n{addresses}')


@pytest.fixture
def dns_lab(request, packages, tmp_path):
    """The server (knotd answering, the zone loaded; its log in tmp_path) and the homelab with
    both tunnels' answers and the key: (server node, homelab node, key file text, the
    package's sys.path)."""
    nodes = [netlab.Node("dns"), netlab.Node("homelab")]
    request.addfinalizer(lambda: [node.stop() for node in reversed(nodes)])
    server, homelab = nodes
    for node in nodes:
        node.start(rp_filter=0)
    server.sh(f"ip link add eth0 type veth peer name eth0 netns {homelab.pid}; ip link set eth0 up;"
              f"ip addr add {SERVER}/24 dev eth0; ip addr add {SERVER6}/64 dev eth0")
    homelab.sh(f"ip link set eth0 up; ip addr add {HOMELAB}/24 dev eth0; ip addr add {HOMELAB6}/64 dev eth0")
    key = knotlab.serve(server, [SERVER, SERVER6], ZONE, NAME, [STALE], tmp_path / "knotd.log")
    homelab.write(KEY_FILE, key, mode=0o600)
    homelab.write("/etc/cgnat/answers.toml", answers("wg0", "10.0.0.0/24", f"{A}:51820",
                                                     f'addresses = ["{A}", "{A6}"]\n'))
    homelab.write("/etc/cgnat/tunnels/wg1.toml", answers("wg1", "10.0.1.0/24", f"{B}:51820"))
    lib = packages["homelab"] / "usr/lib/cgnat-homelab"
    return server, homelab, key, f"{lib}/python:{lib}/vendor"     # what /usr/sbin/cgnat-setup puts first


def drive(homelab: netlab.Node, python: str, runs: list[dict]) -> list[dict]:
    """The follower's runs in one process (its memory of what it published lasts), each
    answered by what the server then says."""
    stdin = "".join(json.dumps(run) + "\n" for run in runs)
    out = homelab.sh(f"PYTHONPATH={python} /usr/bin/python3 {DRIVER} {SERVER6} {NAME} "
                     f"/etc/cgnat/answers.toml /etc/cgnat/tunnels/wg1.toml", input=stdin, timeout=60)
    return [json.loads(line) for line in out.splitlines()]


def test_the_records_follow_the_bridges_health(dns_lab):
    server, homelab, key, python = dns_lab
    both, a_broken, none = {"wg0": True, "wg1": True}, {"wg0": False, "wg1": True}, {"wg0": False, "wg1": False}
    secret = key.split("secret: ")[1].strip()
    wrong_key = key.replace(secret, base64.b64encode(secrets.token_bytes(32)).decode())
    every = sorted([A, A6, B])
    runs = [
        {"healthy": both, "now": 0, "expect": every},            # published once: the stale record goes
        {"healthy": both, "now": 2, "expect": every},            # no change: no update
        {"healthy": a_broken, "now": 4, "expect": [B]},          # A's chain broke: its records withdrawn
        {"healthy": none, "now": 6, "expect": [B]},              # none serves: the name keeps its record
        {"healthy": both, "now": 8, "expect": every},            # A is back
        {"healthy": a_broken, "now": 10, "expect": every, "key_file": [KEY_FILE, wrong_key]},   # refused
        {"healthy": a_broken, "now": 12, "expect": every, "key_file": [KEY_FILE, key]},  # waits its turn
        {"healthy": a_broken, "now": 14, "expect": [B]},         # retried, taken
    ]
    results = drive(homelab, python, runs)
    assert [r["records"] for r in results] == [run["expect"] for run in runs]
    serials = [r["serial"] for r in results]
    assert serials[0] > 1 and serials[1] == serials[0]                      # one update, then none
    assert serials[2] > serials[1] and serials[3] == serials[2] and serials[4] > serials[3]
    assert serials[5] == serials[6] == serials[4] and serials[7] > serials[6]   # refused: nothing changed
    logs = [r["log"] for r in results]
    assert logs[0] == [f"cgnat-watchdog: dns: {NAME}. now {B} {A6} {A}"]
    assert logs[2] == [f"cgnat-watchdog: dns: {NAME}. now {B} (withdrew {A6} {A})"]
    assert logs[1] == logs[3] == logs[6] == []
    (refused,) = logs[5]
    assert refused.startswith(f"cgnat-watchdog: dns: update of {NAME}. at {SERVER} failed: ")
    assert "the server refused the key (BADSIG)" in refused and refused.endswith("; trying again in 4 s")
    assert secret not in refused
    assert logs[7] == [f"cgnat-watchdog: dns: {NAME}. now {B}"]
    withdrawal = results[2]["seconds"]
    print(f"\nfrom follow() told of A's broken chain to the server answering without A: "
          f"{withdrawal * 1000:.1f} ms (after a retry: {results[7]['seconds'] * 1000:.1f} ms)")
