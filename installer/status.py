"""`cgnat-setup status`: the health of every link of the chain, one line each.

    ok    interface   wg0 is up
    FAIL  handshake   none yet  -> check that UDP 51820 is open in the provider's firewall

Exit 0 only when every check is healthy; informational lines ("info") never fail.
`gather()` turns what a `Probe` reports into checks (pure given the probe); `Probe` is the
only part that looks at the host, read-only.

`status --json` prints the same as one JSON object, same exit code; its shape is stable
(README "Watching it"): every key always present, `version` raised only if one changes meaning.

    {"version": 1, "role": "homelab", "interface": "wg0", "healthy": true,
     "checks": [{"name": "interface", "ok": true, "detail": "wg0 is up", "hint": ""}, ...],
     "watchdog": {"active": true, "healthy": true, "summary": "healthy", "last_step": "",
                  "last_run_at": 1764200000.0, "health_changed_at": 1764190000.0,
                  "steps_taken": {"re-peer": 0, "restart": 0, "action": 0}}}
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
from installer.apply import host_path
from installer.answers import ANSWERS_PATH
from installer.validate import load_answers
from installer.watchdog import STATE_PATH, UNIT, handshake_age, interface_exists, run

HANDSHAKE_STALE = 180          # WireGuard re-handshakes every 2 minutes while traffic flows
JSON_VERSION = 1
BACKUP_TOOLS = ("cloudflared", "tailscaled")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None            # None: informational
    detail: str
    hint: str = ""

    def line(self) -> str:
        mark = "info" if self.ok is None else ("ok" if self.ok else "FAIL")
        hint = f"  -> {self.hint}" if self.hint and self.ok is False else ""
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
        from cgnat_bridge.watchdog import missing_rules
        return missing_rules(iface, str(host_path(self.root, f"/etc/cgnat/{iface}.rules")))

    def port_answers(self, host: str, port: int, timeout: float = 3) -> bool:
        from cgnat_homelab.probe import touch
        return touch(host, port, timeout, refused_ok=False)

    def has_sshd(self) -> bool:
        from cgnat_homelab.probe import our_host_keys
        return bool(our_host_keys(host_path(self.root, "/etc/ssh")))

    def end_to_end(self, config) -> tuple[bool, bool]:
        """(reaches this host, answered by the bridge itself), as the watchdog checks it."""
        from cgnat_homelab.probe import end_to_end
        return end_to_end(config, host_path(self.root, "/etc/ssh"))

    def watchdog_state(self) -> dict | None:
        try:
            return json.loads(host_path(self.root, STATE_PATH).read_text())
        except (OSError, ValueError):
            return None

    def watchdog_active(self) -> bool | None:
        if shutil.which("systemctl") is None:
            return None
        return run(["systemctl", "is-active", "--quiet", UNIT]).returncode == 0

    def backup_paths(self) -> list[str]:
        found = [tool for tool in BACKUP_TOOLS if shutil.which(tool)]
        return found


@dataclass(frozen=True)
class Watchdog:
    """What the host says of its watchdog: the service is active (None: no systemctl to ask),
    its saved state (None: it has not run yet)."""
    role: str
    active: bool | None
    state: Any

    @classmethod
    def read(cls, probe, role: str) -> "Watchdog":
        from cgnat_bridge.watchdog import State as BridgeState
        from cgnat_homelab.decision import State as HomelabState
        data = probe.watchdog_state()
        model = BridgeState if role == "bridge" else HomelabState
        return cls(role, probe.watchdog_active(), None if data is None else model.from_dict(data))

    def check(self) -> Check:
        hint = f"systemctl enable --now {UNIT}; journalctl -u {UNIT}"
        if self.active is False:
            return Check("watchdog", False, "service not active", hint)
        if self.state is None:
            return Check("watchdog", False, "has not run yet", hint)
        step = f" (last step: {self.state.last_step})" if self.state.last_step else ""
        return Check("watchdog", self.state.healthy, self.state.summary + step, f"journalctl -u {UNIT}")

    def to_json(self) -> dict:
        """healthy null: it has not run yet; steps_taken: every kind of step of the role."""
        if self.role == "bridge":
            from cgnat_bridge.watchdog import STEP_KINDS
        else:
            from cgnat_homelab.watchdog import STEP_KINDS
        facts = {"summary": "has not run yet", "last_step": "", "last_run_at": None,
                 "health_changed_at": None, "steps_taken": {}}
        if self.state is not None:
            facts = {key: getattr(self.state, key) for key in facts}
        ran = facts["last_run_at"] is not None
        return {"active": self.active, "healthy": self.state.healthy if ran else None, **facts,
                "steps_taken": {kind: facts["steps_taken"].get(kind, 0) for kind in STEP_KINDS}}


def gather(answers, probe, watchdog: Watchdog) -> list[Check]:
    iface = answers.interface
    checks = []
    up = probe.interface_up(iface)
    checks.append(Check("interface", up, f"{iface} is {'up' if up else 'missing'}",
                        f"systemctl restart wg-quick@{iface}; journalctl -u wg-quick@{iface}"))
    age = probe.handshake_age(iface) if up else None
    if answers.role == "bridge":
        no_handshake = (f"the homelab has not dialed in: check that UDP {answers.listen_port} is open "
                        f"in the provider's firewall and that the homelab's tunnel is up")
    else:
        no_handshake = (f"check that UDP {answers.listen_port} is open in the bridge provider's "
                        f"firewall and that {answers.homelab.endpoint} is the bridge")
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
    if answers.role == "bridge":
        port = answers.bridge.ssh_port
        ssh_ok = probe.port_answers("127.0.0.1", port)
        checks.append(Check("sshd", ssh_ok, f"port {port} {'answers' if ssh_ok else 'does not answer'}",
                            f"the bridge's own ssh needs port {port}: rerun cgnat-setup; "
                            f"systemctl status ssh"))
    else:
        checks.append(_end_to_end(answers, probe))
    checks.append(watchdog.check())
    if answers.role == "homelab":
        tools = probe.backup_paths()
        checks.append(Check("backup", None, ("second way in: " + ", ".join(tools)) if tools else
                            "no second way in (cloudflared or tailscale) found; if the bridge dies, "
                            "only local access remains"))
    return checks


def _end_to_end(answers, probe) -> Check:
    from cgnat_homelab.decision import Config
    from cgnat_homelab.endtoend import choose
    config = Config.from_answers(answers, homelab_sshd=probe.has_sshd())
    if not config.target_host:
        return Check("end2end", False, "no check_host and no endpoint", "set homelab.watchdog.check_host")
    if config.e2e is None:
        w = answers.homelab.watchdog
        _, missing = choose(w.bridge_forward or "all", config.bridge_ssh_port, None, False)
        return Check("end2end", None, f"no end-to-end check possible: {missing}")
    target = config.check_target
    ok, foreign = probe.end_to_end(config)
    if foreign:
        return Check("end2end", False, f"{target} is answered by the bridge itself, not this host",
                     f"the bridge answers itself instead of forwarding: on the bridge, run "
                     f"cgnat-setup status (rules) and /usr/lib/cgnat-bridge/hooks/up {answers.interface}")
    what = "sshd" if config.e2e.identity == "ssh" else "service"
    hint = (f"out the home line to {target}, in through the bridge to this host's {what}: check "
            f"the bridge (ssh -p {config.bridge_ssh_port} {config.target_host}) and that a {what} "
            f"listens on {config.e2e.port} here")
    return Check("end2end", ok, f"{target} {'reaches this host' if ok else 'fails'}", hint)


def main(root: Path = Path("/"), probe=None, out=None, as_json: bool = False) -> int:
    out = out or sys.stdout
    saved = host_path(root, ANSWERS_PATH)
    if not saved.exists():
        missing = Check("answers", False, f"not configured: {saved} is missing", "run cgnat-setup")
        if as_json:
            _print_json(out, None, None, [missing], None)
        else:
            print(f"{missing.detail} (run cgnat-setup)", file=out)
        return 1
    answers = load_answers(answers_toml.parse_toml(saved.read_text()), None, None)
    probe = probe or Probe(root)
    watchdog = Watchdog.read(probe, answers.role)
    checks = gather(answers, probe, watchdog)
    if as_json:
        _print_json(out, answers.role, answers.interface, checks, watchdog.to_json())
    else:
        print(f"cgnat {answers.role} {answers.interface}:", file=out)
        for check in checks:
            print(check.line(), file=out)
    return 0 if healthy(checks) else 1


def healthy(checks: list[Check]) -> bool:
    return all(c.ok is not False for c in checks)


def _print_json(out, role: str | None, interface: str | None, checks: list[Check],
                watchdog: dict | None) -> None:
    """The --json shape (module docstring); role, interface and watchdog are null only when
    the host is not configured."""
    print(json.dumps({"version": JSON_VERSION, "role": role, "interface": interface,
                      "healthy": healthy(checks), "checks": [c.to_json() for c in checks],
                      "watchdog": watchdog}, indent=1), file=out)
