"""The watchdogs' Prometheus metrics, as a file for node_exporter's textfile collector.

    cgnat_healthy{interface="wg0"} 1

`render()` (pure) writes samples in the text exposition format, each metric with its HELP and
TYPE lines; `Textfile` puts them in DIRECTORY/cgnat.prom (one file per tunnel: a further
tunnel's is cgnat-IFACE.prom, its samples labelled with its interface) atomically (a temp file in the same
directory, renamed over it; node_exporter reads only *.prom, never the temp file), mode 0644.
It writes when a value changed, else every REFRESH seconds (the byte counters move all the
time; a write is a rename that ext4 flushes), and reads the tunnel's byte counters from
/proc/net/dev only then: no program to start.
"""
from __future__ import annotations

import errno
import math
import os
from pathlib import Path
from typing import Callable

from installer import atomic

DEFAULT_DIR = "/var/lib/prometheus/node-exporter"   # node_exporter's on Debian and Ubuntu
FILE_NAME = "cgnat.prom"    # the first tunnel's; a further tunnel's is cgnat-IFACE.prom (file_name)
REFRESH = 60.0          # seconds: the longest the byte counters stay unwritten (a scrape interval)
BLOCKED = (errno.EROFS, errno.EACCES, errno.EPERM)   # what the unit's sandbox answers

# name: (type, help). Labels besides `interface` are named in the help.
METRICS = {
    "cgnat_healthy": ("gauge", "1 while the watchdog finds the chain healthy, 0 while it is failing."),
    "cgnat_interface_up": ("gauge", "1 while the WireGuard interface exists."),
    "cgnat_handshake_age_seconds": ("gauge", "Seconds since the latest WireGuard handshake (homelab: "
                                             "only while failing; a healthy run does not ask wg)."),
    "cgnat_transfer_bytes_total": ("counter", "Bytes through the tunnel interface, by direction (rx, tx)."),
    "cgnat_watchdog_steps_total": ("counter", "Steps the watchdog took, by kind (homelab: re-peer, "
                                              "restart, action; bridge: restart, up-hook)."),
    "cgnat_state_change_timestamp_seconds": ("gauge", "When cgnat_healthy last changed (Unix time)."),
    "cgnat_end_to_end_ok": ("gauge", "Homelab: 1 if the last end-to-end check reached this host "
                                     "through the bridge."),
    "cgnat_end_to_end_latency_seconds": ("gauge", "Homelab: seconds the last end-to-end check took "
                                                  "(connect, and the ssh host key when it checks ssh)."),
    "cgnat_bridge_outage": ("gauge", "Homelab: 1 while the fault is the bridge's (no restart, no action)."),
    "cgnat_bridge_info": ("gauge", "Homelab: 1, with the endpoint of the tunnel's bridge as a label (which bridge "
                                   "an alert on this interface is about)."),
    "cgnat_rules_ok": ("gauge", "Bridge: 1 while every jump and chain of the forwarding rules is in place."),
    "cgnat_homelab_last_seen_timestamp_seconds": ("gauge", "Bridge: the homelab's latest handshake (Unix time)."),
    "cgnat_nf_conntrack_count": ("gauge", "Bridge: entries in its connection tracking table "
                                          "(net.netfilter.nf_conntrack_count)."),
    "cgnat_nf_conntrack_max": ("gauge", "Bridge: the most entries that table keeps "
                                        "(net.netfilter.nf_conntrack_max)."),
}

Sample = tuple[str, dict[str, str], float]


def render(interface: str, samples: list[Sample]) -> str:
    """The text exposition format: metrics in METRICS's order, HELP and TYPE before each."""
    by_name: dict[str, list[Sample]] = {}
    for sample in samples:
        if sample[0] not in METRICS:
            raise ValueError(f"unknown metric {sample[0]}")
        by_name.setdefault(sample[0], []).append(sample)
    lines = []
    for name, (kind, text) in METRICS.items():
        if name not in by_name:
            continue
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for _, labels, value in by_name[name]:
            number = _number(value)
            if number is None:      # NaN or infinite: no sample rather than a meaningless one
                continue
            pairs = ",".join(f'{key}="{_escape(val)}"' for key, val in {"interface": interface, **labels}.items())
            lines.append(f"{name}{{{pairs}}} {number}")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str | None:
    """The value as the format writes it (integers exactly, however large); None for NaN and
    the infinities, which no metric of ours means (a count, a time, an age, a flag)."""
    if isinstance(value, int):
        return str(int(value))
    value = float(value)
    if not math.isfinite(value):
        return None
    return str(int(value)) if value.is_integer() else repr(value)


