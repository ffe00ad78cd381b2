"""The homelab behind the role interface (installer/roles.py): the home server that dials
the bridge and routes the replies of forwarded connections back through the tunnel."""
from __future__ import annotations

from cgnat_homelab import checks, status, tunnels
from cgnat_homelab.answers import HomelabAnswers
from cgnat_homelab.decision import wireguard_port
from installer import grammar, render
from installer.detect import HostFacts
from installer.roles import HostChanges


class Homelab:
    name = "homelab"
    summary = "the server at home behind CGNAT"
    model = HomelabAnswers
    check = staticmethod(checks.check)
    warnings = staticmethod(checks.warnings)
    status = status       # its part of `cgnat-setup status`: Probe, checks, notes, State
    several_tunnels = True    # one per bridge (cgnat_homelab/tunnels.py)
    new_tunnel = staticmethod(tunnels.new_tunnel)

    @staticmethod
    def resolve(answers: HomelabAnswers, facts: HostFacts) -> None:
        if answers.homelab.docker_subnets is None:
            answers.homelab.docker_subnets = list(facts.docker_subnets)

    @staticmethod
    def has_rules6(answers: HomelabAnswers) -> bool:
        return True     # its marks cost nothing without IPv6 clients

    @staticmethod
    def rules(answers: HomelabAnswers, family: int = 4) -> str:
        mark = _mark(answers)
        return render.render("homelab", "rules.j2", fwmark=mark, fwmask=mark, family=family,
                             homelab_address=answers.homelab_address,
                             self_check_port=wireguard_port(answers.homelab.endpoint),
                             **render.chains(answers))

    @staticmethod
    def env(answers: HomelabAnswers) -> str:
        return render.render("homelab", "env.j2", answers=answers, fwmark=_mark(answers))

    @staticmethod
    def hook_summary(answers: HomelabAnswers) -> list[str]:
        iface, h, mark = answers.interface, answers.homelab, _mark(answers)

        def routing(ip: str, address: str) -> list[str]:
            return [f"{ip} route replace default dev {iface} table {h.table}",
                    f"{ip} rule add fwmark {mark}/{mark} table {h.table} pref {h.rule_priority}",
                    f"{ip} rule add from {address} table {h.table} pref {h.rule_priority + 1}"]

        ipv6 = [f"ip -6 address add {answers.homelab_address6}/{answers.prefixlen6} dev {iface}",
                render.restore_summary(answers, 6), *routing("ip -6", answers.homelab_address6)]
        return [render.restore_summary(answers, 4), *routing("ip", answers.homelab_address),
                *(f"{command}  (if {iface} has IPv6 enabled)" for command in ipv6),
                f"echo 2 > /proc/sys/net/ipv4/conf/{iface}/rp_filter"]

    @staticmethod
    def metrics_dir(answers) -> str | None:
        return answers.homelab.watchdog.metrics_dir

    @staticmethod
    def detect(root) -> None:
        return None     # what it needs of the host is in HostFacts

    @staticmethod
    def plan_host(answers: HomelabAnswers, facts: HostFacts) -> HostChanges:
        return HostChanges()

    @staticmethod
    def token_fields(answers: HomelabAnswers) -> dict[str, str]:
        return {}     # its key and the tunnel (pairing's common fields) are all the bridge needs

    @staticmethod
    def take_token(data: dict, token) -> None:
        """The bridge's endpoint, and for the watchdog its SSH port and forward: the bridge's
        word, as its key and endpoint are, so a re-pair after the bridge changed them updates
        saved answers (homelab.watchdog.check_port chooses a check regardless). Judged by
        validation like any answer."""
        data.setdefault("homelab", {})["endpoint"] = token.endpoint
        port = token.endpoint.rpartition(":")[2]
        if grammar.is_port(port):     # else homelab.endpoint's check says what is wrong
            data["listen_port"] = int(port)
        told = {}
        if token.ssh_port:
            told["bridge_ssh_port"] = int(token.ssh_port) if grammar.is_port(token.ssh_port) else token.ssh_port
        if token.forward:
            told["bridge_forward"] = "all" if token.forward == "all" else token.forward.split(",")
        homelab = data["homelab"]
        watchdog = homelab.setdefault("watchdog", {}) if told and isinstance(homelab, dict) else None
        if isinstance(watchdog, dict):    # else not a table: validation says so
            watchdog.update(told)

    @staticmethod
    def wizard_steps() -> list:
        from cgnat_homelab import wizard    # Textual: only the wizard asks
        return wizard.STEPS

    @staticmethod
    def notes(answers: HomelabAnswers) -> list[str]:
        return []


def _mark(answers: HomelabAnswers) -> str:
    return f"{int(answers.homelab.fwmark, 0):#x}"


ROLE = Homelab()
