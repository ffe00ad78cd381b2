"""`cgnat-setup status`: checks from a fake probe, the report lines, hints and the exit code."""
from __future__ import annotations

import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from installer import cli, roles, status
from installer.status import Check

HOMELAB = ('role = "homelab"\npeer_public_key = "' + "K" * 42 + 'A="\n[homelab]\n'
           'endpoint = "bridge.example.org:51820"\n[homelab.watchdog]\ncheck_host = "bridge.example.org"\n')
BRIDGE = 'role = "bridge"\n[bridge]\npublic_interface = "ens3"\nssh_port = 2222\n'


# What `ip -j` shows on a homelab whose up hook ran (rules of both families, table 200).
HEALTHY_IP = {
    "-4 rule show": [{"priority": 1000, "src": "all", "fwmark": "0x1000000", "fwmask": "0x1000000", "table": "200"},
                     {"priority": 1001, "src": "10.0.0.2", "table": "200"}],
    "-6 rule show": [{"priority": 1000, "src": "all", "fwmark": "0x1000000", "fwmask": "0x1000000", "table": "200"},
                     {"priority": 1001, "src": "fd63:676e:6174::2", "table": "200"}],
    "-4 route show table 200 default dev wg0": [{"dst": "default", "dev": "wg0"}],
    "-6 route show table 200 default dev wg0": [{"dst": "default", "dev": "wg0"}],
    "-6 address show dev ens3": [{"addr_info": [{"local": "2001:db8::7"}, {"local": "fe80::1"}]}],
}
BRIDGE6 = BRIDGE + 'public_address6 = "2001:db8::7"\n'
DNAT6 = {"-A CGNAT-wg0-PRE -d 2001:db8::7/128 -i ens3 -p tcp -j DNAT --to-destination fd63:676e:6174::2"}


class FakeProbe:
    def __init__(self, **kw):
        self.up = kw.get("up", True)
        self.age = kw.get("age", 10.0)
        self.missing = kw.get("missing", ())
        self.ports = kw.get("ports", {})          # (host, port) -> bool, default True
        self.state = kw.get("state", {"failing_since": None, "restarts_since_failing": 0,
                                      "last_run_at": 1.0, "last_step": ""})
        self.active = kw.get("active", True)
        self.sshd = kw.get("sshd", True)
        self.backup = kw.get("backup", [])
        self.foreign = kw.get("foreign", False)
        self.ip = kw.get("ip", HEALTHY_IP)        # `ip -j ARGS` -> its parsed output
        self.v6_disabled = kw.get("v6_disabled")
        self.forwarding6 = kw.get("forwarding6", True)
        self.nat6 = kw.get("nat6", set())
        self.listening = kw.get("listening")      # TCP ports listening for the bridge; None: cannot tell
        self.conntrack = kw.get("conntrack")      # the bridge's conntrack.Table; None: not loaded
        self.states = kw.get("states", {})   # a further tunnel's state file -> its state
        self.asked = []

    def interface_up(self, iface): return self.up
    def handshake_age(self, iface): return self.age
    def missing_rules(self, iface): return self.missing
    def watchdog_state(self, path=status.STATE_PATH): return self.states.get(path, self.state)
    def watchdog_active(self): return self.active
    def has_sshd(self): return self.sshd
    def backup_paths(self): return self.backup
    def another_hosts_sshd(self, host, port): return self.foreign
    def ip_json(self, *args): return self.ip.get(" ".join(args), [])
    def ipv6_disabled(self, iface): return self.v6_disabled
    def ipv6_forwarding(self): return self.forwarding6
    def nat6_rules(self): return self.nat6
    def conntrack_table(self): return self.conntrack

    def port_answers(self, host, port, timeout=3):
        self.asked.append((host, port))
        return self.ports.get((host, port), True)

    def listeners(self, config): return self.listening

    def end_to_end(self, config, check):
        ok = self.port_answers(config.target_host, check.port)
        return ok, ok and self.foreign


