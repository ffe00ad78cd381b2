"""The bridge's part of `cgnat-setup status` (installer/status.py): IPv6 forwarding, its own sshd,
how full its connection tracking table is."""
from __future__ import annotations

from cgnat_bridge import conntrack, decision
from installer import detect
from installer import status as shared
from installer.rules_file import saved_rules
from installer.status import Check
from installer.probes import touch

State, STEP_KINDS = decision.State, decision.STEP_KINDS    # its watchdog's, for the report


class Probe(shared.Probe):
    """The shared looks at the host, and the bridge's own."""

    def port_answers(self, host: str, port: int, timeout: float = 3) -> bool:
        return touch(host, port, timeout, refused_ok=False)

    def ipv6_forwarding(self) -> bool:
        try:
            return (detect.IPV6_CONF / "all" / "forwarding").read_text().strip() == "1"
        except OSError:
            return False

    def nat6_rules(self) -> set[str]:
        return (saved_rules("ip6tables") or {}).get("nat", set())

    def conntrack_table(self) -> conntrack.Table | None:
        return conntrack.read()


def endpoint(answers) -> str | None:
    """None: the bridge waits for its homelab to dial in (and keeps one tunnel)."""
    return None


def handshake_hint(answers) -> str:
    return (f"the homelab has not dialed in: check that UDP {answers.listen_port} is open "
            f"in the provider's firewall and that the homelab's tunnel is up")


def checks(answers, probe, up: bool) -> list[Check]:
    """IPv6 forwarding (with the tunnel up), then its own sshd."""
    port = answers.bridge.ssh_port
    ssh_ok = probe.port_answers("127.0.0.1", port)
    return [*([ipv6_forward(answers, probe)] if up else []),
            Check("sshd", ssh_ok, f"port {port} {'answers' if ssh_ok else 'does not answer'}",
                  f"the bridge's own ssh needs port {port}: rerun cgnat-setup; systemctl status ssh")]


def ipv6_forward(answers, probe) -> Check:
    """Its public IPv6 address is still on the public interface (SLAAC keeps it only while
    router advertisements are taken), IPv6 forwarding is on, and our chain DNATs that
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


def notes(probe) -> list[Check]:
    """How full the connection tracking table is (none while nf_conntrack is not loaded)."""
    table = probe.conntrack_table()
    return [] if table is None else [conntrack_check(table)]


SYSCTL_FILE = "/etc/sysctl.d/90-cgnat-conntrack.conf"


def conntrack_check(table: conntrack.Table) -> Check:
    """Information while below WARN_ABOVE; above it a warning, never a failure: a full table
    still forwards (the kernel drops unconfirmed entries first) and the chain is healthy."""
    detail = f"{table.count} of {table.max} entries ({table.fill:.0%})"
    if not table.crowded:
        return Check("conntrack", None, detail)
    return Check("conntrack", None, f"{detail}: above {conntrack.WARN_ABOVE:.0%}, new connections may be dropped "
                                    f"when it is full",
                 f"raise net.netfilter.nf_conntrack_max (a line in {SYSCTL_FILE}, then sysctl --system)",
                 warn=True)
