"""Issue 21: one homelab watchdog over two tunnels (one per bridge), in simulated time. Each
tunnel heals alone; the host's action (reboot) comes only when every chain is broken while the
bridges answer from outside, once, recorded in every failing tunnel's state
(cgnat_homelab/host_action.py). And the service's side: each tunnel's own state and metrics
file, journal lines that name their tunnel, the DNS records told each chain's health."""
from __future__ import annotations

import dataclasses

import pytest

from cgnat_homelab import host_action, probe
from cgnat_homelab import watchdog as wd
from cgnat_homelab.decision import Config, State, decide
from installer import metrics
from installer import watchdog_runtime as runtime
from installer.watchdog_state import state_path
from test_watchdog import CFG, T0, broken, obs

A = dataclasses.replace(CFG, interface="wg0", restart_command="RESTART wg0")
B = dataclasses.replace(CFG, interface="wg1", endpoint="bridge-b.example.org:51820",
                        check_host="bridge-b.example.org", restart_command="RESTART wg1")
TWO = {"wg0": A, "wg1": B}
RUNS = range(0, 1200, 2)      # twenty minutes, a run every 2 s


def outage(t: float):
    """The bridge is down: nothing through its tunnel, its own ssh port silent from outside."""
    return broken(t, bridge_ssh_ok=False)


def drive(configs: dict[str, Config], looks: dict, runs=RUNS):
    """Every run: each tunnel's observation (looks[iface](t)), decided together. Per tunnel:
    (kinds of the steps taken, in order), the final state, the journal lines."""
    states = {iface: State() for iface in configs}
    kinds = {iface: [] for iface in configs}
    lines = {iface: [] for iface in configs}
    for t in runs:
        decided = host_action.decide_all(configs, {iface: looks[iface](t) for iface in configs}, states)
        for iface, (steps, new, said) in decided.items():
            kinds[iface] += [step.kind for step in steps]
            lines[iface] += said
            states[iface] = new
    return kinds, states, lines


def test_a_failing_tunnel_beside_a_healthy_one_heals_alone_and_never_takes_the_action():
    kinds, states, lines = drive(TWO, {"wg0": broken, "wg1": obs})
    assert "re-peer" in kinds["wg0"] and kinds["wg0"].count("restart") >= 5
    assert "action" not in kinds["wg0"] and kinds["wg1"] == []
    held = [line for line in lines["wg0"] if line.startswith("not taking the action")]
    assert held == ["not taking the action 'reboot': not every chain is broken (wg1 serves); "
                    "this tunnel heals alone"]                  # once, not every run
    assert states["wg0"].reboots == [] and states["wg0"].last_action_at is None
    assert states["wg1"].healthy and lines["wg1"] == ["healthy"]


def test_both_chains_broken_take_the_action_once_recorded_in_both():
    kinds, states, _ = drive(TWO, {"wg0": broken, "wg1": broken})
    assert kinds["wg0"].count("action") + kinds["wg1"].count("action") == 1
    due = T0 + A.action_after + A.restart_after      # first restart at restart_after, then action_after
    for iface in TWO:
        assert len(states[iface].reboots) == 1 and T0 + A.action_after <= states[iface].reboots[0] <= due
        assert states[iface].last_action_at == states[iface].reboots[0]


def test_one_bridge_in_an_outage_holds_the_action_of_the_other_broken_chain():
    kinds, states, lines = drive(TWO, {"wg0": outage, "wg1": broken})
    assert "action" not in kinds["wg0"] + kinds["wg1"]
    assert "restart" not in kinds["wg0"] and "restart" in kinds["wg1"]   # no restart in an outage
    assert any("wg0's bridge is in an outage" in line for line in lines["wg1"])
    assert states["wg0"].bridge_outage and not states["wg1"].bridge_outage


