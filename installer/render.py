"""Rendering each role's templates (WireGuard config, firewall rules, hook variables)."""
from __future__ import annotations

import importlib
from pathlib import Path

import jinja2

from installer.grammar import PORT_SPEC

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


def render_rules(answers) -> str:
    if answers.role == "homelab":
        mark = f"{int(answers.homelab.fwmark, 0):#x}"
        return render("homelab", "rules.j2", interface=answers.interface, fwmark=mark, fwmask=mark)
    b = answers.bridge
    keep_local = [("udp", str(answers.listen_port)), ("tcp", str(b.ssh_port))]
    keep_local += [iptables_ports(spec) for spec in b.keep_local]
    forward = b.forward if b.forward == "all" else [
        ("icmp", "") if spec == "icmp" else iptables_ports(spec) for spec in b.forward]
    return render("bridge", "rules.j2", interface=answers.interface,
                  public_interface=b.public_interface, homelab_address=answers.homelab_address,
                  keep_local=keep_local, forward=forward)


def render_env(answers) -> str:
    if answers.role == "homelab":
        mark = f"{int(answers.homelab.fwmark, 0):#x}"
        return render("homelab", "env.j2", answers=answers, fwmark=mark, rule_pref=RULE_PREF)
    return render("bridge", "env.j2", answers=answers)


def hook_commands(answers) -> list[str]:
    """What the up hook runs, for --plan (the hooks themselves are the source of truth)."""
    iface, rules = answers.interface, f"/etc/cgnat/{answers.interface}.rules"
    restore = f"iptables-restore --noflush < {rules}  (+ one tagged jump per CGNAT-* chain)"
    if answers.role == "bridge":
        return ["sysctl -w net.ipv4.ip_forward=1", restore]
    h = answers.homelab
    mark = f"{int(h.fwmark, 0):#x}"
    return [
        restore,
        f"ip route replace default dev {iface} table {h.table}",
        f"ip rule add fwmark {mark}/{mark} table {h.table} pref {RULE_PREF}",
        f"ip rule add from {answers.homelab_address} table {h.table} pref {RULE_PREF + 1}",
        f"sysctl -w net.ipv4.conf.{iface}.rp_filter=2",
    ]
