"""What a bridge needs to know."""
from __future__ import annotations

from dataclasses import dataclass, field

from installer.answers import CommonAnswers


@dataclass
class BridgeSection:
    public_interface: str | None = None   # default: the interface of the default route
    public_address: str | None = None     # default: the IPv4 address of public_interface
    public_address6: str | None = None    # default: the global IPv6 address of public_interface
    ipv6: str = "auto"                    # forward public_address6 when there is one; or "off"
    ssh_port: int = 2222
    keep_local: list[str] = field(default_factory=list)
    forward: str | list[str] = "all"
    # Added keys, read by cgnat_bridge.watchdog; None (unset, not saved) means the default.
    watchdog_silent_after: int | None = None      # 180 s without a handshake: "homelab silent"
    watchdog_restart_command: str | None = None   # "systemctl restart wg-quick@IFACE" (sh -c)
    watchdog_up_command: str | None = None        # "/usr/lib/cgnat-bridge/hooks/up IFACE" (sh -c)
    watchdog_metrics_dir: str | None = None       # Prometheus textfile directory ("" off; installer/metrics.py)


@dataclass
class BridgeAnswers(CommonAnswers):
    role: str = "bridge"
    bridge: BridgeSection = field(default_factory=BridgeSection)

    @property
    def forwards_ipv6(self) -> bool:
        """IPv6 is forwarded (resolved answers): on, and a public IPv6 address to forward."""
        return self.bridge.ipv6 == "auto" and self.bridge.public_address6 is not None

    @property
    def no_ipv6_reason(self) -> str:
        """Why IPv6 is not forwarded (resolved answers that do not forward it)."""
        if self.bridge.ipv6 == "off":
            return 'ipv6 = "off"'
        return f"no global IPv6 address on {self.bridge.public_interface}"

    def dns_records(self) -> str:
        """The DNS records to publish for the homelab's names (resolved answers)."""
        if self.forwards_ipv6:
            return (f"Publish A {self.bridge.public_address} and AAAA {self.bridge.public_address6} "
                    f"for your names (both are forwarded to the homelab).")
        return (f"Publish A {self.bridge.public_address} for your names; no AAAA record (IPv6 is "
                f"not forwarded: {self.no_ipv6_reason}).")