def _run(tmp_path, answers, probe):
    (tmp_path / "etc/cgnat").mkdir(parents=True)
    (tmp_path / "etc/cgnat/answers.toml").write_text(answers)
    out = io.StringIO()
    code = status.main(tmp_path, probe=probe, out=out)
    return code, out.getvalue().splitlines()


def _line(lines, name):
    return next(line for line in lines if line.split()[1:2] == [name])


def test_healthy_homelab_exits_0_with_one_line_per_link(tmp_path):
    probe = FakeProbe()
    code, lines = _run(tmp_path, HOMELAB, probe)
    assert code == 0
    assert lines[0] == "cgnat homelab wg0:"
    assert [line.split()[1] for line in lines[1:]] == ["interface", "handshake", "rules", "routing", "end2end",
                                                       "watchdog", "backup"]
    assert all(line.startswith(("ok", "info")) for line in lines[1:])
    assert ("bridge.example.org", 51820) in probe.asked        # the self check
    assert "no second way in" in _line(lines, "backup")


def test_no_handshake_fails_with_the_firewall_hint(tmp_path):
    code, lines = _run(tmp_path, BRIDGE, FakeProbe(age=None))
    assert code == 1
    line = _line(lines, "handshake")
    assert line.startswith("FAIL") and "check that UDP 51820 is open in the provider's firewall" in line


def test_stale_handshake_fails(tmp_path):
    code, lines = _run(tmp_path, HOMELAB, FakeProbe(age=500.0))
    assert code == 1 and _line(lines, "handshake").startswith("FAIL  handshake   500 s ago")


def test_bridge_checks_its_sshd_port(tmp_path):
    probe = FakeProbe(ports={("127.0.0.1", 2222): False})
    code, lines = _run(tmp_path, BRIDGE, probe)
    assert code == 1
    assert "port 2222 does not answer" in _line(lines, "sshd")
    assert not any(line.split()[1] in ("end2end", "backup") for line in lines[1:])


def test_missing_rules_and_interface(tmp_path):
    code, lines = _run(tmp_path, BRIDGE, FakeProbe(missing=("nat PREROUTING -> CGNAT-wg0-PRE",)))
    assert code == 1 and "missing: nat PREROUTING -> CGNAT-wg0-PRE" in _line(lines, "rules")
    assert "hooks/up wg0" in _line(lines, "rules")
    code, lines = _run(tmp_path / "b", BRIDGE, FakeProbe(up=False))
    assert code == 1 and _line(lines, "interface").startswith("FAIL  interface   wg0 is missing")


def test_end_to_end_failure_has_a_hint(tmp_path):
    code, lines = _run(tmp_path, HOMELAB, FakeProbe(ports={("bridge.example.org", 51820): False}))
    assert code == 1
    line = _line(lines, "end2end")
    assert "ssh -p 2222 bridge.example.org" in line and "forwards tcp/51820 to this host" in line


def test_end_to_end_uses_a_port_the_bridge_forwards(tmp_path):
    """... when a service here holds the self check's port."""
    allowlist = HOMELAB + 'bridge_forward = ["udp/5353", "tcp/443", "tcp/80"]\n'
    probe = FakeProbe(ports={("bridge.example.org", 443): False}, listening=frozenset({443, 51820}))
    code, lines = _run(tmp_path, allowlist, probe)
    assert code == 1 and probe.asked == [("bridge.example.org", 443)]
    line = _line(lines, "end2end")
    assert "bridge.example.org:443 fails" in line and "a service listens on 443 here" in line
    # with tcp/22 listed and an sshd here, the check is ssh on 22
    probe = FakeProbe(listening=frozenset({22, 443, 51820}))
    code, lines = _run(tmp_path / "b", HOMELAB + 'bridge_forward = ["tcp/443", "tcp/22"]\n', probe)
    assert code == 0 and probe.asked == [("bridge.example.org", 22)]


