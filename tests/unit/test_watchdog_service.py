"""The watchdog as a long-running service: sd_notify, the loop, quiet healthy runs, steps that
keep systemd's watchdog fed."""
from __future__ import annotations

import os
import signal
import socket

import pytest

from cgnat_homelab import probe
from cgnat_homelab import watchdog as homelab
from cgnat_homelab.decision import Config, Observation, State
from installer import probes
from installer import watchdog_runtime as runtime

T0 = 1_700_000_000.0
BRIDGE = 'role = "bridge"\n[bridge]\npublic_interface = "ens3"\n'


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    """A datagram socket standing in for systemd's; $NOTIFY_SOCKET points at it."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield sock
    sock.close()


def received(sock) -> list[str]:
    messages = []
    sock.setblocking(False)
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


def test_notify_sends_one_datagram(notify_socket):
    assert runtime.notify("READY=1")
    assert notify_socket.recv(4096) == b"READY=1"


def test_notify_reaches_an_abstract_socket(monkeypatch):
    name = f"cgnat-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert runtime.notify("WATCHDOG=1")
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_notify_without_systemd_is_a_no_op(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not runtime.notify("READY=1")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert not runtime.notify("READY=1")


def run_tunnel(config: Config, path, state: State | None = None) -> State:
    """One run of the homelab watchdog over one tunnel."""
    return homelab.run_once([runtime.Tunnel(None, config, path)], None if state is None else {config.interface: state})[config.interface]


class Stop(Exception):
    pass


def test_the_loop_tells_systemd_it_is_ready_then_alive_after_each_run(tmp_path, notify_socket):
    answers = tmp_path / "answers.toml"
    answers.write_text(BRIDGE)
    runs = []

    textfiles = []

    def watch(tunnels):
        def run(states):
            runs.append(states)
            textfiles.append(tunnels[0].textfile)
            if len(runs) == 3:
                raise Stop
            return f"state {len(runs)}"
        return run

    with pytest.raises(Stop):
        runtime.main(["--answers", str(answers), "--state", str(tmp_path / "s"), "--every", "0"],
                    role="bridge", description="test", every=10, config_from_answers=lambda a: a,
                    metrics_setting=lambda a: str(tmp_path), watch=watch)
    assert runs == [None, "state 1", "state 2"]       # the state is carried from run to run
    assert textfiles[0].path == tmp_path / "cgnat.prom" and textfiles.count(textfiles[0]) == 3
    assert received(notify_socket) == ["READY=1", "WATCHDOG=1", "WATCHDOG=1"]


def test_stopping_the_service_withdraws_its_metrics(tmp_path, notify_socket):
    """SIGTERM (systemctl stop, the package's removal): the metrics file goes with the watchdog."""
    answers = tmp_path / "answers.toml"
    answers.write_text(BRIDGE)

    def watch(tunnels):
        def run(states):
            tunnels[0].textfile.publish([("cgnat_healthy", {}, True)], 0.0)
            assert tunnels[0].textfile.path.exists()
            os.kill(os.getpid(), signal.SIGTERM)
        return run

    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as stopped:
            runtime.main(["--answers", str(answers), "--state", str(tmp_path / "s"), "--every", "0"],
                        role="bridge", description="test", every=10, config_from_answers=lambda a: a,
                        metrics_setting=lambda a: str(tmp_path), watch=watch)
    finally:
        signal.signal(signal.SIGTERM, before)
    assert stopped.value.code == 0 and not (tmp_path / "cgnat.prom").exists()


def test_once_runs_once(tmp_path, notify_socket):
    answers = tmp_path / "answers.toml"
    answers.write_text(BRIDGE)
    runs = []
    code = runtime.main(["--answers", str(answers), "--once"], role="bridge", description="test",
                       every=10, config_from_answers=lambda a: a, metrics_setting=lambda a: "",
                       watch=lambda tunnels: lambda states: runs.append(tunnels) or {})
    assert code == 0 and [[(t.state_path, t.textfile) for t in ts] for ts in runs] == \
        [[(runtime.Path(runtime.STATE_PATH), None)]]     # "": no metrics


def test_a_long_step_keeps_systemds_watchdog_fed(notify_socket, monkeypatch, capsys):
    monkeypatch.setattr(runtime, "COMMAND_TIMEOUT", 30)
    waits = []
    real_wait = runtime.subprocess.Popen.wait

    def short_wait(self, timeout=None):          # 5 s polls made 0.05 s: the test stays quick
        waits.append(timeout)
        return real_wait(self, timeout=None if timeout is None else min(timeout, 0.05))

    monkeypatch.setattr(runtime.subprocess.Popen, "wait", short_wait)
    assert runtime.run_step_command("restart", "sleep 0.3; echo done") == 0
    assert "WATCHDOG=1" in received(notify_socket)
    err = capsys.readouterr().err
    assert "cgnat-watchdog:     done" in err and "restart command exited 0" in err


def test_a_hung_step_is_killed_at_the_command_timeout(monkeypatch, capsys):
    monkeypatch.setattr(runtime, "COMMAND_TIMEOUT", 0.3)
    assert runtime.run_step_command("action", "sleep 30") != 0
    assert "action command timed out after 0.3 s" in capsys.readouterr().err


def test_healthy_runs_write_nothing_to_the_journal_nor_to_disk(tmp_path, monkeypatch, capsys):
    config = Config(endpoint="bridge.example.org:51820", restart_command="RESTART")
    t = [0.0]

    def healthy(c, s):
        t[0] += 2
        return Observation(now=T0 + t[0], uptime=3600, interface_up=True, probe_ok=True,
                           e2e_ok=True if t[0] % 60 in (0, 2) else None), None

    monkeypatch.setattr(probe, "observe", healthy)
    path = tmp_path / "watchdog.json"
    state = run_tunnel(config, path)
    assert capsys.readouterr().err == "cgnat-watchdog: healthy\n" and path.exists()
    written = path.stat().st_mtime_ns, path.stat().st_ino
    for _ in range(1800):                       # an hour, a run every 2 s
        state = run_tunnel(config, path, state)
    assert capsys.readouterr().err == ""
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == written
    assert state.last_run_at == T0 + 3602 and state.healthy


def test_a_change_of_state_is_written_and_said_once(tmp_path, monkeypatch, capsys):
    config = Config(endpoint="203.0.113.7:51820", restart_command="true", restart_after=1000)
    t = [0.0]

    def broken(c, s):
        t[0] += 2
        return Observation(now=T0 + t[0], uptime=3600, interface_up=True, probe_ok=False,
                           bridge_ssh_ok=False, endpoint=None, resolved_endpoint=None), None

    monkeypatch.setattr(probe, "observe", broken)
    path = tmp_path / "watchdog.json"
    state = None
    for _ in range(30):
        state = run_tunnel(config, path, state)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["FAILING", "BRIDGE OUTAGE"]
    assert State.load(path).bridge_outage and State.load(path).failing_since == T0 + 2


def test_the_bridge_watchdog_is_as_quiet(tmp_path, monkeypatch, capsys):
    from cgnat_bridge import watchdog as bridge
    monkeypatch.setattr(bridge, "observe", lambda c: bridge.Observation(T0, True, 30.0))
    path = tmp_path / "watchdog.json"
    state = bridge.run_tunnel(bridge.Config(), path)
    written = path.stat().st_mtime_ns
    for _ in range(100):
        state = bridge.run_tunnel(bridge.Config(), path, state)
    assert capsys.readouterr().err == "" and path.stat().st_mtime_ns == written


def test_interface_exists_looks_in_this_network_namespace():
    assert probes.interface_exists("lo")
    assert not probes.interface_exists("cgnat-none0")


DAMAGED_STATES = ['{"failing_since": "yesterday", "reboots": [NaN, "x"], "restarts_since_failing": 1e999}',
                  '{"last_restart_at": [], "steps_taken": {"restart": "many"}, "probe_failures": -Infinity}',
                  '["not", "an", "object"]', '"a string"', '{"bridge_outage": 1, "reasons": "x"}']


@pytest.mark.parametrize("saved", DAMAGED_STATES)
def test_a_damaged_state_file_never_crashes_the_watchdog(saved, tmp_path, monkeypatch):
    """A hand's edit or a disk error: each value of the wrong type is left at its default, so the
    watchdog's arithmetic on the next failure never meets it (issue 18)."""
    config = Config(endpoint="bridge.example.org:51820", restart_command="RESTART", action_command="REBOOT")
    monkeypatch.setattr(probe, "observe", lambda c, s: (Observation(
        now=T0, uptime=3600, interface_up=True, probe_ok=False, bridge_ssh_ok=True), None))
    monkeypatch.setattr(homelab, "carry_out", lambda *a: None)
    path = tmp_path / "watchdog.json"
    path.write_text(saved)
    state = run_tunnel(config, path)
    assert state.failing_since == T0 and state.probe_failures == 1
    assert isinstance(state.reboots, list) and all(isinstance(t, float) for t in state.reboots)
