"""Two bridges at once on booted hosts (issue 21): bridge A, bridge B and the homelab, each a
booted Debian container, the packages installed from dist/ with apt, the homelab paired with
both bridges by their tokens (`cgnat-setup --pair`: wg0 for A, wg1 for B) and each bridge
with the homelab's token for its tunnel. A client reaches the homelab's service through each
bridge with its real address (TCP and UDP); a stream through B runs while A reboots: it loses
nothing, the homelab's wg1 keeps its peer and is never restarted, and A serves again after it
is back (the seconds are printed).

    client 203.0.113.10 -- inet -- bridge A [booted] ens3 198.51.100.1   (tunnel 10.0.0.0/24, wg0)
                             |---- bridge B [booted] ens3 198.51.100.2   (tunnel 10.0.1.0/24, wg1)
                             \\-- cgnat 192.0.2.2 (MASQUERADE) -- homelab [booted] eth0 100.64.0.2

One suite, Debian 13 (its root is cached by the other system tests too): the suite's time.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import time

import pytest

import bootlab
import netlab
from bootlab import LabError, wait_for

SUITE = "trixie"
B = "bridge-b"                      # bridge B's node and host
BRIDGE_B = "198.51.100.2"           # its public address, a point-to-point link to the inet's b1
INET_B_SIDE = "198.51.100.253"
BRIDGE_B6, INET_B_SIDE6 = "2001:db8:d::1", "2001:db8:d::254"
B_TUNNEL = 'tunnel = "10.0.1.0/24"\ntunnel6 = "fd63:676e:6174:1::/64"\n'
UDP_PORT = 5300                     # the homelab's UDP echo of the sender's address
STREAM_PORT = 9000                  # the homelab's numbered stream
STREAM_RATE = 100                   # lines a second, 1 KiB each
RECOVERY_BOUND = 60                 # seconds from A's boot to A serving again
MAX_STALL = 5                       # seconds without a line of B's stream (wireguard-go drops a packet now and then)

# The homelab's stream: the client's address as it sees it, then numbered 1 KiB lines until
# the client closes (socat runs one per connection and sets SOCAT_PEERADDR).
STREAM = f"""import os, sys, time
out = sys.stdout.buffer
out.write(os.environ["SOCAT_PEERADDR"].encode() + b"\\n")
n = 0
while True:
    out.write(b"%d %s\\n" % (n, b"x" * 1000))
    out.flush()
    n += 1
    time.sleep({1 / STREAM_RATE})
"""

# The client's end: reads the stream until the stop file exists; what it got, as JSON.
READER = """import json, os, socket, sys, time
host, port, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
got = {"peer": None, "lines": 0, "in_order": True, "max_gap": 0.0, "ended": None}
started = time.monotonic()
try:
    stream = socket.create_connection((host, port), timeout=10)
    stream.settimeout(30)
    lines = stream.makefile("rb")
    got["peer"] = lines.readline().decode().strip()
    last = time.monotonic()
    while not os.path.exists(stop):
        line = lines.readline()
        now = time.monotonic()
        if not line:
            got["ended"] = "closed by the homelab"
            break
        got["max_gap"] = max(got["max_gap"], now - last)
        last = now
        if int(line.split()[0]) != got["lines"]:
            got["in_order"] = False
        got["lines"] += 1
except (OSError, ValueError) as error:
    got["ended"] = repr(error)
