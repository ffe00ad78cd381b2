"""DNS that follows health: the homelab's watchdog keeps a public name's A/AAAA records to the
bridges whose chain serves ([homelab.dns], cgnat_homelab/answers.py: DnsSection).

The protocol is RFC 2136 dynamic update (nsupdate's), signed with TSIG (RFC 8945), spoken by
python3-dnspython over TCP: BIND, Knot, PowerDNS and many providers take it.

Each run the watchdog tells `Follower.follow()` which tunnels' chains serve. For each record
set (tunnels naming the same server, zone and name share one):
- the wanted addresses are those of the tunnels whose chain serves; when none serves, the
  records stay as they are (a name without any record helps no client);
- an update goes out only when the wanted set differs from the one last published; the first
  one after the watchdog starts (or after a failed one, whose outcome is unknown) replaces the
  name's A and AAAA records whole ("publish once"), later ones delete the withdrawn addresses;
  every update adds all the wanted ones, in the same message, so the server applies it at once
  and the name never goes without a record, whatever happened to it meanwhile;
- a failed update (server down, bad key, REFUSED, NOTAUTH) is one journal line and is tried
  again later, waiting longer after each failure (RETRY_FIRST doubling to RETRY_MAX); nothing
  raises into the watchdog.

The choices (wanted, next_update) are pure; `send_update` is the only I/O.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

from cgnat_homelab import tsig_key
from installer import grammar
from installer.watchdog_state import log

DEFAULT_TTL = 60
TIMEOUT = 3.0           # seconds one update may take (the watchdog's run waits for it)
RETRY_FIRST = 4.0       # seconds before the first retry of a failed update,
RETRY_MAX = 300.0       # doubling after each failure up to this
# dnspython's exceptions for a server's TSIG errors, by the names RFC 8945 gives them
TSIG_ERRORS = {"PeerBadKey": "BADKEY", "PeerBadSignature": "BADSIG", "PeerBadTime": "BADTIME",
               "PeerBadTruncation": "BADTRUNC"}


@dataclass(frozen=True)
class Target:
    """Where one record set is kept: the server that takes updates, the zone, the name."""
    host: str
    port: int
    zone: str
    name: str


@dataclass(frozen=True)
class Update:
    """One update: delete the name's A and AAAA records whole (`replace`) or only `withdraw`,
    then add every address of `put` (adding a record the name has is a no-op, RFC 2136 3.4.2.2)."""
    replace: bool
    withdraw: frozenset[str]
    put: frozenset[str]


def bridge_addresses(dns_section, endpoint: str | None) -> tuple[str, ...]:
    """What a tunnel publishes: its [homelab.dns] addresses, else its endpoint's host when that
    is an address ("203.0.113.7:51820", "[2001:db8::7]:51820"); () for a name."""
    if dns_section.addresses:
        return tuple(dns_section.addresses)
    host = (endpoint or "").rpartition(":")[0].strip("[]")
    return (host,) if grammar.is_ipv4(host) or grammar.is_ipv6(host) else ()


def wanted(addresses: dict[str, tuple[str, ...]], healthy: dict[str, bool]) -> frozenset[str] | None:
    """The addresses of the tunnels whose chain serves (one missing from `healthy` does not);
    None when none serves: then the records stay as they are."""
    found = frozenset(a for iface, published in addresses.items() if healthy.get(iface) for a in published)
    return found or None


def next_update(published: frozenset[str] | None, want: frozenset[str] | None) -> Update | None:
    """The update that makes the name hold `want`, given what was last published (None: not
    known); None when there is nothing to do."""
    if want is None or want == published:
        return None
    if published is None:
        return Update(replace=True, withdraw=frozenset(), put=want)
    return Update(replace=False, withdraw=published - want, put=want)


def retry_delay(failures: int) -> float:
    """Seconds to wait after the `failures`-th failure in a row (1, 2, ...)."""
    return min(RETRY_MAX, RETRY_FIRST * 2 ** (failures - 1))


def _rdtype(address: str) -> str:
    return "AAAA" if ipaddress.ip_address(address).version == 6 else "A"


class UpdateFailed(Exception):
    """One line: why the server did not take an update (never the key's secret)."""


def send_update(target: Target, key: tsig_key.TsigKey, ttl: int, update: Update) -> None:
    """Send one signed update over TCP and check the answer; UpdateFailed otherwise. (dnspython
    is loaded here, by the watchdog's first update: `cgnat-setup --check` never needs it.)"""
    import dns.exception
    import dns.name
    import dns.query
    import dns.rcode
    import dns.tsig
    import dns.update
    message = dns.update.UpdateMessage(target.zone)
    message.use_tsig(dns.tsig.Key(key.name, key.secret, key.algorithm))
    name = dns.name.from_text(target.name)
    if update.replace:
        message.delete(name, "A")
        message.delete(name, "AAAA")
    for address in sorted(update.withdraw):
        message.delete(name, _rdtype(address), address)
    for address in sorted(update.put):
        message.add(name, ttl, _rdtype(address), address)
    try:
        server = _server_address(target)
        response = dns.query.tcp(message, server, timeout=TIMEOUT, port=target.port)
    except dns.tsig.PeerError as error:     # the server's TSIG error
        code = TSIG_ERRORS.get(type(error).__name__, type(error).__name__)
        raise UpdateFailed(f"the server refused the key ({code}): is key_file the server's key?") from None
    except (dns.exception.DNSException, OSError) as error:
        raise UpdateFailed(str(error) or type(error).__name__) from None
    if response.rcode() != dns.rcode.NOERROR:
        raise UpdateFailed(dns.rcode.to_text(response.rcode()))


def _server_address(target: Target) -> str:
    """The server's address (a name is resolved now: it may move)."""
    if not grammar.is_hostname(target.host):
        return target.host
    return socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)[0][4][0]


