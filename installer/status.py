"""`cgnat-setup status`: the health of every link of the chain, one line each.

    ok    interface   wg0 is up
    FAIL  handshake   none yet  -> check that UDP 51820 is open in the provider's firewall

Exit 0 only when every check is healthy; informational lines ("info") never fail.
`gather()` turns what a `Probe` reports into checks (pure given the probe); `Probe` is the
only part that looks at the host, read-only.
"""
from __future__ import annotations

import ipaddress
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from installer import answers as answers_toml
from installer import detect
from installer.apply import host_path
from installer.answers import ANSWERS_PATH
from installer.validate import load_answers
from installer.watchdog import STATE_PATH, UNIT, handshake_age, interface_exists, run

HANDSHAKE_STALE = 180          # WireGuard re-handshakes every 2 minutes while traffic flows
BACKUP_TOOLS = ("cloudflared", "tailscaled")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None            # None: informational
    detail: str
    hint: str = ""

    def line(self) -> str:
        mark = "info" if self.ok is None else ("ok" if self.ok else "FAIL")
        hint = f"  -> {self.hint}" if self.hint and self.ok is False else ""
        return f"{mark:<5} {self.name:<11} {self.detail}{hint}"


class Probe:
    """Read-only looks at the host (each method also exists on the tests' fake)."""

    def __init__(self, root: Path = Path("/")):
        self.root = root

    def interface_up(self, iface: str) -> bool:
        return interface_exists(iface)

    def handshake_age(self, iface: str) -> float | None:
        return handshake_age(iface, time.time())

    def missing_rules(self, iface: str) -> tuple[str, ...]:
        from cgnat_bridge.watchdog import missing_rules
        missing = missing_rules(iface, str(host_path(self.root, f"/etc/cgnat/{iface}.rules")))
        # A homelab without IPv6: its up hook skipped IFACE.rules6 on purpose.
        return missing if detect.ipv6_disabled(iface) is None else tuple(
            m for m in missing if not m.startswith("IPv6 "))

    # --- for the checks of both families (ipv6_forward, reply_routing) ---
    def ip_json(self, *args: str) -> list:
        """`ip -j ARGS` parsed; [] when it fails (no such device, no IPv6)."""
        try:
            return json.loads(run(["ip", "-j", *args]).stdout or "[]")
        except ValueError:
            return []

    def ipv6_disabled(self, iface: str) -> str | None:
        return detect.ipv6_disabled(iface)

    def ipv6_forwarding(self) -> bool:
        try:
            return (detect.IPV6_CONF / "all" / "forwarding").read_text().strip() == "1"
        except OSError:
            return False

    def nat6_rules(self) -> set[str]:
        from cgnat_bridge.watchdog import saved_rules
        return (saved_rules("ip6tables") or {}).get("nat", set())

    def port_answers(self, host: str, port: int, timeout: float = 3) -> bool:
        from cgnat_homelab.probe import touch
        return touch(host, port, timeout, refused_ok=False)

    def has_sshd(self) -> bool:
        from cgnat_homelab.probe import our_host_keys
        return bool(our_host_keys(host_path(self.root, "/etc/ssh")))

    def end_to_end(self, config) -> tuple[bool, bool]:
        """(reaches this host, answered by the bridge itself), as the watchdog checks it."""
        from cgnat_homelab.probe import end_to_end
        return end_to_end(config, host_path(self.root, "/etc/ssh"))

    def watchdog_state(self) -> dict | None:
        try:
            return json.loads(host_path(self.root, STATE_PATH).read_text())
        except (OSError, ValueError):
            return None

    def watchdog_active(self) -> bool | None:
        if shutil.which("systemctl") is None:
            return None
        return run(["systemctl", "is-active", "--quiet", UNIT]).returncode == 0

    def backup_paths(self) -> list[str]:
        found = [tool for tool in BACKUP_TOOLS if shutil.which(tool)]
        return found