got["seconds"] = time.monotonic() - started
print(json.dumps(got), flush=True)
"""


class TwoBridgeLab(bootlab.BootLab):
    """BootLab's topology with bridge B beside bridge A on the Internet side."""

    NODES = bootlab.BootLab.NODES + (B,)

    def wire(self) -> None:
        super().wire()
        self.link("inet", "b1", B, "ens3")
        self.nodes["inet"].sh(f"ip addr add {INET_B_SIDE} peer {BRIDGE_B} dev b1;"
                              f"ip -6 addr add {INET_B_SIDE6}/64 dev b1")
        self.nodes[B].sh(f"ip addr add {BRIDGE_B} peer {INET_B_SIDE} dev ens3; ip route add default via {INET_B_SIDE};"
                         f"ip -6 addr add {BRIDGE_B6}/64 dev ens3; ip -6 route add default via {INET_B_SIDE6}")

    def sees(self, bridge: str, timeout: float = 5) -> str | None:
        return self.tcp_ask("client", bridge, bootlab.SERVICE_PORT, timeout=timeout)

    def wait_serving_through(self, bridge: str, timeout: float) -> float:
        start = time.monotonic()
        wait_for(lambda: self.sees(bridge, timeout=3) == netlab.CLIENT, timeout,
                 f"the client to reach the homelab's service through {bridge}", interval=0.2)
        return time.monotonic() - start


def installed_and_paired(lab: TwoBridgeLab, debs) -> None:
    """Bridge A and bridge B (its own tunnel) preseeded; the homelab preseeded without a peer,
    then paired with A's token and B's; each bridge paired with the homelab's token for it."""
    bridges = {"bridge": netlab.BRIDGE_PUBLIC, B: BRIDGE_B}
    for role in bridges:
        answers = lab.answers("bridge")
        if role == B:
            answers = answers.replace('tunnel = "10.0.0.0/24"\n', B_TUNNEL)
            assert B_TUNNEL in answers, answers
        lab.hosts[role].write("/etc/cgnat/answers.toml", answers)
        lab.note_setup(role, lab.apt_install(role, debs["bridge"]))
    homelab = lab.hosts["homelab"]
    homelab.write("/etc/cgnat/answers.toml", lab.answers("homelab"))
    lab.apt_install("homelab", debs["homelab"])
    tunnel_of = {"bridge": "wg0", B: "wg1"}
    for role, address in bridges.items():
        out = homelab.sh(f"cgnat-setup --pair {shlex.quote(lab.tokens[role])}")
        assert homelab.ok(f"grep -qx 'Endpoint = {address}:{netlab.WG_PORT}' /etc/wireguard/{tunnel_of[role]}.conf"), out
        lab.note_setup(f"homelab {tunnel_of[role]}", out)
    for role in bridges:
        lab.note_setup(role, lab.hosts[role].sh(
            f"cgnat-setup --pair {shlex.quote(lab.tokens['homelab ' + tunnel_of[role]])}"))


@pytest.fixture(scope="module")
def lab(debs):
    started = time.monotonic()
    lab = TwoBridgeLab(debs, SUITE)
    try:
        lab.build()
        lab.boot(("bridge", B, "homelab"))
        lab.prepare_hosts()
        installed_and_paired(lab, debs)
        homelab = lab.hosts["homelab"]
        homelab.put(netlab.UDP_PEER, "/root/udp_peer.py")
        homelab.write("/root/stream.py", STREAM)
        homelab.sh(f"systemd-run --unit=lab-udp python3 /root/udp_peer.py {UDP_PORT};"
                   f"systemd-run --unit=lab-stream socat TCP-LISTEN:{STREAM_PORT},fork,reuseaddr "
                   "'EXEC:python3 /root/stream.py'")
        wait_for(lambda: f":{UDP_PORT} " in homelab.sh("ss -Hlun") and f":{STREAM_PORT} " in homelab.sh("ss -Hltn"),
                 30, "the homelab's UDP echo and stream")
        lab.setup_seconds = time.monotonic() - started
        yield lab
    finally:
        lab.close()


def tunnel_state(homelab, interface: str) -> dict:
    """What says a tunnel of the homelab was left alone: its unit's run, its peer and its link."""
    return {"unit": homelab.sh(f"systemctl show --value -p ActiveState -p InvocationID wg-quick@{interface}").split(),
            "peers": homelab.sh(f"wg show {interface} peers").split(),
            "link": homelab.sh(f"ip -o link show {interface} | cut -d' ' -f1-2")}


