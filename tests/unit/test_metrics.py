"""The watchdogs' Prometheus textfile: the exposition format, the atomic write, the directory
rule, what each role exports after a run, the answers key, and the README's alerting rules."""
from __future__ import annotations

import os
import re

import pytest
import yaml
from unitdata import REPO

from cgnat_bridge import watchdog as bridge
from cgnat_homelab import probe
from cgnat_homelab import watchdog as homelab
from cgnat_homelab.decision import Config, Observation, State
from installer import atomic, metrics
from installer.answers import parse_toml
from installer.errors import InvalidAnswers
from installer.validate import load_answers

T0 = 1_700_000_000.0
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
SAMPLE = re.compile(r'(?P<name>[^{ ]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')
PROC_NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
   wg0: 5000123    4000    0    0    0     0          0         0   700456    3000    0    0    0     0       0          0
"""


def parse(text: str) -> dict[tuple[str, tuple], float]:
    """A tiny reader of the text exposition format that insists on what node_exporter needs:
    HELP then TYPE before a metric's samples, valid names and labels, float values."""
    helped, typed, samples = set(), {}, {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert NAME.fullmatch(name) and help_text and name not in helped, line
            helped.add(name)
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert name in helped and name not in typed and kind in ("gauge", "counter"), line
            typed[name] = kind
        else:
            match = SAMPLE.fullmatch(line)
            assert match, line
            name = match["name"]
            assert NAME.fullmatch(name) and name in typed, line
            assert not typed[name] == "counter" or name.endswith("_total"), line
            labels = tuple(LABEL.findall(match["labels"] or ""))
            assert ",".join(f'{k}="{v}"' for k, v in labels) == (match["labels"] or ""), line
            assert (name, labels) not in samples, line
            samples[(name, labels)] = float(match["value"])
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples[(name, tuple({"interface": "wg0", **labels}.items()))]


def homelab_state(**kw) -> State:
    return State(last_run_at=T0, last_e2e_ok=True, last_e2e_seconds=0.0123, health_changed_at=T0 - 60,
                 steps_taken={"re-peer": 3, "restart": 1}, **kw)


def test_homelab_metrics_parse_and_say_what_the_state_says():
    obs = Observation(now=T0, uptime=None, interface_up=True, probe_ok=True)
    text = metrics.render("wg0", homelab.samples(obs, homelab_state()))
    samples = parse(text)
    assert value(samples, "cgnat_healthy") == 1 and value(samples, "cgnat_interface_up") == 1
    assert value(samples, "cgnat_end_to_end_ok") == 1
    assert value(samples, "cgnat_end_to_end_latency_seconds") == 0.0123
    assert [value(samples, "cgnat_watchdog_steps_total", kind=k) for k in homelab.STEP_KINDS] == [3, 1, 0]
    assert value(samples, "cgnat_state_change_timestamp_seconds") == T0 - 60
    assert value(samples, "cgnat_bridge_outage") == 0
    # a healthy homelab run does not ask wg: no handshake age rather than a stale one
    assert not any(name == "cgnat_handshake_age_seconds" for name, _ in samples)
    failing = homelab_state(failing_since=T0 - 5, bridge_outage=True)
    obs = Observation(now=T0, uptime=1.0, interface_up=True, probe_ok=False, handshake_age=151.25)
    samples = parse(metrics.render("wg0", homelab.samples(obs, failing, "bridge-b.example.org:51820")))
    assert value(samples, "cgnat_healthy") == 0 and value(samples, "cgnat_bridge_outage") == 1
    assert value(samples, "cgnat_handshake_age_seconds") == 151.2
    assert value(samples, "cgnat_bridge_info", endpoint="bridge-b.example.org:51820") == 1


def test_bridge_metrics_parse_and_say_what_the_state_says():
    state = bridge.State(last_run_at=T0, problems=["rules missing: x"], steps_taken={"up-hook": 2},
                         health_changed_at=T0)
    obs = bridge.Observation(T0, True, 30.0, ("nat PREROUTING -> CGNAT-wg0-PRE",))
    samples = parse(metrics.render("wg0", bridge.samples(obs, state)))
    assert value(samples, "cgnat_healthy") == 0 and value(samples, "cgnat_rules_ok") == 0
    assert value(samples, "cgnat_handshake_age_seconds") == 30
    assert value(samples, "cgnat_homelab_last_seen_timestamp_seconds") == T0 - 30
    assert [value(samples, "cgnat_watchdog_steps_total", kind=k) for k in bridge.STEP_KINDS] == [0, 2]
    assert not any(name.startswith("cgnat_end_to_end") for name, _ in samples)


def test_render_escapes_labels_and_refuses_unknown_names():
    text = metrics.render('w"0', [("cgnat_healthy", {}, True)])
    assert parse(text) == {("cgnat_healthy", (("interface", 'w\\"0'),)): 1.0}
    with pytest.raises(ValueError):
        metrics.render("wg0", [("cgnat_made_up", {}, 1)])


def test_transfer_bytes_from_proc_net_dev(tmp_path):
    dev = tmp_path / "dev"
    dev.write_text(PROC_NET_DEV)
    assert metrics.transfer_bytes("wg0", dev) == (5000123, 700456)
    assert metrics.transfer_bytes("wg1", dev) is None
    assert metrics.transfer_bytes("wg0", tmp_path / "none") is None


def test_the_directory_rule():
    there, absent = (lambda d: True), (lambda d: False)
    assert metrics.directory(None, there) == metrics.Path("/var/lib/prometheus/node-exporter")
    assert metrics.directory(None, absent) is None           # node_exporter not installed: none
    assert metrics.directory("", there) is None               # turned off
    assert metrics.directory("/srv/metrics", absent) == metrics.Path("/srv/metrics")


def test_the_write_is_atomic_and_world_readable(tmp_path, monkeypatch):
    target = tmp_path / "cgnat.prom"
    target.write_text("old complete\n")
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        # At the rename: the target still holds the old file whole, the temp file the new one,
        # and the temp file is not a *.prom that node_exporter would read.
        seen.append((target.read_text(), open(src).read(), os.path.basename(src),
                     os.stat(src).st_mode & 0o777))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    old_umask = os.umask(0o077)            # the unit's UMask=0077
    try:
        atomic.write_atomic(target, "new complete\n", 0o644, durable=False)   # as metrics writes
    finally:
        os.umask(old_umask)
    (before, temp_text, temp_name, mode), = seen
    assert before == "old complete\n" and temp_text == "new complete\n"
    assert os.path.dirname(temp_name) == "" and not temp_name.endswith(".prom")
    assert mode == 0o644 and target.stat().st_mode & 0o777 == 0o644
    assert target.read_text() == "new complete\n" and os.listdir(tmp_path) == ["cgnat.prom"]


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "cgnat.prom"
    target.write_text("old\n")
    monkeypatch.setattr(atomic.os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        atomic.write_atomic(target, "new\n", 0o644, durable=False)
    assert os.listdir(tmp_path) == ["cgnat.prom"] and target.read_text() == "old\n"


def test_textfile_writes_on_change_or_refresh_and_reports_a_failure_once(tmp_path, monkeypatch):
    dev = tmp_path / "dev"
    dev.write_text(PROC_NET_DEV)
    said = []
    textfile = metrics.Textfile(tmp_path, "wg0", said.append, proc_net_dev=dev)
    healthy = [("cgnat_healthy", {}, True)]
    assert textfile.publish(healthy, T0)
    samples = parse((tmp_path / "cgnat.prom").read_text())
    assert value(samples, "cgnat_transfer_bytes_total", direction="rx") == 5000123
    assert value(samples, "cgnat_transfer_bytes_total", direction="tx") == 700456
    assert not textfile.publish(healthy, T0 + 2)                     # nothing changed
    assert textfile.publish([("cgnat_healthy", {}, False)], T0 + 4)  # a value changed
    assert textfile.publish([("cgnat_healthy", {}, False)], T0 + 4 + metrics.REFRESH)  # the counters
    missing = metrics.Textfile(tmp_path / "missing", "wg0", said.append, proc_net_dev=dev)
    assert not missing.publish(healthy, T0) and not missing.publish(healthy, T0 + 60)
    assert said == [f"cannot write the metrics {tmp_path}/missing/cgnat.prom: No such file or directory"]
    (tmp_path / "sealed").mkdir()
    sealed = metrics.Textfile(tmp_path / "sealed", "wg0", said.append, proc_net_dev=dev)
    monkeypatch.setattr(atomic.tempfile, "mkstemp", lambda **kw: (_ for _ in ()).throw(
        OSError(metrics.errno.EROFS, "Read-only file system")))
    assert not sealed.publish(healthy, T0) and not sealed.publish(healthy, T0 + 60)
    assert len(said) == 2 and "and the answers' metrics_dir: run cgnat-setup again" in said[1]


def test_a_step_is_counted_in_the_state_and_the_file(tmp_path, monkeypatch):
    """A run with a step: the counter rises, is saved with the state (it survives a restart of
    the watchdog) and is in the file; a healthy run keeps it."""
    config = Config(endpoint="203.0.113.7:51820", restart_command="true")
    broken = Observation(now=T0, uptime=3600, interface_up=False, probe_ok=False,
                         resolved_endpoint="203.0.113.7:51820")
    monkeypatch.setattr(probe, "observe", lambda c, s: (broken, None))
    path, textfile = tmp_path / "watchdog.json", metrics.Textfile(tmp_path, "wg0", print)
    tunnel = homelab.Tunnel(None, config, path, textfile)
    state = homelab.run_once([tunnel])["wg0"]
    assert state.steps_taken == {"restart": 1} and State.load(path).steps_taken == {"restart": 1}
    assert State.load(path).health_changed_at == T0
    samples = parse((tmp_path / "cgnat.prom").read_text())
    assert value(samples, "cgnat_watchdog_steps_total", kind="restart") == 1
    assert value(samples, "cgnat_healthy") == 0 and value(samples, "cgnat_interface_up") == 0
    well = Observation(now=T0 + 2, uptime=3600, interface_up=True, probe_ok=True)
    monkeypatch.setattr(probe, "observe", lambda c, s: (well, None))
    state = homelab.run_once([tunnel], {"wg0": State.load(path)})["wg0"]
    samples = parse((tmp_path / "cgnat.prom").read_text())
    assert value(samples, "cgnat_watchdog_steps_total", kind="restart") == 1
    assert value(samples, "cgnat_state_change_timestamp_seconds") == T0 + 2 == state.health_changed_at


def test_a_bridge_step_is_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(bridge, "observe", lambda c: bridge.Observation(T0, True, 10.0, ("nat x",)))
    textfile = metrics.Textfile(tmp_path, "wg0", print)
    state = bridge.run_tunnel(bridge.Config(up_command="true"), tmp_path / "s.json", None, textfile)
    assert state.steps_taken == {"up-hook": 1}
    samples = parse((tmp_path / "cgnat.prom").read_text())
    assert value(samples, "cgnat_watchdog_steps_total", kind="up-hook") == 1


def test_account_does_not_touch_the_state_before():
    before = State(steps_taken={"re-peer": 1}, health_changed_at=T0)
    after = State(steps_taken=before.steps_taken, health_changed_at=T0)
    after.account(before, [homelab.Step("re-peer", "why")], T0 + 1)
    assert before.steps_taken == {"re-peer": 1} and after.steps_taken == {"re-peer": 2}
    assert after.health_changed_at == T0                      # both healthy: no change


@pytest.mark.parametrize("role,section", [("bridge", "[bridge]\nwatchdog_metrics_dir"),
                                          ("homelab", '[homelab]\nendpoint = "203.0.113.7:51820"\n'
                                                      "[homelab.watchdog]\nmetrics_dir")],
                         ids=["bridge", "homelab"])
def test_the_metrics_dir_key(role, section):
    def load(text):
        return load_answers(parse_toml(f'role = "{role}"\n{section} = "{text}"\n'), None, None)

    for good in ("/var/lib/prometheus/node-exporter", "/srv/metrics/", ""):
        load(good)
    for bad in ("relative/dir", "/srv/../etc", "/srv/with space", "/srv/a;b", "/srv/x\\ny"):
        with pytest.raises(InvalidAnswers) as caught:
            load(bad)
        assert "metrics_dir" in caught.value.problems[0].key, bad


def test_the_readme_documents_every_metric_and_its_alerts_name_only_ours():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Watching it"):]
    section = section[:section.index("\n## ")]
    table = set(re.findall(r"^\| `(cgnat_[a-z_]+)`", section, re.M))
    assert table == set(metrics.METRICS)
    block = re.search(r"```yaml\n(.*?)```", section, re.S)[1]
    rules = yaml.safe_load(block)["groups"][0]["rules"]
    assert len(rules) >= 3 and all({"alert", "expr", "annotations"} <= set(r) for r in rules)
    named = {name for r in rules for name in re.findall(r"\b(?:cgnat|node)_[a-z_]+", r["expr"])}
    known = set(metrics.METRICS) | {"node_textfile_mtime_seconds"}    # node_exporter's, of our file
    assert {"cgnat_handshake_age_seconds", "cgnat_end_to_end_ok"} < named <= known, named - known
    action = next(r["expr"] for r in rules if 'kind="action"' in r["expr"])
    assert "cgnat_watchdog_steps_total" in action


def test_each_tunnel_has_its_file_and_the_alerts_name_the_tunnel(tmp_path):
    """Issue 21: a homelab with two bridges writes cgnat.prom (wg0) and cgnat-wg1.prom, each
    sample labelled with its tunnel; the README's alerts say which (its label) and watch both files."""
    for interface, first in (("wg0", True), ("wg1", False)):
        textfile = metrics.Textfile(tmp_path, interface, print, name=metrics.file_name(interface, first))
        assert textfile.publish([("cgnat_healthy", {}, interface == "wg0")], T0)
    assert value(parse((tmp_path / "cgnat.prom").read_text()), "cgnat_healthy", interface="wg0") == 1
    assert value(parse((tmp_path / "cgnat-wg1.prom").read_text()), "cgnat_healthy", interface="wg1") == 0
    readme = (REPO / "README.md").read_text()
    rules = yaml.safe_load(re.search(r"```yaml\n(.*?)```", readme[readme.index("### Watching it"):], re.S)[1])
    by_name = {r["alert"]: r for r in rules["groups"][0]["rules"]}
    assert by_name["CgnatTunnelDown"]["expr"] == "cgnat_healthy == 0"
    assert "{{ $labels.interface }}" in by_name["CgnatTunnelDown"]["annotations"]["summary"]
    stopped = re.search(r'file=~"(.*?)"', by_name["CgnatWatchdogStopped"]["expr"])[1]
    assert all(re.fullmatch(stopped, f"/var/lib/prometheus/node-exporter/{name}") for name in ("cgnat.prom", "cgnat-wg1.prom"))
    assert not re.fullmatch(stopped, "/var/lib/prometheus/node-exporter/cgnat-prom")
