"""Issue 18, the values: a well-formed value is still refused when its consumer would misread
it (the kernel's routing, ip rule, wg-quick, libc's resolver, the watchdog's arithmetic)."""
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from installer import detect, grammar, setup
from installer.errors import InvalidAnswers
from installer.pairing import PairingToken
from installer.validate import load_answers

from unitdata import PEER_PUBLIC


def problems(data, facts=None):
    with pytest.raises(InvalidAnswers) as raised:
        load_answers(data, None, facts)
    return {p.key: p.message for p in raised.value.problems}


def bridge(**keys):
    return {"role": "bridge", "bridge": {"public_interface": "ens3", **keys}}


def homelab(**keys):
    return {"role": "homelab", "homelab": {"endpoint": "203.0.113.7:51820", **keys}}


# --- 1. tunnel ranges: private, CGNAT or ULA space, never too broad, clear of the host's routes ---

def test_a_tokens_tunnel_of_an_eighth_of_the_internet_is_refused():
    token = PairingToken("bridge", PEER_PUBLIC, "203.0.113.7:51820", "32.0.0.0/3", "2222", "all").encode()
    with pytest.raises(InvalidAnswers) as raised:
        setup.load(b"", token, "homelab", None)
    assert {p.key: p.message for p in raised.value.problems} == {
        "tunnel": "32.0.0.0/3 is not in private or CGNAT space (10.0.0.0/8, 172.16.0.0/12, "
                  "192.168.0.0/16, 100.64.0.0/10); like 10.0.0.0/24"}


@pytest.mark.parametrize("tunnel, message", [
    ("203.0.113.0/24", "is not in private or CGNAT space"),
    ("8.8.8.0/24", "is not in private or CGNAT space"),
    ("10.0.0.0/8", "10.0.0.0/8 is broader than /16"),
    ("100.64.0.0/10", "is broader than /16"),
    ("172.0.0.0/8", "is not in private or CGNAT space"),
    ("127.0.0.0/24", "which cannot carry a tunnel"),
])
def test_an_ipv4_tunnel_outside_private_space_or_too_broad_is_refused(tunnel, message):
    assert message in problems({**bridge(), "tunnel": tunnel})["tunnel"]


@pytest.mark.parametrize("tunnel", ["10.1.0.0/16", "172.31.255.0/24", "192.168.7.0/30", "100.127.0.0/24"])
def test_private_and_cgnat_tunnels_pass(tunnel):
    assert load_answers({**bridge(), "tunnel": tunnel}, None, None).tunnel == tunnel


@pytest.mark.parametrize("tunnel6", ["fd00::/8", "fc00::/7", "fd63:676e::/32", "fd63:676e:6174::/47", "2001:db8::/64"])
def test_a_tunnel6_outside_ula_or_broader_than_48_is_refused(tunnel6):
    assert "is not a unique local IPv6 network of /48 to /64" in problems({**bridge(), "tunnel6": tunnel6})["tunnel6"]


def test_a_tokens_tunnel6_of_a_whole_ula_is_refused():
    token = PairingToken("bridge", PEER_PUBLIC, "203.0.113.7:51820", "10.0.0.0/24", "2222", "all", "fc00::/7").encode()
    with pytest.raises(InvalidAnswers) as raised:
        setup.load(b"", token, "homelab", None)
    assert [p.key for p in raised.value.problems] == ["tunnel6"]


def test_tunnel6_on_the_lans_ula_route_is_refused(facts):
    lan = detect.routes('[{"dst":"fd63:676e:6174::/64","dev":"eth0","protocol":"ra","metric":100},'
                        '{"dst":"fe80::/64","dev":"eth0","protocol":"kernel","metric":256},'
                        '{"dst":"fd00::5","dev":"eth0"}]')
    assert lan == [("fd63:676e:6174::/64", "eth0"), ("fe80::/64", "eth0"), ("fd00::5/128", "eth0")]
    facts.routes += lan
    assert problems(bridge(), facts)["tunnel6"] == "overlaps the route fd63:676e:6174::/64 dev eth0 of this host"
    facts.routes[-3] = ("fd63:676e:6174::/64", "wg0")     # our own tunnel's route: no clash
    assert load_answers(bridge(), None, facts).tunnel6 == "fd63:676e:6174::/64"


@given(st.ip_addresses(v=4) | st.sampled_from(["10.0.0.0/7", "172.0.0.0/8", "192.168.0.0/15", "100.0.0.0/8"])
       .flatmap(lambda near: st.ip_addresses(network=near)), st.integers(0, 32))
