"""Load: a flood from spoofed sources fills the bridge's conntrack table, and the chain holds.

The client floods a forwarded port of the bridge's public address (tests/lab/flooder.py: a new
source of 198.18.0.0/15 and source port for every packet, bounded in rate, count and time) until
the bridge's connection tracking table is full, and while the flood lasts: a legitimate client
still connects through the bridge to the homelab (with its own address), the bridge's own
ssh_port still answers, the tunnel stays up, and neither watchdog takes a step.

The table's limit, net.netfilter.nf_conntrack_max, is the host's (read-only in a network
namespace: the lab cannot lower it) while the count is each namespace's own: the flood has to
fill the bridge's namespace up to the host's limit (262,144 on this runner). So it is fast
(RATE packets a second) and its entries must outlive the time it takes:
- TCP: SYNs to the homelab's service port; the homelab answers each (a SYN cookie once its
  backlog is full), the answer dies at the Internet (198.18.0.0/15 is routed nowhere), and the
  bridge's entry waits in SYN_RECV (60 s) - a SYN flood at a web server.
- UDP: datagrams to a forwarded port where nothing listens (5354; the homelab's service on 5353
  is what the legitimate client asks): each entry lives 30 s unanswered (the ICMP errors of the
  homelab are rate-limited), so RATE must exceed the limit / 30 s, as it does.
When the table is full the kernel drops an entry not yet assured (early drop: counted by
`conntrack -S`) to make room for a new one; the test requires that it did (the table really was
full) and that the bridge never had to refuse a new connection for want of room (`drop`), i.e.
that no rule of ours breaks that. The flood also loads the lab's userspace tunnel
(wireguard-go), which then loses a packet now and then: the legitimate UDP client asks as a
resolver does, again after a second without answer (TCP retransmits its SYN by itself). Both
tables are flushed between floods.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

import faultlab
from netlab import make_lab
from faultlab import FAST, SERVICE_PORT, Watchdog
from netlab import BRIDGE_PUBLIC, BRIDGE_SSH_PORT, BRIDGE_TUNNEL, CLIENT, wait_for

FLOODER = Path(__file__).resolve().with_name("flooder.py")
RATE = 20_000                 # packets a second (measured: the lab forwards it on two cores)
MAX_SECONDS = 40              # each flood stops by itself after this long at the latest
FULL = 0.98                   # the table counts as full from this share of nf_conntrack_max on
HOLD = 10                     # seconds the checks go on with a full table: 5 runs of each watchdog,
                              # longer than the homelab's restart_after (FAST: 8 s)
SERVICE_UDP, FLOODED_UDP = 5353, 5354
METRICS_DIR = "/run/lab/metrics"
CONNTRACK = "/proc/sys/net/netfilter"


@pytest.fixture(scope="module")
def lab(request, packages):
    lab = make_lab(request, packages)
    faultlab.up(lab, watchdog={**FAST, "metrics_dir": METRICS_DIR})
    lab.serve_peer_udp("homelab", SERVICE_UDP)
    lab.bridge.write("/run/lab/answers.toml", faultlab.bridge_answers(lab) +
                     f'watchdog_metrics_dir = "{METRICS_DIR}"\n')
    lab.bridge.sh("cgnat-setup --answers /run/lab/answers.toml --root /")
    for node in (lab.homelab, lab.bridge):
        node.sh(f"mkdir -p {METRICS_DIR}")
    lab.watchdogs = [Watchdog(lab, "homelab", every=2), Watchdog(lab, "bridge", every=2)]
    for dog in lab.watchdogs:
        request.addfinalizer(dog.stop)
    wait_for(lambda: all(dog.state().get("last_run_at") for dog in lab.watchdogs), 20, "both watchdogs' first run")
    return lab


def table(node) -> tuple[int, int]:
    """(nf_conntrack_count of the node's namespace, the host's nf_conntrack_max)."""
    count, limit = node.sh(f"cat {CONNTRACK}/nf_conntrack_count {CONNTRACK}/nf_conntrack_max").split()
    return int(count), int(limit)


def conntrack_stat(node, counter: str) -> int:
    """A counter of `conntrack -S`, summed over the CPUs: early_drop (entries dropped to make
    room in a full table), drop (new connections refused: no room could be made)."""
    return sum(int(n) for n in re.findall(rf"\b{counter}=(\d+)", node.sh("conntrack -S")))


def steps_taken(lab) -> list[dict]:
    return [dog.state().get("steps_taken", {}) for dog in lab.watchdogs]


def flood(lab, proto: str, port: int):
    """Start the flood from the client; returns its process (it stops by itself)."""
    for node in (lab.bridge, lab.homelab):
        node.sh("conntrack -F 2>/dev/null")
    log = lab.workdir / f"flood-{proto}.log"
    return lab.client.spawn(f"python3 {FLOODER} {proto} {BRIDGE_PUBLIC} {port} --rate {RATE} "
                            f"--count {RATE * MAX_SECONDS} --seconds {MAX_SECONDS}", log=log), log


def counters(lab) -> str:
    """For a failure's message: what conntrack did on both ends, what the tunnel carried."""
    return "; ".join(f"{role}: " + ", ".join(f"{c} {conntrack_stat(lab.nodes[role], c)}" for c in ("early_drop", "drop"))
                     + f", count {table(lab.nodes[role])[0]}" for role in ("bridge", "homelab")) + \
        "; wg transfer " + lab.bridge.sh("wg show wg0 transfer").strip()


