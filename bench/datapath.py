"""The ways from the lab's client to a service on the homelab, measured in interleaved rounds.

    routed     client -> the homelab's tunnel address, routed through the bridge, no rule
               anywhere (both ends' hooks down and their rule sets empty: not even conntrack);
    routed-ct  the same with connection tracking on both ends (one rule each that needs it:
               drop INVALID, on the bridge's FORWARD and the homelab's INPUT): what any DNAT
               costs at least, the baseline of the goal;
    DNAT       client -> the bridge's public address, our hooks up on both ends (the product);
    haproxy    client -> the bridge's public address, haproxy (mode tcp, splice) on the bridge
               connecting over the tunnel, no rule (the proxy's best case: no conntrack);
    socat      the same with socat (a process per connection).
Each for IPv4 and IPv6, over the link the lab brings up: WireGuard (wireguard-go, as the lab
runs it) or a veth pair named like it (kernel speed: the same hooks, no crypto). Per path and
family: iperf3 throughput (Gbit/s received by the homelab) and new connections per second
(bench/connrate.c on both sides: the client resets each connection after the server's byte,
see there why). A round measures every path back to back per family, so a drift of the
machine touches every path alike; before each path the conntrack tables of every namespace
the packets cross are flushed, so no entry of another path (other TCP timestamps, a reused
port) meets its first packets.
"""
from __future__ import annotations

import json
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

import netlab
from netlab import (BRIDGE_PUBLIC, BRIDGE_PUBLIC6, BRIDGE_TUNNEL, BRIDGE_TUNNEL6, CLIENT, CLIENT6,
                    HOMELAB_TUNNEL, HOMELAB_TUNNEL6, socat_address)

PATHS = ("routed", "routed-ct", "DNAT", "haproxy", "socat")
RULES = {"routed": "none", "routed-ct": "conntrack", "DNAT": "ours", "haproxy": "none", "socat": "none"}
CONNTRACK_ONLY = {"bridge": "FORWARD", "homelab": "INPUT"}   # where the routed-ct rule goes
IPERF_PORT, CONN_PORT = 5201, 5300
PROXY_OFFSET = {"haproxy": 10, "socat": 20}   # the proxies listen on the service's port + this
ROLES = ("bridge", "homelab")
CONNRATE_SOURCE = Path(__file__).resolve().with_name("connrate.c")
CONNRATE_THREADS = 8


@dataclass(frozen=True)
class Family:
    name: str
    ip: str                 # `ip` option
    client: str
    client_net: str
    client_gateway: str     # the inet's address on the client's link
    bridge_public: str
    bridge_tunnel: str
    homelab_tunnel: str
    tunnel_net: str


FAMILIES = (
    Family("IPv4", "-4", CLIENT, "203.0.113.0/24", "203.0.113.1",
           BRIDGE_PUBLIC, BRIDGE_TUNNEL, HOMELAB_TUNNEL, "10.0.0.0/24"),
    Family("IPv6", "-6", CLIENT6, "2001:db8:c::/64", "2001:db8:c::1",
           BRIDGE_PUBLIC6, BRIDGE_TUNNEL6, HOMELAB_TUNNEL6, "fd63:676e:6174::/64"),
)


def build_connrate(dest: Path) -> Path:
    """Compile bench/connrate.c into dest (a directory the lab's nodes see)."""
    binary = dest / "connrate"
    subprocess.run(["gcc", "-O2", "-Wall", "-pthread", "-o", str(binary), str(CONNRATE_SOURCE)], check=True)
    return binary


# ---------------------------------------------------------------- links

def tunnel_addresses(node) -> list[str]:
    """The Address lines cgnat-setup rendered into the node's wg0.conf."""
    return [a.strip() for line in node.read("/etc/wireguard/wg0.conf").splitlines()
            if line.replace(" ", "").startswith("Address=") for a in line.split("=", 1)[1].split(",")]


def mac_address(node, interface: str) -> str:
    return json.loads(node.sh(f"ip -j link show {interface}"))[0]["address"]