@settings(max_examples=300)
def test_every_accepted_ipv4_tunnel_is_private_or_cgnat_and_at_most_a_16(address, prefixlen):
    tunnel = f"{address}/{prefixlen}"
    try:
        answers = load_answers({**bridge(), "tunnel": tunnel}, None, None)
    except InvalidAnswers as invalid:
        assert [p.key for p in invalid.problems] == ["tunnel"]
        return
    network = ipaddress.ip_network(answers.tunnel, strict=False)
    assert 16 <= network.prefixlen <= 30
    assert any(network.subnet_of(space) for space in grammar.TUNNEL_SPACES)


@given(st.ip_addresses(v=6) | st.ip_addresses(network="fc00::/6"), st.integers(0, 128))
@settings(max_examples=300)
def test_every_accepted_tunnel6_is_ula_of_48_to_64(address, prefixlen):
    network = grammar.ula_network(f"{address}/{prefixlen}")
    if network is not None:
        assert network.subnet_of(grammar.ULA) and 48 <= network.prefixlen <= 64


# --- 2. routing tables and interface names other tools or the host already use ---

@pytest.mark.parametrize("table, tool", [(52, "Tailscale"), (51820, "wg-quick")])
def test_the_tables_of_well_known_tools_are_refused(table, tool):
    assert problems(homelab(table=table))["homelab.table"] == \
        f"{table} is the routing table of {tool}; choose another, like 200"


RULES4 = ('[{"priority":0,"src":"all","table":"255"},{"priority":1000,"src":"all","fwmark":"0x1000000",'
          '"fwmask":"0x1000000","table":"200"},{"priority":1001,"src":"10.0.0.2","table":"200"},'
          '{"priority":2000,"src":"192.168.1.0","srclen":24,"table":"300"},'
          '{"priority":32766,"src":"all","table":"254"}]')
RULES6 = '[{"priority":0,"src":"all","table":"255"},{"priority":7,"src":"fd00::9","table":"301"}]'


def test_ip_rules_are_read_with_their_tables_sources_and_marks():
    rules = detect.ip_rules(RULES4) + detect.ip_rules(RULES6)
    assert detect.IpRule(200, "all", 0x1000000, 1000) in rules and detect.IpRule(301, "fd00::9", None, 7) in rules
    assert [r.table for r in rules] == [255, 200, 200, 300, 254, 255, 301]
    assert detect.ip_rules('[{"priority":5,"src":"all","action":"unreachable"}]') == []


@pytest.mark.parametrize("table, rule", [(300, "2000: from 192.168.1.0/24 lookup 300"),
                                         (301, "7: from fd00::9 lookup 301")])
def test_a_table_the_hosts_ip_rules_use_is_refused_in_both_families(facts, table, rule):
    facts.ip_rules = detect.ip_rules(RULES4) + detect.ip_rules(RULES6)
    assert problems(homelab(docker_subnets=[], table=table), facts)["homelab.table"] == \
        f"{table} is already looked up by this host's ip rule \"{rule}\"; choose another"


def test_the_tables_of_our_own_rules_are_no_clash(facts):
    facts.ip_rules = detect.ip_rules(RULES4)     # this tunnel's fwmark and "from 10.0.0.2" rules
    assert load_answers(homelab(docker_subnets=[]), None, facts).homelab.table == 200
    # The tunnel changed since: its old "from" rule beside its fwmark rule is still ours.
    assert load_answers(homelab(docker_subnets=[]) | {"tunnel": "10.1.0.0/24"}, None, facts).homelab.table == 200
    facts.ip_rules.append(detect.IpRule(200, "all", 0x2000000, 1000))     # another tunnel's mark
    assert "already looked up by this host's ip rule \"1000: from all fwmark 0x2000000 lookup 200\"" in \
        problems(homelab(docker_subnets=[]), facts)["homelab.table"]
    facts.ip_rules[-1] = detect.IpRule(200, "10.9.0.2", None, 1001)       # beside our fwmark rule: ours, earlier
    assert load_answers(homelab(docker_subnets=[]), None, facts).homelab.table == 200
    facts.ip_rules[-1] = detect.IpRule(200, "10.9.0.2", None, 900)
    assert "\"900: from 10.9.0.2 lookup 200\"" in problems(homelab(docker_subnets=[]), facts)["homelab.table"]


