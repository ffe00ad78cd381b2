"""The homelab watchdog's decisions (pure), its probes (small I/O helpers) and its runs."""
from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cgnat_homelab import decision, probe
from cgnat_homelab import watchdog as wd
from cgnat_homelab.answers import HomelabAnswers
from cgnat_homelab.decision import Config, Observation, State, decide
from cgnat_homelab.endtoend import EndToEnd

T0 = 1_700_000_000.0
# check_port 22: the ssh check, whose identity (another host's key) the tests below need; the
# default self check is the matrix's (test_watchdog_matrix.py).
CFG = Config(interface="wg0", endpoint="bridge.example.org:51820", peer_public_key="K" * 42 + "A=",
             check_host="bridge.example.org", restart_command="RESTART", action_command="REBOOT",
             check_port=22)


def obs(t: float, **kw) -> Observation:
    base = dict(now=T0 + t, uptime=3600 + t, interface_up=True, probe_ok=True, e2e_ok=None,
                bridge_ssh_ok=None, endpoint="203.0.113.7:51820",
                resolved_endpoint="203.0.113.7:51820", handshake_age=5)
    base.update(kw)
    if base["e2e_ok"] is not None and "e2e_check" not in kw:
        base["e2e_check"] = CFG.e2e            # ssh on 22
    return Observation(**base)


def broken(t: float, **kw) -> Observation:
    """The tunnel does not answer; the bridge's own ssh port does (the homelab is at fault);
    the last handshake is from before the fault."""
    return obs(t, **{"probe_ok": False, "bridge_ssh_ok": True, "handshake_age": 150 + t, **kw})


TWO_FAILED = State(probe_failures=decision.REPEER_AFTER_PROBES - 1)   # the next failed probe re-peers


def run(config, observations, state=None):
    """Feed observations in order; (kinds of the steps per run, final state, all log lines)."""
    state = state or State()
    kinds, lines = [], []
    for o in observations:
        steps, state, log = decide(config, o, state)
        kinds.append([s.kind for s in steps])
        lines += log
    return kinds, state, lines


def every(seconds, start, stop, make):
    return [make(t) for t in range(start, stop, seconds)]


def test_healthy_does_nothing_and_records_the_check():
    steps, state, log = decide(CFG, obs(0, e2e_ok=True), State())
    assert steps == [] and state.failing_since is None
    assert state.last_e2e_at == T0 and state.last_e2e_ok is True
    assert log == ["end-to-end check: tcp/22 (ssh)", "healthy"]
    steps, state, log = decide(CFG, obs(10), state)
    assert steps == [] and log == []          # quiet while nothing changes


def test_e2e_is_due_every_check_interval_and_every_run_while_failing():
    state = State(last_e2e_at=T0, last_e2e_ok=True)
    assert not decision.e2e_due(CFG, state, T0 + CFG.check_interval - 1)
    assert decision.e2e_due(CFG, state, T0 + CFG.check_interval)
    assert decision.e2e_due(CFG, State(), T0)
    assert decision.e2e_due(CFG, dataclasses.replace(state, failing_since=T0), T0 + 1)
    assert decision.e2e_due(CFG, dataclasses.replace(state, last_e2e_ok=False), T0 + 1)


def test_the_second_failed_probe_in_a_row_re_peers_to_force_a_handshake():
    kinds, state, log = run(CFG, [broken(0), broken(2)], State(last_run_at=T0 - 10))
    assert kinds == [[], ["re-peer"]]
    assert state.failing_since == T0 and state.probe_failures == 2
    assert any(line.startswith("FAILING:") and "does not answer through the tunnel" in line
               for line in log)


def test_no_re_peer_when_a_handshake_succeeded_since_the_failure_began():
    """The bridge agreed to a session while the probes failed: they fail for another reason
    (a loaded host), and a fresh session would not help."""
    kinds, _, _ = run(CFG, [broken(t, handshake_age=t / 2) for t in range(0, 20, 2)])
    assert "re-peer" not in sum(kinds, [])


