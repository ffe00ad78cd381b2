"""The bridge watchdog's decisions (pure) and how it reads the rules file and wg."""
from __future__ import annotations

import subprocess
from pathlib import Path

from cgnat_bridge import watchdog as wd
from installer import rules_file
from installer import probes
from cgnat_bridge.answers import BridgeAnswers
from cgnat_bridge.decision import Config, Observation, State, decide

T0 = 1_700_000_000.0
CFG = Config(interface="wg0", silent_after=180, restart_command="RESTART", up_command="UP")


def test_healthy_does_nothing():
    steps, state, log = decide(CFG, Observation(T0, True, 30.0), State())
    assert steps == [] and log == [] and state.summary == "healthy"


def test_missing_interface_restarts_the_tunnel():
    steps, state, log = decide(CFG, Observation(T0, False, None), State())
    assert [(s.kind, s.command) for s in steps] == [("restart", "RESTART")]
    assert state.summary == "interface wg0 is missing" and state.last_step.startswith("restart at")
    assert log == ["restart: interface wg0 is missing"]


def test_missing_interface_waits_while_systemd_restarts_the_tunnel():
    """Someone else's restart (an admin's) takes wg0 away for a moment: no restart of ours on top."""
    steps, state, log = decide(CFG, Observation(T0, False, None, tunnel_job="restart running"), State())
    assert steps == [] and state.summary == "interface wg0 is missing"
    assert log == ["waiting: systemd is running a restart of wg-quick@wg0"]


def test_missing_rules_rerun_the_up_hook():
    obs = Observation(T0, True, 10.0, ("nat PREROUTING -> CGNAT-wg0-PRE",))
    steps, state, log = decide(CFG, obs, State())
    assert [(s.kind, s.command) for s in steps] == [("up-hook", "UP")]
    assert "nat PREROUTING -> CGNAT-wg0-PRE" in log[0]


def test_silent_homelab_is_reported_once_and_its_return_too():
    steps, s1, log1 = decide(CFG, Observation(T0, True, 181.0), State())
    assert steps == [] and len(log1) == 1 and log1[0].startswith("HOMELAB SILENT: last handshake 181 s ago")
    _, s2, log2 = decide(CFG, Observation(T0 + 10, True, 191.0), s1)
    assert log2 == [] and "homelab silent" in s2.summary
    _, s3, log3 = decide(CFG, Observation(T0 + 20, True, 1.0), s2)
    assert log3 == ["the homelab is back (handshake 1 s ago)"] and s3.summary == "healthy"


def test_never_handshaken_is_silent():
    _, state, log = decide(CFG, Observation(T0, True, None), State())
    assert "no handshake yet" in log[0] and not state.summary == "healthy"


def test_silence_alone_takes_no_step():
    steps, _, _ = decide(CFG, Observation(T0, True, 10_000.0), State())
    assert steps == []


def test_config_from_answers_defaults_and_overrides():
    a = BridgeAnswers()
    c = Config.from_answers(a)
    assert c.restart_command == "systemctl restart wg-quick@wg0"
    assert c.up_command == "/usr/lib/cgnat-bridge/hooks/up wg0"
    assert c.rules_path == "/etc/cgnat/wg0.rules" and c.silent_after == 180
    a.interface, a.bridge.watchdog_up_command, a.bridge.watchdog_silent_after = "wg1", "true", 0
    c = Config.from_answers(a, "/tmp/x")
    assert c.up_command == "true" and c.silent_after == 0 and c.rules_path == "/tmp/x/wg1.rules"
    assert c.restart_command == "systemctl restart wg-quick@wg1"


def test_missing_rules_reads_one_iptables_save(tmp_path, monkeypatch):
    rules = tmp_path / "wg0.rules"
    rules.write_text("*nat\n:CGNAT-wg0-PRE - [0:0]\nCOMMIT\n*mangle\n:CGNAT-wg0-FWD - [0:0]\nCOMMIT\n"
                     "*filter\n:CGNAT-wg0-IN - [0:0]\nCOMMIT\n")
    saved = ("*nat\n:CGNAT-wg0-PRE - [0:0]\n"
             '-A PREROUTING -m comment --comment "cgnat:wg0" -j CGNAT-wg0-PRE\n'
             "-A CGNAT-wg0-PRE -j RETURN\nCOMMIT\n*mangle\n:CGNAT-wg0-FWD - [0:0]\n"
             "-A CGNAT-wg0-FWD -j RETURN\nCOMMIT\n*filter\n"
             '-A INPUT -m comment --comment "cgnat:wg0" -j CGNAT-wg0-IN\nCOMMIT\n')
    calls = []

    def fake(argv, timeout=10):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, saved, "")

    monkeypatch.setattr(rules_file, "run", fake)
    assert wd.missing_rules("wg0", str(rules)) == ("mangle FORWARD -> CGNAT-wg0-FWD", "filter CGNAT-wg0-IN is empty")
    assert calls == [["iptables-save"]]           # one program for every table
    assert wd.missing_rules("wg1", str(rules)) == ("nat PREROUTING -> CGNAT-wg0-PRE",
                                                   "mangle FORWARD -> CGNAT-wg0-FWD",
                                                   "filter INPUT -> CGNAT-wg0-IN")
    monkeypatch.setattr(rules_file, "run", lambda argv, timeout=10: subprocess.CompletedProcess(argv, 1, "", "no"))
    assert len(wd.missing_rules("wg0", str(rules))) == 3        # cannot read the rules: all missing
    assert wd.missing_rules("wg0", str(tmp_path / "absent")) == ()
    # Where IPv6 is forwarded, its rules file's jumps are asked of ip6tables the same way.
    (tmp_path / "wg0.rules6").write_text(rules.read_text())
    monkeypatch.setattr(rules_file, "run", fake)
    calls.clear()
    assert wd.missing_rules("wg0", str(rules)) == (
        "mangle FORWARD -> CGNAT-wg0-FWD", "filter CGNAT-wg0-IN is empty",
        "IPv6 mangle FORWARD -> CGNAT-wg0-FWD", "IPv6 filter CGNAT-wg0-IN is empty")
    assert calls == [["iptables-save"], ["ip6tables-save"]]