ADDR = ('[{"ifname":"lo","addr_info":[]},{"ifname":"eth0","addr_info":[]},'
        '{"ifname":"br0","linkinfo":{"info_kind":"bridge"},"addr_info":[]},'
        '{"ifname":"wg0","linkinfo":{"info_kind":"wireguard"},"addr_info":[]},'
        '{"ifname":"wg1","linkinfo":{"info_kind":"tun","info_data":{"type":"tun"}},"addr_info":[]},'
        '{"ifname":"tun0","linkinfo":{"info_kind":"tun"},"addr_info":[]}]')


def addr_facts(facts):
    facts.interfaces.update(detect.interfaces(ADDR))
    facts.link_kinds = detect.link_kinds(ADDR)
    facts.wireguard_configs = frozenset({"/etc/wireguard/wg1.conf"})
    return facts


def test_link_kinds_come_from_linkinfo():
    assert detect.link_kinds(ADDR) == {"lo": "", "eth0": "", "br0": "bridge", "wg0": "wireguard",
                                       "wg1": "tun", "tun0": "tun"}


@pytest.mark.parametrize("name, kind", [("eth0", "network"), ("lo", "network"), ("br0", "bridge"), ("tun0", "tun")])
def test_an_existing_link_that_is_not_a_wireguard_tunnel_is_refused(facts, name, kind):
    found = problems({**bridge(), "interface": name}, addr_facts(facts))
    assert found["interface"] == (f"{name} is an existing {kind} link of this host, not a WireGuard "
                                  f"tunnel; choose another name, like wg0")


@pytest.mark.parametrize("name", ["wg0", "wg1", "wg7"])
def test_a_wireguard_link_wireguard_gos_with_its_config_or_a_new_name_passes(facts, name):
    assert load_answers({**bridge(), "interface": name}, None, addr_facts(facts)).interface == name


# --- 3. numbers: every integer has a sane maximum; the answers file itself has one too ---

SECONDS = ["check_interval", "restart_after", "restart_interval", "action_after", "action_interval", "boot_grace"]


@pytest.mark.parametrize("key", SECONDS + ["max_reboots_per_day"])
@pytest.mark.parametrize("value", [10**309, 2**63, 10**7])
def test_a_huge_watchdog_number_is_refused_with_its_key(key, value):
    found = problems(homelab(watchdog={key: value}))
    assert list(found) == [f"homelab.watchdog.{key}"]
    assert found[f"homelab.watchdog.{key}"].startswith("must be at most ")
    assert len(found[f"homelab.watchdog.{key}"]) < 100          # never the 310 digits


def test_the_bridges_silent_after_and_the_ports_are_bounded_too():
    assert problems(bridge(watchdog_silent_after=10**309))["bridge.watchdog_silent_after"] == \
        "must be at most 604800 seconds (a week), not a number of 310 digits"
    assert problems(homelab(watchdog={"check_port": 10**309}))["homelab.watchdog.check_port"] == \
        "a number of 310 digits is not a port (1-65535)"


def test_the_largest_accepted_numbers_never_crash_the_watchdogs_decision():
    from cgnat_homelab.decision import Config, Observation, State, decide
    top = {key: 7 * 24 * 3600 for key in SECONDS} | {"max_reboots_per_day": 24}
    answers = load_answers(homelab(watchdog=top), None, None)
    config, state = Config.from_answers(answers), State()
    for t in range(0, 10 * 7 * 24 * 3600, 7 * 24 * 3600):
        obs = Observation(now=1.7e9 + t, uptime=3600.0 + t, interface_up=True, probe_ok=False, e2e_ok=False,
                          bridge_ssh_ok=True, endpoint="203.0.113.7:51820",
                          resolved_endpoint="203.0.113.7:51820", handshake_age=None)
        steps, state, _ = decide(config, obs, state)
    assert state.failing_since is not None


def test_a_5000_digit_integer_is_a_syntax_problem(tmp_path):
    with pytest.raises(InvalidAnswers) as raised:
        setup.load(b'role = "homelab"\nkeepalive = ' + b"9" * 5000 + b"\n", None, None, None)
    assert [(p.key, p.message) for p in raised.value.problems] == [
        ("(syntax)", "a number is too long to read (more than 4300 digits)")]


def test_an_endless_answers_file_is_read_only_to_its_limit(tmp_path):
    raw = setup.read_source("/dev/zero", tmp_path)
    assert len(raw) == 2**20 + 1
    with pytest.raises(InvalidAnswers) as raised:
        setup.load(raw, None, None, None)
    assert [p.key for p in raised.value.problems] == ["(syntax)"]
    assert "longer than 1048576 bytes" in raised.value.problems[0].message


