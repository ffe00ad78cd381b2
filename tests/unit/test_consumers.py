"""Every consumer takes a value literally: values generated from the whole grammar
(installer/grammar.py), as validation accepts them, reach sysctl, ip rule/route,
iptables-restore, sh, wg-quick and the watchdog's sandbox and come out the same.

The hooks run for real in a throwaway network namespace (`unshare --net`) on a link of
the generated name: nothing of the host is read or changed.
"""
import ipaddress
import json
import math
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from installer import grammar, metrics, status
from installer.answers import ANSWERS_PATH
from installer.detect import HostFacts
from installer.errors import InvalidAnswers
from installer.plan import make_plan, resolve_defaults
from installer.validate import load_answers
from installer.watchdog_state import STATE_PATH

from unitdata import BRIDGE_KEY, REPO

FACTS = HostFacts(interfaces={"ens3": ["198.51.100.1/24"]}, default_interface="ens3")
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
PEER = "peer+"          # the veth's other end: a name the grammar refuses, so never drawn

# Interface names as the grammar takes them ("lo" already exists in a new namespace).
interfaces = st.from_regex(grammar.INTERFACE, fullmatch=True).filter(
    lambda name: grammar.is_interface(name) and name != "lo")


def accepted(data: dict, facts: HostFacts = FACTS):
    return resolve_defaults(load_answers(data, None, None), facts)


def rendered(data: dict, facts: HostFacts = FACTS) -> dict[str, str]:
    answers = accepted(data, facts)
    return {f.path: f.content for f in make_plan(answers, facts, BRIDGE_KEY, start=False).files}


def homelab(interface: str, **homelab_keys) -> dict:
    return {"role": "homelab", "interface": interface, "tunnel": "10.0.0.0/24",
            "homelab": {"endpoint": "203.0.113.7:51820", **homelab_keys}}


def install(tmp: Path, role: str, files: dict[str, str]) -> Path:
    """The role's hooks with lib.sh beside them, as the package installs them, and the
    files setup rendered under tmp/etc; returns the hooks' directory."""
    hooks = tmp / "hooks"
    hooks.mkdir()
    for hook in ("up", "down"):
        shutil.copy(REPO / f"cgnat_{role}" / "hooks" / hook, hooks / hook)
    shutil.copy(REPO / "installer" / "hooks" / "lib.sh", hooks / "lib.sh")
    etc = tmp / "etc"
    etc.mkdir()
    for path, content in files.items():
        if path.startswith("/etc/cgnat/") and not path.endswith(".toml"):
            (etc / Path(path).name).write_text(content)
    return hooks


def in_netns(hooks: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "--net", "sh", "-euc", script, "sh", *args], capture_output=True,
                          text=True, cwd=hooks, env={"PATH": PATH, "CGNAT_ETC": str(hooks.parent / "etc"),
                                                     "CGNAT_RUN": str(hooks.parent / "run")})


# Up on a link named IFACE (strict rp_filter everywhere first, as several distributions
# have it), what it changed, then down, and what is left.
UP_DOWN = f"""
sysctl -qw net/ipv4/conf/all/rp_filter=1 net/ipv4/conf/default/rp_filter=1
ip link add name "$1" type veth peer name '{PEER}'
ip link set dev "$1" up
sh ./up "$1"
for f in /proc/sys/net/ipv4/conf/*/rp_filter; do printf '%s\\t%s\\n' "${{f%/rp_filter}}" "$(cat "$f")"; done
echo ===; ip -N -j rule show; echo ===; ip -N -j -6 rule show
echo ===; ip -N -j -4 route show table all; echo ===; ip -N -j -6 route show table all
echo ===; iptables-save; ip6tables-save
sh ./down "$1"
echo ===; ip -N -j rule show; ip -N -j -6 rule show; iptables-save; ip6tables-save
"""


