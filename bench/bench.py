#!/usr/bin/python3
"""Benchmark of the cgnat-tunnel data plane in the namespace lab (DESIGN.md section 8).

Run as root from the repository: ./build.sh bench [ARGS] (installs haproxy, nft and gcc,
builds dist/*.deb, which the lab installs), or after that:
    python3 bench/bench.py [--link both|veth|wireguard] [--reps 5] [--seconds 4] [--cps-seconds 3]
Prints markdown tables, every number measured in this run:

- per family (IPv4, IPv6) and link, the five paths of bench/datapath.py (routed without any
  rule, routed with conntrack on both ends, DNAT with our hooks, haproxy, socat): iperf3
  throughput and new connections per second (bench/connrate.c: the client resets, so no
  TIME_WAIT; conntrack flushed before each path), medians of --reps interleaved rounds with
  the spread of single rounds (min-max); the ratios of DNAT to the others against the goals
  (DESIGN.md section 8). The links: a veth pair standing in for WireGuard (kernel speed:
  what the rules cost) and the lab's wireguard-go (userspace, the bottleneck of every path
  there);
- over wireguard-go, as before: the RTT the DNAT adds (interleaved blocks of echoes, DNAT
  with our rules vs routed without), hooks up + down on each role, rule install (up hook)
  with 1 vs 100 forwarded port ranges.
- with --perf (veth link): where the time of new connections goes, routed with conntrack
  against DNAT (IPv4): `perf record` of the whole machine during one connection-rate run of
  each, the top symbols of the connrate processes (veth delivers a packet in its sender's
  softirq, so each path's netfilter work is charged to them).
Nothing outside the lab's namespaces is changed; that is checked before it prints.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "lab"))

import datapath  # noqa: E402
import netlab  # noqa: E402
from netlab import BRIDGE_PUBLIC, HOMELAB_TUNNEL  # noqa: E402

# Goals at kernel speed (veth), both families: DNAT's figure over the path's, per measure.
GOALS = {("routed-ct", "gbit"): 0.95, ("routed-ct", "cps"): 0.95, ("haproxy", "cps"): 2.0}
LABELS = {"routed": "routed, no rule (no conntrack)", "routed-ct": "routed, conntrack on both ends",
          "DNAT": "DNAT, our hooks", "haproxy": "haproxy (tcp, splice)", "socat": "socat"}
MEASURES = (("gbit", "Gbit/s", ".2f"), ("cps", "conn/s", ".0f"))


def log(*words) -> None:
    print(*words, file=sys.stderr, flush=True)


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
    p.add_argument("--link", choices=("both", "veth", "wireguard"), default="both",
                   help="veth: a veth pair in place of WireGuard (kernel speed); wireguard: the lab's wireguard-go")
    p.add_argument("--reps", type=int, default=5, help="rounds (every path once per family)")
    p.add_argument("--seconds", type=int, default=4, help="length of each iperf3 run")
    p.add_argument("--cps-seconds", type=int, default=3, help="length of each connection-rate run")
    p.add_argument("--pings", type=int, default=300, help="echoes per path (wireguard link)")
    p.add_argument("--perf", action="store_true", help="profile new connections, routed-ct vs DNAT (veth)")
    args = p.parse_args()
    links = ("veth", "wireguard") if args.link == "both" else (args.link,)

    root_before = netlab.root_netns_state()
    load = [os.getloadavg()[0]]
    scratch = Path(tempfile.mkdtemp(prefix="cgnat-bench-"))
    results = {}
    try:
        packages = netlab.stage_packages(scratch / "debs")
        connrate = datapath.build_connrate(scratch)
        for link in links:
            with netlab.Lab(packages, homelab_rp_filter=1, log=lambda *a: None) as lab:
                log(f"{link}: building the lab")
                lab.prepare()
                datapath.LINKS[link](lab)
                datapath.prepare(lab, connrate)
                runs = datapath.rounds(lab, connrate, args.reps, args.seconds, args.cps_seconds, log=log)
                results[link] = {"runs": runs, "medians": datapath.medians(runs)}
                if link == "wireguard":
                    results["extras"] = extras(lab, args)
                if link == "veth" and args.perf:
                    results["profiles"] = {path: profile(lab, connrate, path, args.cps_seconds, scratch)
                                           for path in ("routed-ct", "DNAT")}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if netlab.root_netns_state() != root_before:
        raise netlab.LabError("the benchmark changed the root network namespace")
    load.append(os.getloadavg()[0])
    print_tables(results, args, load)
    return 0


def profile(lab, connrate: Path, path: str, seconds: int, scratch: Path) -> list[str]:
    """The top symbols (>= 1 % of the samples) of the connrate processes while the IPv4
    connection rate runs over `path` (perf record -a: reads the whole machine, changes nothing)."""
    ipv4 = datapath.FAMILIES[0]
    datapath.rules(lab, datapath.RULES[path])
    datapath.flush_conntrack(lab)
    data = scratch / f"perf-{path}.data"
    recorder = subprocess.Popen(["perf", "record", "-q", "-a", "-F", "999", "-o", str(data), "--",
                                 "sleep", str(seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rate = datapath.connection_rate(lab, connrate, *datapath.target(path, ipv4, datapath.CONN_PORT), seconds)
    if recorder.wait(seconds + 30) != 0:
        raise netlab.LabError(f"perf record exited {recorder.returncode}")
    report = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children", "--comm", "connrate",
                             "--sort", "sym", "--percent-limit", "1"], capture_output=True, text=True, check=True)
    lines = [line.strip() for line in report.stdout.splitlines() if line.strip() and not line.startswith("#")]
    return [f"{rate:.0f} conn/s while recorded"] + lines


def extras(lab, args) -> dict:
    """Over wireguard-go, rules up: added RTT, hook times, rule install times."""
    dnat, routed = [], []
    block = 50
    for _ in range(max(1, args.pings // block)):
        for up, host, rtts in ((False, HOMELAB_TUNNEL, routed), (True, BRIDGE_PUBLIC, dnat)):
            datapath.rules(lab, "ours" if up else "none")
            pings(lab, host, 1)   # not counted: the first after a change of rules
            rtts += pings(lab, host, block)
    found = {"rtt": (statistics.mean(dnat), statistics.mean(routed), len(dnat))}

    quiet = "2>/dev/null"
    found["hooks"] = {role: timed_loop(lab.nodes[role], f"/usr/lib/cgnat-{role}/hooks/down wg0 {quiet}; "
                                                        f"/usr/lib/cgnat-{role}/hooks/up wg0 {quiet}")
                      for role in datapath.ROLES}
    install = {}
    for count in (1, 100):
        lab.forward = [f"tcp/{10000 + 10 * i}-{10000 + 10 * i + 9}" for i in range(count)]
        lab.bridge.write("/run/lab/answers.toml", lab.answers("bridge"))
        lab.bridge.sh("cgnat-setup --answers /run/lab/answers.toml --root /")
        dnats = lab.bridge.sh("grep -c -e '-j DNAT' /etc/cgnat/wg0.rules").strip()
        assert int(dnats) == count, dnats
        # Each up loads the whole rule set again (our chains are emptied and refilled).
        install[count] = timed_loop(lab.bridge, f"/usr/lib/cgnat-bridge/hooks/up wg0 {quiet}")
    found["install"] = install
    return found


def verdict(ratio: float, goal: float | None) -> str:
    return "" if goal is None else f" (>= {goal:g}: {'ok' if ratio >= goal else 'MISSED'})"


def print_tables(results: dict, args, load: list[float]) -> None:
    links = [link for link in ("veth", "wireguard") if link in results]
    names = {"veth": "veth", "wireguard": "wireguard-go"}
    print(f"\niperf3 {args.seconds} s and connection rate {args.cps_seconds} s per path and round; "
          f"medians of {args.reps} interleaved rounds (single rounds min-max); {os.cpu_count()} CPUs, "
          f"load average {load[0]:.1f} at the start, {load[1]:.1f} at the end (1 min).")
    for family in (f.name for f in datapath.FAMILIES):
        print(f"\n### {family}\n")
        head = [f"{unit}, {names[link]}" for link in links for _, unit, _ in MEASURES]
        print("| path | " + " | ".join(head) + " |")
        print("| --- |" + " --- |" * len(head))
        for path in datapath.PATHS:
            cells = []
            for link in links:
                for key, _, fmt in MEASURES:
                    runs = results[link]["runs"][family][path][key]
                    cells.append(f"{results[link]['medians'][family][path][key]:{fmt}} "
                                 f"({min(runs):{fmt}}-{max(runs):{fmt}})")
            print(f"| {LABELS[path]} | " + " | ".join(cells) + " |")
        for other in ("routed", "routed-ct", "haproxy", "socat"):
            cells = []
            for link in links:
                medians = results[link]["medians"][family]
                for key, _, _ in MEASURES:
                    ratio = medians["DNAT"][key] / medians[other][key]
                    goal = GOALS.get((other, key)) if link == "veth" else None
                    cells.append(f"{ratio:.2f}{verdict(ratio, goal)}")
            print(f"| **DNAT / {other}** | " + " | ".join(cells) + " |")

    if "extras" in results:
        x = results["extras"]
        dnat_rtt, routed_rtt, n = x["rtt"]
        added = dnat_rtt - routed_rtt
        hooks, install = x["hooks"], x["install"]
        r = install[100] / install[1]
        print("\n### wireguard-go, IPv4: latency and hooks\n")
        print("| measure | value | target | result |")
        print("| --- | --- | --- | --- |")
        print(f"| RTT via DNAT / routed (mean of {n}) | {dnat_rtt:.3f} / {routed_rtt:.3f} ms | | |")
        print(f"| added RTT of the DNAT | {added:+.3f} ms | <= 0.05 ms | {'ok' if added <= 0.05 else 'MISSED'} |")
        for role, ms in hooks.items():
            print(f"| hooks up+down, {role} (median of 10) | {ms:.1f} ms | <= 300 ms | {'ok' if ms <= 300 else 'MISSED'} |")
        print(f"| rule install (up), 1 / 100 port ranges | {install[1]:.1f} / {install[100]:.1f} ms | | |")
        print(f"| 100 / 1 ranges | {r:.2f} | flat (~1) | {'ok' if r <= 1.5 else 'MISSED'} |")

    for path, lines in results.get("profiles", {}).items():
        print(f"\n### perf, new connections, IPv4, {LABELS[path]}: {lines[0]}\n")
        print("```\n" + "\n".join(lines[1:]) + "\n```")

    print("\nAll runs (Gbit/s; conn/s):")
    for link in links:
        for family, paths in results[link]["runs"].items():
            for path, runs in paths.items():
                print(f"- {link} {family} {path}: " + "/".join(f"{v:.2f}" for v in runs["gbit"]) +
                      "; " + "/".join(f"{v:.0f}" for v in runs["cps"]))


if __name__ == "__main__":
    sys.exit(main())
