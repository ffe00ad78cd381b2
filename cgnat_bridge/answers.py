"""What a bridge needs to know."""
from __future__ import annotations

from dataclasses import dataclass, field

from installer.answers import CommonAnswers


@dataclass
class BridgeSection:
    public_interface: str | None = None   # default: the interface of the default route
    public_address: str | None = None     # default: the IPv4 address of public_interface
    ssh_port: int = 2222
    keep_local: list[str] = field(default_factory=list)
    forward: str | list[str] = "all"
    # Added keys, read by cgnat_bridge.watchdog; None (unset, not saved) means the default.
    watchdog_silent_after: int | None = None      # 180 s without a handshake: "homelab silent"
    watchdog_restart_command: str | None = None   # "systemctl restart wg-quick@IFACE" (sh -c)
    watchdog_up_command: str | None = None        # "/usr/lib/cgnat-bridge/hooks/up IFACE" (sh -c)


@dataclass
class BridgeAnswers(CommonAnswers):
    role: str = "bridge"
    bridge: BridgeSection = field(default_factory=BridgeSection)
