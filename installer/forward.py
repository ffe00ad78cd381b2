"""What a bridge's forward setting covers ("all", or a list like ["tcp/80", "udp/53", "icmp"]).
Pure; read by the bridge's checks and by the homelab's watchdog, which must know which of
the bridge's ports reach the homelab."""
from __future__ import annotations

from installer import grammar

SSH_PORT = 22     # the homelab's sshd, the default end-to-end check


def tcp_ranges(forward) -> list[tuple[int, int]] | None:
    """The TCP port ranges of a forward list; None for "all"."""
    if forward == "all":
        return None
    spans = [grammar.port_range(spec) for spec in forward]
    return [(low, high) for proto, low, high in filter(None, spans) if proto == "tcp"]


def forwards(forward, bridge_ssh_port: int, port: int) -> bool:
    """Whether the bridge forwards TCP `port` (it never forwards its own ssh port)."""
    ranges = tcp_ranges(forward)
    if ranges is None:
        return port != bridge_ssh_port
    return any(low <= port <= high for low, high in ranges)