def test_each_failed_probe_waits_longer_for_the_next():
    timeouts = [decision.probe_timeout(State(probe_failures=n), 2.0) for n in range(6)]
    assert timeouts == [2.0, 4.0, 4.0, 4.0, 4.0, 4.0]


def test_a_loaded_host_whose_probes_fail_now_and_then_never_re_peers():
    """A late answer now and then, for an hour: slowness is not failure (issue 19)."""
    pattern = [False, True, True, False, True, False, True, True, True]
    observations = [obs(t, e2e_ok=True) if pattern[(t // 2) % len(pattern)] else broken(t, handshake_age=60)
                    for t in range(0, 3600, 2)]
    kinds, _, _ = run(CFG, observations)
    assert "re-peer" not in sum(kinds, [])


def test_re_peer_uses_the_new_address_of_a_moved_bridge():
    steps, _, log = decide(CFG, broken(0, resolved_endpoint="198.51.100.99:51820"), TWO_FAILED)
    assert steps[0].endpoint == "198.51.100.99:51820"
    assert any("now resolves to 198.51.100.99:51820 (was 203.0.113.7:51820)" in line for line in log)


def test_re_peer_keeps_the_current_endpoint_when_dns_fails():
    steps, _, log = decide(CFG, broken(0, resolved_endpoint=None), TWO_FAILED)
    assert steps[0].endpoint == "203.0.113.7:51820"
    assert any("cannot resolve bridge.example.org" in line for line in log)


def test_re_peer_is_rate_limited():
    kinds, _, _ = run(CFG, [broken(0), broken(3), broken(6), broken(10)], TWO_FAILED)
    assert kinds == [["re-peer"], [], [], ["re-peer"]]


def test_recovery_resets_the_ladder_and_is_logged():
    kinds, state, lines = run(CFG, [broken(0), obs(10, e2e_ok=True)], TWO_FAILED)
    assert kinds == [["re-peer"], []]
    assert state.failing_since is None and state.restarts_since_failing == 0
    assert "recovered after 10 s" in lines[-1]


def test_ladder_re_peer_then_restart_then_action():
    c = dataclasses.replace(CFG, restart_after=60, restart_interval=60, action_after=300)
    kinds, state, lines = run(c, every(10, 0, 400, broken))
    flat = [(i * 10, k[0]) for i, k in enumerate(kinds) if k]
    assert flat[0] == (10, "re-peer")             # the second failed probe
    restarts = [t for t, k in flat if k == "restart"]
    assert restarts[0] == 60 and all(b - a >= 60 for a, b in zip(restarts, restarts[1:]))
    actions = [t for t, k in flat if k == "action"]
    assert actions == [300]                      # one action; the rate limit holds after it
    assert state.reboots == [T0 + 300] and state.last_action_at == T0 + 300
    assert any(line.startswith("action: ") for line in lines)


def test_no_action_without_a_restart_first():
    state = dataclasses.replace(TWO_FAILED, failing_since=T0 - 1000, reasons=["x"], last_restart_at=None)
    c = dataclasses.replace(CFG, restart_interval=10_000)
    steps, _, _ = decide(c, broken(0, handshake_age=2000), dataclasses.replace(state, last_restart_at=T0 - 5))
    assert [s.kind for s in steps] == ["re-peer"]   # restarts_since_failing == 0: no action


def test_action_waits_restart_after_seconds_after_the_last_restart():
    state = State(failing_since=T0 - 1000, reasons=["x"], last_restart_at=T0 - 30,
                  restarts_since_failing=1, last_repeer_at=T0)
    steps, _, _ = decide(CFG, broken(0), state)
    assert steps == []
    steps, _, _ = decide(CFG, broken(31), state)
    assert [s.kind for s in steps] == ["action"]
    assert steps[0].command == "REBOOT"


def test_bridge_outage_never_takes_the_action_nor_restarts_and_says_so_loudly():
    kinds, state, lines = run(CFG, every(10, 0, 2000, lambda t: broken(t, bridge_ssh_ok=False)))
    taken = {k for ks in kinds for k in ks}
    assert taken == {"re-peer"}
    assert state.bridge_outage and state.summary.startswith("bridge outage")
    assert sum("BRIDGE OUTAGE" in line for line in lines if "does not answer from outside either;" in line) == 1
    assert any("no tunnel restart and no action while this lasts" in line for line in lines)


def test_bridge_outage_after_a_restart_blocks_the_due_action():
    state = State(failing_since=T0 - 1000, reasons=["x"], last_restart_at=T0 - 100,
                  restarts_since_failing=1, last_repeer_at=T0)
    steps, _, log = decide(CFG, broken(0, bridge_ssh_ok=False), state)
    assert steps == []
    assert any("not taking the action 'reboot': BRIDGE OUTAGE" in line for line in log)
    steps, _, _ = decide(CFG, broken(0, bridge_ssh_ok=True), state)
    assert [s.kind for s in steps] == ["action"]          # the same moment, bridge up: act


def test_outage_then_bridge_back_restarts_the_ladder():
    outage = every(10, 0, 1000, lambda t: broken(t, bridge_ssh_ok=False))
    back = every(10, 1000, 1100, broken)
    kinds, state, lines = run(CFG, outage + back)
    after = [k for ks in kinds[len(outage):] for k in ks]
    assert "action" not in after                  # the ladder starts afresh: no instant reboot
    assert after[0] == "re-peer" and "restart" in after
    assert any("answers again" in line for line in lines)


def test_the_bridges_own_sshd_answering_the_e2e_check_is_a_bridge_outage():
    """The bridge lost its forwarding rules: port 22 reaches its own sshd. Not healthy, and
    not the homelab's fault: no restart, no action, said loudly once."""
    kinds, state, lines = run(CFG, every(10, 0, 900, lambda t: obs(t, e2e_ok=True, e2e_foreign=True,
                                                                       bridge_ssh_ok=True)))
    assert kinds == [[]] * 90
    assert state.bridge_outage and state.last_e2e_ok is False
    assert "is answered by the bridge itself (another host's ssh key)" in state.reasons[0]
    assert sum(line.startswith("BRIDGE OUTAGE: the bridge answers bridge.example.org:22 itself")
               for line in lines) == 1
    _, state, lines = decide(CFG, obs(900, e2e_ok=True), state)
    assert state.failing_since is None and lines[0].startswith("recovered after")


def test_the_bridges_own_sshd_answering_blocks_a_due_action():
    state = State(failing_since=T0 - 1000, reasons=["x"], restarts_since_failing=1,
                  last_restart_at=T0 - 500, last_run_at=T0 - 10)
    steps, _, lines = decide(CFG, obs(0, e2e_ok=True, e2e_foreign=True, bridge_ssh_ok=True), state)
    assert steps == []
    assert "not taking the action 'reboot': BRIDGE OUTAGE (the bridge answers " \
           "bridge.example.org:22 itself)" in lines


def test_unknown_bridge_state_blocks_the_action():
    kinds, _, lines = run(CFG, every(10, 0, 700, lambda t: broken(t, bridge_ssh_ok=None)))
    assert "action" not in {k for ks in kinds for k in ks}
    assert any("cannot tell whether the bridge is up" in line for line in lines)


def test_boot_grace_blocks_the_action():
    c = dataclasses.replace(CFG, boot_grace=600)
    kinds, _, lines = run(c, every(10, 0, 500, lambda t: broken(t, uptime=30 + t)))
    assert "action" not in {k for ks in kinds for k in ks}
    assert any("boot_grace 600 s" in line for line in lines)


def test_rate_limit_one_action_per_interval():
    c = dataclasses.replace(CFG, action="restart-tunnel", action_after=100, action_interval=1800)
    kinds, state, lines = run(c, every(10, 0, 3800, broken))
    actions = [i * 10 for i, ks in enumerate(kinds) if "action" in ks]
    assert actions[0] == 120        # restart at 60, then restart_after (60) to let it work
    assert len(actions) == 3 and all(b - a >= 1800 for a, b in zip(actions, actions[1:]))
    # each refusal said once after each action, not on each of the ~180 runs in between
    refusals = [line for line in lines if line.startswith("not taking the action")]
    assert len(refusals) == 3 and all("rate limit: last action" in line for line in refusals), refusals


def test_boot_loop_guard_counts_reboots_of_the_last_day_across_runs():
    c = dataclasses.replace(CFG, action_interval=0, max_reboots_per_day=3)
    state = State(reboots=[T0 - 3 * 3600, T0 - 2 * 3600, T0 - 3600])
    kinds, state2, lines = run(c, every(10, 0, 600, broken), state)
    assert "action" not in {k for ks in kinds for k in ks}
    assert any("boot-loop guard: 3 reboots" in line for line in lines)
    # a day later the old reboots no longer count
    old = State(reboots=[T0 - DAY_PLUS for DAY_PLUS in (90000, 90001, 90002)])
    kinds, state3, _ = run(c, every(10, 0, 600, broken), old)
    assert "action" in {k for ks in kinds for k in ks}
    assert len(state3.reboots) == 3          # the day-old ones dropped, then capped again at 3
    assert min(state3.reboots) >= T0


def test_action_none_is_logged_never_taken():
    c = Config.from_answers(_answers(action="none"))
    c = dataclasses.replace(c, restart_command="RESTART")
    kinds, _, lines = run(c, every(10, 0, 700, broken))
    assert "action" not in {k for ks in kinds for k in ks}
    assert any("the configured action is none" in line for line in lines)


def test_missing_interface_restarts_at_once_and_respects_restart_interval():
    c = dataclasses.replace(CFG, restart_interval=30)
    kinds, _, lines = run(c, every(10, 0, 70, lambda t: obs(t, interface_up=False, probe_ok=False)))
    assert kinds == [["restart"], [], [], ["restart"], [], [], ["restart"]]
    assert any("interface wg0 is missing" in line for line in lines)
    assert any("next restart allowed in" in line for line in lines)


def test_no_step_while_systemd_runs_someone_elses_job_of_the_tunnel():
    """An admin's `systemctl restart wg-quick@wg0` takes the interface away for a moment: the
    watchdog sees it missing, but a restart of its own would make systemd start the admin's
    over (and wait for the killed start). It waits, says so once, and restarts at once when
    the job is gone and the interface still is."""
    busy = lambda t: obs(t, interface_up=False, probe_ok=False, tunnel_job="restart running")  # noqa: E731
    kinds, state, lines = run(CFG, every(2, 0, 10, busy) + [obs(10, interface_up=False, probe_ok=False)])
    assert kinds == [[]] * 5 + [["restart"]]
    assert lines[0] == ("FAILING: interface wg0 is missing; systemd is running a restart of wg-quick@wg0 "
                        "(not ours): no step until it ends")
    assert sum("systemd is running" in line for line in lines) == 1
    kinds, _, _ = run(CFG, every(10, 0, 400, lambda t: broken(t, tunnel_job="start running")), TWO_FAILED)
    assert kinds == [[]] * 40                   # no re-peer, restart or action either


def test_boot_before_dns_works_waits_for_the_name_then_restarts_at_once():
    """wg-quick cannot bring up a named endpoint without DNS: no restart (and so no action)
    until the name resolves; then the restart comes in the same run."""
    no_dns = lambda t: obs(t, interface_up=False, probe_ok=False, endpoint=None,  # noqa: E731
                           resolved_endpoint=None, bridge_ssh_ok=None)
    kinds, state, lines = run(CFG, every(10, 0, 600, no_dns))
    assert kinds == [[]] * 60
    assert lines[0] == ("FAILING: interface wg0 is missing; bridge.example.org does not resolve "
                        "(DNS not working yet?)")
    assert sum("does not resolve" in line for line in lines) == 1      # said once, not every run
    steps, state, _ = decide(CFG, obs(600, interface_up=False, probe_ok=False, endpoint=None), state)
    assert [s.kind for s in steps] == ["restart"]


def test_without_dns_a_present_interface_still_re_peers_but_never_restarts():
    kinds, _, _ = run(CFG, every(10, 0, 200, lambda t: broken(t, resolved_endpoint=None)))
    assert "restart" not in sum(kinds, []) and kinds[:2] == [[], ["re-peer"]]


def test_an_address_endpoint_needs_no_dns():
    c = dataclasses.replace(CFG, endpoint="203.0.113.7:51820", check_host="203.0.113.7")
    kinds, _, _ = run(c, [obs(0, interface_up=False, probe_ok=False, resolved_endpoint=None)])
    assert kinds == [["restart"]]


def test_end_to_end_failure_with_a_working_tunnel_restarts_after_restart_after():
    kinds, state, _ = run(CFG, every(10, 0, 70, lambda t: obs(t, e2e_ok=False, bridge_ssh_ok=True)))
    assert kinds[:6] == [[]] * 6 and kinds[6] == ["restart"]
    assert "end-to-end check bridge.example.org:22 failed" in state.reasons[0]


def test_a_failed_e2e_keeps_failing_until_an_e2e_succeeds():
    kinds, state, _ = run(CFG, [obs(0, e2e_ok=False), obs(10)])
    assert state.failing_since == T0          # the probe alone does not clear it


def test_state_round_trips_and_tolerates_unknown_keys(tmp_path):
    state = State(failing_since=T0, reasons=["a"], reboots=[T0], last_step="restart at x")
    path = tmp_path / "watchdog.json"
    state.save(path)
    assert State.load(path) == state
    path.write_text('{"failing_since": 1.0, "from_a_newer_version": 3}')
    assert State.load(path).failing_since == 1.0
    path.write_text("{not json")
    assert State.load(path) == State()
    assert State.load(tmp_path / "absent.json") == State()


def test_summary_lines():
    assert State().summary == "never ran"
    assert State(last_run_at=T0).summary == "healthy"
    assert State(last_run_at=T0, failing_since=T0, reasons=["a", "b"]).summary == "failing: a; b"


def _answers(**watchdog) -> HomelabAnswers:
    a = HomelabAnswers()
    a.homelab.endpoint = "bridge.example.org:51820"
    a.peer_public_key = "K" * 42 + "A="
    for k, v in watchdog.items():
        setattr(a.homelab.watchdog, k, v)
    return a


def test_config_defaults_from_answers():
    c = Config.from_answers(_answers())
    assert c.restart_command == "systemctl restart wg-quick@wg0"
    assert c.action_command == "systemctl reboot"
    assert c.target_host == "bridge.example.org" and c.e2e == EndToEnd(51820, "self") and c.bridge_ssh_port == 2222
    assert c.wireguard_port == 51820
    assert c.bridge_address == "10.0.0.1" and c.boot_grace == decision.DEFAULTS["boot_grace"]


def test_config_keys_override_defaults():
    c = Config.from_answers(_answers(action="restart-tunnel", restart_command="wg-quick down wg0; wg-quick up wg0",
                                     boot_grace=0, check_host="203.0.113.7", bridge_ssh_port=2200))
    assert c.action_command == "wg-quick down wg0; wg-quick up wg0"   # restart-tunnel = restart
    assert c.boot_grace == 0 and c.bridge_ssh_port == 2200 and c.target_host == "203.0.113.7"
    c = Config.from_answers(_answers(action_command="true"))
    assert c.action_command == "true"


def test_touch_counts_a_refusal_only_for_the_probe():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        assert probe.touch("127.0.0.1", port, 1, refused_ok=False)
    assert probe.touch("127.0.0.1", port, 1, refused_ok=True)       # closed now: refused = answered
    assert not probe.touch("127.0.0.1", port, 1, refused_ok=False)


def test_resolve_and_split():
    assert probe.resolve("127.0.0.1", 51820) == "127.0.0.1:51820"
    assert probe.resolve("no-such-name.invalid", 1) is None
    assert decision.split_endpoint("[2001:db8::1]:51820") == ("2001:db8::1", 51820)
    assert decision.is_address("203.0.113.7") and not decision.is_address("bridge.example.org")


def test_wg_peer_parses_dump(monkeypatch):
    dump = ("PRIV\tPUB\t0\toff\n"
            "PEERKEY=\t(none)\t203.0.113.7:51820\t0.0.0.0/0\t1699999990\t10\t20\t25\n")
    monkeypatch.setattr(probe, "run", lambda argv, timeout=10: subprocess.CompletedProcess(argv, 0, dump, ""))
    peer = probe.wg_peer("wg0", T0)
    assert peer == probe.Peer("PEERKEY=", "203.0.113.7:51820", "0.0.0.0/0", 10.0)
    dump_never = dump.replace("1699999990", "0").replace("203.0.113.7:51820", "(none)")
    monkeypatch.setattr(probe, "run", lambda argv, timeout=10: subprocess.CompletedProcess(argv, 0, dump_never, ""))
    peer = probe.wg_peer("wg0", T0)
    assert peer.handshake_age is None and peer.endpoint is None


def test_run_once_saves_state_before_acting(tmp_path, monkeypatch):
    order = []
    state_path = tmp_path / "s.json"
    monkeypatch.setattr(probe, "observe", lambda c, s: (obs(0, interface_up=False, probe_ok=False), None))
    monkeypatch.setattr(wd, "carry_out", lambda step, c, p: order.append(("act", state_path.exists())))
    wd.run_once([wd.Tunnel(None, CFG, state_path)])
    assert order == [("act", True)]
    assert State.load(state_path).last_restart_at == T0


def test_carry_out_runs_the_configured_command_through_sh(tmp_path):
    marker = tmp_path / "ran"
    wd.carry_out(decision.Step("action", "test", f"echo hi > {marker}"), CFG, None)
    assert marker.read_text() == "hi\n"


def test_main_rejects_bad_answers(tmp_path, capsys):
    bad = tmp_path / "a.toml"
    bad.write_text('role = "homelab"\n[homelab]\nendpoint = "x:1"\n[homelab.watchdog]\nboot_grace = -1\n')
    assert wd.main(["--answers", str(bad), "--state", str(tmp_path / "s")]) == 2       # RestartPreventExitStatus=2: no restart loop
    assert "boot_grace: must be 0 or more" in capsys.readouterr().err


@pytest.mark.parametrize("action", ["reboot", "restart-tunnel"])
def test_every_action_is_preceded_by_a_logged_reason(action):
    c = dataclasses.replace(CFG, action=action)
    _, _, lines = run(c, every(10, 0, 400, broken))
    i = next(i for i, line in enumerate(lines) if line.startswith("action:"))
    assert "a tunnel restart did not help" in lines[i]


@pytest.fixture
def local_sshd(tmp_path):
    """A real sshd on 127.0.0.1 with its own host key; (port, dir of its .pub key)."""
    keys = tmp_path / "theirs"
    keys.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "ssh_host_ed25519_key")],
                   check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {keys}/ssh_host_ed25519_key\nListenAddress 127.0.0.1\nPort {port}\n"
                      "PidFile none\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not probe.touch("127.0.0.1", port, 1, refused_ok=False):
            assert time.monotonic() < deadline, "sshd did not start"
            time.sleep(0.05)
        yield port, keys
    finally:
        proc.terminate()
        proc.wait(10)