def test_no_end_to_end_check_possible_says_what_to_add(tmp_path):
    code, lines = _run(tmp_path, HOMELAB + 'bridge_forward = ["udp/5353"]\n',
                       FakeProbe(sshd=False, listening=frozenset({51820})))
    line = _line(lines, "end2end")
    assert code == 0 and line.startswith("info  end2end     no end-to-end check possible: ")
    assert "a service here holds tcp/51820, the self check's port" in line
    assert "set homelab.watchdog.check_port" in line


def test_end_to_end_reaching_the_bridges_own_sshd_fails(tmp_path):
    code, lines = _run(tmp_path, HOMELAB, FakeProbe(foreign=True))
    assert code == 1
    line = _line(lines, "end2end")
    assert "bridge.example.org:51820 is answered by the bridge itself, not this host" in line
    assert "/usr/lib/cgnat-bridge/hooks/up wg0" in line


def test_watchdog_state_failing_and_not_running(tmp_path):
    state = {"failing_since": 5.0, "reasons": ["x broke"], "bridge_outage": True,
             "restarts_since_failing": 0, "last_run_at": 6.0, "last_step": "re-peer at t"}
    code, lines = _run(tmp_path, HOMELAB, FakeProbe(state=state))
    assert code == 1
    assert "bridge outage: x broke (last step: re-peer at t)" in _line(lines, "watchdog")
    code, lines = _run(tmp_path / "b", HOMELAB, FakeProbe(active=False))
    line = _line(lines, "watchdog")
    assert code == 1 and "service not active" in line and "systemctl enable --now cgnat-watchdog.service" in line
    code, lines = _run(tmp_path / "c", HOMELAB, FakeProbe(state=None, active=None))
    assert code == 1 and "has not run yet" in _line(lines, "watchdog")


def test_bridge_watchdog_state(tmp_path):
    state = {"problems": ["homelab silent (no handshake yet)"], "last_run_at": 1.0, "last_step": ""}
    code, lines = _run(tmp_path, BRIDGE, FakeProbe(state=state))
    assert code == 1 and "homelab silent" in _line(lines, "watchdog")


def test_backup_path_is_informational_only(tmp_path):
    code, lines = _run(tmp_path, HOMELAB, FakeProbe(backup=["cloudflared"]))
    assert code == 0 and _line(lines, "backup") == "info  backup      second way in: cloudflared"


def test_not_configured(tmp_path):
    out = io.StringIO()
    assert status.main(tmp_path, probe=FakeProbe(), out=out) == 1
    assert "not configured" in out.getvalue()


def test_cli_dispatches_status(tmp_path, capsys, monkeypatch):
    (tmp_path / "etc/cgnat").mkdir(parents=True)
    (tmp_path / "etc/cgnat/answers.toml").write_text(BRIDGE)
    monkeypatch.setattr(roles.get("bridge").status, "Probe", lambda root: FakeProbe())   # the role's looks
    assert cli.main(["status", "--root", str(tmp_path)]) == 0
    assert "ok    sshd" in capsys.readouterr().out


def test_check_line_format():
    assert Check("rules", True, "all present", "hint").line() == "ok    rules       all present"
    assert Check("rules", False, "gone", "do x").line() == "FAIL  rules       gone  -> do x"


def test_homelab_routing_checks_both_families(tmp_path):
    code, lines = _run(tmp_path, HOMELAB, FakeProbe())
    assert code == 0 and _line(lines, "routing") == "ok    routing     replies leave by wg0 (table 200): IPv4 and IPv6"
    ip = dict(HEALTHY_IP, **{"-6 rule show": HEALTHY_IP["-6 rule show"][:1]})
    code, lines = _run(tmp_path / "b", HOMELAB, FakeProbe(ip=ip))
    line = _line(lines, "routing")
    assert code == 1 and line.startswith("FAIL  routing     missing: IPv6 rule from fd63:676e:6174::2  -> ")
    assert "hooks/up wg0" in line
    ip = {k: v for k, v in HEALTHY_IP.items() if k != "-4 route show table 200 default dev wg0"}
    code, lines = _run(tmp_path / "c", HOMELAB, FakeProbe(ip=ip))
    assert code == 1 and "missing: IPv4 default route of table 200" in _line(lines, "routing")