def gather(answers, probe) -> list[Check]:
    iface = answers.interface
    checks = []
    up = probe.interface_up(iface)
    checks.append(Check("interface", up, f"{iface} is {'up' if up else 'missing'}",
                        f"systemctl restart wg-quick@{iface}; journalctl -u wg-quick@{iface}"))
    age = probe.handshake_age(iface) if up else None
    if answers.role == "bridge":
        no_handshake = (f"the homelab has not dialed in: check that UDP {answers.listen_port} is open "
                        f"in the provider's firewall and that the homelab's tunnel is up")
    else:
        no_handshake = (f"check that UDP {answers.listen_port} is open in the bridge provider's "
                        f"firewall and that {answers.homelab.endpoint} is the bridge")
    if age is None:
        checks.append(Check("handshake", False, "none yet", no_handshake))
    else:
        fresh = age <= HANDSHAKE_STALE
        checks.append(Check("handshake", fresh, f"{age:.0f} s ago", no_handshake))
    missing = probe.missing_rules(iface) if up else ()
    rules_ok = up and not missing
    checks.append(Check("rules", rules_ok,
                        "all present" if rules_ok else ("interface down" if not up else "missing: " + ", ".join(missing)),
                        f"/usr/lib/cgnat-{answers.role}/hooks/up {iface}  (or restart wg-quick@{iface})"))
    checks += family_checks(answers, probe) if up else []
    if answers.role == "bridge":
        port = answers.bridge.ssh_port
        ssh_ok = probe.port_answers("127.0.0.1", port)
        checks.append(Check("sshd", ssh_ok, f"port {port} {'answers' if ssh_ok else 'does not answer'}",
                            f"the bridge's own ssh needs port {port}: rerun cgnat-setup; "
                            f"systemctl status ssh"))
    else:
        checks.append(_end_to_end(answers, probe))
    checks.append(_watchdog(probe, answers.role))
    if answers.role == "homelab":
        tools = probe.backup_paths()
        checks.append(Check("backup", None, ("second way in: " + ", ".join(tools)) if tools else
                            "no second way in (cloudflared or tailscale) found; if the bridge dies, "
                            "only local access remains"))
    return checks


def family_checks(answers, probe) -> list[Check]:
    """What each address family needs beyond our chains: the bridge's IPv6 DNAT (or why
    IPv6 is not forwarded), the homelab's reply routing for IPv4 and IPv6."""
    if answers.role == "bridge":
        return [ipv6_forward(answers, probe)]
    return [reply_routing(answers, probe)]


def ipv6_forward(answers, probe) -> Check:
    """Bridge: its public IPv6 address is still on the public interface (SLAAC keeps it only
    while router advertisements are taken), IPv6 forwarding is on, and our chain DNATs that
    address to the homelab's tunnel address."""
    b = answers.bridge
    if not answers.forwards_ipv6:
        return Check("ipv6", None, f"not forwarded ({answers.no_ipv6_reason} at setup); no AAAA record")
    target = f"{b.public_address6} -> {answers.homelab_address6}"
    hint = f"/usr/lib/cgnat-bridge/hooks/up {answers.interface}  (or restart wg-quick@{answers.interface})"
    held = [a.get("local") for link in probe.ip_json("-6", "address", "show", "dev", b.public_interface)
            for a in link.get("addr_info", [])]
    if b.public_address6 not in held:
        return Check("ipv6", False, f"{b.public_address6} is no longer on {b.public_interface}",
                     f"the provider's IPv6 (SLAAC: cat /proc/sys/net/ipv6/conf/{b.public_interface}/accept_ra "
                     f"must be 2); then cgnat-setup again if the address changed")
    if not probe.ipv6_forwarding():
        return Check("ipv6", False, f"{target}: IPv6 forwarding is off", hint)
    pre = f"-A CGNAT-{answers.interface}-PRE "
    dnat = [rule for rule in probe.nat6_rules() if rule.startswith(pre)
            and f"-d {b.public_address6}/128 " in rule and rule.endswith(f"--to-destination {answers.homelab_address6}")]
    if not dnat:
        return Check("ipv6", False, f"{target}: no DNAT rule", hint)
    return Check("ipv6", True, f"{target} (DNAT, AAAA {b.public_address6})")


