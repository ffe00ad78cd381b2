"""What a homelab needs to know."""
from __future__ import annotations

from dataclasses import dataclass, field

from installer.answers import CommonAnswers

WATCHDOG_ACTIONS = ("reboot", "restart-tunnel", "none")   # homelab.watchdog.action; the wizard offers them
RULE_PREF = 1000   # the first tunnel's ip rule priorities: fwmark at 1000, "from" its tunnel address at 1001


@dataclass
class WatchdogSection:
    check_host: str | None = None   # public name that points at the bridge
    action: str = "reboot"          # or "restart-tunnel" or "none"
    # Added keys, read by cgnat_homelab.watchdog. None (unset, not saved) means the default
    # in cgnat_homelab.decision.DEFAULTS, shown here after the key.
    check_port: int | None = None          # chosen from bridge_forward (cgnat_homelab/endtoend.py):
                                           # 22 when forwarded and sshd runs here, else a forwarded port
    bridge_ssh_port: int | None = None     # 2222: the bridge's own sshd; answers = bridge is up
    bridge_forward: str | list[str] | None = None  # "all": what the bridge forwards (its token says)
    check_interval: int | None = None      # 60 s between end-to-end checks while healthy
    restart_after: int | None = None       # 60 s of failure before the tunnel is restarted
    restart_interval: int | None = None    # 60 s: at most one tunnel restart per interval
    action_after: int | None = None        # 300 s of failure (a restart did not help) before the action
    action_interval: int | None = None     # 1800 s: at most one action per interval
    boot_grace: int | None = None          # 600 s after boot without any action
    max_reboots_per_day: int | None = None # 3 reboots in 24 hours at most
    restart_command: str | None = None     # "systemctl restart wg-quick@IFACE" (sh -c)
    action_command: str | None = None      # "systemctl reboot", or restart_command for restart-tunnel
    metrics_dir: str | None = None         # Prometheus textfile directory ("" off; installer/metrics.py)


@dataclass
class HomelabSection:
    endpoint: str | None = None
    keepalive: int = 25
    docker_subnets: list[str] | None = None   # default: detected on the host
    table: int = 200
    # Bit 24: clear of kube-proxy (0xc000) and Tailscale (0xff0000); Docker sets no marks.
    fwmark: str = "0x1000000"
    rule_pref: int | None = None   # its ip rules' priorities: fwmark at rule_pref, "from" at
                                   # rule_pref + 1 (unset: RULE_PREF; see rule_priority)
    # A further tunnel (a second bridge) takes the next of each: wg1, table 201, mark 0x2000000,
    # priorities 1010 and 1011 (cgnat_homelab/tunnels.py chooses them).
    watchdog: WatchdogSection = field(default_factory=WatchdogSection)

    @property
    def rule_priority(self) -> int:
        return RULE_PREF if self.rule_pref is None else self.rule_pref


@dataclass
class HomelabAnswers(CommonAnswers):
    role: str = "homelab"
    homelab: HomelabSection = field(default_factory=HomelabSection)