def test_a_homelab_with_ipv6_disabled_checks_ipv4_only(tmp_path):
    ip = {k: v for k, v in HEALTHY_IP.items() if not k.startswith("-6")}
    code, lines = _run(tmp_path, HOMELAB, FakeProbe(ip=ip, v6_disabled="net.ipv6.conf.wg0.disable_ipv6 is 1"))
    assert code == 0
    assert _line(lines, "routing") == ("ok    routing     replies leave by wg0 (table 200): IPv4; IPv4 only: "
                                       "IPv6 is disabled (net.ipv6.conf.wg0.disable_ipv6 is 1)")


def test_bridge_checks_its_ipv6_dnat_where_it_forwards_ipv6(tmp_path):
    code, lines = _run(tmp_path, BRIDGE6, FakeProbe(nat6=DNAT6))
    assert code == 0
    assert _line(lines, "ipv6") == "ok    ipv6        2001:db8::7 -> fd63:676e:6174::2 (DNAT, AAAA 2001:db8::7)"
    code, lines = _run(tmp_path / "b", BRIDGE6, FakeProbe())
    assert code == 1 and "2001:db8::7 -> fd63:676e:6174::2: no DNAT rule  -> " in _line(lines, "ipv6")
    code, lines = _run(tmp_path / "c", BRIDGE6, FakeProbe(nat6=DNAT6, forwarding6=False))
    assert code == 1 and "IPv6 forwarding is off" in _line(lines, "ipv6")
    code, lines = _run(tmp_path / "d", BRIDGE6, FakeProbe(nat6=DNAT6, ip={}))
    assert code == 1 and "2001:db8::7 is no longer on ens3" in _line(lines, "ipv6")


def test_bridge_without_ipv6_says_why_and_does_not_fail(tmp_path):
    code, lines = _run(tmp_path, BRIDGE, FakeProbe())
    assert code == 0 and _line(lines, "ipv6") == ("info  ipv6        not forwarded (no global IPv6 address on ens3 "
                                                  "at setup); no AAAA record")
    code, lines = _run(tmp_path / "b", BRIDGE6 + 'ipv6 = "off"\n', FakeProbe())
    assert code == 0 and _line(lines, "ipv6") == 'info  ipv6        not forwarded (ipv6 = "off" at setup); no AAAA record'


def _json(tmp_path, answers, probe):
    (tmp_path / "etc/cgnat").mkdir(parents=True)
    (tmp_path / "etc/cgnat/answers.toml").write_text(answers)
    out = io.StringIO()
    code = status.main(tmp_path, probe=probe, out=out, as_json=True)
    return code, json.loads(out.getvalue())


def _assert_shape(report: dict) -> None:
    """The documented shape (README, "Watching it"): keys and types, every key always there."""
    assert set(report) == {"version", "role", "interface", "healthy", "checks", "watchdog", "tunnels"}
    assert report["version"] == 1 and isinstance(report["healthy"], bool)
    for check in report["checks"]:
        assert set(check) == {"name", "ok", "detail", "hint"}
        assert isinstance(check["name"], str) and check["ok"] in (True, False, None)
        assert isinstance(check["detail"], str) and isinstance(check["hint"], str)
    if report["watchdog"] is not None:
        w = report["watchdog"]
        assert set(w) == {"active", "healthy", "summary", "last_step", "last_run_at",
                          "health_changed_at", "steps_taken"}
        assert w["active"] in (True, False, None) and w["healthy"] in (True, False, None)
        assert isinstance(w["summary"], str) and isinstance(w["last_step"], str)
        assert all(v is None or isinstance(v, float) for v in (w["last_run_at"], w["health_changed_at"]))
        assert all(isinstance(n, int) for n in w["steps_taken"].values())


@pytest.mark.parametrize("answers,role,names,kinds", [
    (HOMELAB, "homelab", ["interface", "handshake", "rules", "routing", "end2end", "watchdog", "backup"],
     ["re-peer", "restart", "action"]),
    (BRIDGE, "bridge", ["interface", "handshake", "rules", "ipv6", "sshd", "watchdog"], ["restart", "up-hook"])])