def test_another_hosts_sshd_is_told_by_its_host_key(tmp_path, local_sshd):
    port, theirs = local_sshd
    ours = tmp_path / "ours"
    ours.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ours / "ssh_host_ed25519_key")],
                   check=True)
    assert probe.another_hosts_sshd("127.0.0.1", port, ours)          # the bridge's own sshd
    assert not probe.another_hosts_sshd("127.0.0.1", port, theirs)    # ours, through the bridge
    assert not probe.another_hosts_sshd("127.0.0.1", port, tmp_path / "none")   # no keys: cannot tell
    with socket.socket() as quiet:                                  # not an sshd: cannot tell
        quiet.bind(("127.0.0.1", 0))
        quiet.listen()
        assert not probe.another_hosts_sshd("127.0.0.1", quiet.getsockname()[1], ours)


def test_the_end_to_end_check_follows_what_the_bridge_forwards():
    from cgnat_homelab.endtoend import choose
    wg, everything = 51820, frozenset({22, 80, 443, 444, 51820})
    for forward in ("all", ["tcp/80"], ["udp/53"]):        # the self check, whatever is forwarded
        assert choose(forward, 2222, None, True, None, wg) == (EndToEnd(wg, "self"), "")
        assert choose(forward, 2222, None, True, frozenset({22, 80}), wg) == (EndToEnd(wg, "self"), "")
    # a service holds the self check's port: what listens on forwarded ports
    assert choose("all", 2222, None, True, everything, wg) == (EndToEnd(22, "ssh"), "")
    assert choose(["tcp/80", "tcp/22"], 2222, None, True, everything, wg) == (EndToEnd(22, "ssh"), "")
    assert choose(["udp/53", "tcp/443-444", "tcp/80"], 2222, None, True, everything, wg) == (EndToEnd(80, "connect"), "")
    assert choose(["tcp/80", "tcp/22"], 2222, None, False, everything, wg) == (EndToEnd(80, "connect"), "")
    assert choose("all", 2222, 8443, False, None, wg) == (EndToEnd(8443, "connect"), "")   # the override wins
    assert choose(["tcp/80"], 2222, 22, True, None, wg) == (EndToEnd(22, "ssh"), "")
    none, why = choose(["udp/53", "icmp"], 2222, None, True, everything, wg)
    assert none is None and "a service here holds tcp/51820, the self check's port" in why


