"""Two bridges at once on booted hosts (issue 21): bridge A, bridge B and the homelab, each a
booted Debian container, the packages installed from dist/ with apt, the homelab paired with
both bridges by their tokens (`cgnat-setup --pair`: wg0 for A, wg1 for B) and each bridge
with the homelab's token for its tunnel. A client reaches the homelab's service through each
bridge with its real address (TCP and UDP); a stream through B runs while A reboots: it loses
nothing, the homelab's wg1 keeps its peer and is never restarted, and A serves again after it
is back (the seconds are printed). Then over IPv6 as well, and to a container of Debian's
dockerd on the homelab, published with -p 8080:80, through both bridges at once: each reply
leaves by the tunnel its connection came in on (its connection mark), and the container and
the homelab still go out by the home line.

    client 203.0.113.10 -- inet -- bridge A [booted] ens3 198.51.100.1, 2001:db8:b::1 (tunnel 10.0.0.0/24, wg0)
    2001:db8:c::10           |---- bridge B [booted] ens3 198.51.100.2, 2001:db8:d::1 (tunnel 10.0.1.0/24, wg1)
                             \\-- cgnat 192.0.2.2 (MASQUERADE) -- homelab [booted] eth0 100.64.0.2
                                                                  (+ real dockerd, userland proxy on)

Debian 12 and 13 (their roots are cached by the other system tests too).
"""
from __future__ import annotations

import ipaddress
import json
import re
import shlex
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import bootlab
import netlab
from bootlab import DOCKER_CASES, LabError, container_sees, wait_for

B = "bridge-b"                      # bridge B's node and host
BRIDGE_B = "198.51.100.2"           # its public address, a point-to-point link to the inet's b1
INET_B_SIDE = "198.51.100.253"
BRIDGE_B6, INET_B_SIDE6 = "2001:db8:d::1", "2001:db8:d::254"
B_TUNNEL = 'tunnel = "10.0.1.0/24"\ntunnel6 = "fd63:676e:6174:1::/64"\n'
B_HOMELAB, B_HOMELAB6 = "10.0.1.2", "fd63:676e:6174:1::2"    # the homelab's end of wg1
UDP_PORT = 5300                     # the homelab's UDP echo of the sender's address
UDP6_PORT = 5301                    # the same on IPv6
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


