"""Rendering a role's templates (cgnat_<role>/templates: WireGuard config, firewall rules,
hook variables); each role (installer/roles.py) fills its own templates' context."""
from __future__ import annotations

import importlib
from pathlib import Path

import jinja2

from installer import answers as answers_toml
from installer.answers import ANSWERS_PATH
from installer.grammar import PORT_SPEC
from installer.rules_file import chain_name


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


def render_wg_conf(answers, private_key: str, answers_file: str = ANSWERS_PATH) -> str:
    return render(answers.role, "wg.conf.j2", answers=answers, private_key=private_key,
                  answers_file=answers_file)


def iptables_ports(spec: str) -> tuple[str, str]:
    """("tcp", "80") or ("udp", "51900:51910") of a "proto/port[-port]" answer."""
    match = PORT_SPEC.fullmatch(spec)
    low, high = match.group(2), match.group(3)
    return match.group(1), f"{low}:{high}" if high else low


def chains(answers) -> dict[str, str]:
    """The template names of the interface's own chains (rules_file.chain_name)."""
    iface = answers.interface
    return {"interface": iface, "pre": chain_name(iface, "PREROUTING"),
            "fwd": chain_name(iface, "FORWARD"), "input": chain_name(iface, "INPUT")}


def restore_summary(answers, family: int) -> str:
    """The up hook's loading of one family's rules file, for --plan."""
    restore, suffix = ("iptables-restore", "") if family == 4 else ("ip6tables-restore", "6")
    return (f"{restore} --noflush < /etc/cgnat/{answers.interface}.rules{suffix}"
            f"  (+ one tagged jump per CGNAT-{answers.interface}-* chain)")


def render_answers(answers, path: str = ANSWERS_PATH) -> str:
    """The answers file at `path` (/etc/cgnat/answers.toml, or a further tunnel's,
    installer/tunnels.py): the answers as setup resolved them (no private key)."""
    header = ("# Answers that produced this host's cgnat setup; replay with\n"
              f"#   cgnat-setup --answers {path}\n")
    return header + answers_toml.to_toml(answers)
