"""The homelab's watchdog: probe the tunnel, check the chain end to end, heal step by step.

cgnat-watchdog.service runs it as one long-lived process (`/usr/lib/cgnat-homelab/watchdog`,
or `python3 -m cgnat_homelab.watchdog`), a run every EVERY seconds. Each run observes
(cgnat_homelab/probe.py), decides (cgnat_homelab/decision.py, pure: the ladder is described
there), saves the state when it changed (/var/lib/cgnat/watchdog.json) and only then acts, so
a reboot never loses the record that limits reboots. The end-to-end check is chosen from
what the bridge forwards (cgnat_homelab/endtoend.py).

Silent while healthy: the journal gets a line for each change of state and each step, with
its reason. The metrics (installer/metrics.py) add the last end-to-end check's result and time.
"""
from __future__ import annotations

import sys
from pathlib import Path

from cgnat_homelab import probe
from cgnat_homelab.decision import STEP_KINDS, Config, Observation, State, Step, decide
from installer import interface_lock, metrics
from installer.probes import run
from installer.watchdog_runtime import main as watchdog_main
from installer.watchdog_runtime import run_step_command
from installer.watchdog_state import log

EVERY = 2.0                # seconds between two runs: a restarted bridge is noticed within ~4 s


def config_from_answers(answers) -> Config:
    return Config.from_answers(answers, homelab_sshd=bool(probe.our_host_keys()))


def carry_out(step: Step, config: Config, peer: probe.Peer | None) -> None:
    if step.kind != "re-peer":
        run_step_command(step.kind, step.command)
        return
    key = (peer.public_key if peer else None) or config.peer_public_key
    if not key:
        log("re-peer: no peer key known; skipped")
        return
    allowed = peer.allowed_ips if peer and peer.allowed_ips != "(none)" else "0.0.0.0/0"
    iface = config.interface
    for argv in (["wg", "set", iface, "peer", key, "remove"],
                 ["wg", "set", iface, "peer", key, "endpoint", step.endpoint,
                  "allowed-ips", allowed, "persistent-keepalive", str(config.keepalive or "off")]):
        log("[#] " + " ".join(argv))
        done = run(argv)
        if done.returncode != 0:
            log(f"failed ({done.returncode}): {done.stderr.strip()}")


def samples(obs: Observation, state: State) -> list[metrics.Sample]:
    """The homelab's metrics after a run (installer/metrics.py names them)."""
    found = metrics.common_samples(state, STEP_KINDS, obs.interface_up, obs.handshake_age)
    if state.last_e2e_ok is not None:
        found.append(("cgnat_end_to_end_ok", {}, state.last_e2e_ok))
    if state.last_e2e_seconds is not None:
        found.append(("cgnat_end_to_end_latency_seconds", {}, round(state.last_e2e_seconds, 4)))
    found.append(("cgnat_bridge_outage", {}, state.bridge_outage))
    return found


def run_once(config: Config, state_path: Path, state: State | None = None,
             textfile: metrics.Textfile | None = None) -> State:
    """One run; `state` is the previous run's (None: read it from state_path)."""
    first = state is None
    state = State.load(state_path) if first else state
    with interface_lock.held(config.interface, wait=False) as free:
        if not free:        # a hook or setup is changing the interface: look again next run
            return state
        obs, peer = probe.observe(config, state)
    steps, new, lines = decide(config, obs, state)
    new.account(state, steps, obs.now)
    for line in lines:
        log(line)
    new.save_if_changed(state_path, None if first else state)   # before acting: a reboot must not lose the count
    if textfile:
        textfile.publish(samples(obs, new), obs.now)
    for step in steps:
        carry_out(step, config, peer)
    return new


def main(argv: list[str] | None = None) -> int:
    return watchdog_main(argv, role="homelab", description=__doc__.splitlines()[0], every=EVERY,
                         config_from_answers=config_from_answers,
                         metrics_setting=lambda answers: answers.homelab.watchdog.metrics_dir,
                         run_once=run_once)


if __name__ == "__main__":
    sys.exit(main())
