"""The homelab's watchdog: probe the tunnel, check the chain end to end, heal step by step.

cgnat-watchdog.service runs it as one long-lived process (`/usr/lib/cgnat-homelab/watchdog`,
or `python3 -m cgnat_homelab.watchdog`), a run every EVERY seconds over every tunnel of the
host (one per bridge). Each run observes each tunnel (cgnat_homelab/probe.py), decides
(cgnat_homelab/decision.py, pure: the ladder is described there; with several tunnels
cgnat_homelab/host_action.py holds the host's action while another chain serves), saves each
tunnel's state when it changed (/var/lib/cgnat/watchdog.json, a further tunnel's
watchdog-IFACE.json), has the DNS records follow the chains' health (cgnat_homelab/dns.py)
and only then acts, so a reboot never loses the record that limits reboots. Each tunnel's
re-peer and restart touch its interface alone. The end-to-end check is chosen from what the
bridge forwards (cgnat_homelab/endtoend.py).

Silent while healthy: the journal gets a line for each change of state and each step, with
its reason (on a host with several tunnels, each line starts with its interface: "wg1: ...").
The metrics (installer/metrics.py) add the last end-to-end check's result and time.
"""
from __future__ import annotations

import functools
import sys

from cgnat_homelab import dns, host_action, probe
from cgnat_homelab.decision import STEP_KINDS, Config, Observation, State, Step
from installer import interface_lock, metrics
from installer.probes import run
from installer.watchdog_runtime import Tunnel
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


def samples(obs: Observation, state: State, endpoint: str | None = None) -> list[metrics.Sample]:
    """The homelab's metrics after a run (installer/metrics.py names them); `endpoint`: the
    tunnel's bridge, the label of cgnat_bridge_info."""
    found = metrics.common_samples(state, STEP_KINDS, obs.interface_up, obs.handshake_age)
    if state.last_e2e_ok is not None:
        found.append(("cgnat_end_to_end_ok", {}, state.last_e2e_ok))
    if state.last_e2e_seconds is not None:
        found.append(("cgnat_end_to_end_latency_seconds", {}, round(state.last_e2e_seconds, 4)))
    found.append(("cgnat_bridge_outage", {}, state.bridge_outage))
    if endpoint:
        found.append(("cgnat_bridge_info", {"endpoint": endpoint}, 1))
    return found


def run_once(tunnels: list[Tunnel], states: dict[str, State] | None = None,
             follower: dns.Follower | None = None) -> dict[str, State]:
    """One run over every tunnel; `states` is the previous run's (None: read the state files).
    Each tunnel is looked at under its own lock (a held one: looked at again next run); the
    decisions are taken together (host_action.py), each tunnel's state saved before any step."""
    first = states is None
    before = {t.interface: State.load(t.state_path, t.interface) for t in tunnels} if first else states
    looked: dict[str, tuple[Observation, probe.Peer | None]] = {}
    for tunnel in tunnels:
        with interface_lock.held(tunnel.interface, wait=False) as free:
            if free:        # else a hook or setup is changing the interface: look again next run
                looked[tunnel.interface] = probe.observe(tunnel.config, before[tunnel.interface])
    decided = host_action.decide_all({t.interface: t.config for t in tunnels},
                                     {iface: obs for iface, (obs, _) in looked.items()}, before)
    after, steps = dict(before), []
    for tunnel in (t for t in tunnels if t.interface in decided):
        (obs, peer), (taken, new, lines) = looked[tunnel.interface], decided[tunnel.interface]
        new.account(before[tunnel.interface], taken, obs.now)
        for line in lines:
            log(f"{tunnel.interface}: {line}" if len(tunnels) > 1 else line)
        new.save_if_changed(tunnel.state_path, None if first else before[tunnel.interface])  # before acting
        if tunnel.textfile:
            tunnel.textfile.publish(samples(obs, new, tunnel.config.endpoint), obs.now)
        after[tunnel.interface] = new
        steps += [(step, tunnel.config, peer) for step in taken]
    if follower and looked:
        follower.follow({iface: state.serving for iface, state in after.items()},
                        max(obs.now for obs, _ in looked.values()))
    for step, config, peer in steps:
        carry_out(step, config, peer)
    return after


def watch(tunnels: list[Tunnel]):
    """The service's run over the host's tunnels, with the DNS records that follow their health."""
    return functools.partial(run_once, tunnels, follower=dns.Follower.from_answers([t.answers for t in tunnels]))


def main(argv: list[str] | None = None) -> int:
    return watchdog_main(argv, role="homelab", description=__doc__.splitlines()[0], every=EVERY,
                         config_from_answers=config_from_answers,
                         metrics_setting=lambda answers: answers.homelab.watchdog.metrics_dir,
                         watch=watch)


if __name__ == "__main__":
    sys.exit(main())