def reply_routing(answers, probe) -> Check:
    """Homelab: the ip rules (connection mark, tunnel source) and the table whose default
    route is the tunnel, per family; IPv6 only where the tunnel interface has it."""
    from installer.render import RULE_PREF
    h, iface = answers.homelab, answers.interface
    families = [("IPv4", "-4", answers.homelab_address)]
    disabled = probe.ipv6_disabled(iface)
    if disabled is None:
        families.append(("IPv6", "-6", answers.homelab_address6))
    mark, table = int(h.fwmark, 0), str(h.table)
    missing = []
    for name, flag, address in families:
        rules = [r for r in probe.ip_json(flag, "rule", "show") if r.get("table") == table]
        if not any(r.get("priority") == RULE_PREF and int(r.get("fwmark", "0"), 0) == mark for r in rules):
            missing.append(f"{name} rule fwmark {mark:#x}")
        if not any(r.get("priority") == RULE_PREF + 1 and _same_address(r.get("src"), address) for r in rules):
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


def _end_to_end(answers, probe) -> Check:
    from cgnat_homelab.decision import Config
    from cgnat_homelab.endtoend import choose
    config = Config.from_answers(answers, homelab_sshd=probe.has_sshd())
    if not config.target_host:
        return Check("end2end", False, "no check_host and no endpoint", "set homelab.watchdog.check_host")
    if config.e2e is None:
        w = answers.homelab.watchdog
        _, missing = choose(w.bridge_forward or "all", config.bridge_ssh_port, None, False)
        return Check("end2end", None, f"no end-to-end check possible: {missing}")
    target = config.check_target
    ok, foreign = probe.end_to_end(config)
    if foreign:
        return Check("end2end", False, f"{target} is answered by the bridge itself, not this host",
                     f"the bridge answers itself instead of forwarding: on the bridge, run "
                     f"cgnat-setup status (rules) and /usr/lib/cgnat-bridge/hooks/up {answers.interface}")
    what = "sshd" if config.e2e.identity == "ssh" else "service"
    hint = (f"out the home line to {target}, in through the bridge to this host's {what}: check "
            f"the bridge (ssh -p {config.bridge_ssh_port} {config.target_host}) and that a {what} "
            f"listens on {config.e2e.port} here")
    return Check("end2end", ok, f"{target} {'reaches this host' if ok else 'fails'}", hint)


def _watchdog(probe, role: str) -> Check:
    from cgnat_bridge.watchdog import State as BridgeState
    from cgnat_homelab.decision import State as HomelabState
    active = probe.watchdog_active()
    data = probe.watchdog_state()
    hint = f"systemctl enable --now {UNIT}; journalctl -u {UNIT}"
    if active is False:
        return Check("watchdog", False, "service not active", hint)
    if data is None:
        return Check("watchdog", False, "has not run yet", hint)
    state = (BridgeState if role == "bridge" else HomelabState).from_dict(data)
    step = f" (last step: {state.last_step})" if state.last_step else ""
    return Check("watchdog", state.healthy, state.summary + step, f"journalctl -u {UNIT}")


def main(root: Path = Path("/"), probe=None, out=None) -> int:
    out = out or sys.stdout
    saved = host_path(root, ANSWERS_PATH)
    if not saved.exists():
        print(f"not configured: {saved} is missing (run cgnat-setup)", file=out)
        return 1
    answers = load_answers(answers_toml.parse_toml(saved.read_text()), None, None)
    checks = gather(answers, probe or Probe(root))
    print(f"cgnat {answers.role} {answers.interface}:", file=out)
    for check in checks:
        print(check.line(), file=out)
    return 0 if all(c.ok is not False for c in checks) else 1
