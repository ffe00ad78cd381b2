#!/usr/bin/env python3
"""CPU cost of the watchdog services in steady state (a healthy chain), one lab run.

    sudo python3 bench/watchdog_cpu.py [--seconds 600]

Brings the chain up in the namespace lab (faultlab: the homelab reaches the bridge by name,
default watchdog settings: a run every 2 s on the homelab, every 10 s on the bridge, the
end-to-end check every 60 s), starts both watchdogs as cgnat-watchdog.service starts them
(the installed launcher, default period), waits for their first runs, then measures for
--seconds the CPU time of each watchdog process (its threads, from schedstat in ns) and of
the programs it ran (ssh-keyscan, iptables-save, wg: cutime+cstime), and counts the journal
lines they wrote. Prints the share of one core; the target is < 0.05 %. Not part of CI.
--metrics: both also write their Prometheus textfile (to /run/lab/metrics in each node), as
on a host with node_exporter.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "lab"))

import faultlab  # noqa: E402
import netlab  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
TARGET = 0.05                  # % of one core
METRICS_DIR = "/run/lab/metrics"


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(the process's own CPU seconds, its reaped children's) so far."""
    own = sum(int((task / "schedstat").read_text().split()[0])
              for task in Path(f"/proc/{pid}/task").iterdir()) / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    children = (int(fields[13]) + int(fields[14])) / TICK     # cutime, cstime
    return own, children


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--metrics", action="store_true", help="write the Prometheus textfile too")
    args = p.parse_args()
    packages = netlab.stage_packages(Path(tempfile.mkdtemp(prefix="cgnat-bench-debs-")))
    lab = netlab.Lab(packages, log=lambda *a: None)
    rows = []
    try:
        faultlab.up(lab, watchdog={"metrics_dir": METRICS_DIR} if args.metrics else None)
        if args.metrics:
            lab.bridge.write("/run/lab/answers.toml", faultlab.bridge_answers(lab) +
                             f'watchdog_metrics_dir = "{METRICS_DIR}"\n')
            lab.bridge.sh("cgnat-setup --answers /run/lab/answers.toml --root /")
            for node in (lab.homelab, lab.bridge):
                node.sh(f"mkdir -p {METRICS_DIR}")
        dogs = {role: faultlab.Watchdog(lab, role, every=None) for role in ("homelab", "bridge")}
        dogs["homelab"].wait_line(r"healthy", 0, 30)
        faultlab.wait_reachable(lab, 30)
        time.sleep(12)                                 # both have run at least once
        start = {role: (cpu_seconds(d.proc.pid), d.mark()) for role, d in dogs.items()}
        t0 = time.monotonic()
        time.sleep(args.seconds)
        wall = time.monotonic() - t0
        for role, dog in dogs.items():
            (own0, kids0), mark = start[role]
            own1, kids1 = cpu_seconds(dog.proc.pid)
            lines = dog.lines(mark)
            rows.append((role, own1 - own0, kids1 - kids0, wall, len(lines)))
            if args.metrics:                       # written, and recently (each minute at least)
                age = dog.node.sh(f"echo $(( $(date +%s) - $(stat -c %Y {METRICS_DIR}/cgnat.prom) ))")
                print(f"{role}: {METRICS_DIR}/cgnat.prom written {age.strip()} s ago")
            dog.stop()
    finally:
        lab.close()
    print(f"\n{'watchdog':<9}{'seconds':>9}{'own cpu':>10}{'programs':>10}{'% of a core':>13}{'lines':>7}")
    worst = 0.0
    for role, own, kids, wall, lines in rows:
        share = 100 * (own + kids) / wall
        worst = max(worst, share)
        print(f"{role:<9}{wall:>9.0f}{own:>9.3f}s{kids:>9.3f}s{share:>12.4f}%{lines:>7}")
    print(f"\ntarget: < {TARGET} % of one core each, no journal line while healthy")
    return 0 if worst < TARGET and all(r[4] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
