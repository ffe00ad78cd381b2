"""The bridge's watchdog: keep the tunnel interface and our rules in place, report a silent homelab.

cgnat-watchdog.service runs it as one long-lived process (`/usr/lib/cgnat-bridge/watchdog`, or
`python3 -m cgnat_bridge.watchdog`), a run every EVERY seconds; each run observes (I/O: the
interface, one `iptables-save`, two `wg show`), decides (pure: cgnat_bridge/decision.py says
which steps follow from what), acts.

State between runs (what was already reported, the steps taken) is kept in
/var/lib/cgnat/watchdog.json, written when it changes; the metrics (installer/metrics.py) add
whether the rules are in place, when the homelab was last seen and how full the connection
tracking table is (cgnat_bridge/conntrack.py: two /proc reads, no step ever follows from it).
Silent while healthy: a journal line for each change and each step.

The homelab's endpoint, as WireGuard reports it, is recorded in IFACE.endpoint beside the state
(/var/lib/cgnat/wg0.endpoint; 0600: it is the home's public address) when it changed and passes
installer/grammar.py's REPORTED_ENDPOINT; anything else ("(none)" after a restart) leaves the
record as it was. After a restart or a reboot the up hook dials that endpoint at once
(cgnat_bridge/hooks/up): the homelab's probes and keepalives hold its CGNAT mapping open.
(`wg show IFACE dump` would give the endpoint and the handshake in one program, but it prints
the private key too.)
"""
from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path

from cgnat_bridge import conntrack
from cgnat_bridge.decision import CGNAT_ETC, STEP_KINDS, Config, Observation, State, decide
from installer import grammar, interface_lock, metrics, probes
from installer.atomic import write_atomic
from installer.probes import handshake_age, interface_exists, tunnel_job
from installer.rules_file import missing_rules
from installer.watchdog_runtime import Tunnel
from installer.watchdog_runtime import main as watchdog_main
from installer.watchdog_runtime import run_step_command
from installer.watchdog_state import log

EVERY = 30.0               # seconds between two runs: three small programs a run (iptables-save, wg twice)
ENDPOINT_MODE = 0o600      # the homelab's endpoint: the home's public address


def observe(config: Config, now: float | None = None) -> Observation:
    now = time.time() if now is None else now
    up = interface_exists(config.interface)
    return Observation(now=now, interface_up=up,
                       handshake_age=handshake_age(config.interface, now) if up else None,
                       homelab_endpoint=homelab_endpoint(config.interface) if up else None,
                       missing_rules=missing_rules(config.interface, config.rules_path) if up else (),
                       conntrack=conntrack.read(), tunnel_job="" if up else tunnel_job(config.interface))


def homelab_endpoint(interface: str) -> str | None:
    """The one peer's endpoint as WireGuard reports it, if it passes the grammar; None for
    "(none)", no peer or several, or anything else."""
    lines = probes.run(["wg", "show", interface, "endpoints"]).stdout.splitlines()
    endpoint = lines[0].partition("\t")[2] if len(lines) == 1 else ""
    return endpoint if grammar.is_reported_endpoint(endpoint) else None


def endpoint_path(state_path: Path, interface: str) -> Path:
    return state_path.with_name(f"{interface}.endpoint")


def record_endpoint(path: Path, endpoint: str | None) -> None:
    """Write the endpoint to `path` when it is one and differs from what the file holds."""
    if endpoint is None:
        return
    content = f"{endpoint}\n".encode()
    try:
        if path.read_bytes() == content:
            return
    except OSError:
        pass
    try:
        write_atomic(path, content, ENDPOINT_MODE)
    except OSError as error:
        log(f"cannot record the homelab's endpoint in {path}: {error.strerror}")


def samples(obs: Observation, state: State) -> list[metrics.Sample]:
    """The bridge's metrics after a run (installer/metrics.py names them)."""
    found = metrics.common_samples(state, STEP_KINDS, obs.interface_up, obs.handshake_age)
    if obs.interface_up:
        found.append(("cgnat_rules_ok", {}, not obs.missing_rules))
    if obs.handshake_age is not None:
        found.append(("cgnat_homelab_last_seen_timestamp_seconds", {}, round(obs.now - obs.handshake_age)))
    if obs.conntrack is not None:
        found += [("cgnat_nf_conntrack_count", {}, obs.conntrack.count),
                  ("cgnat_nf_conntrack_max", {}, obs.conntrack.max)]
    return found


def run_once(tunnels: list[Tunnel], states: dict[str, State] | None = None) -> dict[str, State]:
    """One run over the host's tunnels (a bridge keeps one); `states`: the previous run's."""
    return {t.interface: run_tunnel(t.config, t.state_path, None if states is None else states[t.interface],
                                    t.textfile) for t in tunnels}


def run_tunnel(config: Config, state_path: Path, state: State | None = None,
               textfile: metrics.Textfile | None = None) -> State:
    """One run of one tunnel; `state` is the previous run's (None: read it from state_path)."""
    first = state is None
    state = State.load(state_path, config.interface) if first else state
    with interface_lock.held(config.interface, wait=False) as free:
        if not free:        # a hook or setup is changing the interface: look again next run
            return state
        obs = observe(config)
    steps, new, lines = decide(config, obs, state)
    new.account(state, steps, obs.now)
    for line in lines:
        log(line)
    new.save_if_changed(state_path, None if first else state)
    record_endpoint(endpoint_path(state_path, config.interface), obs.homelab_endpoint)
    if textfile:
        textfile.publish(samples(obs, new), obs.now)
    for step in steps:
        run_step_command(step.kind, step.command)
    return new


def main(argv: list[str] | None = None) -> int:
    return watchdog_main(argv, role="bridge", description=__doc__.splitlines()[0], every=EVERY,
                         config_from_answers=lambda answers: Config.from_answers(
                             answers, os.environ.get("CGNAT_ETC", CGNAT_ETC)),
                         metrics_setting=lambda answers: answers.bridge.watchdog_metrics_dir,
                         watch=lambda tunnels: functools.partial(run_once, tunnels))


if __name__ == "__main__":
    sys.exit(main())