def test_listening_reads_the_kernels_socket_tables():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        port = srv.getsockname()[1]
        assert not probe.listening(port)
        srv.listen()
        assert probe.listening(port)


def test_ipv4_asks_for_a_records_only(monkeypatch):
    asked = []

    def fake(host, port, family=0, *rest):
        asked.append(family)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("203.0.113.7", 0))]

    monkeypatch.setattr(probe.socket, "getaddrinfo", fake)
    assert probe.ipv4("bridge.example.org") == "203.0.113.7" and asked == [socket.AF_INET]


def test_connect_tells_a_refusal_from_no_answer():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        assert probe.connect("127.0.0.1", port, 1) == "ok"
    assert probe.connect("127.0.0.1", port, 1) == "refused"
    assert probe.connect("no-such-name.invalid", port, 1) == "failed"


def test_the_host_key_is_read_in_process_from_the_key_exchange(local_sshd):
    from cgnat_homelab import sshkey
    port, theirs = local_sshd
    blob = (theirs / "ssh_host_ed25519_key.pub").read_text().split()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        assert sshkey.host_key(sock, ["ssh-ed25519"]) == blob
    assert probe.ssh_check("127.0.0.1", port, theirs) == (True, False)     # our own sshd
    with socket.socket() as quiet:                                          # not an sshd
        quiet.bind(("127.0.0.1", 0))
        quiet.listen()
        closed_port = quiet.getsockname()[1]
        with socket.create_connection(quiet.getsockname(), timeout=5) as sock:
            peer, _ = quiet.accept()
            peer.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            peer.close()
            with pytest.raises(OSError):                                    # closed: cannot tell
                sshkey.host_key(sock, ["ssh-ed25519"])
    assert probe.ssh_check("127.0.0.1", closed_port, theirs) == (False, False)       # refused