# The homelab's service on IPv6 too (the same port, an IPv6-only socket beside lab-peer's IPv4 one).
PEER6_UNIT = bootlab.PEER_UNIT.replace("TCP-LISTEN:80,", "TCP6-LISTEN:80,ipv6only=1,")
assert PEER6_UNIT != bootlab.PEER_UNIT


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
        """Seconds until the client reaches the homelab's service through `bridge` (an IPv4 or
        IPv6 address) with its real address of that family."""
        client = netlab.CLIENT6 if ":" in bridge else netlab.CLIENT
        start = time.monotonic()
        wait_for(lambda: self.sees(bridge, timeout=3) == client, timeout,
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


@pytest.fixture(scope="module", params=bootlab.SUITES)
def lab(request, debs):
    started = time.monotonic()
    lab = TwoBridgeLab(debs, request.param)
    try:
        lab.build()
        lab.boot(("bridge", B, "homelab"))
        lab.prepare_hosts()
        installed_and_paired(lab, debs)
        homelab = lab.hosts["homelab"]
        homelab.put(netlab.UDP_PEER, "/root/udp_peer.py")
        homelab.write("/root/stream.py", STREAM)
        homelab.write("/etc/systemd/system/lab-peer6.service", PEER6_UNIT)
        homelab.sh(f"systemd-run --unit=lab-udp python3 /root/udp_peer.py {UDP_PORT};"
                   f"systemd-run --unit=lab-udp6 python3 /root/udp_peer.py {UDP6_PORT} 6;"
                   f"systemd-run --unit=lab-stream socat TCP-LISTEN:{STREAM_PORT},fork,reuseaddr "
                   "'EXEC:python3 /root/stream.py'; systemctl daemon-reload; systemctl start lab-peer6.service")
        wait_for(lambda: f":{UDP_PORT} " in homelab.sh("ss -Hlun") and f":{STREAM_PORT} " in homelab.sh("ss -Hltn")
                 and f":{UDP6_PORT} " in homelab.sh("ss -H6lun") and f":{bootlab.SERVICE_PORT} " in homelab.sh("ss -H6ltn"),
                 30, "the homelab's UDP echoes, IPv6 service and stream")
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
        print(f"\n{lab.suite}: bridge A rebooted: booted in {booted:.1f} s, served again {serving:.1f} s later "
              f"(bound {RECOVERY_BOUND} s); B's stream: {got['lines']} lines in {got['seconds']:.1f} s, "
              f"in order, longest pause {got['max_gap']:.2f} s; three hosts booted, installed and paired in "
              f"{lab.setup_seconds:.1f} s")


# Debian's dockerd as installed (the userland proxy on), and what test_system_hosts says a
# container published with -p 8080:80 sees with it on an IPv4-only network: the client's
# address over IPv4 (Docker's DNAT), the proxy's gateway address over IPv6.
USERLAND_PROXY = {"userland-proxy": True}
[(SEEN4, SEEN6)] = [(seen4, seen6) for config, ipv6, seen4, seen6 in DOCKER_CASES
                    if (config, ipv6) == (USERLAND_PROXY, False)]
# The homelab's end of each tunnel, where its bridge's DNAT sends a connection, and the
# connection mark that tunnel's connections carry (cgnat_homelab/tunnels.py).
TUNNEL_ENDS = {"A": (netlab.HOMELAB_TUNNEL, netlab.HOMELAB_TUNNEL6, "wg0", 0x1000000),
               "B": (B_HOMELAB, B_HOMELAB6, "wg1", 0x2000000)}


def tracked_to(lab, port: int) -> set[tuple[str, int]]:
    """(tunnel address, connection mark) of each connection the homelab tracks from the
    client (either family) to `port`."""
    found = set()
    for family, client in (("ipv4", netlab.CLIENT), ("ipv6", netlab.CLIENT6)):
        out = lab.nodes["homelab"].sh(f"conntrack -L -f {family} -p tcp -s {client} --dport {port} 2>/dev/null")
        for dst, mark in re.findall(r"^\S+\s+\d+\s+\d+\s+\S+ src=\S+ dst=(\S+) .* mark=(\d+)", out, re.M):
            found.add((str(ipaddress.ip_address(dst)), int(mark)))
    return found


def test_ipv6_and_a_docker_container_through_both_bridges_at_once(lab, capsys):
    """An IPv6 client reaches the homelab's service through each bridge's IPv6 address with its
    own address (TCP, UDP). Debian's dockerd on the homelab (the userland proxy on, as
    installed): a container published with -p 8080:80 is reached through both bridges, both
    families, at once: over IPv4 by Docker's DNAT (it sees the client), over IPv6 by the proxy
    (it sees the proxy's gateway), per bootlab.DOCKER_CASES. Each of these
    connections carries the mark of the tunnel it came in by, the homelab routes that mark (and
    its tunnel address, the proxy's replies) to that tunnel, and every reply reached the
    client: A's left by wg0, B's by wg1 (each bridge takes from its tunnel only its homelab's
    tunnel addresses). The container and the homelab still go out by the home line."""
    started = time.monotonic()
    homelab = lab.hosts["homelab"]
    bridges6 = {"A": netlab.BRIDGE_PUBLIC6, "B": BRIDGE_B6}
    for name, address in bridges6.items():
        lab.wait_serving_through(address, timeout=60)
        assert lab.udp_ask("client", address, UDP6_PORT) == netlab.CLIENT6, f"UDP over IPv6 through bridge {name}"

    docker = bootlab.Dockerd(lab.nodes["homelab"], lab.workdir)
    try:
        image = bootlab.busybox_image_tar(lab.workdir)
        lab.serve_peer_tcp("client", 8000)   # "the Internet": tells each caller its address
        docker.start(USERLAND_PROXY)
        docker.docker("import", str(image), "cgnat-lab/busybox")
        docker.docker("network", "create", "--subnet", "172.19.0.0/16",
                      "-o", "com.docker.network.bridge.name=br-lab", "labnet")
        docker.docker("run", "-d", "--name", "web", "--network", "labnet", "-p", f"{netlab.PUBLISHED_PORT}:80",
                      "cgnat-lab/busybox", "httpd", "-f", "-p", "80", "-h", "/www")
        docker_ready = time.monotonic() - started
        wait_for(lambda: container_sees(lab, netlab.BRIDGE_PUBLIC), 60, "the client to reach the container",
                 interval=0.5)
        addresses = (netlab.BRIDGE_PUBLIC, netlab.BRIDGE_PUBLIC6, BRIDGE_B, BRIDGE_B6)
        with ThreadPoolExecutor(len(addresses)) as pool:      # through both bridges at once
            seen = dict(zip(addresses, pool.map(lambda address: container_sees(lab, address), addresses)))
        assert seen == {netlab.BRIDGE_PUBLIC: SEEN4, netlab.BRIDGE_PUBLIC6: SEEN6,
                        BRIDGE_B: SEEN4, BRIDGE_B6: SEEN6}, seen

        marks = {(address, mark) for address4, address6, _, mark in TUNNEL_ENDS.values()
                 for address in (address4, address6)}
        assert tracked_to(lab, netlab.PUBLISHED_PORT) == marks
        for _, address6, interface, mark in TUNNEL_ENDS.values():   # where the replies go
            for route in (f"ip -o route get {netlab.CLIENT} mark {mark:#x}",
                          f"ip -o -6 route get {netlab.CLIENT6} from {address6}"):
                out = homelab.sh(route)
                assert f" dev {interface} " in out, (route, out)

        out = docker.docker("exec", "web", "nc", "-w", "10", netlab.CLIENT, "8000").stdout.decode().strip()
        assert out == netlab.CGNAT_PUBLIC, f"the container went out as {out}, not through the home line"
        own = homelab.sh(f"socat -T5 - TCP:{netlab.CLIENT}:8000 </dev/null").strip()
        assert own == netlab.CGNAT_PUBLIC, f"the homelab went out as {own}, not through the home line"
        docker.docker("rm", "-f", "web")
    finally:
        docker.stop()
    with capsys.disabled():
        print(f"\n{lab.suite}: IPv6 through both bridges, then dockerd up and its container published in "
              f"{docker_ready:.1f} s, reached through both bridges, both families; "
              f"this test {time.monotonic() - started:.1f} s")