def veth_link(lab) -> None:
    """A veth pair named wg0 between the bridge and the homelab in place of WireGuard: the
    tunnel's MTU and rendered addresses, the real up hooks on both ends. WireGuard needs no
    neighbour resolution and a veth does: the homelab's `default dev wg0` (its hooks' table)
    resolves the client itself, so the bridge end's MAC is pinned for the client's addresses."""
    lab.link("bridge", "wg0", "homelab", "wg0")
    for role in ROLES:
        node = lab.nodes[role]
        node.sh("ip link set wg0 mtu 1420; " +
                "; ".join(f"ip addr add {a} dev wg0" for a in tunnel_addresses(node)))
    bridge_mac = mac_address(lab.bridge, "wg0")
    for client in (CLIENT, CLIENT6):
        lab.homelab.sh(f"ip neigh replace {client} lladdr {bridge_mac} dev wg0 nud permanent")
    rules(lab, "ours")


def wireguard_link(lab) -> None:
    lab.tunnel_up()   # wg-quick runs the up hooks (PostUp)


LINKS = {"veth": veth_link, "wireguard": wireguard_link}


def rules(lab, kind: str) -> None:
    """On both ends: "ours" (our hooks up), "none" (hooks down, every rule set emptied: no
    conntrack either) or "conntrack" (only a rule that needs connection tracking)."""
    for role in ROLES:
        hooks = f"/usr/lib/cgnat-{role}/hooks"
        if kind == "ours":
            lab.nodes[role].sh(f"{hooks}/up wg0")
            continue
        lab.nodes[role].sh(f"{hooks}/down wg0 && nft flush ruleset")
        if kind == "conntrack":
            chain = CONNTRACK_ONLY[role]
            lab.nodes[role].sh(f"iptables -A {chain} -m conntrack --ctstate INVALID -j DROP && "
                               f"ip6tables -A {chain} -m conntrack --ctstate INVALID -j DROP")
    if kind != "ours":   # the homelab's down takes the tunnel's ULA its up added; routing still needs it
        lab.homelab.sh(f"ip -6 address replace {HOMELAB_TUNNEL6}/64 dev wg0")


def flush_conntrack(lab) -> None:
    """The conntrack table of every namespace the measured packets cross, emptied (the CGNAT's
    is kept: it carries the WireGuard link's own mapping)."""
    for name in ("client", "inet", "bridge", "homelab"):
        lab.nodes[name].sh("conntrack -F 2>/dev/null")


# ---------------------------------------------------------------- paths

