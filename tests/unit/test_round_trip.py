"""Whatever validation accepts renders to files that read back to the same values.

Answers are drawn from hostile alphabets (control characters, brackets, `%`, Unicode
digits, quotes, `=`, `#`, newlines) mixed with plausible values; for each accepted one,
wg0.conf read as wg-quick reads it, the .env sourced by sh, the .rules file loaded by
iptables-restore --test in a throwaway network namespace, and the saved answers replayed
must all say exactly what the answers say.
"""
import ipaddress
import re
import subprocess

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from installer import answers as answers_toml
from installer import grammar
from installer.detect import HostFacts
from installer.errors import InvalidAnswers
from installer.plan import make_plan, resolve_defaults
from installer.rules_file import refusal
from installer.validate import load_answers

from unitdata import BRIDGE_KEY, PEER_PUBLIC

HOSTILE = "\n\r\t\x00\x1b\x7f\x85[]%'\"=#:/\\ +-_.٥٠0123456789abcfxyz"
FACTS = HostFacts(interfaces={"ens3": ["198.51.100.1/24"]}, default_interface="ens3")


def hostile_or(*plausible):
    """A plausible value (some of them wrong) three times in four, else hostile text."""
    choice = st.sampled_from(plausible)
    return st.one_of(choice, choice, choice, st.text(alphabet=HOSTILE, max_size=24))