def test_the_line_is_said_again_when_another_chain_serves():
    """wg1 serves, then breaks too (the action goes), then wg2 is the one that serves."""
    three = {**TWO, "wg2": dataclasses.replace(B, interface="wg2", restart_command="RESTART wg2")}
    looks = {"wg0": broken, "wg1": lambda t: obs(t) if t < 400 else broken(t),
             "wg2": lambda t: broken(t) if t < 400 else obs(t)}
    _, _, lines = drive(three, looks)
    held = [line for line in lines["wg0"] if line.startswith("not taking the action")]
    assert [h.split("(")[1].split(")")[0] for h in held] == ["wg1 serves", "wg2 serves"]


def test_a_tunnel_not_looked_at_counts_by_its_saved_state():
    """wg1's lock is held (a hook runs): its saved state, healthy, still holds wg0's action."""
    states = {"wg0": State(), "wg1": State(last_run_at=T0)}
    for t in RUNS:
        decided = host_action.decide_all(TWO, {"wg0": broken(t)}, states)
        assert list(decided) == ["wg0"] and "action" not in [s.kind for s in decided["wg0"][0]]
        states["wg0"] = decided["wg0"][1]
    assert states["wg1"] == State(last_run_at=T0)


@pytest.mark.parametrize("look", [broken, outage, obs])
def test_one_tunnel_decides_exactly_as_decide_alone(look):
    state_alone, state_host = State(), State()
    for t in RUNS:
        alone = decide(A, look(t), state_alone)
        host = host_action.decide_all({"wg0": A}, {"wg0": look(t)}, {"wg0": state_host})["wg0"]
        assert host == alone
        state_alone, state_host = alone[1], host[1]


# ------------------------------------------------------------------ the service over two tunnels

class Follower:
    def __init__(self):
        self.told = []

    def follow(self, healthy, now):
        self.told.append((healthy, now))


def test_run_once_keeps_each_tunnels_state_and_metrics_and_steps_apart(tmp_path, monkeypatch, capsys):
    t = [0.0]
    monkeypatch.setattr(probe, "observe", lambda config, state: (
        broken(t[0]) if config.interface == "wg0" else obs(t[0]), None))
    done = []
    monkeypatch.setattr(wd, "carry_out", lambda step, config, peer: done.append((config.interface, step.kind, step.command)))
    tunnels = [runtime.Tunnel(None, config, tmp_path / state_path(config.interface, first, "watchdog.json"),
                              metrics.Textfile(tmp_path, config.interface, print,
                                               name=metrics.file_name(config.interface, first)))
               for config, first in ((A, True), (B, False))]
    follower, states = Follower(), None
    for t[0] in range(0, 400, 2):
        states = wd.run_once(tunnels, states, follower)
    assert {step for step in done} == {("wg0", "re-peer", ""), ("wg0", "restart", "RESTART wg0")}
    assert State.load(tmp_path / "watchdog.json").failing_since == T0
    assert State.load(tmp_path / "watchdog-wg1.json").healthy
    assert 'cgnat_healthy{interface="wg0"} 0' in (tmp_path / "cgnat.prom").read_text()
    assert 'cgnat_healthy{interface="wg1"} 1' in (tmp_path / "cgnat-wg1.prom").read_text()
    said = capsys.readouterr().err.splitlines()
    assert said[:3] == ["cgnat-watchdog: wg0: FAILING: the bridge 10.0.0.1 does not answer through the tunnel "
                        "(last handshake 150 s ago)", "cgnat-watchdog: wg1: healthy",
                        "cgnat-watchdog: wg0: still failing: the bridge 10.0.0.1 does not answer through "
                        "the tunnel (last handshake 152 s ago)"]
    assert all(line.startswith("cgnat-watchdog: wg0: ") for line in said[2:])   # wg1: "healthy" alone
    assert sum("(wg1 serves)" in line for line in said) == 1     # wg0's action held, said once
    assert follower.told[-1] == ({"wg0": False, "wg1": True}, T0 + 398) and len(follower.told) == 200
    # one failed probe does not withdraw a bridge's records; the second (a re-peer's evidence) does
    assert [healthy["wg0"] for healthy, _ in follower.told[:3]] == [True, False, False]