# --- 4. endpoint and check_host: another host's address, never this one's nor the tunnel's ---

NOT_ANOTHER_HOST = ["localhost", "LocalHost.", "ip6-loopback", "db.localhost", "127.0.0.1", "127.3.4.5",
                    "0.0.0.0", "255.255.255.255", "224.0.0.1", "239.1.2.3",
                    "169.254.1.1"]
NOT_ANOTHER_HOST6 = ["[::1]", "[::]", "[ff02::1]", "[fe80::1]", "[::ffff:127.0.0.1]", "[::ffff:203.0.113.7]",
                     "[::127.0.0.1]"]
INET_ATON_FORMS = ["0x7f000001", "127.1", "2130706433", "0177.0.0.1", "0x7f.1", "127.0.0.0x1", "0x7f000001."]


@pytest.mark.parametrize("host", NOT_ANOTHER_HOST + NOT_ANOTHER_HOST6)
def test_an_endpoint_that_is_not_another_hosts_address_is_refused(host):
    message = problems(homelab(endpoint=f"{host}:51820"))["homelab.endpoint"]
    assert "not the address of another host" in message, message


@pytest.mark.parametrize("host", INET_ATON_FORMS)
def test_a_name_libc_reads_as_an_address_is_no_name(host):
    assert not grammar.is_hostname(host)
    assert "homelab.endpoint" in problems(homelab(endpoint=f"{host}:51820"))
    assert problems(homelab(watchdog={"check_host": host}))["homelab.watchdog.check_host"] == \
        f"{host!r} is not a host name or address"


@pytest.mark.parametrize("host", NOT_ANOTHER_HOST)
def test_a_check_host_that_makes_the_check_always_pass_is_refused(host):
    found = problems(homelab(watchdog={"check_host": host}))
    assert "not the address of another host" in found["homelab.watchdog.check_host"]


def test_the_tunnels_own_addresses_are_no_endpoint_nor_check_host():
    assert problems(homelab(watchdog={"check_host": "10.0.0.1"}))["homelab.watchdog.check_host"] == \
        ("10.0.0.1 is inside the tunnel 10.0.0.0/24: the check would never leave it; use the public "
         "name that points at the bridge")
    assert problems(homelab(endpoint="10.0.0.1:51820"))["homelab.endpoint"] == \
        "10.0.0.1:51820 is inside the tunnel 10.0.0.0/24: the tunnel cannot run through itself"
    assert "inside the tunnel fd63:676e:6174::/64" in \
        problems(homelab(endpoint="[fd63:676e:6174::1]:51820"))["homelab.endpoint"]


@pytest.mark.parametrize("endpoint", ["203.0.113.7:51820", "[2001:db8::7]:51820", "bridge.example.org:51820",
                                      "192.168.1.5:51820", "0x7f000001.example.org:51820", "host-127-1.example:1"])
def test_other_hosts_still_pass(endpoint):
    answers = load_answers(homelab(endpoint=endpoint, watchdog={"check_host": endpoint.rpartition(":")[0].strip("[]")
                                                                if "[" not in endpoint else "example.org"}), None, None)
    assert answers.homelab.endpoint == endpoint


@given(st.ip_addresses())
@settings(max_examples=300)
def test_every_accepted_endpoint_address_is_another_hosts(address):
    host = f"[{address}]" if address.version == 6 else str(address)
    if grammar.endpoint_problem(f"{host}:51820") is None:
        assert not (address.is_loopback or address.is_unspecified or address.is_multicast or address.is_link_local)
        assert address.version == 4 or address.ipv4_mapped is None
        assert str(address) != "255.255.255.255"


# --- 5. keep_local never silently shadows an entry of forward ---

@pytest.mark.parametrize("keep, forward, j", [
    ("tcp/80", ["tcp/80"], 0), ("tcp/8000-8100", ["udp/53", "tcp/8080"], 1), ("udp/60", ["udp/1-100"], 0),
    ("tcp/90-200", ["tcp/443", "tcp/50-90"], 1)])
def test_keep_local_overlapping_a_forwarded_entry_names_both(keep, forward, j):
    found = problems(bridge(keep_local=["tcp/25", keep], forward=forward))
    assert found == {"bridge.keep_local[1]": f"{keep} overlaps bridge.forward[{j}] {forward[j]}: the bridge "
                                             f"would keep what it is told to forward; remove it from one of them"}


