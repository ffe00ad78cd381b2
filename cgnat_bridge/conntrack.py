"""The bridge's connection tracking table: how full it is (the watchdog's metrics, status).

Every forwarded connection holds one entry on the bridge (DNAT cannot work without it) for as
long as the kernel tracks it: while it is open, then 120 s in TIME_WAIT after a TCP close
(`nf_conntrack_tcp_timeout_time_wait`), 30-120 s after the last UDP packet. When the table is
full the kernel drops an unconfirmed entry to make room (early drop) or, failing that, the new
connection. nf_conntrack_count is counted in this network namespace; nf_conntrack_max is the
host's (read-only inside a namespace).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc/sys/net/netfilter")
WARN_ABOVE = 0.8        # status warns when more of the table is in use than this


@dataclass(frozen=True)
class Table:
    count: int          # nf_conntrack_count: entries in use
    max: int            # nf_conntrack_max: the most the kernel keeps

    @property
    def fill(self) -> float:
        return self.count / self.max if self.max > 0 else 0.0

    @property
    def crowded(self) -> bool:
        return self.fill > WARN_ABOVE


def read(proc: Path = PROC) -> Table | None:
    """The table, None while nf_conntrack is not loaded (no rule of ours is in place yet)."""
    try:
        return Table(int((proc / "nf_conntrack_count").read_text()), int((proc / "nf_conntrack_max").read_text()))
    except (OSError, ValueError):
        return None