def test_the_action_due_in_both_tunnels_runs_once(tmp_path, monkeypatch):
    t = [0.0]
    monkeypatch.setattr(probe, "observe", lambda config, state: (broken(t[0]), None))
    done = []
    monkeypatch.setattr(wd, "carry_out", lambda step, config, peer: done.append(step.kind))
    tunnels = [runtime.Tunnel(None, A, tmp_path / "watchdog.json"),
               runtime.Tunnel(None, B, tmp_path / "watchdog-wg1.json")]
    states = None
    for t[0] in range(0, 500, 2):
        states = wd.run_once(tunnels, states)
    assert done.count("action") == 1
    assert [len(State.load(tunnel.state_path).reboots) for tunnel in tunnels] == [1, 1]


def homelab_answers(interface: str, endpoint: str) -> str:
    return (f'role = "homelab"\ninterface = "{interface}"\n[homelab]\nendpoint = "{endpoint}"\n'
            f'[homelab.watchdog]\nmetrics_dir = ""\n')


def test_the_service_loads_every_tunnel_and_leaves_out_one_it_cannot_read(tmp_path, capsys):
    first, further, bad = tmp_path / "answers.toml", tmp_path / "wg1.toml", tmp_path / "wg2.toml"
    first.write_text(homelab_answers("wg0", "bridge-a.example.org:51820"))
    further.write_text(homelab_answers("wg1", "bridge-b.example.org:51820"))
    bad.write_text(homelab_answers("wg2", "no port"))
    tunnels = runtime.load_tunnels([str(first), str(further), str(bad)], "homelab", str(tmp_path / "watchdog.json"),
                                   wd.config_from_answers, lambda answers: answers.homelab.watchdog.metrics_dir)
    assert [(t.interface, t.state_path.name, t.config.endpoint) for t in tunnels] == [
        ("wg0", "watchdog.json", "bridge-a.example.org:51820"),
        ("wg1", "watchdog-wg1.json", "bridge-b.example.org:51820")]
    assert f"cannot read {bad}: homelab.endpoint" in capsys.readouterr().err
    assert runtime.main(["--answers", str(bad), "--once"], role="homelab", description="test", every=2,
                        config_from_answers=wd.config_from_answers, metrics_setting=lambda a: "",
                        watch=wd.watch) == runtime.EXIT_BAD_ANSWERS


def test_the_service_watches_the_saved_tunnels_the_first_first(monkeypatch):
    saved = {"wg0": ("/etc/cgnat/answers.toml", {}), "wg1": ("/etc/cgnat/tunnels/wg1.toml", {})}
    monkeypatch.setattr(runtime.tunnels, "saved", lambda root: saved)
    assert runtime.answers_files(None) == ["/etc/cgnat/answers.toml", "/etc/cgnat/tunnels/wg1.toml"]
    assert runtime.answers_files("/run/x.toml") == ["/run/x.toml"]
    assert state_path("wg0", True) == "/var/lib/cgnat/watchdog.json"
    assert state_path("wg1", False) == "/var/lib/cgnat/watchdog-wg1.json"
    assert (metrics.file_name("wg0", True), metrics.file_name("wg1", False)) == ("cgnat.prom", "cgnat-wg1.prom")


def test_a_state_file_of_another_tunnel_is_not_taken_over(tmp_path, capsys):
    """remove-tunnel wg0 makes wg1 the first tunnel, whose state file is then watchdog.json:
    wg0's failures, steps and reboots are not wg1's. A state saved before (no interface) is kept."""
    path = tmp_path / "watchdog.json"
    State(failing_since=T0, reboots=[T0], interface="wg0").save(path)
    assert State.load(path, "wg1") == State(interface="wg1")
    assert capsys.readouterr().err == f"cgnat-watchdog: ignoring {path}: the state of wg0, not of wg1\n"
    assert State.load(path, "wg0").reboots == [T0]
    State(failing_since=T0).save(path)
    assert State.load(path, "wg1") == State(failing_since=T0, interface="wg1")