def test_handshake_age(monkeypatch):
    monkeypatch.setattr(probes, "run", lambda argv, timeout=10: subprocess.CompletedProcess(argv, 0, "KEY=\t1699999900\n", ""))
    assert wd.handshake_age("wg0", T0) == 100
    monkeypatch.setattr(probes, "run", lambda argv, timeout=10: subprocess.CompletedProcess(argv, 0, "KEY=\t0\n", ""))
    assert wd.handshake_age("wg0", T0) is None


def test_tunnel_job_names_systemds_job_of_that_unit_only(monkeypatch):
    calls = []

    def list_jobs(out: str, rc: int = 0):
        def run(argv, timeout=10):
            calls.append(argv)
            return subprocess.CompletedProcess(argv, rc, out, "")
        monkeypatch.setattr(probes, "run", run)

    list_jobs("812 wg-quick@wg1.service start running\n813 wg-quick@wg0.service restart waiting\n")
    assert probes.tunnel_job("wg0") == "restart waiting"
    assert calls[-1][:2] == ["systemctl", "list-jobs"] and calls[-1][-1] == "wg-quick@wg0.service"
    list_jobs("812 wg-quick@wg1.service start running\n")
    assert probes.tunnel_job("wg0") == ""
    list_jobs("", rc=127)                    # no systemctl, or no systemd as PID 1
    assert probes.tunnel_job("wg0") == ""


def test_run_once_acts_after_saving(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.setattr(wd, "observe", lambda c: Observation(T0, False, None))
    cfg = Config(restart_command=f"echo restarted > {marker}")
    state = wd.run_tunnel(cfg, tmp_path / "state.json")
    assert marker.read_text() == "restarted\n"
    assert State.load(tmp_path / "state.json") == state


def test_main_refuses_the_other_roles_answers(tmp_path, capsys):
    homelab = tmp_path / "answers.toml"
    homelab.write_text('role = "homelab"\n[homelab]\nendpoint = "bridge.example.org:51820"\n')
    assert wd.main(["--answers", str(homelab), "--state", str(tmp_path / "s")]) == 2
    assert "it is for a homelab, not a bridge" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def _wg_reports(monkeypatch, stdout: str) -> None:
    def run(argv, timeout=10):
        assert argv == ["wg", "show", "wg0", "endpoints"]
        return subprocess.CompletedProcess(argv, 0, stdout, "")
    monkeypatch.setattr(probes, "run", run)


def test_the_homelab_endpoint_is_read_only_when_the_grammar_takes_it(monkeypatch):
    for stdout, expected in [("KEY=\t203.0.113.7:40000\n", "203.0.113.7:40000"),
                             ("KEY=\t[2001:db8::7]:40000\n", "[2001:db8::7]:40000"),
                             ("KEY=\t(none)\n", None), ("", None),
                             ("KEY=\t203.0.113.7:40000\nKEY2=\t203.0.113.8:1\n", None),    # two peers
                             ("KEY=\t203.0.113.7:40000\x1b[2J\n", None), ("KEY=\t[fe80::1%ens3]:1\n", None)]:
        _wg_reports(monkeypatch, stdout)
        assert wd.homelab_endpoint("wg0") == expected, stdout


def test_the_endpoint_is_recorded_0600_and_only_when_it_changed(tmp_path, monkeypatch):
    path = tmp_path / "wg0.endpoint"
    writes = []
    real = wd.write_atomic
    monkeypatch.setattr(wd, "write_atomic", lambda *a: writes.append(a[1]) or real(*a))
    wd.record_endpoint(path, "203.0.113.7:40000")
    assert path.read_text() == "203.0.113.7:40000\n" and path.stat().st_mode & 0o777 == 0o600
    wd.record_endpoint(path, "203.0.113.7:40000")
    wd.record_endpoint(path, None)              # "(none)" after a restart: the last one stays
    assert path.read_text() == "203.0.113.7:40000\n" and len(writes) == 1
    wd.record_endpoint(path, "203.0.113.7:40001")
    assert path.read_text() == "203.0.113.7:40001\n" and len(writes) == 2


def test_a_run_records_the_endpoint_beside_the_state(tmp_path, monkeypatch):
    monkeypatch.setattr(wd, "observe", lambda c: Observation(T0, True, 10.0, homelab_endpoint="[2001:db8::7]:40000"))
    wd.run_tunnel(Config(interface="wg7"), tmp_path / "watchdog.json")
    assert (tmp_path / "wg7.endpoint").read_text() == "[2001:db8::7]:40000\n"
    assert wd.endpoint_path(Path("/var/lib/cgnat/watchdog.json"), "wg0") == \
        Path("/var/lib/cgnat/wg0.endpoint")
