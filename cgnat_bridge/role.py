"""The bridge behind the role interface (installer/roles.py): the public host that keeps its
WireGuard and SSH ports and DNATs everything else through the tunnel to the homelab."""
from __future__ import annotations

from cgnat_bridge import checks, sshd, status
from cgnat_bridge.answers import BridgeAnswers
from installer import render
from installer.detect import HostFacts
from installer.roles import HostChanges


class Bridge:
    name = "bridge"
    summary = "the public VPS that forwards"
    model = BridgeAnswers
    check = staticmethod(checks.check)
    warnings = staticmethod(checks.warnings)
    status = status       # its part of `cgnat-setup status`: Probe, checks, notes, State
    several_tunnels = False   # one homelab: answers naming another interface replace the tunnel

    @staticmethod
    def resolve(answers: BridgeAnswers, facts: HostFacts) -> None:
        b = answers.bridge
        b.public_interface = b.public_interface or facts.default_interface
        b.public_address = b.public_address or facts.ipv4_address(b.public_interface)
        if b.ipv6 == "auto":
            b.public_address6 = b.public_address6 or facts.ipv6_address(b.public_interface)

    @staticmethod
    def has_rules6(answers: BridgeAnswers) -> bool:
        return answers.forwards_ipv6

    @staticmethod
    def rules(answers: BridgeAnswers, family: int = 4) -> str:
        b = answers.bridge
        keep_local = [("udp", str(answers.listen_port)), ("tcp", str(b.ssh_port))]
        keep_local += [render.iptables_ports(spec) for spec in b.keep_local]
        forward = b.forward if b.forward == "all" else [
            ("icmp", "") if spec == "icmp" else render.iptables_ports(spec) for spec in b.forward]
        if family == 6:
            public_address, homelab_address = b.public_address6, answers.homelab_address6
        else:
            public_address, homelab_address = b.public_address, answers.homelab_address
        return render.render("bridge", "rules.j2", family=family, public_interface=b.public_interface,
                             public_address=public_address, homelab_address=homelab_address,
                             keep_local=keep_local, forward=forward, bridge_address=answers.bridge_address,
                             listen_port=answers.listen_port, **render.chains(answers))

    @staticmethod
    def env(answers: BridgeAnswers) -> str:
        return render.render("bridge", "env.j2", answers=answers)

    @staticmethod
    def hook_summary(answers: BridgeAnswers) -> list[str]:
        forwarding = ["echo 1 > /proc/sys/net/ipv4/ip_forward", render.restore_summary(answers, 4)]
        if not answers.forwards_ipv6:
            return forwarding
        return forwarding + [
            f"echo 2 > /proc/sys/net/ipv6/conf/{answers.bridge.public_interface}/accept_ra  (only if "
            f"it is 1: RAs in use; down puts 1 back)", "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding",
            render.restore_summary(answers, 6)]

    @staticmethod
    def metrics_dir(answers) -> str | None:
        return answers.bridge.watchdog_metrics_dir

    detect = staticmethod(sshd.SshdFacts.detect)     # its sshd, before its port is moved

    @staticmethod
    def plan_host(answers: BridgeAnswers, facts: HostFacts) -> HostChanges:
        return sshd.plan_change(answers.bridge.ssh_port, answers.listen_port, facts)

    @staticmethod
    def token_fields(answers: BridgeAnswers) -> dict[str, str]:
        """Where the homelab dials, and what its watchdog needs to know of the bridge."""
        b = answers.bridge
        return {"endpoint": f"{b.public_address}:{answers.listen_port}", "ssh_port": str(b.ssh_port),
                "forward": b.forward if isinstance(b.forward, str) else ",".join(b.forward),
                "address6": b.public_address6 if answers.forwards_ipv6 else ""}

    @staticmethod
    def take_token(data: dict, token) -> None:
        """A homelab's token tells nothing beyond its key and the tunnel (pairing fills those)."""

    @staticmethod
    def wizard_steps() -> list:
        from cgnat_bridge import wizard    # Textual: only the wizard asks
        return wizard.STEPS

    @staticmethod
    def notes(answers: BridgeAnswers) -> list[str]:
        port = answers.bridge.ssh_port
        return [f"Open UDP {answers.listen_port} and TCP {port} in your provider's firewall; "
                f"from now on `ssh -p {port}` reaches the bridge.", answers.dns_records()]


ROLE = Bridge()
