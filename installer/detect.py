"""What the host already has: interfaces, routes, listening sockets, Docker subnets, sshd's host keys,
and what each role detects for itself (the bridge: its sshd, cgnat_bridge/sshd.py).

Each parser takes the text a real command printed and returns data, so tests feed them
captured output; `HostFacts.detect()` is the only place that runs the commands.
"""
from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from installer import ROLES, grammar, roles, tunnels
from installer.grammar import GLOBAL_UNICAST
from installer.manifest import MANIFEST_PATH, recorded_digests

IPV6_CONF = Path("/proc/sys/net/ipv6/conf")   # absent on a kernel booted with ipv6.disable=1
WIREGUARD_DIR = "/etc/wireguard"
SSH_DIR = Path("/etc/ssh")
# Docker names its default bridge docker0 and user-defined networks br-<12 hex digits>.
DOCKER_BRIDGE = re.compile(r"^(docker0|br-[0-9a-f]{12})$")


@dataclass(frozen=True)
class Socket:
    proto: str      # "tcp" or "udp"
    address: str    # "0.0.0.0", "*", "127.0.0.1", "[::1]" ...
    port: int
    process: str    # "sshd" or "" when ss could not tell

    @property
    def public(self) -> bool:
        """Bound to every address (so a DNAT to this host reaches it), not just loopback."""
        return not (self.address.startswith("127.") or self.address in ("[::1]", "::1"))


# Detected values are input too: each passes the grammar of its kind (installer/grammar.py)
# before validation, a plan or the env file the hooks source as root sees it. One that does
# not is left out, as if absent, and kept in `refused` (what -> the value) for the
# check that needs it to name it. The parsers add to `refused` when given one.
DEFAULT_INTERFACE = "the default route's interface"
LINK_NAME = "a link's name"
ROUTE = "a route"
RULE = "an ip rule"
LINK_KIND = re.compile(r"[a-z0-9_-]{1,32}", re.ASCII)
TABLE = re.compile(r"[1-9][0-9]{0,9}|0", re.ASCII)


def address_of(interface: str) -> str:
    """What `refused` calls an address of that interface."""
    return f"an address of {interface}"


def _refuse(refused: dict[str, str] | None, what: str, value) -> None:
    if refused is not None:
        refused[what] = value if isinstance(value, str) else json.dumps(value)[:200]


def _objects(ip_json: str) -> list[dict]:
    """The objects of `ip -j` output; nothing from output that is not a JSON list."""
    try:
        parsed = json.loads(ip_json or "[]")
    except (ValueError, RecursionError):
        return []
    return [item for item in parsed if isinstance(item, dict)] if isinstance(parsed, list) else []


def _links(ip_addr_json: str, refused: dict[str, str] | None) -> list[dict]:
    """The links whose name is an interface name (`ip -j addr`)."""
    links = []
    for link in _objects(ip_addr_json):
        name = link.get("ifname")
        if isinstance(name, str) and grammar.is_interface(name):
            links.append(link)
        else:
            _refuse(refused, LINK_NAME, name)
    return links


def _address(info) -> str | None:
    """ "ADDRESS/PREFIXLEN" of one `addr_info` entry, or None when either is not valid."""
    local, length = info.get("local"), info.get("prefixlen")
    if not isinstance(local, str) or type(length) is not int:
        return None
    limit = 32 if grammar.is_ipv4(local) else 128 if grammar.is_ipv6(local) else -1
    return f"{local}/{length}" if 0 <= length <= limit else None


