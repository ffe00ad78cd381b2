"""The homelab's part of `cgnat-setup status` (installer/status.py): the routing of replies
for both families, the end-to-end check as its watchdog makes it, and a second way in."""
from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

from cgnat_homelab import decision
from cgnat_homelab.decision import Config
from cgnat_homelab.probe import end_to_end, ipv4_listeners
from installer import status as shared
from installer.apply import host_path
from installer.detect import SSH_DIR, our_host_keys
from installer.status import Check

BACKUP_TOOLS = ("cloudflared", "tailscaled")
State, STEP_KINDS = decision.State, decision.STEP_KINDS    # its watchdog's, for the report


class Probe(shared.Probe):
    """The shared looks at the host, and the homelab's own."""

    def has_sshd(self) -> bool:
        return bool(our_host_keys(host_path(self.root, str(SSH_DIR))))

    def listeners(self, config) -> frozenset[int] | None:
        """What listens for the bridge's connections here (None: cannot tell, or another root)."""
        return ipv4_listeners(config.homelab_address) if self.root == Path("/") else None

    def end_to_end(self, config, check) -> tuple[bool, bool]:
        """(reaches this host, answered by the bridge itself), as the watchdog checks it."""
        return end_to_end(config, check, host_path(self.root, str(SSH_DIR)))

    def backup_paths(self) -> list[str]:
        return [tool for tool in BACKUP_TOOLS if shutil.which(tool)]


def endpoint(answers) -> str | None:
    """Its bridge's, which names a tunnel on a host with several."""
    return answers.homelab.endpoint


def handshake_hint(answers) -> str:
    return (f"check that UDP {answers.listen_port} is open in the bridge provider's "
            f"firewall and that {answers.homelab.endpoint} is the bridge")


def checks(answers, probe, up: bool) -> list[Check]:
    """The routing of replies (with the tunnel up), then the end-to-end check."""
    return [*([reply_routing(answers, probe)] if up else []), end_to_end_check(answers, probe)]


def reply_routing(answers, probe) -> Check:
    """The ip rules (connection mark, tunnel source) and the table whose default route is the
    tunnel, per family; IPv6 only where the tunnel interface has it."""
    h, iface = answers.homelab, answers.interface
    families = [("IPv4", "-4", answers.homelab_address)]
    disabled = probe.ipv6_disabled(iface)
    if disabled is None:
        families.append(("IPv6", "-6", answers.homelab_address6))
    mark, table, pref = int(h.fwmark, 0), str(h.table), h.rule_priority
    missing = []
    for name, flag, address in families:
        rules = [r for r in probe.ip_json(flag, "rule", "show") if r.get("table") == table]
        if not any(r.get("priority") == pref and int(r.get("fwmark", "0"), 0) == mark for r in rules):
            missing.append(f"{name} rule fwmark {mark:#x}")
        if not any(r.get("priority") == pref + 1 and _same_address(r.get("src"), address) for r in rules):
            missing.append(f"{name} rule from {address}")
        if not probe.ip_json(flag, "route", "show", "table", table, "default", "dev", iface):
            missing.append(f"{name} default route of table {table}")
    only = f"; IPv4 only: IPv6 is disabled ({disabled})" if disabled else ""
    if missing:
        return Check("routing", False, "missing: " + ", ".join(missing) + only,
                     f"/usr/lib/cgnat-homelab/hooks/up {iface}  (or restart wg-quick@{iface})")
    return Check("routing", True, f"replies leave by {iface} (table {table}): "
                                  f"{' and '.join(name for name, _, _ in families)}{only}")


def _same_address(text, address: str) -> bool:
    try:
        return text is not None and ipaddress.ip_address(text) == ipaddress.ip_address(address)
    except ValueError:
        return False


def end_to_end_check(answers, probe) -> Check:
    config = Config.from_answers(answers, homelab_sshd=probe.has_sshd())
    if not config.target_host:
        return Check("end2end", False, "no check_host and no endpoint", "set homelab.watchdog.check_host")
    check, missing = config.check_for(probe.listeners(config))
    if check is None:
        return Check("end2end", None, f"no end-to-end check possible: {missing}")
    target = config.check_target(check)
    ok, foreign = probe.end_to_end(config, check)
    if foreign:
        return Check("end2end", False, f"{target} is answered by the bridge itself, not this host",
                     f"the bridge answers itself instead of forwarding: on the bridge, run "
                     f"cgnat-setup status (rules) and /usr/lib/cgnat-bridge/hooks/up {answers.interface}")
    if check.identity == "self":
        to, need = "this host", f"that it forwards tcp/{check.port} to this host (cgnat-setup status there)"
    else:
        what = "sshd" if check.identity == "ssh" else "service"
        to, need = f"this host's {what}", f"that a {what} listens on {check.port} here"
    hint = (f"out the home line to {target}, in through the bridge to {to}: check the bridge "
            f"(ssh -p {config.bridge_ssh_port} {config.target_host}) and {need}")
    return Check("end2end", ok, f"{target} {'reaches this host' if ok else 'fails'}", hint)


def notes(probe) -> list[Check]:
    tools = probe.backup_paths()
    return [Check("backup", None, ("second way in: " + ", ".join(tools)) if tools else
                  "no second way in (cloudflared or tailscale) found; if the bridge dies, "
                  "only local access remains")]