@dataclass
class RecordSet:
    """One name's records, kept to its tunnels' bridges."""
    target: Target
    key_file: str
    ttl: int
    addresses: dict[str, tuple[str, ...]]   # interface -> its bridge's addresses, the first tunnel first
    published: frozenset[str] | None = None  # what the name holds since our last update; None: unknown
    failures: int = 0
    next_try: float = 0.0
    send: object = field(default=send_update, repr=False)

    def follow(self, healthy: dict[str, bool], now: float) -> None:
        if now < self.next_try:
            return
        try:
            update = next_update(self.published, wanted(self.addresses, healthy))
            if update is None:
                return
            self.published = None       # unknown until the server says it took the update
            self.send(self.target, tsig_key.read(self.key_file), self.ttl, update)
        except Exception as error:  # noqa: BLE001 - one journal line; the watchdog goes on
            self.failures += 1
            delay = retry_delay(self.failures)
            self.next_try = now + delay
            why = error if isinstance(error, (UpdateFailed, tsig_key.KeyFileError)) else repr(error)
            log(f"dns: update of {self.target.name} at {self.target.host} failed: {why}; "
                f"trying again in {delay:g} s")
            return
        self.published, self.failures, self.next_try = update.put, 0, 0.0
        withdrew = f" (withdrew {' '.join(sorted(update.withdraw))})" if update.withdraw else ""
        log(f"dns: {self.target.name} now {' '.join(sorted(update.put))}{withdrew}")


class Follower:
    """The records of each name in the tunnels' [homelab.dns], kept to the healthy tunnels' bridges."""

    def __init__(self, record_sets: list[RecordSet]):
        self.record_sets = record_sets

    @classmethod
    def from_answers(cls, tunnels: list) -> "Follower | None":
        """From every tunnel's answers (validated; the first first); None when none has
        [homelab.dns]. Tunnels naming the same server, zone and name share one record set, whose
        key file and TTL are the first such tunnel's."""
        sets: dict[Target, RecordSet] = {}
        for answers in tunnels:
            section = answers.homelab.dns
            if section is None:
                continue
            host, port = grammar.dns_server(section.server)
            target = Target(host, port, _absolute(section.zone), _absolute(section.name))
            record_set = sets.setdefault(target, RecordSet(target, section.key_file,
                                                           section.ttl or DEFAULT_TTL, {}))
            record_set.addresses[answers.interface] = bridge_addresses(section, answers.homelab.endpoint)
        return cls(list(sets.values())) if sets else None

    def follow(self, healthy: dict[str, bool], now: float) -> None:
        """interface -> whether its chain serves now: withdraw the broken bridges' records, put
        back those that serve again, never leave the name without a record (I/O, logged; never
        raises: a failure is a journal line and a later retry)."""
        for record_set in self.record_sets:
            record_set.follow(healthy, now)


def _absolute(name: str) -> str:
    return name.rstrip(".").lower() + "."
