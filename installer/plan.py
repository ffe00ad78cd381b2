"""From valid answers to the exact files and commands of a setup. Pure: no writes."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from installer.answers import ANSWERS_PATH
from installer import metrics, render, roles, tunnels, validate
from installer.detect import WIREGUARD_DIR, HostFacts
from installer.manifest import MANIFEST_PATH, digest, manifest_text
from installer.errors import SetupError
from installer.watchdog_state import UNIT as WATCHDOG_UNIT

BACKUP_SUFFIX = ".before-cgnat"   # an admin's own config, kept when --replace-existing replaces it
# --no-start enables on the file system, never through a running systemd (a chroot may have
# /run/systemd/system and no bus to it; systemd's ENVIRONMENT.md: SYSTEMD_OFFLINE=1 makes
# systemctl "refrain from talking to PID 1"): nothing is reloaded, nothing started.
OFFLINE_SYSTEMCTL = ["env", "SYSTEMD_OFFLINE=1", "systemctl"]
# Setup stops the watchdog before it stops or restarts a tunnel and starts it again after:
# a watchdog that saw the tunnel down meanwhile would restart it too, and systemd answers a
# second restart of a unit by re-running the first, killing the start in progress (issue 19).
HOLD_WATCHDOG = ["systemctl", "stop", WATCHDOG_UNIT]


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
    before_forwarding: object = None   # the role's, after the files (HostChanges, installer/roles.py)
    listen_port: int | None = None     # bridge: WireGuard must hold it after the commands
    retire: list[list[str]] = field(default_factory=list)   # stop an old interface, before the files
    removals: list[str] = field(default_factory=list)       # an old interface's files
    backups: list[str] = field(default_factory=list)        # foreign files kept before replacing them
    start: bool = True      # False: the commands only enable (--no-start), or there are none (--root)
    answers_file: str = ANSWERS_PATH   # where its answers are saved (installer/tunnels.py)

    @property
    def units(self) -> list[str]:
        """Every unit the commands change, for apply to put back on failure."""
        return list(dict.fromkeys(c[-1] for c in self.retire + self.commands
                                  if "systemctl" in c and c[-1] != "daemon-reload"))

    @property
    def service(self) -> str:
        return f"wg-quick@{self.answers.interface}"

    @property
    def not_started(self) -> list[str]:
        """The units a --no-start plan enables and leaves for the next boot."""
        return [] if self.start else [c[-1] for c in self.commands if "enable" in c]

    def left_for_boot(self) -> list[str]:
        """What a --no-start run leaves for the next boot, a line each, for the report."""
        if not self.not_started:
            return []
        units = " ".join(self.not_started)
        lines = [f"Nothing was started (--no-start): {units} start at the next boot, or now with: "
                 f"systemctl start {units}"]
        if self.before_forwarding is not None:
            lines += self.before_forwarding.left_for_boot()
        return lines

    def describe(self) -> str:
        out = []
        if self.retire or self.removals or self.backups:
            out.append("=== first\n" + "".join(" ".join(c) + "\n" for c in self.retire)
                       + "".join(f"remove {p} (kept as {p}{BACKUP_SUFFIX} if changed since setup "
                                 f"wrote it)\n" for p in self.removals)
                       + "".join(f"keep {p} as {p}{BACKUP_SUFFIX}\n" for p in self.backups))
        for f in self.files:
            out.append(f"=== {f.path} (mode {f.mode:04o})\n{f.shown()}")
        if self.before_forwarding is not None:
            out.append(self.before_forwarding.describe(self.start))
        out.append("=== commands\n" + "".join(" ".join(c) + "\n" for c in self.commands))
        out.append(f"=== {self.service} PostUp (hooks)\n" + "".join(c + "\n" for c in self.hook_commands))
        return "\n".join(out)


def resolve_defaults(answers, facts: HostFacts):
    """A copy of the answers with every detected default filled in, as it will be saved."""
    resolved = copy.deepcopy(answers)
    roles.get(resolved.role).resolve(resolved, facts)
    return resolved


def make_plan(answers, facts: HostFacts, private_key: str, *, start: bool = True,
              enable: bool | None = None, replace_existing: bool = False) -> Plan:
    """Files and commands for valid, resolved answers: `start` False and `enable` True for
    --no-start (the units enabled, nothing started, restarted or reloaded), `start` False
    alone for --root (no command at all)."""
    enable = start if enable is None else enable
    iface = answers.interface
    conf = f"{WIREGUARD_DIR}/{iface}.conf"
    foreign = facts.foreign(conf)
    if foreign and not replace_existing:
        raise SetupError(f"{conf} exists and cgnat-setup did not write it (another VPN?); choose "
                         f"another interface, or pass --replace-existing to replace it (it is "
                         f"kept as {conf}{BACKUP_SUFFIX})")
    role = roles.get(answers.role)
    answers_file = tunnels.answers_path(iface, facts.tunnels, role.several_tunnels)
    first = answers_file == ANSWERS_PATH      # the host's first tunnel: also the host-wide files
    rules6 = f"/etc/cgnat/{iface}.rules6"
    files = [
        FileWrite(f"/etc/wireguard/{iface}.conf", render.render_wg_conf(answers, private_key, answers_file),
                  mode=0o600, secret=True),
        FileWrite(f"/etc/cgnat/{iface}.rules", role.rules(answers)),
        *([FileWrite(rules6, role.rules(answers, family=6))] if role.has_rules6(answers) else []),
        FileWrite(f"/etc/cgnat/{iface}.env", role.env(answers)),
        FileWrite(answers_file, render.render_answers(answers, answers_file)),
    ]
    host = role.plan_host(answers, facts)
    files += [FileWrite(path, text) for path, text in host.files.items()]
    metrics_dropin = metrics.unit_dropin(role.metrics_dir(answers)) if first else None
    if metrics_dropin:
        files.append(FileWrite(metrics.UNIT_DROPIN, metrics_dropin))
    plan = Plan(answers, hook_commands=role.hook_summary(answers),
                before_forwarding=host.before_forwarding, listen_port=host.listen_port, start=start)
    plan.backups = [conf] if foreign else []
    plan.answers_file = answers_file
    recorded = facts.written_by_setup
    if not role.has_rules6(answers) and rules6 in recorded:
        plan.removals.append(rules6)   # IPv6 no longer forwarded: the hooks must not load it
    if first and not metrics_dropin and metrics.UNIT_DROPIN in recorded:
        plan.removals.append(metrics.UNIT_DROPIN)
    kept = {name: path for name, (path, _) in facts.tunnels.items() if name != iface and path != answers_file}
    for old in retired_interfaces(iface, recorded, kept):
        if enable:
            plan.retire.append(["systemctl", "disable", "--now", f"wg-quick@{old}"] if start
                               else [*OFFLINE_SYSTEMCTL, "disable", f"wg-quick@{old}"])
        plan.removals += [p for p in tunnel_files(old) if p in recorded]
    if plan.retire and start:
        plan.retire.insert(0, HOLD_WATCHDOG)
    # The manifest names every tunnel's files: the other tunnels' as recorded (and, beside a
    # further tunnel, the host-wide files its first tunnel wrote).
    others = {p for name, path in kept.items() for p in (*tunnel_files(name), path)}
    replaced = {*plan.removals, *(f.path for f in files), *tunnel_files(iface)}
    carried = {p: d for p, d in recorded.items() if (p in others or not first) and p not in replaced}
    plan.files = files + [FileWrite(MANIFEST_PATH, manifest_text(
        {**carried, **{f.path: digest(f.content.encode()) for f in files}}))]
    if start:
        plan.commands = [
            HOLD_WATCHDOG,
            ["systemctl", "enable", plan.service],
            ["systemctl", "restart", plan.service],
            ["systemctl", "daemon-reload"],             # the watchdog's drop-in, if any
            ["systemctl", "enable", WATCHDOG_UNIT],
            ["systemctl", "restart", WATCHDOG_UNIT],     # it reads the answers when it starts
        ]
    elif enable:
        plan.commands = [[*OFFLINE_SYSTEMCTL, "enable", unit] for unit in (plan.service, WATCHDOG_UNIT)]
    return plan


def retired_interfaces(interface: str, written, kept) -> list[str]:
    """The interfaces an earlier setup configured that these answers no longer name, but those
    with answers of their own (`kept`: the other tunnels of a host that has several)."""
    return sorted(set(configured_interfaces(written)) - {interface} - set(kept))


def tunnel_files(interface: str) -> tuple[str, ...]:
    """The files setup writes for each tunnel, but its answers file (installer/tunnels.py)."""
    return (f"{WIREGUARD_DIR}/{interface}.conf", f"/etc/cgnat/{interface}.rules",
            f"/etc/cgnat/{interface}.rules6", f"/etc/cgnat/{interface}.env")


def configured_interfaces(written) -> list[str]:
    """The interfaces whose WireGuard config an earlier setup wrote (paths of its manifest)."""
    return sorted(p[len(WIREGUARD_DIR) + 1:-len(".conf")] for p in written
                  if p.startswith(WIREGUARD_DIR + "/") and p.endswith(".conf"))


def removal_plan(interface: str, facts: HostFacts, *, start: bool,
                 wireguard_configs: dict[str, str] | None = None) -> Plan:
    """`cgnat-setup remove-tunnel IFACE`: stop and disable that tunnel, remove its files (kept as
    .before-cgnat where changed since setup wrote them); when it was the first tunnel, the next
    one's answers move into the first's file (and its WireGuard config, `wireguard_configs`:
    interface -> its text, says so); the watchdog restarts to watch those left, or stops with
    the last. `start` False (--root): no command."""
    saved = facts.tunnels
    if interface not in saved:
        raise SetupError(f"no tunnel {interface} here (tunnels: {', '.join(saved) or 'none'})")
    answers_file, data = saved[interface]
    answers, _ = validate.answers_from_dict(data, None)
    plan = Plan(answers, start=start)
    recorded = facts.written_by_setup
    plan.retire = [HOLD_WATCHDOG, ["systemctl", "disable", "--now", plan.service]] if start else []
    plan.removals = [p for p in (*tunnel_files(interface), answers_file) if p in recorded]
    left = [name for name in saved if name != interface]
    if answers_file == ANSWERS_PATH and left:
        promoted_file, promoted = saved[left[0]]
        promoted_answers, _ = validate.answers_from_dict(promoted, None)
        plan.files = [FileWrite(ANSWERS_PATH, render.render_answers(promoted_answers))]
        conf = (wireguard_configs or {}).get(left[0])
        if conf is not None:
            plan.files.append(FileWrite(f"{WIREGUARD_DIR}/{left[0]}.conf", conf.replace(
                f"from {promoted_file}.", f"from {ANSWERS_PATH}.", 1), mode=0o600, secret=True))
        plan.removals = [p for p in plan.removals if p != ANSWERS_PATH] + [promoted_file]
    files = {f.path: digest(f.content.encode()) for f in plan.files}
    plan.files.append(FileWrite(MANIFEST_PATH, manifest_text(
        {**{p: d for p, d in recorded.items() if p not in plan.removals}, **files})))
    if start:
        plan.commands = ([["systemctl", "restart", WATCHDOG_UNIT]] if left
                         else [["systemctl", "disable", "--now", WATCHDOG_UNIT]])
    return plan