def interfaces(ip_addr_json: str, refused: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Interface name -> its addresses with prefix length (`ip -j addr`)."""
    result = {}
    for link in _links(ip_addr_json, refused):
        result[link["ifname"]] = []
        infos = link.get("addr_info", [])
        for info in infos if isinstance(infos, list) else []:
            if isinstance(info, dict) and "local" in info:
                if (address := _address(info)) is not None:
                    result[link["ifname"]].append(address)
                else:
                    _refuse(refused, address_of(link["ifname"]), info.get("local"))
    return result


def link_kinds(ip_addr_json: str) -> dict[str, str]:
    """Interface name -> its kind ("wireguard", "tun", "veth", "bridge", ...; "" for a device
    without one, like lo or a NIC), from `ip -d -j addr` (linkinfo.info_kind)."""
    kinds = {}
    for link in _links(ip_addr_json, None):
        info = link.get("linkinfo")
        kind = info.get("info_kind") if isinstance(info, dict) else ""
        kinds[link["ifname"]] = kind if isinstance(kind, str) and LINK_KIND.fullmatch(kind) else ""
    return kinds


def ip_rules(ip_rule_json: str, refused: dict[str, str] | None = None) -> list[IpRule]:
    """The rules that look up a numbered table (`ip -N -j rule`, either family)."""
    result = []
    for rule in _objects(ip_rule_json):
        table, src, mark = rule.get("table", ""), rule.get("src", "all"), rule.get("fwmark")
        if isinstance(src, str) and type(rule.get("srclen")) is int:      # printed when not a host
            src = f"{src}/{rule['srclen']}"
        if not (isinstance(table, str) and TABLE.fullmatch(table)):
            continue          # a goto, an unreachable rule, a named table: none of ours to clash with
        if not (src == "all" or isinstance(src, str) and grammar.network(src) is not None) \
                or mark is not None and not (isinstance(mark, str) and grammar.FWMARK.fullmatch(mark)):
            _refuse(refused, RULE, rule)
            continue
        priority = rule.get("priority")
        result.append(IpRule(int(table), src, int(mark, 0) if mark else None,
                             priority if type(priority) is int else None))
    return result


def default_route_interface(ip_route_json: str, refused: dict[str, str] | None = None) -> str | None:
    for route in _objects(ip_route_json):
        if route.get("dst") == "default" and "dev" in route:
            dev = route["dev"]
            if isinstance(dev, str) and grammar.is_interface(dev):
                return dev
            _refuse(refused, DEFAULT_INTERFACE, dev)
            return None
    return None


def routes(ip_route_json: str, refused: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(destination network, device or "") of every non-default route (`ip -j -4 route`, `ip -j
    -6 route`); a host route's destination gets its family's full prefix length."""
    result = []
    for route in _objects(ip_route_json):
        dst, dev = route.get("dst", "default"), route.get("dev", "")
        if dst == "default":
            continue
        network = grammar.network(dst) if isinstance(dst, str) else None
        if network is None or not (dev == "" or isinstance(dev, str) and grammar.is_interface(dev)):
            _refuse(refused, ROUTE, route)
            continue
        result.append((str(network), dev))
    return result


def listening_sockets(ss_output: str) -> list[Socket]:
    """Listening TCP and UDP sockets (`ss -Hlntup`)."""
    sockets = []
    for line in ss_output.splitlines():
        cols = line.split()
        if len(cols) < 5 or cols[0] not in ("tcp", "udp"):
            continue
        address, _, port = cols[4].rpartition(":")
        if not grammar.is_port(port):
            continue
        process = re.search(r'\(\("([^"]+)"', line)
        sockets.append(Socket(cols[0], address, int(port), process.group(1) if process else ""))
    return sockets


def docker_subnets(ip_addr_json: str) -> list[str]:
    """IPv4 subnets of Docker's bridges, read from the interfaces (no Docker daemon needed)."""
    subnets = []
    for name, addresses in interfaces(ip_addr_json).items():
        if DOCKER_BRIDGE.match(name):
            for address in addresses:
                network = ipaddress.ip_interface(address).network
                if network.version == 4:
                    subnets.append(str(network))
    return sorted(subnets)


def port_free(proto: str, port: int, sockets: list[Socket]) -> bool:
    return not any(s.proto == proto and s.port == port for s in sockets)


@dataclass(frozen=True)
class IpRule:
    table: int
    src: str = "all"            # "all", or the address or network it selects
    fwmark: int | None = None   # the mark it selects, if any
    priority: int | None = None

    def __str__(self) -> str:
        mark = f" fwmark {self.fwmark:#x}" if self.fwmark is not None else ""
        pref = f"{self.priority}: " if self.priority is not None else ""
        return f"{pref}from {self.src}{mark} lookup {self.table}"


@dataclass
class HostFacts:
    """A snapshot of the host that validation and planning read; never written."""

    interfaces: dict[str, list[str]] = field(default_factory=dict)
    link_kinds: dict[str, str] = field(default_factory=dict)   # name -> kind (link_kinds())
    default_interface: str | None = None
    routes: list[tuple[str, str]] = field(default_factory=list)   # both families
    ip_rules: list[IpRule] = field(default_factory=list)           # both families
    sockets: list[Socket] = field(default_factory=list)
    docker_subnets: list[str] = field(default_factory=list)
    role_facts: dict[str, object] = field(default_factory=dict)   # role -> what it detected (its `detect`)
    installed_role: str | None = None         # the role of the cgnat package installed
    written_by_setup: dict[str, str] = field(default_factory=dict)   # the last setup's manifest: path -> digest
    wireguard_configs: frozenset[str] = frozenset()     # /etc/wireguard/*.conf that exist
    refused: dict[str, str] = field(default_factory=dict)   # detected values the grammar refused
    # the answers each tunnel's last setup saved: interface -> (file, parsed), installer/tunnels.py
    tunnels: dict[str, tuple[str, dict]] = field(default_factory=dict)

    def foreign(self, path: str) -> bool:
        """The file exists and no earlier setup wrote it (an admin's own VPN config)."""
        return path in self.wireguard_configs and path not in self.written_by_setup

    def ipv4_address(self, interface: str) -> str | None:
        for address in self.interfaces.get(interface, []):
            ip = ipaddress.ip_interface(address).ip
            if ip.version == 4:
                return str(ip)
        return None

    def ipv6_address(self, interface: str) -> str | None:
        """The interface's first global unicast IPv6 address (what the bridge forwards)."""
        for address in self.interfaces.get(interface, []):
            ip = ipaddress.ip_interface(address).ip
            if ip.version == 6 and ip in GLOBAL_UNICAST:
                return str(ip)
        return None

    @classmethod
    def detect(cls, root: Path = Path("/")) -> "HostFacts":
        addr = _run("ip", "-d", "-j", "addr")
        route = _run("ip", "-j", "-4", "route")
        refused: dict[str, str] = {}
        return cls(
            interfaces=interfaces(addr, refused),
            link_kinds=link_kinds(addr),
            default_interface=default_route_interface(route, refused),
            routes=routes(route, refused) + routes(_run("ip", "-j", "-6", "route"), refused),
            ip_rules=(ip_rules(_run("ip", "-N", "-j", "-4", "rule"), refused)
                      + ip_rules(_run("ip", "-N", "-j", "-6", "rule"), refused)),
            sockets=listening_sockets(_run("ss", "-Hlntup")),
            docker_subnets=docker_subnets(addr),
            role_facts={name: roles.get(name).detect(root) for name in roles.available()},
            installed_role=installed_role(root),
            written_by_setup=recorded_digests((_read(root / MANIFEST_PATH.lstrip("/")) or "").encode()),
            wireguard_configs=frozenset(f"{WIREGUARD_DIR}/{p.name}"
                                        for p in (root / WIREGUARD_DIR.lstrip("/")).glob("*.conf")),
            refused=refused,
            tunnels=tunnels.saved(root),
        )


def ipv6_disabled(interface: str, conf: Path = IPV6_CONF) -> str | None:
    """Why `interface` has no IPv6 (the setting that says so), or None when it has. An
    interface not created yet gets the "default" setting (writing "all" sets it too)."""
    if not conf.is_dir():
        return "the kernel runs without IPv6 (booted with ipv6.disable=1)"
    name = interface if (conf / interface).is_dir() else "default"
    value = _read(conf / name / "disable_ipv6")
    return f"net.ipv6.conf.{name}.disable_ipv6 is {value.strip()}" if value and value.strip() != "0" else None


def installed_role(root: Path) -> str | None:
    """The role whose package is installed under root (the two conflict: at most one), by
    the hooks that make a host that role."""
    for role in ROLES:
        if (root / f"usr/lib/cgnat-{role}/hooks/up").exists():
            return role
    return None


def our_host_keys(ssh_dir: Path = SSH_DIR) -> dict[str, str]:
    """This host's sshd host keys: {base64 blob: key type} (none: no sshd here)."""
    keys = {}
    for pub in ssh_dir.glob("ssh_host_*_key.pub"):
        for line in pub.read_text().splitlines():
            cols = line.split()
            if len(cols) >= 2:
                keys[cols[1]] = cols[0]
    return keys


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _run(*argv: str) -> str:
    """Output of a read-only command, or "" when it is missing or fails."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return ""
