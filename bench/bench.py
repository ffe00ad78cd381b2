#!/usr/bin/python3
"""Benchmark of the cgnat-tunnel data plane in the namespace lab (DESIGN.md section 8).

Run as root from the repository, after ./build.sh (the lab installs dist/*.deb):
    python3 bench/bench.py [--seconds 4] [--reps 3] [--pings 300]
Prints one markdown table, every number measured in this run:

- throughput client -> homelab (iperf3, TCP) along three paths over the same tunnel:
    DNAT     client -> 198.51.100.1, DNAT on the bridge to 10.0.0.2 (the product);
    direct   client -> 10.0.0.2 routed through the bridge (inet and client get a route to
             the tunnel subnet; the bridge exempts it from NAT with a nat ACCEPT rule in
             front of ours): the same hops, the same conntrack and FORWARD rules, no DNAT;
    proxy    client -> 198.51.100.1:5202, a userspace socat on the bridge (port kept local)
             connecting to 10.0.0.2 over the tunnel;
  paths interleaved, `--reps` runs each, the median reported;
- added RTT of the DNAT over the bare tunnel: mean ICMP echo RTT to 198.51.100.1 minus to
  10.0.0.2 (interleaved blocks);
- hooks: up + down on each role with the interface present (median of 10);
- rule install (up hook) with 1 vs 100 forwarded port ranges (median of 10).
Nothing outside the lab's namespaces is changed.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "lab"))

import netlab  # noqa: E402
from netlab import BRIDGE_PUBLIC, HOMELAB_TUNNEL  # noqa: E402

IPERF_PORT, PROXY_PORT = 5201, 5202


def iperf(lab, host: str, port: int, seconds: int) -> float:
    """Gbit/s received by the homelab in one iperf3 run from the client."""
    out = lab.client.sh(f"iperf3 -J -c {host} -p {port} -t {seconds}", timeout=seconds + 30)
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


def pings(lab, host: str, count: int) -> list[float]:
    result = lab.ping("client", host, count=count, timeout=1)
    if result["received"] != count:
        raise netlab.LabError(f"ping {host}: {result['received']}/{count} answered")
    return result["rtt_ms"]


def timed_loop(node, body: str, runs: int = 10) -> float:
    """Median wall time in ms of `body` run in the node (timed inside it, no nsenter cost)."""
    out = node.sh(f"for i in $(seq {runs}); do s=$(date +%s%N); {body}; e=$(date +%s%N); "
                  "echo $(( (e - s) / 1000 )); done")
    return statistics.median(int(x) for x in out.split()) / 1000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=4, help="length of each iperf3 run")
    p.add_argument("--reps", type=int, default=3, help="iperf3 runs per path")
    p.add_argument("--pings", type=int, default=300, help="echoes per path")
    args = p.parse_args()

    staged = Path(tempfile.mkdtemp(prefix="cgnat-bench-debs-"))
    try:
        packages = netlab.stage_packages(staged)
        with netlab.Lab(packages, homelab_rp_filter=1, keep_local=[f"tcp/{PROXY_PORT}"],
                        log=lambda *a: None) as lab:
            rows = measure(lab, args)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    print_table(rows, args)
    return 0


def measure(lab, args) -> dict:
    lab.up(sshd=False)
    # The "direct" path: routes to the tunnel subnet, and no NAT for it on the bridge.
    lab.client.sh(f"ip route add 10.0.0.0/24 via 203.0.113.1")
    lab.inet.sh(f"ip route add 10.0.0.0/24 via {BRIDGE_PUBLIC}")
    lab.bridge.sh(f"iptables -t nat -I PREROUTING -d {HOMELAB_TUNNEL} -j ACCEPT")
    lab.homelab.spawn(f"iperf3 -s -p {IPERF_PORT}")
    lab.homelab.wait_listening("tcp", IPERF_PORT)
    lab.bridge.spawn(f"socat TCP-LISTEN:{PROXY_PORT},reuseaddr,fork TCP:{HOMELAB_TUNNEL}:{IPERF_PORT}")
    lab.bridge.wait_listening("tcp", PROXY_PORT)

    paths = {"DNAT": (BRIDGE_PUBLIC, IPERF_PORT), "direct": (HOMELAB_TUNNEL, IPERF_PORT),
             "proxy": (BRIDGE_PUBLIC, PROXY_PORT)}
    runs = {name: [] for name in paths}
    for _ in range(args.reps):
        for name, (host, port) in paths.items():
            runs[name].append(iperf(lab, host, port, args.seconds))
    rows = {"throughput": {name: statistics.median(v) for name, v in runs.items()}, "runs": runs}

    dnat, direct = [], []
    block = 50
    for _ in range(max(1, args.pings // block)):
        dnat += pings(lab, BRIDGE_PUBLIC, block)
        direct += pings(lab, HOMELAB_TUNNEL, block)
    rows["rtt"] = (statistics.mean(dnat), statistics.mean(direct), len(dnat))

    quiet = "2>/dev/null"
    rows["hooks"] = {role: timed_loop(lab.nodes[role], f"/usr/lib/cgnat-{role}/hooks/down wg0 {quiet}; "
                                                       f"/usr/lib/cgnat-{role}/hooks/up wg0 {quiet}")
                     for role in ("bridge", "homelab")}

    install = {}
    for count in (1, 100):
        lab.forward = [f"tcp/{10000 + 10 * i}-{10000 + 10 * i + 9}" for i in range(count)]
        lab.bridge.write("/run/lab/answers.toml", lab.answers("bridge"))
        lab.bridge.sh("cgnat-setup --answers /run/lab/answers.toml --root /")
        dnats = lab.bridge.sh("grep -c DNAT /etc/cgnat/wg0.rules").strip()
        assert int(dnats) == count, dnats
        # Each up loads the whole rule set again (our chains are emptied and refilled).
        install[count] = timed_loop(lab.bridge, f"/usr/lib/cgnat-bridge/hooks/up wg0 {quiet}")
    rows["install"] = install
    return rows


def print_table(rows: dict, args) -> None:
    t = rows["throughput"]
    dnat_rtt, direct_rtt, n = rows["rtt"]
    added = dnat_rtt - direct_rtt
    hooks, install = rows["hooks"], rows["install"]
    print(f"\n### cgnat-tunnel lab benchmark (iperf3 {args.seconds}s x {args.reps} per path, median; "
          f"userspace wireguard-go on both ends)\n")
    print("| measure | value | target | result |")
    print("| --- | --- | --- | --- |")
    print(f"| throughput via bridge DNAT | {t['DNAT']:.2f} Gbit/s | | |")
    print(f"| throughput same tunnel, no DNAT | {t['direct']:.2f} Gbit/s | | |")
    print(f"| throughput userspace proxy (socat) | {t['proxy']:.2f} Gbit/s | | |")
    r1, r2 = t["DNAT"] / t["direct"], t["DNAT"] / t["proxy"]
    print(f"| DNAT / no DNAT | {r1:.2f} | >= 0.95 | {'ok' if r1 >= 0.95 else 'MISSED'} |")
    print(f"| DNAT / proxy | {r2:.2f} | >= 1 | {'ok' if r2 >= 1 else 'MISSED'} |")
    print(f"| RTT via DNAT / direct (mean of {n}) | {dnat_rtt:.3f} / {direct_rtt:.3f} ms | | |")
    print(f"| added RTT of the DNAT | {added:+.3f} ms | <= 0.05 ms | {'ok' if added <= 0.05 else 'MISSED'} |")
    for role, ms in hooks.items():
        print(f"| hooks up+down, {role} (median of 10) | {ms:.1f} ms | <= 300 ms | {'ok' if ms <= 300 else 'MISSED'} |")
    r3 = install[100] / install[1]
    print(f"| rule install (up), 1 port range | {install[1]:.1f} ms | | |")
    print(f"| rule install (up), 100 port ranges | {install[100]:.1f} ms | | |")
    print(f"| 100 / 1 ranges | {r3:.2f} | flat (~1) | {'ok' if r3 <= 1.5 else 'MISSED'} |")
    runs = ", ".join(f"{k}: " + "/".join(f"{v:.2f}" for v in vs) for k, vs in rows["runs"].items())
    print(f"\nAll iperf3 runs (Gbit/s): {runs}")


if __name__ == "__main__":
    sys.exit(main())