def test_json_has_the_documented_shape_on_both_roles(tmp_path, answers, role, names, kinds):
    state = {"failing_since": None, "last_run_at": 7.0, "last_step": "restart at t",
             "steps_taken": {"restart": 2}, "health_changed_at": 5.0}
    code, report = _json(tmp_path, answers, FakeProbe(state=state))
    _assert_shape(report)
    assert code == 0 and report["healthy"] is True
    assert (report["role"], report["interface"]) == (role, "wg0")
    assert [c["name"] for c in report["checks"]] == names
    assert report["watchdog"] == {"active": True, "healthy": True, "summary": "healthy",
                                  "last_step": "restart at t", "last_run_at": 7.0, "health_changed_at": 5.0,
                                  "steps_taken": {k: 2 if k == "restart" else 0 for k in kinds}}


def test_json_failing_has_the_exit_code_and_hints_of_plain_status(tmp_path):
    probe = FakeProbe(age=None, state=None)
    code, report = _json(tmp_path, BRIDGE, probe)
    plain, lines = _run(tmp_path / "plain", BRIDGE, FakeProbe(age=None, state=None))
    _assert_shape(report)
    assert code == plain == 1 and report["healthy"] is False
    handshake = next(c for c in report["checks"] if c["name"] == "handshake")
    assert handshake["ok"] is False and handshake["hint"] in _line(lines, "handshake")
    assert all(c["hint"] == "" for c in report["checks"] if c["ok"] is not False)
    assert report["watchdog"]["healthy"] is None and report["watchdog"]["summary"] == "has not run yet"


def test_json_not_configured_keeps_the_shape(tmp_path):
    out = io.StringIO()
    assert status.main(tmp_path, probe=FakeProbe(), out=out, as_json=True) == 1
    report = json.loads(out.getvalue())
    _assert_shape(report)
    assert report["role"] is None and report["watchdog"] is None and report["healthy"] is False
    assert report["checks"][0]["name"] == "answers" and "not configured" in report["checks"][0]["detail"]


def test_json_holds_no_secret(tmp_path):
    key_file = tmp_path / "wg.key"
    secret = "S" * 42 + "A="
    key_file.write_text(secret + "\n")
    key_file.chmod(0o600)
    answers = HOMELAB.replace('role = "homelab"\n', f'role = "homelab"\nprivate_key_file = "{key_file}"\n')
    code, report = _json(tmp_path, answers, FakeProbe())
    assert secret not in json.dumps(report) and str(key_file) not in json.dumps(report)