def test_two_bridges_serve_and_one_reboots_while_the_other_streams(lab, capsys):
    homelab, bridge_a, bridge_b = lab.hosts["homelab"], lab.hosts["bridge"], lab.hosts[B]
    bridges = {"A": netlab.BRIDGE_PUBLIC, "B": BRIDGE_B}
    for interface, bridge in (("wg0", "bridge"), ("wg1", B)):
        assert homelab.unit(f"wg-quick@{interface}.service") == ("enabled", "active"), interface
        assert homelab.sh(f"wg show {interface} peers").split() == [lab.public_keys[bridge]], interface
        assert lab.hosts[bridge].sh("wg show wg0 peers").split() == [lab.public_keys[f"homelab {interface}"]], bridge
    assert homelab.ok("test -f /etc/cgnat/tunnels/wg1.toml")

    # Through each bridge the service sees the client's own address, over TCP and UDP.
    for name, address in bridges.items():
        lab.wait_serving_through(address, timeout=120)
        assert lab.udp_ask("client", address, UDP_PORT) == netlab.CLIENT, f"UDP through bridge {name}"
    assert lab.sees(bridges["A"]) == lab.sees(bridges["B"]) == netlab.CLIENT

    # A stream through B, then A rebooted under it.
    stop = lab.workdir / "stop-stream"
    reader = lab.workdir / "reader.py"
    reader.write_text(READER)
    result = lab.workdir / "stream.json"
    streaming = lab.nodes["client"].spawn(f"python3 {reader} {BRIDGE_B} {STREAM_PORT} {stop}", log=result)
    wait_for(lambda: homelab.sh(f"ss -Htn state established '( sport = :{STREAM_PORT} )'").strip(), 30,
             "the stream through bridge B")
    wg1_before = tunnel_state(homelab, "wg1")
    b_tunnel_before = bridge_b.sh("systemctl show -P InvocationID wg-quick@wg0")
    down = {}

    def while_a_is_off():
        down["A"] = lab.sees(bridges["A"], timeout=3)
        down["B"] = lab.sees(bridges["B"])
        down["B udp"] = lab.udp_ask("client", bridges["B"], UDP_PORT)
        down["wg1"] = tunnel_state(homelab, "wg1")

    start = time.monotonic()
    bridge_a.reboot(while_down=while_a_is_off)
    bridge_a.wait_booted()
    booted = time.monotonic() - start
    serving = lab.wait_serving_through(bridges["A"], timeout=RECOVERY_BOUND)
    assert lab.sees(bridges["B"]) == netlab.CLIENT
    stop.touch()
    try:
        streaming.wait(60)
    except subprocess.TimeoutExpired:
        raise LabError(f"the stream's reader did not stop: {result.read_text()}") from None
    got = json.loads(result.read_text().strip().splitlines()[-1])

    assert down == {"A": None, "B": netlab.CLIENT, "B udp": netlab.CLIENT, "wg1": wg1_before}, down
    assert got["peer"] == netlab.CLIENT and got["ended"] is None and got["in_order"], got
    assert got["lines"] >= STREAM_RATE * got["seconds"] / 2 and got["max_gap"] < MAX_STALL, got
    assert tunnel_state(homelab, "wg1") == wg1_before, "the homelab's wg1 was touched"
    assert bridge_b.sh("systemctl show -P InvocationID wg-quick@wg0") == b_tunnel_before
    assert bridge_a.unit("wg-quick@wg0.service") == ("enabled", "active")
    assert lab.udp_ask("client", bridges["A"], UDP_PORT) == netlab.CLIENT
    with capsys.disabled():
        print(f"\n{SUITE}: bridge A rebooted: booted in {booted:.1f} s, served again {serving:.1f} s later "
              f"(bound {RECOVERY_BOUND} s); B's stream: {got['lines']} lines in {got['seconds']:.1f} s, "
              f"in order, longest pause {got['max_gap']:.2f} s; three hosts booted, installed and paired in "
              f"{lab.setup_seconds:.1f} s")