@pytest.mark.parametrize("keep, forward", [("tcp/80", "all"), ("udp/80", ["tcp/80"]),
                                           ("tcp/81-90", ["tcp/80", "tcp/91"])])
def test_keep_local_beside_forward_passes(keep, forward):
    assert load_answers(bridge(keep_local=[keep], forward=forward), None, None).bridge.keep_local == [keep]


# --- 6. characters: printable ASCII only, in every string value ---

INVISIBLE = ["\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u2028", "\u2029", "\u200b", "\u200c",
             "\u200d", "\ufeff", "\u00a0", "\u00ad", "\u061c", "\U000e0001"]


@pytest.mark.parametrize("char", INVISIBLE)
@pytest.mark.parametrize("key, where", [
    ("restart_command", "watchdog"), ("action_command", "watchdog"), ("check_host", "watchdog"),
    ("endpoint", "homelab")])
def test_invisible_and_bidi_characters_are_refused_in_root_commands_and_names(char, key, where):
    value = f"systemctl restart wg-quick@wg0{char} # harmless"
    data = homelab(watchdog={key: value}) if where == "watchdog" else homelab(**{key: value})
    path = f"homelab.watchdog.{key}" if where == "watchdog" else f"homelab.{key}"
    found = problems(data)
    assert found[path].startswith(f"holds U+{ord(char):04X} (") and "at character 31" in found[path], found


def test_the_message_names_the_character_and_control_characters_keep_theirs():
    assert problems(homelab(watchdog={"restart_command": "true \u202e"}))["homelab.watchdog.restart_command"] == \
        ("holds U+202E (RIGHT-TO-LEFT OVERRIDE) at character 6; only printable ASCII is taken "
         "(host names in punycode, xn--...)")
    assert problems({**bridge(), "interface": "wg0\n"})["interface"] == \
        "holds a control character (a newline, tab, ...)"


def test_a_quoted_key_with_a_bidi_override_is_shown_escaped():
    assert "homelab.\\u202ekeepalive" in problems(homelab(**{"\u202ekeepalive": 1}))


@given(st.text(min_size=1, max_size=30))
@settings(max_examples=300)
def test_every_accepted_string_value_is_printable_ascii(text):
    try:
        answers = load_answers(homelab(watchdog={"restart_command": text, "action_command": text}), None, None)
    except InvalidAnswers as invalid:
        assert {p.key for p in invalid.problems} <= {"homelab.watchdog.restart_command",
                                                     "homelab.watchdog.action_command"}
        return
    assert all(" " <= c <= "~" for c in answers.homelab.watchdog.restart_command)


# --- 8. detected values are input too: the same grammar, else absent and named ---

HOSTILE_NAMES = ["x y", "eth0\nCGNAT_TABLE=$(reboot)", "$(id)", "-i", "eth0\u202e", "a" * 16, "all", "", 7, None]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_default_route_interface_is_absent_and_named(facts, name):
    import json
    route = json.dumps([{"dst": "default", "gateway": "198.51.100.254", "dev": name}])
    refused = {}
    assert detect.default_route_interface(route, refused) is None
    facts.default_interface, facts.refused = None, refused
    message = problems({"role": "bridge"}, facts)["bridge.public_interface"]
    shown = name if isinstance(name, str) else json.dumps(name)
    assert message == f"the default route's interface {shown!r} is not a valid name; set it"
    assert "\n" not in message and "\u202e" not in message


def test_hostile_links_and_addresses_are_left_out_and_named():
    import json
    addr = json.dumps([
        {"ifname": "ens3", "linkinfo": {"info_kind": "veth\n"}, "addr_info": [
            {"local": "198.51.100.1\nCGNAT_X=1", "prefixlen": 24}, {"local": "fe80::1%ens3", "prefixlen": 64},
            {"local": "198.51.100.2", "prefixlen": "24"}, {"local": "198.51.100.3", "prefixlen": 33},
            {"local": "2001:db8::7", "prefixlen": 64}]},
        {"addr_info": []}, {"ifname": "docker0 x", "addr_info": [{"local": "172.17.0.1", "prefixlen": 16}]},
        {"ifname": "docker0", "addr_info": [{"local": "172.18.0.1", "prefixlen": 16}, {"local": "1.2.3.4/8"}]},
        "not a link"])
    refused = {}
    assert detect.interfaces(addr, refused) == {"ens3": ["2001:db8::7/64"], "docker0": ["172.18.0.1/16"]}
    assert refused[detect.LINK_NAME] == "docker0 x" and detect.address_of("ens3") in refused
    assert detect.link_kinds(addr) == {"ens3": "", "docker0": ""}
    assert detect.docker_subnets(addr) == ["172.18.0.0/16"]