def up_then_down(tmp: Path, interface: str, **homelab_keys):
    files = rendered(homelab(interface, **homelab_keys))
    done = in_netns(install(tmp, "homelab", files), UP_DOWN, interface)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("===\n")


def rp_filters(listing: str) -> dict[str, str]:
    """{link: rp_filter} of a "PATH<tab>VALUE" listing (a name may hold "=")."""
    return dict((path.rsplit("/", 1)[1], value) for path, value in (line.split("\t") for line in listing.splitlines()))


@pytest.mark.root
@pytest.mark.parametrize("interface", ["wg.0", "wg=0"])
def test_the_homelab_up_hook_sets_rp_filter_of_an_interface_with_dots_or_equals(tmp_path, interface):
    """net.ipv4.conf.wg.0.rp_filter names conf/wg/0, and sysctl -w splits KEY=VALUE at the
    first "=": up failed where rp_filter was not 2."""
    sysctls = rp_filters(up_then_down(tmp_path, interface)[0])
    assert sysctls == {"all": "1", "default": "1", "lo": "1", PEER: "1", interface: "2"}


tables = st.integers(1, 2**32 - 1)
marks = st.integers(0, 31).map(lambda bit: hex(1 << bit))
priorities = st.integers(1, 32764)


@given(interface=interfaces, table=tables, mark=marks, pref=priorities)
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@pytest.mark.root
def test_the_homelab_hooks_take_interface_table_mark_and_priority_literally(tmp_path_factory, interface, table,
                                                                            mark, pref):
    try:
        files = rendered(homelab(interface, table=table, fwmark=mark, rule_pref=pref))
    except InvalidAnswers:          # a table or mark the homelab keeps clear of
        reject()
    tmp = tmp_path_factory.mktemp("hooks")
    done = in_netns(install(tmp, "homelab", files), UP_DOWN, interface)
    assert done.returncode == 0, done.stderr
    sysctls, rules4, rules6, routes4, routes6, saved, after = done.stdout.split("===\n")
    # sysctl wrote exactly conf/<interface>/rp_filter, of the link of that name
    assert rp_filters(sysctls) == {"all": "1", "default": "1", "lo": "1", PEER: "1", interface: "2"}
    # ip rule and ip route show back the same table and mark, on the same link
    answers = accepted(homelab(interface, table=table, fwmark=mark, rule_pref=pref))
    for rules, source in ((rules4, answers.homelab_address), (rules6, answers.homelab_address6)):
        ours = sorted((r["priority"], r.get("fwmark"), r.get("fwmask"), r["src"])
                      for r in json.loads(rules) if r.get("table") == str(table))
        assert ours == [(pref, mark, mark, "all"), (pref + 1, None, None, source)]
    for routes in (json.loads(routes4), json.loads(routes6)):
        assert [(r["dst"], r["dev"]) for r in routes if r.get("table") == str(table)] == [("default", interface)]
    # our chains, jumped to by rules tagged with the interface's name
    assert f'--comment "cgnat:{interface}" -j CGNAT-{interface}-PRE' in saved
    # down leaves nothing of ours
    assert "CGNAT-" not in after and f'"table":"{table}"' not in after


@pytest.mark.root
@pytest.mark.parametrize("public", ["ens3.7", "e.1=x"])
def test_the_bridge_hooks_set_and_put_back_accept_ra_of_any_public_interface(tmp_path, public):
    facts = HostFacts(interfaces={public: ["198.51.100.1/24", "2001:db8::7/64"]}, default_interface=public)
    data = {"role": "bridge", "interface": "wg0", "tunnel": "10.0.0.0/24", "bridge": {"ssh_port": 2222}}
    hooks = install(tmp_path, "bridge", rendered(data, facts))
    ra = f"/proc/sys/net/ipv6/conf/{public}/accept_ra"
    done = in_netns(hooks, f"""ip link add name "$1" type veth peer name '{PEER}'; echo 1 > '{ra}'
        sh ./up wg0; cat '{ra}' /proc/sys/net/ipv6/conf/all/forwarding "$CGNAT_RUN/wg0.accept_ra"
        sh ./down wg0; cat '{ra}'; ip6tables-save""", public)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:4] == ["2", "1", f"{public} 1", "1"], done.stdout
    assert "CGNAT" not in done.stdout