def test_packets_are_padded_to_a_multiple_of_eight():
    from cgnat_homelab import sshkey
    for size in range(1, 40):
        packet = sshkey._packet(b"x" * size)
        assert len(packet) % 8 == 0 and packet[4] >= 4


def test_the_offer_puts_ed25519_first_and_expands_rsa():
    assert probe._offer({"a": "ssh-rsa", "b": "ecdsa-sha2-nistp256", "c": "ssh-ed25519"}) == \
        ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256"]


SS_LISTENING = """\
LISTEN 0      128          0.0.0.0:80         0.0.0.0:*
LISTEN 0      128                *:443              *:*
LISTEN 0      128             [::]:22            [::]:*
LISTEN 0      128        127.0.0.1:22         0.0.0.0:*
LISTEN 0      128      192.168.1.5:2200       0.0.0.0:*
LISTEN 0      128         10.0.0.2:8080       0.0.0.0:*
LISTEN 0      128 [::ffff:10.0.0.2]:8081          *:*
LISTEN 0      128   0.0.0.0%eth0:25           0.0.0.0:*
"""


def test_ipv4_listeners_are_what_takes_the_bridges_connections(monkeypatch):
    """All addresses (IPv4, or an IPv6 socket that takes IPv4: ss's "*"), or the tunnel address;
    never IPv6 only ("[::]"), loopback, the LAN address or a device-bound socket (issue 19)."""
    monkeypatch.setattr(probe, "run", lambda argv: subprocess.CompletedProcess(argv, 0, SS_LISTENING, ""))
    assert probe.ipv4_listeners("10.0.0.2") == {80, 443, 8080, 8081}
    monkeypatch.setattr(probe, "run", lambda argv: subprocess.CompletedProcess(argv, 1, "", "no ss"))
    assert probe.ipv4_listeners("10.0.0.2") is None