def test_a_bridge_whose_address_is_refused_is_told_to_set_it(facts):
    refused = {}
    facts.interfaces = detect.interfaces('[{"ifname":"ens3","addr_info":[{"local":"198.51.100.1 ","prefixlen":24}]}]',
                                         refused)
    facts.refused = refused
    assert problems({"role": "bridge"}, facts)["bridge.public_address"] == \
        "ens3's address '198.51.100.1 ' is not a valid address; set it"


@pytest.mark.parametrize("output", ["", "not json", "{}", '{"dst": "default"}', "[" * 100000, "[1, [2], null]",
                                    '[{"dst": "default", "dev": ["eth0"]}]'])
def test_output_that_is_not_ip_json_is_no_facts_and_no_crash(output):
    assert detect.interfaces(output) == {} and detect.routes(output) == [] and detect.ip_rules(output) == []
    assert detect.default_route_interface(output) is None and detect.docker_subnets(output) == []


def test_hostile_routes_and_rules_are_left_out():
    refused = {}
    found = detect.routes('[{"dst":"10.9.0.0/16 dev wg0","dev":"eth0"},{"dst":"10.8.0.0/16","dev":"eth0 x"},'
                          '{"dst":"10.7.0.0/16","dev":"eth0"},{"dst":"fd00::1%eth0","dev":"eth0"},'
                          '{"dst":"10.6.0.0/16"},{"dst":"10.5.0.0/33","dev":"eth0"}]', refused)
    assert found == [("10.7.0.0/16", "eth0"), ("10.6.0.0/16", "")] and detect.ROUTE in refused
    rules = detect.ip_rules('[{"src":"all\\n","table":"300"},{"src":"all","table":"٣٠٠"},'
                            '{"src":"all","fwmark":"0x1 x","table":"301"},{"src":"all","table":"302"}]', refused)
    assert rules == [detect.IpRule(302)] and detect.RULE in refused


@given(st.lists(st.fixed_dictionaries({"ifname": st.text(max_size=20), "addr_info": st.lists(
    st.fixed_dictionaries({"local": st.text(max_size=45), "prefixlen": st.integers(-5, 200)}), max_size=3)}),
    max_size=4))
@settings(max_examples=300)
def test_every_detected_name_and_address_passes_the_grammar(links):
    import json
    for name, addresses in detect.interfaces(json.dumps(links)).items():
        assert grammar.is_interface(name)
        for address in addresses:
            local, _, length = address.rpartition("/")
            assert grammar.is_ipv4(local) or grammar.is_ipv6(local)
            ipaddress.ip_interface(address)


@given(st.text(alphabet="0123456789xXabcdefABCDEF.", min_size=1, max_size=24))
@settings(max_examples=500)
def test_no_accepted_host_name_is_an_address_to_libc(text):
    """The consumer's contract: what glibc's inet_aton (getaddrinfo's first try) reads as an
    IPv4 address is never taken as a name."""
    import socket
    if grammar.is_hostname(text):
        with pytest.raises(OSError):
            socket.inet_aton(text)


def test_this_hosts_own_addresses_are_no_endpoint_nor_check_host(facts):
    facts.interfaces["eth0"] = ["192.168.1.20/24", "2001:db8:1::20/64"]
    assert problems(homelab(docker_subnets=[], watchdog={"check_host": "192.168.1.20"}), facts)[
        "homelab.watchdog.check_host"] == \
        "192.168.1.20 is an address of this host (eth0): not the address of another host"
    assert problems(homelab(docker_subnets=[], endpoint="[2001:db8:1:0::020]:51820"), facts)["homelab.endpoint"] == \
        "[2001:db8:1:0::020]:51820 is an address of this host (eth0): not the address of another host"
    assert load_answers(homelab(docker_subnets=[], endpoint="192.168.1.21:51820"), None, facts)


def test_the_bridges_public_interface_is_not_its_tunnel():
    assert problems({**bridge(public_interface="wg0"), "interface": "wg0"})["bridge.public_interface"] == \
        "wg0 is the tunnel's own interface (interface); name the public one"
