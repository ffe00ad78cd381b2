"""Rendered files against the recipe's lines, parsed back by the real tools."""
import re
import subprocess
from pathlib import Path

import pytest

from installer import render, roles, rules_file
from installer.validate import load_answers

from unitdata import PEER_PUBLIC

REPO = Path(__file__).resolve().parents[2]

# First the homelab watchdog's self check (TCP on the WireGuard port's number), in every mode.
SELF_CHECK = "-i ens3 -p tcp --dport 51820 -j DNAT --to-destination 10.0.0.2"
RECIPE_BRIDGE_NAT = [
    SELF_CHECK,
    "-i ens3 -p udp --dport 51820 -j RETURN",
    "-i ens3 -p tcp --dport 2222 -j RETURN",
    "-i ens3 -j DNAT --to-destination 10.0.0.2",
]
# The recipe accepts by address; that let a neighbour routing 10.0.0.0/24 via the bridge
# reach every homelab port. Only connections the bridge DNATed cross, the rest is dropped.
BRIDGE_FORWARD = [
    "-i ens3 -o wg0 -m conntrack --ctstate DNAT -j ACCEPT",
    "-i wg0 -o ens3 -m conntrack --ctstate DNAT -j ACCEPT",
    "-i ens3 -o wg0 -j DROP",
    "-i wg0 -o ens3 -j DROP",
]


def answers(data):
    return load_answers(data, None, None)


# Each role renders its own files (installer/roles.py).
def render_rules(answers_, family=4):
    return roles.get(answers_.role).rules(answers_, family)


def render_env(answers_):
    return roles.get(answers_.role).env(answers_)


def has_rules6(answers_):
    return roles.get(answers_.role).has_rules6(answers_)


def hook_commands(answers_):
    return roles.get(answers_.role).hook_summary(answers_)


def bridge(interface="wg0", **keys):
    return answers({"role": "bridge", "interface": interface, "peer_public_key": PEER_PUBLIC,
                    "bridge": {"public_interface": "ens3", **keys}})


def homelab(interface="wg0", **keys):
    return answers({"role": "homelab", "interface": interface, "peer_public_key": PEER_PUBLIC,
                    "homelab": {"endpoint": "213.32.19.229:51820", **keys}})


def chain(rules: str, table: str, name: str) -> list[str]:
    """The rules of one chain of one table, without the '-A NAME ' prefix."""
    current, out = None, []
    for line in rules.splitlines():
        if line.startswith("*"):
            current = line[1:]
        elif current == table and line.startswith(f"-A {name} "):
            out.append(line[len(f"-A {name} "):])
    return out


def test_bridge_rules_are_the_recipes_in_our_own_chains():
    rules = render_rules(bridge())
    assert chain(rules, "nat", "CGNAT-wg0-PRE") == RECIPE_BRIDGE_NAT
    assert chain(rules, "filter", "CGNAT-wg0-FWD") == BRIDGE_FORWARD
    assert "MASQUERADE" not in rules and "route_localnet" not in rules


def test_bridge_refuses_the_homelabs_probe_itself():
    """The homelab's watchdog touches the bridge's tunnel address by TCP on the WireGuard port's
    number every 2 s: the kernel refuses it by this rule, no daemon sees it (issue 19)."""
    assert chain(render_rules(bridge()), "filter", "CGNAT-wg0-IN") == [
        "-i wg0 -d 10.0.0.1 -p tcp --dport 51820 -j REJECT --reject-with tcp-reset"]
    assert "CGNAT-wg0-IN" not in render_rules(bridge(public_address6="2001:db8::7"), family=6)


def test_bridge_clamps_mss_into_the_tunnel():
    assert chain(render_rules(bridge()), "mangle", "CGNAT-wg0-FWD") == [
        "-o wg0 -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu"]


def test_bridge_keep_local_and_allowlist():
    rules = render_rules(bridge(keep_local=["tcp/25"], forward=["tcp/80", "udp/51900-51910", "icmp"]))
    assert chain(rules, "nat", "CGNAT-wg0-PRE") == RECIPE_BRIDGE_NAT[:3] + [
        "-i ens3 -p tcp --dport 25 -j RETURN",
        "-i ens3 -p tcp --dport 80 -j DNAT --to-destination 10.0.0.2",
        "-i ens3 -p udp --dport 51900:51910 -j DNAT --to-destination 10.0.0.2",
        "-i ens3 -p icmp -j DNAT --to-destination 10.0.0.2",
    ]