def tcp_answers(lab, tries: int = 3) -> bool:
    """A legitimate TCP client reaches the homelab's service with its address, connecting again
    (as a browser does) when a try of 5 s fails: the SYN flood goes to the same port and
    wireguard-go, the lab's userspace tunnel, drops a packet now and then under it (measured
    once in a full run: one try of 5 s lost, with `drop` 0 on both ends)."""
    return any(lab.tcp_ask("client", BRIDGE_PUBLIC, SERVICE_PORT) == CLIENT for _ in range(tries))


def udp_answers(lab, tries: int = 3) -> bool:
    """A legitimate UDP client gets its answer, asking up to `tries` times a second apart."""
    return any(lab.udp_ask("client", BRIDGE_PUBLIC, SERVICE_UDP, timeout=1) == CLIENT for _ in range(tries))


def bridge_ssh_answers(lab) -> bool:
    """The bridge's own sshd greets the client on ssh_port."""
    out = lab.client.run(f"timeout 5 socat -T5 - TCP:{BRIDGE_PUBLIC}:{BRIDGE_SSH_PORT},connect-timeout=5 </dev/null",
                         check=False, timeout=10).stdout
    return out.startswith("SSH-2.0-")


def tunnel_up(lab) -> bool:
    """The WireGuard session lives (a handshake within 180 s) and carries the homelab's echoes
    to the bridge's tunnel address (one of five answered: the flood fills wireguard-go's queues)."""
    age = time.time() - int(lab.homelab.sh("wg show wg0 latest-handshakes").split()[1])
    return age < 180 and lab.ping("homelab", BRIDGE_TUNNEL, count=5, timeout=1)["received"] >= 1


@pytest.mark.parametrize("proto, port", [("tcp", SERVICE_PORT), ("udp", FLOODED_UDP)])
def test_a_full_conntrack_table_leaves_the_chain_working(lab, proto, port):
    before = steps_taken(lab)
    early, refused = (conntrack_stat(lab.bridge, c) for c in ("early_drop", "drop"))
    sender, log = flood(lab, proto, port)
    t0 = time.monotonic()
    try:
        limit = table(lab.bridge)[1]
        wait_for(lambda: table(lab.bridge)[0] >= FULL * limit, MAX_SECONDS - 10,
                 f"the {proto} flood to fill the bridge's table ({limit} entries)", interval=0.5)
        filled = time.monotonic() - t0
        # While it is full: legitimate clients, the bridge's own ssh, the tunnel.
        while time.monotonic() - t0 < filled + HOLD:
            assert tcp_answers(lab), counters(lab)
            assert udp_answers(lab), counters(lab)
            assert bridge_ssh_answers(lab), counters(lab)
            assert tunnel_up(lab), counters(lab)
            count, _ = table(lab.bridge)
            assert count >= FULL * limit, f"the table emptied before the checks ended ({count} of {limit})"
        assert conntrack_stat(lab.bridge, "early_drop") > early, "the kernel never had to make room: not full"
        assert conntrack_stat(lab.bridge, "drop") == refused, "the bridge refused new connections: no room"
        # The bridge's watchdog saw it (its metrics) and status warns about it.
        prom = lab.bridge.read(f"{METRICS_DIR}/cgnat.prom")
        seen = int(re.search(r'^cgnat_nf_conntrack_count\{interface="wg0"\} (\d+)$', prom, re.M)[1])
        assert f'cgnat_nf_conntrack_max{{interface="wg0"}} {limit}' in prom and seen > 0.8 * limit, prom
        status = lab.bridge.run("cgnat-setup status", check=False).stdout
        assert re.search(r"^warn  conntrack .* entries \(\d+%\): above 80%", status, re.M), status
        held = time.monotonic() - t0
    finally:
        sender.terminate()
        sender.wait(10)
    sent, seconds = log.read_text().split()
    print(f"\n{proto} flood: {sent} packets in {seconds} s; table full ({limit}) after {filled:.1f} s, "
          f"checks done at {held:.1f} s")
    assert steps_taken(lab) == before, "a watchdog took a step during the flood"
    for dog in lab.watchdogs:
        assert not any(re.match(r"cgnat-watchdog: (re-peer|restart|action|up-hook):", line) for line in dog.lines())
