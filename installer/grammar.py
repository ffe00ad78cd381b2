"""One strict grammar for each kind of value a user types or pastes.

Answers files, pairing tokens and the wizard's fields all go through these, before a
value reaches a file, a rule or a command line. Every pattern is matched whole
(`re.fullmatch`; `$` would let a trailing newline through) over ASCII only (`[0-9]`,
never `\\d`, which takes any Unicode digit).

No string value may hold a character outside printable ASCII (U+0020-U+007E): not a control
character, and not any non-ASCII one either. The values reach root's commands
(restart_command, action_command), files the hooks source and the kernel's names, where a
bidi override (U+202E), a line separator (U+2028) or a zero-width space (U+200B) makes what
runs differ from what a reviewer reads. No key needs more: host names are punycode
(xn--...), addresses, ports, keys and interface names are ASCII by their own grammars, and
a command or a path can be written in ASCII. One rule, not a list of Unicode categories,
which grows with each Unicode version and differs between the Pythons we run on.
"""
from __future__ import annotations

import ipaddress
import re
import unicodedata

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_PORT = r"[1-9][0-9]{0,4}"   # no leading zero: iptables reads 010 as octal 8
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"

IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}", re.ASCII)
IPV4_NETWORK = re.compile(rf"{IPV4.pattern}/(?:3[0-2]|[12]?[0-9])", re.ASCII)
IPV6 = re.compile(r"[0-9A-Fa-f:.]{2,45}", re.ASCII)   # then ipaddress; no "%scope"
# An IPv6 network in plain hex groups (no embedded IPv4 dotted quad), then ipaddress.
IPV6_NETWORK = re.compile(r"[0-9A-Fa-f:]{2,39}/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9])", re.ASCII)
HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\.?", re.ASCII)
PORT = re.compile(_PORT, re.ASCII)
PORT_SPEC = re.compile(rf"(tcp|udp)/({_PORT})(?:-({_PORT}))?", re.ASCII)
# What the kernel, wg-quick and iptables all take as a plain name: no "+" (an iptables
# wildcard), no leading "-" (an option), none of "/", ":", "%" or blanks.
# A DNS server: an IPv4 address or a name, or an IPv6 address in brackets, with an optional port.
DNS_SERVER = re.compile(rf"(?:\[(?P<ipv6>[0-9A-Fa-f:]{{2,39}})\]|(?P<host>[A-Za-z0-9.-]{{1,253}}))(?::(?P<port>{_PORT}))?",
                        re.ASCII)
# A peer's endpoint as WireGuard reports it (`wg show IFACE endpoints`): an IPv4 address, or an
# IPv6 address in brackets (no scope id, no dotted quad), and a port; never a name. The bridge's
# watchdog records the homelab's (cgnat_bridge/watchdog.py); its up hook checks the same shape.
REPORTED_ENDPOINT = re.compile(rf"(?:{IPV4.pattern}|\[(?P<ipv6>[0-9A-Fa-f:]{{2,39}})\]):(?P<port>{_PORT})", re.ASCII)
INTERFACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=-]{0,14}", re.ASCII)
RESERVED_INTERFACES = {"all", "default"}   # /proc/sys/net/*/conf/{all,default}
FWMARK = re.compile(r"0[xX][0-9A-Fa-f]{1,8}|[1-9][0-9]{0,9}", re.ASCII)
WIREGUARD_KEY = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=", re.ASCII)
ABSOLUTE_PATH = re.compile(r"/[^\x00-\x1f\x7f-\x9f]*", re.ASCII)
# A directory a unit file may name as is (ReadWritePaths=): letters, digits, "_", "-", ".".
SAFE_DIRECTORY = re.compile(r"(?:/[A-Za-z0-9_.-]+)+/?", re.ASCII)

