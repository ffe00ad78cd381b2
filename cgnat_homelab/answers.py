"""What a homelab needs to know."""
from __future__ import annotations

from dataclasses import dataclass, field

from installer.answers import CommonAnswers


@dataclass
class WatchdogSection:
    check_host: str | None = None   # public name that points at the bridge
    action: str = "reboot"          # or "restart-tunnel" or "none"


@dataclass
class HomelabSection:
    endpoint: str | None = None
    keepalive: int = 25
    docker_subnets: list[str] | None = None   # default: detected on the host
    table: int = 200
    # Bit 24: clear of kube-proxy (0xc000) and Tailscale (0xff0000); Docker sets no marks.
    fwmark: str = "0x1000000"
    watchdog: WatchdogSection = field(default_factory=WatchdogSection)


@dataclass
class HomelabAnswers(CommonAnswers):
    role: str = "homelab"
    homelab: HomelabSection = field(default_factory=HomelabSection)