@pytest.mark.root
def test_ss_tells_a_dual_stack_socket_from_an_ipv6_only_one():
    """The parse above relies on ss showing "*" for IPv6 sockets that take IPv4 too."""
    program = ("import socket, subprocess\n"
               "a = socket.socket(socket.AF_INET6); a.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n"
               "a.bind(('::', 8001)); a.listen()\n"
               "b = socket.socket(socket.AF_INET6); b.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)\n"
               "b.bind(('::', 8002)); b.listen()\n"
               "import sys; sys.path.insert(0, %r)\n"
               "from cgnat_homelab.probe import ipv4_listeners\n"
               "print(sorted(ipv4_listeners('10.0.0.2')))\n") % str(Path(__file__).resolve().parents[2])
    done = subprocess.run(["unshare", "--net", "sh", "-c", f"ip link set lo up; exec {sys.executable} -c \"$0\"", program],
                          capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "[8001]", done.stderr


def test_the_self_check_needs_its_own_listener_and_its_nonce():
    """probe.self_check on the loopback (the bridge's DNAT and the tunnel stand aside): our
    listener gets the connection with our nonce; a refusal is foreign (nothing of ours
    refused it); a port held by another listener waits for it, then gives up unreached."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    assert probe.self_check("127.0.0.1", port, "127.0.0.1") == (True, False)
    with socket.socket() as closed:                 # another address's port: refused, by the "bridge"
        closed.bind(("127.0.0.1", 0))
        other = closed.getsockname()[1]
    assert probe.self_check("127.0.0.1", other, "127.0.0.2") == (False, True)
    with socket.socket() as held:
        held.bind(("127.0.0.1", port))
        held.listen()
        assert probe.self_check("127.0.0.1", port, "127.0.0.1") == (False, False)