def test_homelab_rules_are_the_recipes_connmark_lines_with_a_mask():
    rules = render_rules(homelab())
    assert chain(rules, "mangle", "CGNAT-wg0-PRE") == [
        "-i wg0 -m conntrack --ctstate NEW -j CONNMARK --set-xmark 0x1000000/0x1000000",
        "-m conntrack --ctdir REPLY -j CONNMARK --restore-mark --nfmask 0x1000000 --ctmask 0x1000000",
    ]
    assert "*nat" not in rules
    # The self check comes back in on the endpoint's port, to the watchdog's own listener.
    assert chain(rules, "filter", "CGNAT-wg0-IN") == [
        "-i wg0 -d 10.0.0.2 -p tcp --dport 51820 -j ACCEPT"]
    assert "*filter" not in render_rules(homelab(), family=6)


@pytest.mark.parametrize("answers_of", [
    lambda: bridge(), lambda: bridge(forward=["tcp/80", "udp/1000-2000", "icmp"], keep_local=["udp/53"]),
    lambda: homelab(), lambda: homelab(fwmark="0x80000000", table=4242),
    lambda: bridge(interface="a.b=c_d-e-12345"), lambda: homelab(interface="a.b=c_d-e-12345")])
@pytest.mark.root
def test_rules_parse_in_iptables_restore(answers_of):
    # A fresh network namespace: --test parses against the kernel without touching the host.
    done = subprocess.run(["unshare", "--net", "iptables-restore", "--test", "--noflush"],
                          input=render_rules(answers_of()), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("role_answers", [bridge, homelab])
def test_each_interface_has_its_own_chains(role_answers):
    """Two tunnels on one host: no chain in common, each named for its interface."""
    wg0 = rules_file.declared_chains(render_rules(role_answers()))
    wg1 = rules_file.declared_chains(render_rules(role_answers(interface="wg-home.1")))
    assert wg0 and len(wg0) == len(wg1)
    assert {c for _, c in wg0} & {c for _, c in wg1} == set()
    assert all(c.startswith("CGNAT-wg0-") for _, c in wg0)
    assert all(c.startswith("CGNAT-wg-home.1-") for _, c in wg1)
    assert [(t, rules_file.builtin_of(c)) for t, c in wg0] == [(t, rules_file.builtin_of(c)) for t, c in wg1]


def test_homelab_env_for_the_hooks():
    env = dict(line.split("=", 1) for line in render_env(homelab(table=300)).splitlines()
               if line and not line.startswith("#"))
    assert env == {"CGNAT_ROLE": "homelab", "CGNAT_ADDRESS": "10.0.0.2", "CGNAT_TABLE": "300",
                   "CGNAT_FWMARK": "0x1000000/0x1000000", "CGNAT_RULE_PREF": "1000",
                   "CGNAT_ADDRESS6": "fd63:676e:6174::2", "CGNAT_PREFIXLEN6": "64"}


def test_bridge_env_for_the_hooks():
    assert render_env(bridge()).splitlines()[1:] == ["CGNAT_ROLE=bridge", "CGNAT_PUBLIC_INTERFACE=ens3"]


@pytest.mark.parametrize("role", ["bridge", "homelab"])
def test_every_variable_of_the_env_file_is_read_by_a_hook(role):
    """IFACE.env is the hooks' input: nothing in it that no hook reads (nor a watchdog: they
    read the answers)."""
    answers_ = bridge() if role == "bridge" else homelab()
    written = {line.split("=", 1)[0] for line in render_env(answers_).splitlines() if line and line[0] != "#"}
    hooks = "".join((REPO / path).read_text() for path in (
        f"cgnat_{role}/hooks/up", f"cgnat_{role}/hooks/down", "installer/hooks/lib.sh"))
    unread = sorted(v for v in written if not re.search(rf"\$\{{?{v}\b", hooks))
    assert written and unread == []


@pytest.mark.root
def test_wg_conf_parses_with_wg_strip_and_matches_the_recipe(tmp_path):
    key = subprocess.run(["wg", "genkey"], capture_output=True, text=True).stdout.strip()
    for role_answers, expected in [
        (bridge(), ["Address = 10.0.0.1/24", "ListenPort = 51820", "AllowedIPs = 10.0.0.2/32"]),
        (homelab(), ["Address = 10.0.0.2/24", "Table = off", "Endpoint = 213.32.19.229:51820",
                     "AllowedIPs = 0.0.0.0/0, ::/0", "PersistentKeepalive = 25"]),
        (bridge(public_address6="2001:db8::7"), ["Address = 10.0.0.1/24", "Address = fd63:676e:6174::1/64",
                                                 "AllowedIPs = 10.0.0.2/32, fd63:676e:6174::2/128"]),
    ]:
        conf = render.render_wg_conf(role_answers, key)
        for line in expected:
            assert line in conf.splitlines()
        path = tmp_path / "wg0.conf"
        path.write_text(conf)
        stripped = subprocess.run(["wg-quick", "strip", str(path)], capture_output=True, text=True)
        assert stripped.returncode == 0, stripped.stderr
        assert f"PrivateKey = {key}" in stripped.stdout and "PostUp" not in stripped.stdout


def test_ipv4_only_bridge_renders_no_ipv6_at_all():
    for answers_ in (bridge(), bridge(public_address6="2001:db8::7", ipv6="off")):
        assert not answers_.forwards_ipv6 and not has_rules6(answers_)
        text = render.render_wg_conf(answers_, "k") + render_env(answers_) + render_rules(answers_)
        assert "::" not in text and "ADDRESS6" not in text, text
    assert render_rules(bridge()) == render_rules(bridge(public_address6="2001:db8::7"))


def test_bridge_rules6_forward_only_its_public_address_and_never_link_icmpv6():
    rules = render_rules(bridge(public_address6="2001:db8::7", keep_local=["tcp/25"]), family=6)
    assert chain(rules, "nat", "CGNAT-wg0-PRE") == [
        "-i ens3 -d 2001:db8::7 -p udp --dport 51820 -j RETURN",
        "-i ens3 -d 2001:db8::7 -p tcp --dport 2222 -j RETURN",
        "-i ens3 -d 2001:db8::7 -p tcp --dport 25 -j RETURN",
        "-i ens3 -d 2001:db8::7 -p tcp -j DNAT --to-destination fd63:676e:6174::2",
        "-i ens3 -d 2001:db8::7 -p udp -j DNAT --to-destination fd63:676e:6174::2",
        "-i ens3 -d 2001:db8::7 -p ipv6-icmp -m icmp6 --icmpv6-type echo-request -j DNAT --to-destination fd63:676e:6174::2",
    ]
    assert chain(rules, "filter", "CGNAT-wg0-FWD") == BRIDGE_FORWARD
    allow = render_rules(bridge(public_address6="2001:db8::7", forward=["tcp/443", "icmp"]), family=6)
    assert chain(allow, "nat", "CGNAT-wg0-PRE")[2:] == [
        "-i ens3 -d 2001:db8::7 -p tcp --dport 443 -j DNAT --to-destination fd63:676e:6174::2",
        "-i ens3 -d 2001:db8::7 -p ipv6-icmp -m icmp6 --icmpv6-type echo-request -j DNAT --to-destination fd63:676e:6174::2",
    ]


def test_homelab_rules6_are_its_connmark_lines():
    """The same connmark lines; the self check's INPUT rule is IPv4's only (it checks IPv4)."""
    four, six = render_rules(homelab()), render_rules(homelab(), family=6)
    assert six.startswith("# ip6tables-restore")
    assert six.split("\n", 1)[1] == four.split("\n", 1)[1].split("*filter\n")[0]


@pytest.mark.parametrize("answers_", [lambda: homelab(), lambda: bridge(public_address6="2001:db8::7"),
                                      lambda: bridge(public_address6="2001:db8::7", forward=["udp/53", "icmp"])])
@pytest.mark.root
def test_rules6_parse_in_ip6tables_restore(answers_):
    done = subprocess.run(["unshare", "--net", "ip6tables-restore", "--test", "--noflush"],
                          input=render_rules(answers_(), family=6), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_hook_commands_show_ipv6_only_where_it_is_forwarded():
    assert not any("ip6" in c or "ipv6" in c for c in hook_commands(bridge()))
    dual = hook_commands(bridge(public_address6="2001:db8::7"))
    assert "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding" in dual
    assert any(c.startswith("ip6tables-restore --noflush < /etc/cgnat/wg0.rules6") for c in dual)
    homelab_commands = hook_commands(homelab())
    assert "ip -6 rule add from fd63:676e:6174::2 table 200 pref 1001  (if wg0 has IPv6 enabled)" in homelab_commands
    assert "ip -6 address add fd63:676e:6174::2/64 dev wg0  (if wg0 has IPv6 enabled)" in homelab_commands


def test_the_homelabs_tunnel_ula_is_the_up_hooks_not_an_address_line():
    """wg-quick fails on an Address it cannot set (IPv6 disabled): the hook adds it where it can."""
    conf = render.render_wg_conf(homelab(), "k")
    assert "Address = fd" not in conf and "the up hook adds fd63:676e:6174::2/64" in conf