# And values drawn from the whole grammar (installer/grammar.py): any interface name it
# takes, tunnels anywhere in private, CGNAT and ULA space, marks and tables over their range.
interfaces = st.from_regex(grammar.INTERFACE, fullmatch=True).filter(grammar.is_interface)
tunnels = st.builds(lambda base, bits, n: str(_subnet(base, bits, n)),
                    st.sampled_from(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"]),
                    st.integers(16, 30), st.integers(0, 2**22))
tunnels6 = st.builds(lambda bits, n: str(_subnet("fc00::/7", bits, n)), st.integers(48, 64), st.integers(0, 2**57))


def _subnet(base: str, prefixlen: int, n: int):
    """The n-th (modulo) subnet of length prefixlen in base (base itself when it is longer)."""
    network = ipaddress.ip_network(base)
    prefixlen = max(prefixlen, network.prefixlen)
    count = 2 ** (prefixlen - network.prefixlen)
    return ipaddress.ip_network((int(network.network_address) + (n % count) * 2 ** (network.max_prefixlen - prefixlen),
                                 prefixlen))


common = {
    "interface": st.one_of(hostile_or("wg0", "wg-home", "tun.1", "a=b", "wg+", "all", "-h"), interfaces),
    "tunnel": st.one_of(hostile_or("10.0.0.0/24", "10.9.0.0/30", "192.168.77.0/24", "127.0.0.0/24",
                                   "10.0.0.0/24\n"), tunnels),
    "tunnel6": st.one_of(hostile_or("fd63:676e:6174::/64", "fd00:1::/48", "fd00::/65", "2001:db8::/64",
                                    "fd00::/64\n"), tunnels6),
    "peer_public_key": hostile_or(PEER_PUBLIC, PEER_PUBLIC + "\n", "A" * 43 + "=", "=" + PEER_PUBLIC[1:]),
}
bridge_keys = {
    "public_interface": hostile_or("ens3", "ens3\n", "ens+"),
    "public_address": hostile_or("203.0.113.7", "198.51.100.1", "0.0.0.0", "203.0.113.7\n"),
    "public_address6": hostile_or("2001:db8::7", "2001:DB8:0:0::1", "fe80::1", "fd00::1", "::ffff:1.2.3.4"),
    "ipv6": hostile_or("auto", "off", "on"),
    "keep_local": st.lists(hostile_or("tcp/25", "udp/60000-60010", "tcp/080", "tcp/٢٥"), max_size=3),
    "forward": st.one_of(st.just("all"), st.lists(
        hostile_or("tcp/80", "tcp/443", "udp/51900-51910", "icmp", "tcp/08", "udp/1-65535"), min_size=1, max_size=4)),
}
homelab_keys = {
    "endpoint": hostile_or("203.0.113.7:51820", "bridge.example.org:51999", "[2001:db8::7]:51820",
                           "[fe80::1%lo]:51820", "203.0.113.7:51820\n[Interface]\nPreUp = id"),
    "docker_subnets": st.lists(hostile_or("172.19.0.0/16", "172.20.0.0/16\n"), max_size=3),
    "fwmark": st.one_of(hostile_or("0x1000000", "0x2000000", "16777216", "0x1000000 "),
                        st.integers(0, 31).map(lambda bit: hex(1 << bit)), st.integers(1, 2**32).map(str)),
    "table": st.integers(-1, 2**32),
    "rule_pref": st.integers(-1, 40000),
}


@st.composite
def answers_data(draw):
    role = draw(st.sampled_from(["bridge", "homelab"]))
    data = {"role": role}
    for key, strategy in common.items():
        if draw(st.booleans()):
            data[key] = draw(strategy)
    section = bridge_keys if role == "bridge" else homelab_keys
    data[role] = {key: draw(strategy) for key, strategy in section.items() if draw(st.booleans())}
    if role == "homelab":
        data["homelab"].setdefault("endpoint", "203.0.113.7:51820")
    return data


# About one in five answers_data() is accepted; the rest is drawn again (assume). max_examples
# counts accepted answers: as many as were checked when a return let the rejected ones count.
FILTERED = [HealthCheck.too_slow, HealthCheck.filter_too_much]


def accepted(data):
    try:
        return resolve_defaults(load_answers(data, None, None), FACTS)
    except InvalidAnswers:
        return None


def wg_quick_sections(text: str) -> list[tuple[str, dict]]:
    """[(section, {key: value})] as wg-quick's parse_options reads a config."""
    sections = []
    for line in text.split("\n"):
        stripped = line.split("#", 1)[0].strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            sections.append((stripped, {}))
        elif "=" in stripped:
            key, _, value = stripped.partition("=")
            assert sections, f"a key before any section: {line!r}"
            key, value = key.strip(), value.strip()
            known = sections[-1][1]
            # wg-quick adds up repeated Address (and AllowedIPs) lines
            known[key] = f"{known[key]}, {value}" if key in known else value
        else:
            assert stripped == "", f"a line wg-quick cannot read: {line!r}"
    return sections


def expected_conf(a) -> list[tuple[str, dict]]:
    own, peer = (a.bridge_address, a.homelab_address) if a.role == "bridge" else (a.homelab_address, a.bridge_address)
    dual = a.role == "bridge" and a.forwards_ipv6   # the homelab's up hook adds its ULA
    own6, peer6 = a.bridge_address6, a.homelab_address6
    address = f"{own}/{a.prefixlen}" + (f", {own6}/{a.prefixlen6}" if dual else "")
    interface = {"Address": address, "PrivateKey": BRIDGE_KEY,
                 "PostUp": f"/usr/lib/cgnat-{a.role}/hooks/up %i",
                 "PostDown": f"/usr/lib/cgnat-{a.role}/hooks/down %i"}
    if a.role == "bridge":
        interface["ListenPort"] = str(a.listen_port)
        peer_keys = {"PublicKey": a.peer_public_key,
                     "AllowedIPs": f"{peer}/32" + (f", {peer6}/128" if dual else "")}
    else:
        interface["Table"] = "off"
        peer_keys = {"PublicKey": a.peer_public_key, "Endpoint": a.homelab.endpoint,
                     "AllowedIPs": "0.0.0.0/0, ::/0", "PersistentKeepalive": str(a.homelab.keepalive)}
    sections = [("[Interface]", interface)]
    return sections + [("[Peer]", peer_keys)] if a.peer_public_key else sections


def plan_files(answers) -> dict[str, str]:
    plan = make_plan(answers, FACTS, BRIDGE_KEY, start=False)
    return {f.path: f.content for f in plan.files}


@given(answers_data())
@settings(max_examples=330, deadline=None, suppress_health_check=FILTERED)
def test_accepted_answers_render_a_wg_conf_that_reads_back_the_same(data):
    answers = accepted(data)
    assume(answers is not None)
    files = plan_files(answers)
    sections = wg_quick_sections(files[f"/etc/wireguard/{answers.interface}.conf"])
    assert [name for name, _ in sections] in (["[Interface]"], ["[Interface]", "[Peer]"])
    assert sections == expected_conf(answers)
    # The saved answers replay to exactly the same files.
    replayed = load_answers(answers_toml.parse_toml(files["/etc/cgnat/answers.toml"]), None, None)
    assert replayed == answers and plan_files(replayed) == files


@given(answers_data())
@settings(max_examples=130, deadline=None, suppress_health_check=FILTERED)
def test_accepted_answers_render_an_env_that_sh_reads_back_the_same(tmp_path_factory, data):
    answers = accepted(data)
    assume(answers is not None)
    env_file = tmp_path_factory.mktemp("env") / "wg.env"
    env_file.write_text(plan_files(answers)[f"/etc/cgnat/{answers.interface}.env"])
    done = subprocess.run(["env", "-i", "sh", "-c", 'set -a && . "$1" && env -0', "sh", str(env_file)],
                          capture_output=True, text=True, check=True)
    variables = dict(item.partition("=")[::2] for item in done.stdout.split("\0") if item)
    ours = {k: v for k, v in variables.items() if k.startswith("CGNAT_")}
    assert set(variables) - set(ours) <= {"PWD", "SHLVL", "_", "OLDPWD"}
    assert ours["CGNAT_ROLE"] == answers.role
    if answers.role == "bridge":
        assert ours["CGNAT_PUBLIC_INTERFACE"] == answers.bridge.public_interface
    else:
        assert ours["CGNAT_ADDRESS"] == answers.homelab_address
        assert ours["CGNAT_TABLE"] == str(answers.homelab.table)
        assert ours["CGNAT_RULE_PREF"] == str(answers.homelab.rule_priority)
        assert (ours["CGNAT_ADDRESS6"], ours["CGNAT_PREFIXLEN6"]) == (answers.homelab_address6, str(answers.prefixlen6))
        mark = f"{int(answers.homelab.fwmark, 0):#x}"
        assert ours["CGNAT_FWMARK"] == f"{mark}/{mark}"


@pytest.mark.root
@given(answers_data())
@settings(max_examples=130, deadline=None, suppress_health_check=FILTERED)
def test_accepted_answers_render_rules_iptables_restore_takes_that_touch_only_our_chains(data):
    answers = accepted(data)
    assume(answers is not None)
    files = plan_files(answers)
    for family, command in (("", "iptables-restore"), ("6", "ip6tables-restore")):
        rules = files.get(f"/etc/cgnat/{answers.interface}.rules{family}")
        if family and (answers.role == "homelab" or answers.forwards_ipv6):
            assert rules is not None
        if rules is not None:
            restores_touching_only_our_chains(rules, command, answers)


def restores_touching_only_our_chains(rules: str, command: str, answers) -> None:
    declared, appended = set(), set()
    for line in rules.splitlines():
        if line.startswith(":"):
            declared.add(line[1:].split()[0])
        elif line.startswith("-"):
            assert line.startswith("-A "), line
            appended.add(line.split()[1])
            for word in line.split():
                if re.fullmatch(r"[0-9.]+", word) and word.count(".") == 3:
                    ipaddress.ip_address(word)       # every address is a plain address
                if word.count(":") >= 2:
                    ipaddress.IPv6Address(word)
            if "-d" in line.split():  # the validated public address (IPv6), the tunnel's (probe, self check)
                public = answers.bridge.public_address6 if answers.role == "bridge" else None
                assert line.split()[line.split().index("-d") + 1] in (public, answers.bridge_address,
                                                                       answers.homelab_address)
    assert declared and appended <= declared and all(c.startswith("CGNAT-") for c in declared)
    assert refusal(rules, answers.interface) is None     # what the hooks and rules_file take
    # A throwaway network namespace: nothing of the host's firewall is read or changed.
    done = subprocess.run(["unshare", "--net", command, "--test", "--noflush"],
                          input=rules, capture_output=True, text=True)
    assert done.returncode == 0, (rules, done.stderr)
