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

import tomli_w   # vendored

from installer import grammar, keys, pairing, roles, tunnels
from installer import answers as answers_toml
from installer.answers import ANSWERS_PATH
from installer.apply import apply, host_path, log  # apply: the one step that changes the host
from installer.atomic import HostTree
from installer.detect import HostFacts, installed_role, ipv6_disabled
from installer.errors import Problem
from installer.manifest import MANIFEST_PATH, recorded_digests
from installer.plan import Plan, configured_interfaces, make_plan, removal_plan, resolve_defaults
from installer.probes import interface_exists
from installer.roles import peer
from installer import validate
from installer.watchdog_state import UNIT as WATCHDOG_UNIT


def load(raw: bytes, token: str | None, default_role: str | None, facts: HostFacts | None):
    """Valid answers from answers-file bytes and a pairing token; InvalidAnswers otherwise."""
    data = answers_toml.parse_toml(raw)
    if default_role and "role" not in data:
        data["role"] = default_role
    if token:
        pairing.fill_answers(data, token, default_role)
    return validate.load_answers(data, default_role, facts)


def warnings(answers) -> list[Problem]:
    """What works but has the homelab's watchdog check a port the bridge does not forward, or
    leaves out IPv6 because this host has it disabled."""
    return validate.warnings(answers, ipv6_disabled(answers.interface))


def read_source(source: str | None, root: Path, token: str | None = None, role: str | None = None,
                facts: HostFacts | None = None) -> bytes:
    """An answers file's bytes: a path, "-" for standard input, or None for the answers
    saved by the last setup on this host (nothing when there are none: see saved_answers); one
    byte more than parse_toml() takes at most, so that it can say the file is too long."""
    if source == "-":
        return answers_toml.read_limited(sys.stdin.buffer)
    if source is None:
        return saved_answers(root, token, role, facts or HostFacts(tunnels=tunnels.saved(root)))
    return answers_toml.read_file(Path(source))


def saved_answers(root: Path, token: str | None, role: str | None, facts: HostFacts) -> bytes:
    """What a run without --answers starts from: the saved answers of the tunnel whose peer
    printed `token`; else, where the role may have several tunnels and the first is paired
    with another peer already, a further tunnel's (the role's new_tunnel: the token fills the
    rest); else the first tunnel's saved answers (b"" on a new host)."""
    saved = facts.tunnels
    peer_token = pairing.decoded(token) if token else None
    if peer_token is None:        # no token, or a damaged one (fill_answers says what is wrong)
        return _read_saved(root, ANSWERS_PATH)
    paired = [path for path, data in saved.values() if data.get("peer_public_key") == peer_token.public_key]
    if paired:
        return _read_saved(root, paired[0])
    code = roles.get(role or peer(peer_token.role))
    first_peer = next(iter(saved.values()))[1].get("peer_public_key") if saved else None
    if first_peer and code is not None and code.several_tunnels:
        return tomli_w.dumps(code.new_tunnel(saved, facts.interfaces)).encode()
    return _read_saved(root, ANSWERS_PATH)


def _read_saved(root: Path, path: str) -> bytes:
    try:
        return answers_toml.read_file(host_path(root, path))
    except FileNotFoundError:
        return b""


def plan(answers, facts: HostFacts, root: Path, *, start: bool, enable: bool | None = None,
         replace_existing: bool = False, private_key: str | None = None) -> tuple[Plan, str]:
    """The plan of valid answers with every default resolved, and the private key it uses
    (`start`, `enable`: make_plan's). Answers that name no peer keep the one an earlier run
    paired with (a bridge's own answers file, applied again after `--pair`, must not drop its
    homelab)."""
    resolved = resolve_defaults(answers, facts)
    earlier = earlier_config(resolved, root, facts)
    private_key = private_key or private_key_for(resolved, earlier)
    if resolved.peer_public_key is None:
        resolved.peer_public_key = keys.peer_in_config(earlier)
    return make_plan(resolved, facts, private_key, start=start, enable=enable,
                     replace_existing=replace_existing), private_key


def earlier_config(answers, root: Path, facts: HostFacts) -> tuple[bytes, int] | None:
    """The interface's WireGuard config an earlier run wrote (None: none, or not setup's own:
    another VPN's identity and peer are never taken)."""
    conf = f"/etc/wireguard/{answers.interface}.conf"
    return None if facts.foreign(conf) else HostTree(root).read(conf)


def private_key_for(answers, earlier: tuple[bytes, int] | None) -> str:
    """private_key_file, else the key of an earlier run (same identity), else a new one."""
    if answers.private_key_file:
        return keys.read_key_file(Path(answers.private_key_file))
    return keys.key_in_config(earlier) or keys.generate_private_key()


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
        return peer(self.role)

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


def report(plan: Plan, private_key: str, changed: list[str], root: Path) -> Report:
    answers, public = plan.answers, keys.public_key(private_key)
    return Report(answers.role, public, pairing.token_for(answers, public), tuple(changed),
                  host_path(root, plan.answers_file), tuple(roles.get(answers.role).notes(answers)),
                  tuple(plan.left_for_boot()))


def remove_tunnel(interface: str, root: Path, facts: HostFacts, *, start: bool) -> list[str]:
    """Take one tunnel away (plan.removal_plan); the paths that changed."""
    tree = HostTree(root)
    configs = {name: found[0].decode() for name in facts.tunnels
               if (found := tree.read(f"/etc/wireguard/{name}.conf")) is not None}
    return apply(removal_plan(interface, facts, start=start, wireguard_configs=configs), root)


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
