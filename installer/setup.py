"""One setup path for every front end: load -> validate -> plan -> apply -> report.

The command line (cli.py), the wizard (tui/), the package's postinst (a preseeded answers
file, through the command line) and the prerm's teardown all go through these functions.
Apart from the `[#]` line of each change (as wg-quick writes them), none of them prints:
cli.py prints, the wizard shows.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from installer import grammar, keys, pairing, roles
from installer import answers as answers_toml
from installer.answers import ANSWERS_PATH
from installer.apply import apply, host_path, log  # apply: the one step that changes the host
from installer.atomic import HostTree
from installer.detect import HostFacts, installed_role, ipv6_disabled
from installer.errors import Problem
from installer.manifest import MANIFEST_PATH, recorded_digests
from installer.plan import (WATCHDOG_UNIT, Plan, configured_interfaces, make_plan,
                            resolve_defaults)
from installer.roles import PEER
from installer.sshd import SSH_DIR, our_host_keys
from installer import validate
from installer.watchdog import interface_exists


def load(raw: bytes, token: str | None, default_role: str | None, facts: HostFacts | None):
    """Valid answers from answers-file bytes and a pairing token; InvalidAnswers otherwise."""
    data = answers_toml.parse_toml(raw)
    if default_role and "role" not in data:
        data["role"] = default_role
    if token:
        pairing.fill_answers(data, token, default_role)
    return validate.load_answers(data, default_role, facts)


def warnings(answers, root: Path) -> list[Problem]:
    """What works but leaves the homelab's watchdog without an end-to-end check, or leaves
    out IPv6 because this host has it disabled."""
    return validate.warnings(answers, bool(our_host_keys(host_path(root, str(SSH_DIR)))),
                             ipv6_disabled(answers.interface))


def read_source(source: str | None, root: Path) -> bytes:
    """An answers file's bytes: a path, "-" for standard input, or None for the answers
    saved by the last setup on this host (nothing when there are none); one byte more than
    parse_toml() takes at most, so that it can say the file is too long."""
    if source == "-":
        return sys.stdin.buffer.read(answers_toml.MAX_BYTES + 1)
    path = Path(source) if source is not None else host_path(root, ANSWERS_PATH)
    if source is None and not path.exists():
        return b""
    with path.open("rb") as file:     # never more than parse_toml takes (--answers /dev/zero)
        return file.read(answers_toml.MAX_BYTES + 1)


def plan(answers, facts: HostFacts, root: Path, *, start: bool, enable: bool | None = None,
         replace_existing: bool = False, private_key: str | None = None) -> tuple[Plan, str]:
    """The plan of valid answers with every default resolved, and the private key it uses
    (`start`, `enable`: make_plan's)."""
    resolved = resolve_defaults(answers, facts)
    private_key = private_key or private_key_for(resolved, root, facts)
    return make_plan(resolved, facts, private_key, start=start, enable=enable,
                     replace_existing=replace_existing), private_key


def private_key_for(answers, root: Path, facts: HostFacts) -> str:
    """private_key_file, else the key of an earlier run (same identity), else a new one.
    Never the key of a config setup did not write: that is another VPN's identity."""
    if answers.private_key_file:
        return keys.read_key_file(Path(answers.private_key_file))
    conf = f"/etc/wireguard/{answers.interface}.conf"
    existing = None if facts.foreign(conf) else keys.key_in_config(HostTree(root).read(conf))
    return existing or keys.generate_private_key()


@dataclass(frozen=True)
class Report:
    """What a finished setup tells the administrator (the command line and the wizard alike)."""

    role: str
    public_key: str
    token: str
    changed: tuple[str, ...]
    answers_path: Path
    role_notes: tuple[str, ...]   # the role's own (the bridge: its firewall, the DNS records)
    left_for_boot: tuple[str, ...] = ()   # --no-start: what happens only at the next boot

    @property
    def other(self) -> str:
        return PEER[self.role]

    @property
    def summary(self) -> str:
        state = f"{len(self.changed)} file(s) changed" if self.changed else "already up to date"
        return f"{self.role} configured ({state})"

    @property
    def notes(self) -> list[str]:
        lines = [f"Answers saved to {self.answers_path} (replay: cgnat-setup --answers FILE)"]
        return lines + list(self.left_for_boot) + list(self.role_notes)

    def lines(self) -> list[str]:
        return [f"cgnat-setup: {self.summary}.",
                f"Public key:    {self.public_key}",
                f"Pairing token: {self.token}",
                f"On the {self.other}, run:  sudo cgnat-setup --pair {self.token}",
                *self.notes]


def report(answers, private_key: str, changed: list[str], root: Path,
           left_for_boot: list[str] = ()) -> Report:
    public = keys.public_key(private_key)
    return Report(answers.role, public, pairing.token_for(answers, public), tuple(changed),
                  host_path(root, ANSWERS_PATH), tuple(roles.get(answers.role).notes(answers)),
                  tuple(left_for_boot))


def teardown(root: Path) -> bool:
    """Stop what setup started (the prerm on remove): the watchdog and each tunnel the manifest
    names, then the installed role's down hook for what is left (an interface brought up by
    hand, or deleted before). It goes by what setup recorded, whatever the answers file says
    now. Forgiving: nothing recorded, no systemd, units already stopped are fine; with --root
    nothing was started, so nothing is stopped. True when every step succeeded."""
    steps = teardown_steps(root)
    if not steps:
        log(f"{MANIFEST_PATH} names no tunnel: nothing to tear down")
        return True
    if root != Path("/"):
        log(f"--root {root}: nothing was started there, nothing to stop")
        return True
    ok = True
    for argv in steps:
        log(" ".join(argv))
        try:
            done = subprocess.run(argv, capture_output=True, text=True)
        except FileNotFoundError:
            continue                       # no systemctl (a chroot): nothing was started
        for line in done.stderr.splitlines():
            print(f"    {line}", file=sys.stderr)
        ok &= done.returncode == 0 or argv[0] == "systemctl"    # units already gone are fine
    return ok


def teardown_steps(root: Path) -> list[list[str]]:
    """The commands that take down every tunnel of the manifest under root: the watchdog and
    wg-quick@IFACE disabled and stopped, wg-quick down (its PostDown runs the hook) where the
    interface exists, then the installed role's down hook (idempotent: removes leftovers)."""
    try:
        manifest = host_path(root, MANIFEST_PATH).read_bytes()
    except OSError:
        return []
    interfaces = [i for i in configured_interfaces(recorded_digests(manifest)) if grammar.is_interface(i)]
    if not interfaces:
        return []
    role = installed_role(root)
    hook = host_path(root, f"/usr/lib/cgnat-{role}/hooks/down") if role else None
    steps = [["systemctl", "disable", "--now", unit]
             for unit in (WATCHDOG_UNIT, *(f"wg-quick@{i}" for i in interfaces))]
    for interface in interfaces:
        if interface_exists(interface):
            steps.append(["wg-quick", "down", interface])
        if hook is not None and hook.exists():
            steps.append([str(hook), interface])
    return steps
