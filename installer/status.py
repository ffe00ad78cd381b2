"""`cgnat-setup status`: the health of every link of the chain, one line each.

    ok    interface   wg0 is up
    FAIL  handshake   none yet  -> check that UDP 51820 is open in the provider's firewall

Exit 0 only when every check is healthy; informational lines ("info") never fail, nor do
warnings ("warn": an informational line with its hint, for what still works but needs the
administrator soon, as cgnat-setup's own warnings leave its exit code 0).
`gather()` turns what a `Probe` reports into checks (pure given the probe); `Probe` is the
only part that looks at the host, read-only.

On a host with several tunnels (a homelab with one per bridge) each tunnel has its block, its
header naming its endpoint; the exit code is 0 only when every tunnel is healthy.

`status --json` prints the same as one JSON object, same exit code; its shape is stable
(README "Watching it"): every key always present, `version` raised only if one changes meaning.
`role`, `interface`, `checks` and `watchdog` are the first tunnel's, `healthy` the host's, and
`tunnels` lists every tunnel (the first too): interface, endpoint, healthy, checks, watchdog.
It is valid JSON whatever the host holds: broken answers are the one failing "answers" check
(exit 2, as plain status), a state file of the wrong shape is reported, values of the wrong
type in it are left out, and no number is NaN or infinite.

    {"version": 1, "role": "homelab", "interface": "wg0", "healthy": true,
     "checks": [{"name": "interface", "ok": true, "detail": "wg0 is up", "hint": ""}, ...],
     "watchdog": {"active": true, "healthy": true, "summary": "healthy", "last_step": "",
                  "last_run_at": 1764200000.0, "health_changed_at": 1764190000.0,
                  "steps_taken": {"re-peer": 0, "restart": 0, "action": 0}},
     "tunnels": [{"interface": "wg0", "endpoint": "bridge.example.org:51820", "healthy": true,
                  "checks": [...], "watchdog": {...}}]}
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from installer import answers as answers_toml
from installer import detect, roles, tunnels
from installer.apply import host_path
from installer.answers import ANSWERS_PATH
from installer.errors import InvalidAnswers
from installer.rules_file import missing_rules, refused_rules
from installer.validate import load_answers
from installer.probes import HANDSHAKE_STALE, handshake_age, interface_exists, run
from installer.watchdog_state import STATE_PATH, UNIT, state_path

JSON_VERSION = 1
EXIT_INVALID = 2               # as cgnat-setup's for invalid input


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None            # None: informational
    detail: str
    hint: str = ""
    warn: bool = False         # informational (ok None), shown as "warn" with its hint

    def line(self) -> str:
        mark = "warn" if self.warn else "info" if self.ok is None else ("ok" if self.ok else "FAIL")
        hint = f"  -> {self.hint}" if self.hint and (self.ok is False or self.warn) else ""
        return f"{mark:<5} {self.name:<11} {self.detail}{hint}"

    def to_json(self) -> dict:
        """ok: true, false, or null (informational); hint: what to do, "" unless failing."""
        return {"name": self.name, "ok": self.ok, "detail": self.detail,
                "hint": self.hint if self.ok is False else ""}


class Probe:
    """Read-only looks at the host (each method also exists on the tests' fake)."""

    def __init__(self, root: Path = Path("/")):
        self.root = root

    def interface_up(self, iface: str) -> bool:
        return interface_exists(iface)

    def handshake_age(self, iface: str) -> float | None:
        return handshake_age(iface, time.time())

    def missing_rules(self, iface: str) -> tuple[str, ...]:
        """What of our rules the kernel lacks; first, whether the up hook refuses the rules file."""
        path = str(host_path(self.root, f"/etc/cgnat/{iface}.rules"))
        refused = refused_rules(iface, path)
        if refused:
            return refused
        missing = missing_rules(iface, path)
        # A homelab without IPv6: its up hook skipped IFACE.rules6 on purpose.
        return missing if self.ipv6_disabled(iface) is None else tuple(
            m for m in missing if not m.startswith("IPv6 "))

    def ipv6_disabled(self, iface: str) -> str | None:
        return detect.ipv6_disabled(iface)

    def ip_json(self, *args: str) -> list:
        """`ip -j ARGS` parsed; [] when it fails (no such device, no IPv6)."""
        try:
            return json.loads(run(["ip", "-j", *args]).stdout or "[]")
        except ValueError:
            return []

    def watchdog_state(self, path: str = STATE_PATH) -> Any:
        """A state file as JSON (any shape: Watchdog.read judges it), None if unreadable."""
        try:
            return json.loads(host_path(self.root, path).read_text())
        except (OSError, ValueError):
            return None

    def watchdog_active(self) -> bool | None:
        if shutil.which("systemctl") is None:
            return None
        return run(["systemctl", "is-active", "--quiet", UNIT]).returncode == 0


@dataclass(frozen=True)
class Watchdog:
    """What the host says of its watchdog: the service is active (None: no systemctl to ask),
    its saved state (None: it has not run yet)."""
    step_kinds: tuple[str, ...]    # every kind of step the role's watchdog takes
    active: bool | None
    state: Any
    unreadable: str = ""           # why the state file says nothing (not a JSON object)

    @classmethod
    def read(cls, probe, role_status, path: str = STATE_PATH) -> "Watchdog":
        """From a tunnel's state file (installer/watchdog_state.py: state_path)."""
        data = probe.watchdog_state(path)
        kinds, active = role_status.STEP_KINDS, probe.watchdog_active()
        if data is not None and not isinstance(data, dict):
            what = type(data).__name__
            return cls(kinds, active, None, f"unreadable state {path} (a JSON {what}, not an object)")
        return cls(kinds, active, None if data is None else role_status.State.from_dict(data))

    def check(self) -> Check:
        hint = f"systemctl enable --now {UNIT}; journalctl -u {UNIT}"
        if self.active is False:
            return Check("watchdog", False, "service not active", hint)
        if self.unreadable:
            return Check("watchdog", False, self.unreadable, hint)
        if self.state is None:
            return Check("watchdog", False, "has not run yet", hint)
        step = f" (last step: {self.state.last_step})" if self.state.last_step else ""
        return Check("watchdog", self.state.healthy, self.state.summary + step, f"journalctl -u {UNIT}")

    def to_json(self) -> dict:
        """healthy null: it has not run yet; steps_taken: every kind of step of the role."""
        facts = {"summary": self.unreadable or "has not run yet", "last_step": "", "last_run_at": None,
                 "health_changed_at": None, "steps_taken": {}}
        if self.state is not None:
            facts = {key: getattr(self.state, key) for key in facts}
        ran = facts["last_run_at"] is not None
        return {"active": self.active, "healthy": self.state.healthy if ran else None, **facts,
                "steps_taken": {kind: facts["steps_taken"].get(kind, 0) for kind in self.step_kinds}}


def gather(answers, probe, watchdog: Watchdog) -> list[Check]:
    """Every link of one tunnel's chain: the tunnel's (shared), then the role's own (what each
    address family needs beyond our chains, its sshd or the end-to-end check), its watchdog.
    (The role's informational lines, the host's, come once after every tunnel: `notes`.)"""
    role_status = roles.get(answers.role).status
    iface = answers.interface
    checks = []
    up = probe.interface_up(iface)
    checks.append(Check("interface", up, f"{iface} is {'up' if up else 'missing'}",
                        f"systemctl restart wg-quick@{iface}; journalctl -u wg-quick@{iface}"))
    age = probe.handshake_age(iface) if up else None
    no_handshake = role_status.handshake_hint(answers)
    if age is None:
        checks.append(Check("handshake", False, "none yet", no_handshake))
    else:
        fresh = age <= HANDSHAKE_STALE
        checks.append(Check("handshake", fresh, f"{age:.0f} s ago", no_handshake))
    missing = probe.missing_rules(iface) if up else ()
    rules_ok = up and not missing
    checks.append(Check("rules", rules_ok,
                        "all present" if rules_ok else ("interface down" if not up else "missing: " + ", ".join(missing)),
                        f"/usr/lib/cgnat-{answers.role}/hooks/up {iface}  (or restart wg-quick@{iface})"))
    return checks + role_status.checks(answers, probe, up) + [watchdog.check()]


@dataclass(frozen=True)
class Block:
    """One tunnel's part of the report: its answers, its checks, its watchdog."""
    answers: Any
    checks: list[Check]
    watchdog: Watchdog

    def to_json(self, endpoint: str | None) -> dict:
        return {"interface": self.answers.interface, "endpoint": endpoint, "healthy": healthy(self.checks),
                "checks": [c.to_json() for c in self.checks], "watchdog": self.watchdog.to_json()}


def main(root: Path = Path("/"), probe=None, out=None, as_json: bool = False) -> int:
    """Every tunnel of the host (installer/tunnels.py: the first's answers in answers.toml, a
    further one's in tunnels/IFACE.toml), one block each, then the host's informational lines."""
    out = out or sys.stdout
    saved = host_path(root, ANSWERS_PATH)
    if not saved.exists():
        missing = Check("answers", False, f"not configured: {saved} is missing", "run cgnat-setup")
        if as_json:
            _print_json(out, None, [missing], [])
        else:
            print(f"{missing.detail} (run cgnat-setup)", file=out)
        return 1
    loaded = []
    for file in tunnels.answers_files(root):
        path = host_path(root, file)
        try:
            loaded.append((load_answers(answers_toml.parse_toml(answers_toml.read_file(path)), None, None), file == ANSWERS_PATH))
        except InvalidAnswers as invalid:
            problems = [p.format(str(path)) for p in invalid.problems]
            if as_json:
                _print_json(out, None, [Check("answers", False, "; ".join(problems),
                                              f"cgnat-setup --answers {path} --check")], [])
            else:
                print("\n".join(problems), file=sys.stderr)
            return EXIT_INVALID
    role_status = roles.get(loaded[0][0].role).status
    probe = probe or role_status.Probe(root)
    blocks = []
    for answers, first in loaded:
        watchdog = Watchdog.read(probe, role_status, state_path(answers.interface, first))
        blocks.append(Block(answers, gather(answers, probe, watchdog), watchdog))
    notes = role_status.notes(probe)
    if as_json:
        _print_json(out, blocks[0], notes, [b.to_json(role_status.endpoint(b.answers)) for b in blocks])
    else:
        for block in blocks:
            peer = f" (endpoint {role_status.endpoint(block.answers)})" if len(blocks) > 1 else ""
            print(f"cgnat {block.answers.role} {block.answers.interface}{peer}:", file=out)
            for check in block.checks:
                print(check.line(), file=out)
        for check in notes:
            print(check.line(), file=out)
    return 0 if healthy([c for b in blocks for c in b.checks] + notes) else 1


def healthy(checks: list[Check]) -> bool:
    return all(c.ok is not False for c in checks)


def _print_json(out, first: Block | None, host_checks: list[Check], tunnels_json: list[dict]) -> None:
    """The --json shape (module docstring): role, interface, checks and watchdog are the first
    tunnel's (its checks followed by the host's informational ones), `healthy` the whole host's
    (the exit code's), `tunnels` every tunnel's block; role, interface and watchdog are null
    only when the host is not configured."""
    checks = (first.checks if first else []) + host_checks
    print(json.dumps({"version": JSON_VERSION, "role": first.answers.role if first else None,
                      "interface": first.answers.interface if first else None,
                      "healthy": healthy(checks) and all(t["healthy"] for t in tunnels_json),
                      "checks": [c.to_json() for c in checks],
                      "watchdog": first.watchdog.to_json() if first else None,
                      "tunnels": tunnels_json}, indent=1, allow_nan=False), file=out)