# ------------------------------------------------------------ wg-quick's reading of the config

# wg-quick's own parse_options (as `wg-quick strip` runs it), then what it keeps: its own keys,
# and the rest for `wg setconf`.
WG_QUICK_PARSE = r"""
shopt -s extglob
die() { echo "wg-quick: $*" >&2; exit 1; }
eval "$(sed -n '/^parse_options()/,/^}/p' "$(command -v wg-quick)")"
ADDRESSES=() POST_UP=() POST_DOWN=() WG_CONFIG="" TABLE=""
parse_options "$1"
printf '%s\n' "INTERFACE=$INTERFACE" "TABLE=$TABLE" "ADDRESSES=${ADDRESSES[*]}" \
	"POST_UP=${POST_UP[*]//%i/$INTERFACE}" "POST_DOWN=${POST_DOWN[*]//%i/$INTERFACE}" ===
printf '%s' "$WG_CONFIG"
"""
PEER_KEY = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
endpoints = st.one_of(
    st.from_regex(grammar.HOSTNAME, fullmatch=True).filter(grammar.is_hostname),
    st.sampled_from(["203.0.113.7", "[2001:db8::7]", "[2001:DB8:0:0::a]"])).flatmap(
    lambda host: st.integers(1, 65535).map(lambda port: f"{host}:{port}"))


