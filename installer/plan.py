"""From valid answers to the exact files and commands of a setup. Pure: no writes."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from installer import answers as answers_toml
from installer.answers import ANSWERS_PATH
from installer import render, sshd
from installer.detect import HostFacts
from installer.errors import SetupError
from installer.watchdog import UNIT as WATCHDOG_UNIT

MANIFEST_PATH = "/var/lib/cgnat/manifest"


@dataclass(frozen=True)
class FileWrite:
    path: str          # absolute path on the target host
    content: str
    mode: int = 0o644
    secret: bool = False

    def shown(self) -> str:
        """The content with the private key masked, for --plan and the wizard's review."""
        if not self.secret:
            return self.content
        return "\n".join("PrivateKey = (hidden)" if line.startswith("PrivateKey") else line
                         for line in self.content.splitlines()) + "\n"


@dataclass
class Plan:
    answers: object
    files: list[FileWrite] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)   # systemctl, after the files
    hook_commands: list[str] = field(default_factory=list)    # what wg-quick's PostUp runs
    sshd_port: int | None = None  # bridge: the port to confirm before anything is forwarded
    sshd_dropin: str | None = None

    @property
    def service(self) -> str:
        return f"wg-quick@{self.answers.interface}"

    def describe(self) -> str:
        out = []
        for f in self.files:
            out.append(f"=== {f.path} (mode {f.mode:04o})\n{f.shown()}")
        if self.sshd_port is not None:
            change = f"drop-in {self.sshd_dropin}" if self.sshd_dropin else "nothing to change"
            out.append(f"=== sshd: listen on {self.sshd_port} before forwarding ({change}; "
                       f"sshd -t; reload; confirm the port answers)\n")
        out.append("=== commands\n" + "".join(" ".join(c) + "\n" for c in self.commands))
        out.append(f"=== {self.service} PostUp (hooks)\n" + "".join(c + "\n" for c in self.hook_commands))
        return "\n".join(out)


def resolve_defaults(answers, facts: HostFacts):
    """A copy of the answers with every detected default filled in, as it will be saved."""
    resolved = copy.deepcopy(answers)
    if resolved.role == "bridge":
        b = resolved.bridge
        b.public_interface = b.public_interface or facts.default_interface
        b.public_address = b.public_address or facts.ipv4_address(b.public_interface)
    elif resolved.homelab.docker_subnets is None:
        resolved.homelab.docker_subnets = list(facts.docker_subnets)
    return resolved


def make_plan(answers, facts: HostFacts, private_key: str, *, start: bool = True) -> Plan:
    """Files and commands for valid, resolved answers; `start` False for --root."""
    iface = answers.interface
    files = [
        FileWrite(f"/etc/wireguard/{iface}.conf", render.render_wg_conf(answers, private_key),
                  mode=0o600, secret=True),
        FileWrite(f"/etc/cgnat/{iface}.rules", render.render_rules(answers)),
        FileWrite(f"/etc/cgnat/{iface}.env", render.render_env(answers)),
        FileWrite(ANSWERS_PATH, _saved_answers(answers)),
    ]
    plan = Plan(answers, hook_commands=render.hook_commands(answers))
    if answers.role == "bridge" and facts.sshd_error:
        raise SetupError(f"cannot read sshd's effective configuration (sshd -T): {facts.sshd_error}")
    if answers.role == "bridge" and facts.sshd_ports is not None:
        plan.sshd_port = answers.bridge.ssh_port
        dropin = facts.sshd_dropin
        if dropin is None or f"Port {plan.sshd_port}\n" not in dropin:
            dropin = sshd.plan_dropin(plan.sshd_port, facts.sshd_ports)
        if dropin is not None:
            plan.sshd_dropin = sshd.DROPIN
            files.append(FileWrite(sshd.DROPIN, dropin))
    manifest = "".join(sorted(f.path + "\n" for f in files))
    plan.files = files + [FileWrite(MANIFEST_PATH, manifest)]
    if start:
        plan.commands = [
            ["systemctl", "enable", plan.service],
            ["systemctl", "restart", plan.service],
            ["systemctl", "enable", WATCHDOG_UNIT],
            ["systemctl", "restart", WATCHDOG_UNIT],     # it reads the answers when it starts
        ]
    return plan


def _saved_answers(answers) -> str:
    header = ("# Answers that produced this host's cgnat setup; replay with\n"
              "#   cgnat-setup --answers /etc/cgnat/answers.toml\n")
    return header + answers_toml.to_toml(answers)
