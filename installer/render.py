"""Rendering each role's templates (WireGuard config, firewall rules, hook variables)."""
from __future__ import annotations

import importlib
from pathlib import Path

import jinja2

from installer.grammar import PORT_SPEC
from installer.rules_file import chain_name

RULE_PREF = 1000  # ip rule priorities used by the homelab: fwmark at 1000, source at 1001


def _environment(role: str) -> jinja2.Environment:
    package = importlib.import_module(f"cgnat_{role}")
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(package.__file__).parent / "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(role: str, template: str, **context) -> str:
    return _environment(role).get_template(template).render(**context)


def iptables_ports(spec: str) -> tuple[str, str]:
    """("tcp", "80") or ("udp", "51900:51910") of a "proto/port[-port]" answer."""
    match = PORT_SPEC.fullmatch(spec)
    low, high = match.group(2), match.group(3)
    return match.group(1), f"{low}:{high}" if high else low


def render_wg_conf(answers, private_key: str) -> str:
    return render(answers.role, "wg.conf.j2", answers=answers, private_key=private_key)


def has_rules6(answers) -> bool:
    """Whether the host gets an ip6tables rules file (IFACE.rules6): a homelab always (its
    marks cost nothing without IPv6 clients), a bridge when it forwards IPv6."""
    return answers.role == "homelab" or answers.forwards_ipv6


def render_rules(answers, family: int = 4) -> str:
    """The iptables-restore input of IFACE.rules (family 4), or the ip6tables-restore
    input of IFACE.rules6 (family 6), from one template per role."""
    iface = answers.interface
    chains = {"pre": chain_name(iface, "PREROUTING"), "fwd": chain_name(iface, "FORWARD")}
    if answers.role == "homelab":
        mark = f"{int(answers.homelab.fwmark, 0):#x}"
        return render("homelab", "rules.j2", interface=iface, fwmark=mark, fwmask=mark,
                      family=family, **chains)
    b = answers.bridge
    keep_local = [("udp", str(answers.listen_port)), ("tcp", str(b.ssh_port))]
    keep_local += [iptables_ports(spec) for spec in b.keep_local]
    forward = b.forward if b.forward == "all" else [
        ("icmp", "") if spec == "icmp" else iptables_ports(spec) for spec in b.forward]
    if family == 6:
        public_address, homelab_address = b.public_address6, answers.homelab_address6
    else:
        public_address, homelab_address = b.public_address, answers.homelab_address
    return render("bridge", "rules.j2", interface=iface, family=family,
                  public_interface=b.public_interface, public_address=public_address,
                  homelab_address=homelab_address, keep_local=keep_local, forward=forward, **chains)


def render_env(answers) -> str:
    if answers.role == "homelab":
        mark = f"{int(answers.homelab.fwmark, 0):#x}"
        return render("homelab", "env.j2", answers=answers, fwmark=mark, rule_pref=RULE_PREF)
    return render("bridge", "env.j2", answers=answers)


def hook_commands(answers) -> list[str]:
    """What the up hook runs, for --plan (the hooks themselves are the source of truth)."""
    iface, rules = answers.interface, f"/etc/cgnat/{answers.interface}.rules"
    jumps = f"  (+ one tagged jump per CGNAT-{iface}-* chain)"
    restore = [f"iptables-restore --noflush < {rules}{jumps}"]
    restore6 = [f"ip6tables-restore --noflush < {rules}6{jumps}"] if has_rules6(answers) else []
    if answers.role == "bridge":
        if not restore6:
            return ["sysctl -w net.ipv4.ip_forward=1", *restore]
        public = answers.bridge.public_interface
        return ["sysctl -w net.ipv4.ip_forward=1", *restore,
                f"sysctl -w net.ipv6.conf.{public}.accept_ra=2  (only if it is 1: RAs in use; "
                f"down puts 1 back)", "sysctl -w net.ipv6.conf.all.forwarding=1", *restore6]
    h = answers.homelab
    mark = f"{int(h.fwmark, 0):#x}"

    def routing(ip: str, address: str) -> list[str]:
        return [f"{ip} route replace default dev {iface} table {h.table}",
                f"{ip} rule add fwmark {mark}/{mark} table {h.table} pref {RULE_PREF}",
                f"{ip} rule add from {address} table {h.table} pref {RULE_PREF + 1}"]

    ipv6 = [f"ip -6 address replace {answers.homelab_address6}/{answers.prefixlen6} dev {iface}",
            *restore6, *routing("ip -6", answers.homelab_address6)]
    return [*restore, *routing("ip", answers.homelab_address),
            *(f"{command}  (if {iface} has IPv6 enabled)" for command in ipv6),
            f"sysctl -w net.ipv4.conf.{iface}.rp_filter=2"]