@given(interface=interfaces, role=st.sampled_from(["bridge", "homelab"]), endpoint=endpoints,
       port=st.integers(1, 65535), keepalive=st.integers(0, 65535))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_wg_quick_reads_the_rendered_config_back_to_the_same_values(tmp_path_factory, interface, role,
                                                                     endpoint, port, keepalive):
    section = {"endpoint": endpoint, "keepalive": keepalive} if role == "homelab" else {"ssh_port": 2222}
    data = {"role": role, "interface": interface, "tunnel": "10.0.0.0/24", "listen_port": port,
            "peer_public_key": PEER_KEY, role: section}
    try:
        answers = accepted(data)
    except InvalidAnswers:
        reject()
    conf = tmp_path_factory.mktemp("wg") / f"{interface}.conf"
    conf.write_text(rendered(data)[f"/etc/wireguard/{interface}.conf"])
    conf.chmod(0o600)
    done = subprocess.run(["bash", "-c", WG_QUICK_PARSE, "wg-quick", str(conf)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    own, config = done.stdout.split("===\n")
    own = dict(line.split("=", 1) for line in own.splitlines())
    hooks = f"/usr/lib/cgnat-{role}/hooks"
    address = answers.bridge_address if role == "bridge" else answers.homelab_address
    assert own["INTERFACE"] == interface
    assert own["ADDRESSES"].split()[0] == f"{address}/{answers.prefixlen}"
    # wg-quick runs the hooks with `bash -c`, %i replaced: the hook gets the name as one word.
    assert shlex.split(own["POST_UP"]) == [f"{hooks}/up", interface]
    assert shlex.split(own["POST_DOWN"]) == [f"{hooks}/down", interface]
    assert own["TABLE"] == ("off" if role == "homelab" else "")
    kept = [line.split("#", 1)[0].strip() for line in config.splitlines()]
    kept = [line for line in kept if line]
    expected = ["[Interface]", f"PrivateKey = {BRIDGE_KEY}"] + ([f"ListenPort = {port}"] if role == "bridge" else [])
    expected += ["[Peer]", f"PublicKey = {PEER_KEY}"]
    if role == "homelab":
        expected += [f"Endpoint = {endpoint}", "AllowedIPs = 0.0.0.0/0, ::/0", f"PersistentKeepalive = {keepalive}"]
    else:
        expected += [f"AllowedIPs = {answers.homelab_address}/32"]
    assert kept == expected


# ------------------------------------------------------------ the rules file: only our chains

BRIDGE = {"role": "bridge", "interface": "wg0", "tunnel": "10.0.0.0/24", "bridge": {"ssh_port": 2222}}
DOCKER = "iptables -N DOCKER-USER; iptables -A DOCKER-USER -s 192.0.2.9 -j DROP; "
SHOW = "echo ===; iptables-save; cat /proc/sys/net/ipv4/ip_forward"


@pytest.mark.root
def test_a_hand_added_chain_in_the_rules_file_is_refused_before_up_touches_anything(tmp_path):
    """`:DOCKER-USER - [0:0]` under --noflush flushed Docker's chain."""
    hooks = install(tmp_path, "bridge", rendered(BRIDGE))
    rules = tmp_path / "etc" / "wg0.rules"
    rules.write_text(rules.read_text().replace("*filter\n", "*filter\n:DOCKER-USER - [0:0]\n"))
    number = rules.read_text().split("\n").index(":DOCKER-USER - [0:0]") + 1
    done = in_netns(hooks, f"{DOCKER} sh ./up wg0 || echo refused; {SHOW}")
    assert done.stdout.startswith("refused\n"), done.stderr
    assert done.stderr == f"cgnat-bridge-up: {rules}:{number}: declares DOCKER-USER in filter (only CGNAT-wg0-<ABBR> chains may be declared and filled)\n"
    saved, ip_forward = done.stdout.split("===\n")[1].rsplit("\n", 2)[:2]
    assert "-A DOCKER-USER -s 192.0.2.9/32 -j DROP" in saved and "CGNAT" not in saved
    assert ip_forward == "0"          # a new namespace's, untouched


@pytest.mark.root
def test_down_removes_what_is_ours_even_when_the_rules_file_is_refused(tmp_path):
    hooks = install(tmp_path, "bridge", rendered(BRIDGE))
    rules = tmp_path / "etc" / "wg0.rules"
    edit = f"sed -i 's/^\\*filter$/*filter\\n:DOCKER-USER - [0:0]\\n:CGNAT-wg1-FWD - [0:0]/' '{rules}'"
    done = in_netns(hooks, f"{DOCKER} iptables -N CGNAT-wg1-FWD; iptables -A CGNAT-wg1-FWD -j RETURN; "
                           f"sh ./up wg0; {edit}; sh ./down wg0; {SHOW}")
    assert done.returncode == 0, done.stderr
    saved = done.stdout.split("===\n")[1]
    assert ":DOCKER-USER" in rules.read_text()
    assert "-A DOCKER-USER -s 192.0.2.9/32 -j DROP" in saved and "-A CGNAT-wg1-FWD -j RETURN" in saved
    assert "CGNAT-wg0" not in saved and "cgnat:wg0" not in saved


def test_status_reports_a_refused_rules_file(tmp_path):
    (tmp_path / "etc/cgnat").mkdir(parents=True)
    rules = tmp_path / "etc/cgnat/wg0.rules6"
    rules.write_text("*filter\n:DOCKER-USER - [0:0]\nCOMMIT\n")
    (tmp_path / "etc/cgnat/wg0.rules").write_bytes(b"*nat\n:CGNAT-wg0-PRE - [0:0]\n# \xe9\nCOMMIT\n")
    assert status.Probe(tmp_path).missing_rules("wg0") == (
        f"{rules}:2: declares DOCKER-USER in filter (only CGNAT-wg0-<ABBR> chains may be declared and filled)",)


# ------------------------------------------------------------ the metrics textfile

SAMPLE = re.compile(r'cgnat_[a-z_]+\{interface="wg0"\} -?[0-9]+(?:\.[0-9]+)?(?:e[+-][0-9]+)?')


@given(st.lists(st.tuples(st.sampled_from(sorted(metrics.METRICS)),
                          st.one_of(st.floats(), st.integers(-10**400, 10**400), st.booleans())), max_size=8))
@settings(max_examples=200)
def test_the_metrics_textfile_holds_only_finite_numbers(samples):
    """A NaN or an infinity (from a state file, a clock) is no sample, a huge count a whole number."""
    text = metrics.render("wg0", [(name, {}, value) for name, value in samples])
    values = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert all(SAMPLE.fullmatch(line) for line in values), values
    assert len(values) == sum(1 for _, v in samples if not isinstance(v, float) or math.isfinite(v))


# ------------------------------------------------------------ the watchdog's sandbox

class Sandbox:
    """What a unit's [Service] sandbox lets its processes see and change (the settings our
    units use: ProtectSystem, ProtectHome, PrivateTmp, ProtectKernelTunables, ReadWritePaths,
    ReadOnlyPaths, InaccessiblePaths, StateDirectory; systemd.exec(5))."""

    def __init__(self, unit_text: str):
        self.settings: dict[str, list[str]] = {}
        for line in unit_text.splitlines():
            if "=" in line and not line.startswith("#"):
                key, _, value = line.partition("=")
                self.settings.setdefault(key.strip(), []).extend(value.split())

    def one(self, key: str) -> str:
        return (self.settings.get(key) or ["no"])[-1]

    def paths(self, key: str) -> list[str]:
        return [path.lstrip("-+") for path in self.settings.get(key, [])]

    def hidden(self, path: str) -> bool:
        hidden = self.paths("InaccessiblePaths")
        hidden += ["/home", "/root", "/run/user"] if self.one("ProtectHome") in ("yes", "true", "tmpfs") else []
        hidden += ["/tmp", "/var/tmp"] if self.one("PrivateTmp") in ("yes", "true") else []   # another /tmp
        return _under(path, hidden)

    def readable(self, path: str) -> bool:
        return not self.hidden(path)

    def writable(self, path: str) -> bool:
        if self.hidden(path):
            return False
        if _under(path, self.paths("ReadWritePaths") + [f"/var/lib/{d}" for d in self.paths("StateDirectory")]):
            return True
        if _under(path, ["/proc", "/sys", "/dev"]):    # API file systems: strict leaves them to these
            return not (_under(path, ["/proc/sys", "/sys"]) and self.one("ProtectKernelTunables") in ("yes", "true"))
        read_only = {"strict": ["/"], "full": ["/usr", "/boot", "/efi", "/etc"], "yes": ["/usr", "/boot", "/efi"],
                     "true": ["/usr", "/boot", "/efi"]}.get(self.one("ProtectSystem"), [])
        return not _under(path, read_only + self.paths("ReadOnlyPaths"))


def _under(path: str, directories: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in directories)


def watchdog_paths(data: dict) -> tuple[list[str], list[str]]:
    """(read, written): what the watchdog reads and changes, as the rendered answers make it
    (the bridge's records the homelab's endpoint and runs the up hook, which writes kernel
    settings and its accept_ra record)."""
    answers = accepted(data)
    read = [ANSWERS_PATH] + [p for p in rendered(data) if p.startswith("/etc/cgnat/") and p != ANSWERS_PATH]
    setting = (answers.bridge.watchdog_metrics_dir if answers.role == "bridge"
               else answers.homelab.watchdog.metrics_dir)
    textfile = metrics.directory(setting, is_dir=lambda _: True)
    written = [STATE_PATH] + ([str(textfile / metrics.FILE_NAME)] if textfile else [])
    if answers.role == "bridge":
        written += [f"/var/lib/cgnat/{answers.interface}.endpoint",
                    f"/run/cgnat/{answers.interface}.accept_ra", "/proc/sys/net/ipv4/ip_forward",
                    "/proc/sys/net/ipv6/conf/all/forwarding",
                    f"/proc/sys/net/ipv6/conf/{answers.bridge.public_interface}/accept_ra"]
    return read, written


def with_metrics_dir(role: str, interface: str, directory: str | None) -> dict:
    data = homelab(interface) if role == "homelab" else {**BRIDGE, "interface": interface}
    data = {**data, role: dict(data[role])}
    if directory is not None and role == "homelab":
        data["homelab"]["watchdog"] = {"metrics_dir": directory}
    elif directory is not None:
        data["bridge"]["watchdog_metrics_dir"] = directory
    return data


def unit(role: str) -> Sandbox:
    return Sandbox((REPO / "debian" / f"cgnat-{role}.cgnat-watchdog.service").read_text())


@given(role=st.sampled_from(["bridge", "homelab"]), interface=interfaces,
       directory=st.sampled_from([None, "", metrics.DEFAULT_DIR]))
@settings(max_examples=40, deadline=None)
def test_what_the_watchdog_reads_and_writes_is_inside_its_units_sandbox(role, interface, directory):
    read, written = watchdog_paths(with_metrics_dir(role, interface, directory))
    sandbox = unit(role)
    assert [path for path in read if not sandbox.readable(path)] == []
    assert [path for path in written if not sandbox.writable(path)] == []


def test_the_sandbox_model_hides_and_protects_what_systemd_does():
    sandbox = unit("homelab")
    assert not sandbox.readable("/root/wg.key") and not sandbox.readable("/home/a/x")
    assert sandbox.readable("/etc/cgnat/wg0.env") and not sandbox.writable("/etc/cgnat/wg0.env")
    assert sandbox.writable("/var/lib/cgnat/watchdog.json") and sandbox.writable("/run/cgnat/x")
    assert not sandbox.writable("/proc/sys/net/ipv4/ip_forward") and unit("bridge").writable("/proc/sys/net/ipv4/ip_forward")


@pytest.mark.parametrize("role", ["bridge", "homelab"])
def test_a_metrics_dir_of_the_answers_is_writable_in_the_sandbox(role):
    """Setup writes the unit's drop-in (ReadWritePaths=) that ProtectSystem=strict needs for a
    metrics_dir other than node_exporter's; the unit and its drop-in together let it write."""
    data = with_metrics_dir(role, "wg0", "/srv/metrics")
    _, written = watchdog_paths(data)
    dropin = rendered(data)[metrics.UNIT_DROPIN]
    assert "/srv/metrics/cgnat.prom" in written and not unit(role).writable("/srv/metrics/cgnat.prom")
    with_dropin = Sandbox((REPO / "debian" / f"cgnat-{role}.cgnat-watchdog.service").read_text() + dropin)
    assert all(with_dropin.writable(path) for path in written)
    assert metrics.UNIT_DROPIN not in rendered(with_metrics_dir(role, "wg0", metrics.DEFAULT_DIR))


@pytest.mark.parametrize("directory", ["/root/metrics", "/home/me/prom", "/tmp/m", "/run/user/0/m"])
def test_a_metrics_dir_the_sandbox_hides_is_refused(directory):
    with pytest.raises(InvalidAnswers) as raised:
        load_answers(with_metrics_dir("homelab", "wg0", directory), None, None)
    assert "hidden from the watchdog's sandbox" in str(raised.value.problems)


# ------------------------------------------------------------ the homelab's recorded endpoint

# A WireGuard interface as wg-quick makes it (the module, else wireguard-go: its socket on a private /run),
# the homelab as its peer without an endpoint (as wg-quick up leaves it), the recorded endpoint's
# address on lo (the dial can be sent), the up hook; then (when a dial is expected, once it was
# sent) what WireGuard has.
HOMELAB_PUBLIC = "+Jqdb9PFSoPelqcH4yXkIB9o5rH/KIKiUA7aHjoHwhg="    # wg pubkey < unitdata.HOMELAB_KEY
DIAL = f"""
mount -t tmpfs tmpfs /run
ip link set lo up
[ "$3" != dialled ] || case $1 in \\[*) ip -6 addr add "$2" dev lo nodad ;; *) ip addr add "$2" dev lo ;; esac
printf '%s\\n' "$1" > "$CGNAT_STATE/wg0.endpoint"
ip link add wg0 type wireguard 2>/dev/null || wireguard-go wg0   # as wg-quick does
echo '{BRIDGE_KEY}' > key; wg set wg0 private-key key listen-port 51820 peer {HOMELAB_PUBLIC} allowed-ips 10.0.0.2/32
ip link set wg0 up
sh ./up wg0
sent() {{ [ "$(wg show wg0 transfer | cut -f3)" != 0 ]; }}
if [ "$3" = dialled ]; then for _ in $(seq 50); do sent && break; sleep 0.1; done; fi
echo ===; wg show wg0 endpoints; wg show wg0 persistent-keepalive; wg show wg0 transfer
ip link del wg0
"""
reported_endpoints = st.from_regex(grammar.REPORTED_ENDPOINT, fullmatch=True).filter(grammar.is_reported_endpoint)


def dial(tmp: Path, endpoint: str, expected: str = "dialled") -> subprocess.CompletedProcess:
    hooks = install(tmp, "bridge", rendered(BRIDGE))
    state = tmp / "state"
    state.mkdir()
    address = endpoint.rpartition(":")[0].strip("[]")
    return subprocess.run(["unshare", "--net", "--mount", "--propagation", "private", "sh", "-euc", DIAL, "sh",
                           endpoint, address, expected], capture_output=True, text=True, cwd=hooks,
                          env={"PATH": PATH, "CGNAT_ETC": str(tmp / "etc"), "CGNAT_RUN": str(tmp / "run"),
                               "CGNAT_STATE": str(state)})


@given(endpoint=reported_endpoints)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@pytest.mark.root
def test_the_bridge_up_hook_dials_the_recorded_endpoint_literally(tmp_path_factory, endpoint):
    address = ipaddress.ip_address(endpoint.rpartition(":")[0].strip("[]"))
    if address.is_multicast or address.is_unspecified or address.is_loopback or address.is_link_local:
        reject()        # no address of lo's (or none WireGuard sends to): the dial is not seen
    done = dial(tmp_path_factory.mktemp("dial"), endpoint)
    assert done.returncode == 0, done.stderr
    shown = done.stdout.split("===\n")[1].splitlines()
    key, reported = shown[0].split("\t")
    host, _, port = reported.rpartition(":")
    assert key == HOMELAB_PUBLIC and ipaddress.ip_address(host.strip("[]")) == address
    assert port == endpoint.rpartition(":")[2]
    assert shown[1] == f"{HOMELAB_PUBLIC}\toff"                  # the bridge keeps no keepalive
    assert int(shown[2].split("\t")[2]) > 0, done.stderr    # sent: the handshake initiation
    assert "[#] wg set wg0 peer" in done.stderr and endpoint not in done.stderr   # not in the journal


@pytest.mark.root
@pytest.mark.parametrize("record", ["(none)", "203.0.113.7:51820; touch /tmp/x", "203.0.113.7", "[2001:db8::7]:0",
                                    "bridge.example.org:51820"])
def test_the_bridge_up_hook_ignores_a_record_that_is_no_endpoint_and_still_succeeds(tmp_path, record):
    done = dial(tmp_path, record, "ignored")
    assert done.returncode == 0, done.stderr
    shown = done.stdout.split("===\n")[1].splitlines()
    assert shown[0] == f"{HOMELAB_PUBLIC}\t(none)" and shown[2].endswith("\t0\t0")
    assert "wg0.endpoint: not an endpoint, ignored" in done.stderr
