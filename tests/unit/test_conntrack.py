"""The bridge's conntrack table: read from /proc, exported by its watchdog, warned about by status."""
from __future__ import annotations

import io
import json

from cgnat_bridge import conntrack
from cgnat_bridge import watchdog as bridge
from installer import metrics, status
from test_metrics import parse, value
from test_status import BRIDGE, FakeProbe, _line, _run

T0 = 1_700_000_000.0


def proc(tmp_path, count: str, max_: str):
    (tmp_path / "nf_conntrack_count").write_text(count)
    (tmp_path / "nf_conntrack_max").write_text(max_)
    return tmp_path


def test_read_takes_both_numbers(tmp_path):
    table = conntrack.read(proc(tmp_path, "210000\n", "262144\n"))
    assert table == conntrack.Table(210000, 262144)
    assert round(table.fill, 3) == 0.801 and table.crowded


def test_read_without_the_module_or_with_garbage_is_none(tmp_path):
    assert conntrack.read(tmp_path) is None                       # nf_conntrack not loaded
    assert conntrack.read(proc(tmp_path, "many\n", "262144\n")) is None


def test_exactly_80_percent_is_not_crowded_and_a_zero_max_is_empty():
    assert not conntrack.Table(80, 100).crowded and conntrack.Table(81, 100).crowded
    assert conntrack.Table(5, 0).fill == 0.0


def test_the_watchdog_exports_count_and_max():
    state = bridge.State(last_run_at=T0, health_changed_at=T0)
    obs = bridge.Observation(T0, True, 30.0, conntrack=conntrack.Table(1234, 262144))
    samples = parse(metrics.render("wg0", bridge.samples(obs, state)))
    assert value(samples, "cgnat_nf_conntrack_count") == 1234
    assert value(samples, "cgnat_nf_conntrack_max") == 262144


def test_no_conntrack_metrics_without_the_module():
    obs = bridge.Observation(T0, True, 30.0)
    names = {name for name, _ in parse(metrics.render("wg0", bridge.samples(obs, bridge.State(last_run_at=T0))))}
    assert "cgnat_healthy" in names and not any("conntrack" in name for name in names)


def test_the_watchdog_takes_no_step_for_a_full_table():
    obs = bridge.Observation(T0, True, 10.0, conntrack=conntrack.Table(262144, 262144))
    steps, state, log = bridge.decide(bridge.Config(), obs, bridge.State())
    assert steps == [] and log == [] and state.healthy


def test_status_informs_below_80_percent(tmp_path):
    code, lines = _run(tmp_path, BRIDGE, FakeProbe(conntrack=conntrack.Table(1000, 262144)))
    assert code == 0
    assert _line(lines, "conntrack") == "info  conntrack   1000 of 262144 entries (0%)"


def test_status_warns_above_80_percent_and_still_exits_0(tmp_path):
    code, lines = _run(tmp_path, BRIDGE, FakeProbe(conntrack=conntrack.Table(250000, 262144)))
    line = _line(lines, "conntrack")
    assert code == 0
    assert line.startswith("warn  conntrack   250000 of 262144 entries (95%): above 80%, ")
    assert "-> raise net.netfilter.nf_conntrack_max (a line in /etc/sysctl.d/90-cgnat-conntrack.conf" in line


def test_status_warning_beside_a_failure_keeps_exit_1(tmp_path):
    probe = FakeProbe(age=None, conntrack=conntrack.Table(250000, 262144))
    code, lines = _run(tmp_path, BRIDGE, probe)
    assert code == 1 and _line(lines, "conntrack").startswith("warn")


def test_status_json_keeps_the_warning_informational(tmp_path):
    (tmp_path / "etc/cgnat").mkdir(parents=True)
    (tmp_path / "etc/cgnat/answers.toml").write_text(BRIDGE)
    out = io.StringIO()
    code = status.main(tmp_path, probe=FakeProbe(conntrack=conntrack.Table(250000, 262144)), out=out, as_json=True)
    report = json.loads(out.getvalue())
    check = next(c for c in report["checks"] if c["name"] == "conntrack")
    assert code == 0 and report["healthy"] is True
    assert check["ok"] is None and check["detail"].startswith("250000 of 262144 entries (95%)")