def test_cli_passes_json(tmp_path, capsys, monkeypatch):
    (tmp_path / "etc/cgnat").mkdir(parents=True)
    (tmp_path / "etc/cgnat/answers.toml").write_text(BRIDGE)
    monkeypatch.setattr(roles.get("bridge").status, "Probe", lambda root: FakeProbe())   # the role's looks
    assert cli.main(["status", "--json", "--root", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["role"] == "bridge"


# ------------------------------------------------------------ --json for every input

class FileStateProbe(FakeProbe):
    """The fake's looks, but the watchdog's state read from the file as the real probe does."""

    def __init__(self, root, **kw):
        super().__init__(**kw)
        self.root = root

    watchdog_state = status.Probe.watchdog_state


def _json_of(tmp_path, answers: bytes, state: str | None):
    (tmp_path / "etc/cgnat").mkdir(parents=True, exist_ok=True)
    (tmp_path / "etc/cgnat/answers.toml").write_bytes(answers)
    (tmp_path / "var/lib/cgnat").mkdir(parents=True, exist_ok=True)
    if state is not None:
        (tmp_path / "var/lib/cgnat/watchdog.json").write_text(state)
    out = io.StringIO()
    code = status.main(tmp_path, probe=FileStateProbe(tmp_path), out=out, as_json=True)
    return code, json.loads(out.getvalue())      # strict: no NaN, no Infinity either


@pytest.mark.parametrize("answers,detail", [
    (b'role = "homelab"\nrole = "bridge"\n', "answers.toml: (syntax): "),
    (b'interface = "wg0"\n', "answers.toml: role: "),
    (b'role = "bridge"\ninterface = "w\xe9"\n', "answers.toml: (syntax): not UTF-8 text"),
])
def test_json_of_broken_answers_is_the_one_failing_answers_check(tmp_path, answers, detail):
    code, report = _json_of(tmp_path, answers, None)
    _assert_shape(report)
    assert code == 2 and report["role"] is None and report["watchdog"] is None and report["healthy"] is False
    [check] = report["checks"]
    assert check["name"] == "answers" and check["ok"] is False and detail in check["detail"]
    assert check["hint"].endswith("answers.toml --check")


@pytest.mark.parametrize("state,summary", [
    ("[1, 2]", "unreadable state /var/lib/cgnat/watchdog.json (a JSON list, not an object)"),
    ('"healthy"', "unreadable state /var/lib/cgnat/watchdog.json (a JSON str, not an object)"),
    ('{"last_run_at": "yesterday", "failing_since": [], "reasons": 3, "steps_taken": {"restart": "x"}}',
     "never ran"),
    ('{"last_run_at": NaN, "health_changed_at": Infinity, "steps_taken": {"restart": -Infinity}}', "never ran"),
    ('{"last_run_at": 1e400, "failing_since": "5", "reasons": ["a", 1], "steps_taken": {"restart": 1e400}}', "never ran"),
    ('{"last_run_at": 7, "failing_since": 5, "reasons": ["dns"], "steps_taken": {"restart": 3, "other": 1}}',
     "failing: dns"),
])
def test_json_of_a_state_file_of_the_wrong_shape_is_valid(tmp_path, state, summary):
    code, report = _json_of(tmp_path, HOMELAB.encode(), state)
    _assert_shape(report)
    assert report["watchdog"]["summary"] == summary
    assert code == (0 if summary == "never ran" else 1)       # values of the wrong type: left out
    assert report["watchdog"]["steps_taken"] == {"re-peer": 0, "restart": 3 if summary == "failing: dns" else 0,
                                                 "action": 0}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["last_run_at", "failing_since", "health_changed_at", "steps_taken", "reasons",
                         "last_step", "bridge_outage", "reboots", "restart", "re-peer", "x"]) | st.text(max_size=4),
        inner, max_size=6),
    max_leaves=12)


@given(answers=st.one_of(st.binary(max_size=80), st.sampled_from([HOMELAB.encode(), BRIDGE.encode()])),
       state=st.one_of(st.none(), json_values.map(json.dumps), st.text(max_size=20)))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_json_is_valid_and_keeps_its_shape_for_every_answers_and_state_file(tmp_path, answers, state):
    code, report = _json_of(tmp_path, answers, state)
    _assert_shape(report)
    assert code in (0, 1, 2) and report["healthy"] is (code == 0)


def test_json_leaves_out_counts_under_keys_of_the_wrong_type(tmp_path):
    state = {"last_run_at": 7.0, "steps_taken": {("restart",): 1, "restart": 2}}
    code, report = _json(tmp_path, BRIDGE, FakeProbe(state=state))
    _assert_shape(report)
    assert report["watchdog"]["steps_taken"] == {"restart": 0, "up-hook": 0}
    assert report["watchdog"]["last_run_at"] == 7.0


# ------------------------------------------------------------ several tunnels (issue 21)

WG1 = ('role = "homelab"\ninterface = "wg1"\ntunnel = "10.0.1.0/24"\npeer_public_key = "' + "L" * 42 + 'A="\n'
       '[homelab]\nendpoint = "bridge-b.example.org:51820"\ntable = 201\nfwmark = "0x2000000"\nrule_pref = 1010\n')