def prepare(lab, connrate: Path) -> None:
    """With the link up: routes for the routed path, services on the homelab, proxies on the
    bridge. The lab's stand-ins for other tools' rules (ufw-like, Docker-like) go: measured
    here are ours alone."""
    rules(lab, "none")
    lab.bridge.sysctl(**{"net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1})
    for f in FAMILIES:
        lab.client.sh(f"ip {f.ip} route add {f.tunnel_net} via {f.client_gateway}")
        lab.inet.sh(f"ip {f.ip} route add {f.tunnel_net} via {f.bridge_public}")
        lab.homelab.sh(f"ip {f.ip} route add {f.client_net} via {f.bridge_tunnel} dev wg0")
    lab.client.sh("sysctl -q -w net.ipv4.ip_local_port_range='1024 65535'")   # (both families)
    lab.homelab.spawn(f"iperf3 -s -p {IPERF_PORT}")
    lab.homelab.spawn(f"{connrate} serve {CONN_PORT}")
    lab.bridge.write("/run/lab/haproxy.cfg", haproxy_config())
    lab.bridge.spawn("haproxy -db -f /run/lab/haproxy.cfg", log=lab.workdir / "haproxy.log")
    for f in FAMILIES:
        for port in (IPERF_PORT, CONN_PORT):
            listen = "TCP6-LISTEN" if f.ip == "-6" else "TCP4-LISTEN"
            lab.bridge.spawn(f"socat {listen}:{port + PROXY_OFFSET['socat']},bind={f.bridge_public},"
                             f"reuseaddr,fork,backlog=4096 {socat_address('TCP', f.homelab_tunnel, port)}")
    for port in (IPERF_PORT, CONN_PORT):
        lab.homelab.wait_listening("tcp", port)
        for offset in PROXY_OFFSET.values():
            lab.bridge.wait_listening("tcp", port + offset)


def haproxy_config() -> str:
    """Mode tcp, kernel splicing both ways, one frontend per family and service."""
    sections = ["global\n    maxconn 5000\n",
                "defaults\n    mode tcp\n    option splice-request\n    option splice-response\n"
                "    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n"]
    for f in FAMILIES:
        for port in (IPERF_PORT, CONN_PORT):
            sections.append(f"listen {f.name}-{port}\n"
                            f"    bind {bracketed(f.bridge_public)}:{port + PROXY_OFFSET['haproxy']}\n"
                            f"    server homelab {bracketed(f.homelab_tunnel)}:{port}\n")
    return "\n".join(sections)


def bracketed(address: str) -> str:
    """An address as it stands before ":port" (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


def target(path: str, f: Family, port: int) -> tuple[str, int]:
    """Where the client connects to reach the homelab's `port` along `path`."""
    if path.startswith("routed"):
        return f.homelab_tunnel, port
    return f.bridge_public, port + PROXY_OFFSET.get(path, 0)


def iperf(lab, host: str, port: int, seconds: int) -> float:
    """Gbit/s received by the homelab in one iperf3 run from the client."""
    out = lab.client.sh(f"iperf3 -J -Z -c {host} -p {port} -t {seconds}", timeout=seconds + 30)
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


def connection_rate(lab, connrate: Path, host: str, port: int, seconds: int) -> float:
    """New connections per second the client completed; any failed one fails the run."""
    out = lab.client.sh(f"{connrate} connect {host} {port} {seconds} {CONNRATE_THREADS}",
                        timeout=seconds + 30)
    done, failed = (int(x) for x in out.split())
    if failed or not done:
        raise netlab.LabError(f"connrate {host}:{port}: {done} connections, {failed} failed")
    return done / seconds


def rounds(lab, connrate: Path, reps: int, seconds: int, cps_seconds: int, log=print) -> dict:
    """{family: {path: {"gbit": [...], "cps": [...]}}}, every path measured `reps` times."""
    runs = {f.name: {p: {"gbit": [], "cps": []} for p in PATHS} for f in FAMILIES}
    now = "none"   # prepare() left no rule
    for rep in range(reps):
        for f in FAMILIES:
            for path in PATHS:
                if now != RULES[path]:
                    now = RULES[path]
                    rules(lab, now)
                flush_conntrack(lab)
                run = runs[f.name][path]
                run["gbit"].append(iperf(lab, *target(path, f, IPERF_PORT), seconds))
                run["cps"].append(connection_rate(lab, connrate, *target(path, f, CONN_PORT), cps_seconds))
                log(f"round {rep + 1}/{reps} {f.name} {path}: {run['gbit'][-1]:.2f} Gbit/s, "
                    f"{run['cps'][-1]:.0f} conn/s")
                if path == "DNAT" and rep == 0:
                    check_real_client(lab, f)
    rules(lab, "ours")
    return runs


def check_real_client(lab, f: Family) -> None:
    """The DNAT path delivered the client's own address to the homelab (no masquerade)."""
    seen = lab.homelab.sh(f"conntrack -L -p tcp -s {f.client} -d {f.homelab_tunnel} --dport {CONN_PORT} "
                          "2>/dev/null | grep -c . || true").strip()
    if not int(seen or 0):
        raise netlab.LabError(f"{f.name}: the homelab saw no connection from {f.client}")


def medians(runs: dict) -> dict:
    return {family: {path: {k: statistics.median(v) for k, v in measures.items()}
                     for path, measures in paths.items()} for family, paths in runs.items()}