def common_samples(state, kinds: tuple[str, ...], interface_up: bool,
                   handshake_age: float | None) -> list[Sample]:
    """What both watchdogs export (a `JsonState` after the run; every step kind, 0 if never)."""
    samples: list[Sample] = [("cgnat_healthy", {}, state.healthy), ("cgnat_interface_up", {}, interface_up)]
    if handshake_age is not None:
        samples.append(("cgnat_handshake_age_seconds", {}, round(handshake_age, 1)))
    samples += [("cgnat_watchdog_steps_total", {"kind": kind}, state.steps_taken.get(kind, 0))
                for kind in kinds]
    if state.health_changed_at is not None:
        samples.append(("cgnat_state_change_timestamp_seconds", {}, state.health_changed_at))
    return samples


def transfer_bytes(interface: str, proc_net_dev: Path = Path("/proc/net/dev")) -> tuple[int, int] | None:
    """(received, sent) bytes of the interface, in this process's network namespace."""
    try:
        lines = proc_net_dev.read_text().splitlines()[2:]
    except OSError:
        return None
    for line in lines:
        name, _, counters = line.partition(":")
        if name.strip() == interface:
            cols = counters.split()
            return int(cols[0]), int(cols[8])
    return None


UNIT_DROPIN = "/etc/systemd/system/cgnat-watchdog.service.d/metrics-dir.conf"


def unit_dropin(setting: str | None) -> str | None:
    """The watchdog unit's drop-in that lets it write the answers' metrics directory (its sandbox,
    ProtectSystem=strict, leaves only DEFAULT_DIR writable); None when none is needed."""
    if not setting or setting.rstrip("/") == DEFAULT_DIR:
        return None
    return ("# Written by cgnat-setup: the metrics directory of /etc/cgnat/answers.toml.\n"
            f"[Service]\nReadWritePaths=-{setting}\n")


def directory(setting: str | None, is_dir: Callable[[str], bool] = os.path.isdir) -> Path | None:
    """Where the metrics go: the answers' setting ("" turns them off), else DEFAULT_DIR when it
    exists (node_exporter installed); None: no metrics. Decided when the watchdog starts, as
    its unit's ReadWritePaths=-DEFAULT_DIR is."""
    if setting is not None:
        return Path(setting) if setting else None
    return Path(DEFAULT_DIR) if is_dir(DEFAULT_DIR) else None


def file_name(interface: str, first: bool) -> str:
    """The textfile of a tunnel: FILE_NAME for the first (a single-bridge host's only one),
    cgnat-IFACE.prom for a further one (a homelab with several bridges)."""
    return FILE_NAME if first else f"cgnat-{interface}.prom"


class Textfile:
    """DIRECTORY/NAME (cgnat.prom, or a further tunnel's cgnat-IFACE.prom), rewritten when a
    value changed or REFRESH seconds passed. A failed write is reported once (per distinct
    error), not on every run."""

    def __init__(self, directory: Path, interface: str, report: Callable[[str], None],
                 proc_net_dev: Path = Path("/proc/net/dev"), name: str = FILE_NAME):
        self.path = directory / name
        self.interface = interface
        self.report = report
        self.proc_net_dev = proc_net_dev
        self.samples: list[Sample] | None = None
        self.written_at = -math.inf
        self.error = ""

    def publish(self, samples: list[Sample], now: float) -> bool:
        """Write the samples (and the byte counters) if due; whether it wrote."""
        if samples == self.samples and now - self.written_at < REFRESH:
            return False
        transfer = transfer_bytes(self.interface, self.proc_net_dev)
        counted = [("cgnat_transfer_bytes_total", {"direction": way}, n)
                   for way, n in zip(("rx", "tx"), transfer or ())]
        try:
            atomic.write_atomic(self.path, render(self.interface, samples + counted), 0o644,
                                durable=False)
        except OSError as error:
            problem = error.strerror or str(error)     # not the temp file's random name
            if problem != self.error:
                sandbox = (f" (the unit may write only to {DEFAULT_DIR} and the answers' metrics_dir: "
                           f"run cgnat-setup again after changing it)" if error.errno in BLOCKED else "")
                self.report(f"cannot write the metrics {self.path}: {problem}{sandbox}")
            self.error = problem
            return False
        self.samples, self.written_at, self.error = samples, now, ""
        return True

    def withdraw(self) -> None:
        """Remove the file (the watchdog stops); none there is fine."""
        try:
            self.path.unlink()
        except OSError:
            pass