WG1_IP = {"-4 rule show": HEALTHY_IP["-4 rule show"] + [
              {"priority": 1010, "src": "all", "fwmark": "0x2000000", "fwmask": "0x2000000", "table": "201"},
              {"priority": 1011, "src": "10.0.1.2", "table": "201"}],
          "-4 route show table 200 default dev wg0": [{"dst": "default", "dev": "wg0"}],
          "-4 route show table 201 default dev wg1": [{"dst": "default", "dev": "wg1"}]}
FAILING = {"failing_since": 5.0, "last_run_at": 9.0, "reasons": ["the bridge 10.0.1.1 does not answer"],
           "last_step": "re-peer at t", "steps_taken": {"re-peer": 2}}


def _two(tmp_path, wg1_state, as_json=False):
    """A homelab with two tunnels under a --root tree: wg0 (answers.toml), wg1 (tunnels/wg1.toml)."""
    (tmp_path / "etc/cgnat/tunnels").mkdir(parents=True)
    (tmp_path / "etc/cgnat/answers.toml").write_text(HOMELAB)
    (tmp_path / "etc/cgnat/tunnels/wg1.toml").write_text(WG1)
    probe = FakeProbe(ip=WG1_IP, v6_disabled="test", states={"/var/lib/cgnat/watchdog-wg1.json": wg1_state})
    out = io.StringIO()
    code = status.main(tmp_path, probe=probe, out=out, as_json=as_json)
    return code, out.getvalue()


def test_status_has_a_block_per_tunnel_and_fails_when_one_does(tmp_path):
    code, text = _two(tmp_path, FAILING)
    lines = text.splitlines()
    headers = [line for line in lines if line.startswith("cgnat ")]
    assert headers == ["cgnat homelab wg0 (endpoint bridge.example.org:51820):",
                       "cgnat homelab wg1 (endpoint bridge-b.example.org:51820):"]
    wg0, wg1 = lines[1:lines.index(headers[1])], lines[lines.index(headers[1]) + 1:]
    assert [line.split()[1] for line in wg0] == ["interface", "handshake", "rules", "routing", "end2end", "watchdog"]
    assert all(line.startswith(("ok", "info")) for line in wg0)
    assert "replies leave by wg1 (table 201)" in _line(wg1, "routing")
    assert _line(wg1, "watchdog").startswith("FAIL  watchdog    failing: the bridge 10.0.1.1 does not answer")
    assert wg1[-1].split()[1] == "backup"              # the host's lines once, after every tunnel
    assert code == 1
    assert _two(tmp_path / "well", {"last_run_at": 9.0})[0] == 0


def test_json_lists_every_tunnel_and_keeps_the_first_ones_keys(tmp_path):
    code, text = _two(tmp_path, FAILING, as_json=True)
    report = json.loads(text)
    _assert_shape(report)
    assert code == 1 and report["healthy"] is False       # the host's: wg1 fails
    assert report["interface"] == "wg0" and report["watchdog"]["healthy"] is True
    assert all(c["ok"] is not False for c in report["checks"])
    assert [(t["interface"], t["endpoint"], t["healthy"]) for t in report["tunnels"]] == [
        ("wg0", "bridge.example.org:51820", True), ("wg1", "bridge-b.example.org:51820", False)]
    wg1 = report["tunnels"][1]
    assert wg1["watchdog"]["steps_taken"] == {"re-peer": 2, "restart": 0, "action": 0}
    assert wg1["checks"][-1]["name"] == "watchdog"        # the host's informational lines: top-level only


def test_a_further_tunnels_broken_answers_name_their_file(tmp_path, capsys):
    (tmp_path / "etc/cgnat/tunnels").mkdir(parents=True)
    (tmp_path / "etc/cgnat/answers.toml").write_text(HOMELAB)
    (tmp_path / "etc/cgnat/tunnels/wg1.toml").write_text(WG1.replace("table = 201", "table = -1"))
    assert status.main(tmp_path, probe=FakeProbe(), out=io.StringIO()) == status.EXIT_INVALID
    assert capsys.readouterr().err.startswith(f"{tmp_path}/etc/cgnat/tunnels/wg1.toml: homelab.table: ")