ULA = ipaddress.IPv6Network("fc00::/7")            # unique local addresses (RFC 4193)
GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")  # what a public IPv6 address is in
ULA_MAX_PREFIXLEN = 64                               # a /64 or shorter: room for ::1 and ::2
ULA_MIN_PREFIXLEN = 48                               # one site's ULA prefix at most (RFC 4193)
# Where an IPv4 tunnel may lie: private (RFC 1918) and CGNAT (RFC 6598) space, at most a /16
# (a pasted token's tunnel becomes the homelab's routes: 32.0.0.0/3 would take an eighth of
# the Internet there).
TUNNEL_SPACES = tuple(ipaddress.IPv4Network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"))
TUNNEL_MIN_PREFIXLEN = 16
TUNNEL_MAX_PREFIXLEN = 30                            # room for .1 and .2

# Networks a tunnel, a public address or a peer's address must never be in (or overlap),
# with what they are.
UNUSABLE = {ipaddress.ip_network(n): what for n, what in (
    ("0.0.0.0/8", "\"this network\""),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved, and the broadcast address"),
)}
UNUSABLE_NETWORKS = tuple(UNUSABLE)
# IPv6 addresses no peer is reached at, first match wins (::/96 holds :: and ::1).
UNUSABLE6 = {ipaddress.ip_network(n): what for n, what in (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "IPv4-mapped (write the IPv4 address itself)"),
    ("::/96", "IPv4-compatible (deprecated)"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
)}
# What libc's inet_aton (so getaddrinfo, ping, ssh) reads as an IPv4 address, not as a name:
# one to four parts, each decimal, octal (leading 0) or hex (0x): 127.1, 0x7f000001,
# 2130706433, 0177.0.0.1.
_ATON_PART = r"(?:0[xX][0-9A-Fa-f]*|[0-9]+)"
INET_ATON = re.compile(rf"{_ATON_PART}(?:\.{_ATON_PART}){{0,3}}", re.ASCII)
# Names that are this host by definition (RFC 6761; Debian's /etc/hosts adds the ip6- ones).
LOOPBACK_NAMES = ("localhost", "ip6-localhost", "ip6-loopback")


def character_problem(text: str) -> str | None:
    """What is wrong with the first character outside printable ASCII in `text`, or None."""
    found = NOT_PRINTABLE_ASCII.search(text)
    if found is None:
        return None
    if CONTROL.fullmatch(found.group()):
        return "holds a control character (a newline, tab, ...)"
    char = found.group()
    name = unicodedata.name(char, "unnamed")
    return (f"holds U+{ord(char):04X} ({name}) at character {found.start() + 1}; only printable ASCII "
            f"is taken (host names in punycode, xn--...)")


def is_port(text: str) -> bool:
    return PORT.fullmatch(text) is not None and int(text) <= 65535


def is_ipv4(text: str) -> bool:
    return IPV4.fullmatch(text) is not None


def is_ipv6(text: str) -> bool:
    if IPV6.fullmatch(text) is None:
        return False
    try:
        ipaddress.IPv6Address(text)
        return True
    except ValueError:
        return False


def is_reported_endpoint(text: str) -> bool:
    """An endpoint as WireGuard reports it: "203.0.113.7:51820" or "[2001:db8::7]:51820"."""
    match = REPORTED_ENDPOINT.fullmatch(text)
    return (match is not None and is_port(match.group("port"))
            and (match.group("ipv6") is None or is_ipv6(match.group("ipv6"))))


def is_hostname(text: str) -> bool:
    """A DNS name; an all-numeric last label is a mistyped address, and what inet_aton takes
    (0x7f000001, 127.1) is an address in disguise, not a name."""
    return (HOSTNAME.fullmatch(text) is not None and not text.rstrip(".").rpartition(".")[2].isdigit()
            and INET_ATON.fullmatch(text.rstrip(".")) is None)


def is_safe_directory(text: str) -> bool:
    """An absolute path of safe characters, without "." or ".." components."""
    return (SAFE_DIRECTORY.fullmatch(text) is not None
            and not {".", ".."} & set(text.strip("/").split("/")))


def is_interface(text: str) -> bool:
    return INTERFACE.fullmatch(text) is not None and text not in RESERVED_INTERFACES


def ipv4_network(text: str) -> ipaddress.IPv4Network | None:
    """The network of "10.0.0.0/24" (host bits allowed), or None."""
    if IPV4_NETWORK.fullmatch(text) is None:
        return None
    return ipaddress.IPv4Network(text, strict=False)


def network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """An IPv4 or IPv6 network ("10.0.0.0/24", "fd00::/64"; host bits allowed) or address
    (a /32 or /128), no scope id; or None."""
    if is_ipv4(text) or is_ipv6(text) and "." not in text:
        return ipaddress.ip_network(text)
    if IPV6_NETWORK.fullmatch(text) is None:
        return ipv4_network(text)
    try:
        return ipaddress.IPv6Network(text, strict=False)
    except ValueError:
        return None


def ula_network(text: str) -> ipaddress.IPv6Network | None:
    """The network of a ULA prefix of /48 to /64 like "fd63:676e:6174::/64" (host bits
    allowed), or None."""
    if IPV6_NETWORK.fullmatch(text) is None:
        return None
    try:
        network = ipaddress.IPv6Network(text, strict=False)
    except ValueError:
        return None
    fits = network.subnet_of(ULA) and ULA_MIN_PREFIXLEN <= network.prefixlen <= ULA_MAX_PREFIXLEN
    return network if fits else None


def tunnel_problem(network: ipaddress.IPv4Network) -> str | None:
    """Why an IPv4 network cannot be a tunnel, or None."""
    if (unusable_network := unusable(network)) is not None:
        return f"{network} overlaps {unusable_network}, which cannot carry a tunnel"
    if not any(network.subnet_of(space) for space in TUNNEL_SPACES):
        return (f"{network} is not in private or CGNAT space "
                f"({', '.join(map(str, TUNNEL_SPACES))}); like 10.0.0.0/24")
    if network.prefixlen < TUNNEL_MIN_PREFIXLEN:
        return f"{network} is broader than /{TUNNEL_MIN_PREFIXLEN}; a tunnel needs two addresses, like 10.0.0.0/24"
    if network.prefixlen > TUNNEL_MAX_PREFIXLEN:
        return f"must hold at least two hosts (a prefix of /{TUNNEL_MAX_PREFIXLEN} or shorter)"
    return None


def is_global_ipv6(text: str) -> bool:
    """A global unicast IPv6 address (2000::/3), no scope id: never link-local, loopback,
    multicast, unspecified, IPv4-mapped or unique local."""
    return is_ipv6(text) and "." not in text and ipaddress.IPv6Address(text) in GLOBAL_UNICAST


def unusable(network) -> ipaddress.IPv4Network | None:
    """The unusable network that `network` (or an address) overlaps, or None."""
    network = ipaddress.ip_network(network)
    return next((n for n in UNUSABLE_NETWORKS if n.overlaps(network)), None)


def address_problem(text: str) -> str | None:
    """Why an IP address (valid) is no peer's nor a public host's: loopback, unspecified,
    broadcast, multicast, link-local, IPv4-mapped; or None."""
    address = ipaddress.ip_address(text)
    table = UNUSABLE if address.version == 4 else UNUSABLE6
    what = next((what for network, what in table.items() if address in network), None)
    return None if what is None else f"{text} is {what}: not the address of another host"


def is_loopback_name(text: str) -> bool:
    """localhost and its kin: names of this host, whatever DNS says."""
    name = text.rstrip(".").lower()
    return name in LOOPBACK_NAMES or name.endswith(".localhost")


def port_range(spec: str) -> tuple[str, int, int] | None:
    """("tcp", low, high) of "tcp/80" or "udp/51900-51910", or None."""
    match = PORT_SPEC.fullmatch(spec)
    if not match:
        return None
    low, high = int(match.group(2)), int(match.group(3) or match.group(2))
    return (match.group(1), low, high) if low <= high <= 65535 else None


def endpoint_problem(endpoint: str) -> str | None:
    """What is wrong with a "host:port" endpoint, or None. IPv6 in brackets, no scope id."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or host.count(":") and not host.startswith("["):
        return f"{endpoint!r} has no port; write it like \"203.0.113.7:51820\" or \"[2001:db8::7]:51820\""
    if not is_port(port):
        return f"port {port!r} is not a port number (1-65535, no leading zero)"
    if host.startswith("[") and host.endswith("]"):
        return address_problem(host[1:-1]) if is_ipv6(host[1:-1]) else f"{host!r} is not an IPv6 address (no scope id)"
    if is_ipv4(host):
        return address_problem(host)
    if is_hostname(host):
        return f"{host} is this host's own name: not the address of another host" if is_loopback_name(host) else None
    return f"{host!r} is not a host name or IPv4 address"


def dns_server(text: str, default_port: int = 53) -> tuple[str, int] | None:
    """(host, port) of a DNS server: "192.0.2.53", "ns1.example.org:5353", "[2001:db8::53]:5353"
    or a bare "2001:db8::53" (then no port); None when it is none of these, or an address no
    server has (unspecified, multicast). A server on this host (127.0.0.1) is one."""
    if is_ipv6(text) and "." not in text:
        host, port = text, str(default_port)
    elif (match := DNS_SERVER.fullmatch(text)) is None:
        return None
    else:
        host, port = match.group("ipv6") or match.group("host"), match.group("port") or str(default_port)
        if not (is_ipv6(host) if match.group("ipv6") else is_ipv4(host) or is_hostname(host)) or not is_port(port):
            return None
    address = None if is_hostname(host) else ipaddress.ip_address(host)
    return None if address is not None and (address.is_unspecified or address.is_multicast) else (host, int(port))
