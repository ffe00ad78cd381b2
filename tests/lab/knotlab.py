"""A real authoritative DNS server for the lab: Debian's Knot (knotd 3.2) in a node of the
test, serving one zone that takes RFC 2136 updates signed with a TSIG key made by its own
`keymgr -t` (the key's name is the record's name). Used by test_lab_dns.py (the follower
driven alone) and test_lab_two_tunnels.py (the homelab's watchdog over two bridges)."""
from __future__ import annotations

from pathlib import Path

import netlab

KNOT_DIR = "/run/lab/knot"


def serve(node: netlab.Node, listen: list[str], zone: str, name: str, records: list[str],
          log: Path) -> str:
    """knotd on `node`, listening on `listen` (addresses), serving `zone` with the A records
    `records` of `name`; returns the key file's text (keymgr -t's form) once it answers."""
    key = node.sh(f"keymgr -t {name} hmac-sha256")
    node.write(f"{KNOT_DIR}/knot.conf", key + f"""
server:
    rundir: "{KNOT_DIR}"
    listen: [ {", ".join(f"{address}@53" for address in listen)} ]
database:
    storage: "{KNOT_DIR}/db"
acl:
  - id: homelab
    key: {name}
    action: update
zone:
  - domain: {zone}
    storage: "{KNOT_DIR}"
    file: "{zone}.zone"
    zonefile-sync: -1
    acl: homelab
""")
    node.write(f"{KNOT_DIR}/{zone}.zone", f"""$ORIGIN {zone}.
$TTL 60
@    SOA ns hostmaster 1 60 60 600 60
@    NS  ns
ns   A   {listen[0]}
""" + "".join(f"{name}. A {address}\n" for address in records))
    node.sh(f"mkdir {KNOT_DIR}/db")              # its journal: the updates
    node.spawn(f"knotd -c {KNOT_DIR}/knot.conf", log=log)
    node.wait_listening("tcp", 53)
    netlab.wait_for(lambda: set(a_records(node, listen[0], name)) == set(records), 10, "knotd serving the zone")
    return key


def a_records(node: netlab.Node, server: str, name: str) -> list[str]:
    """The A records of `name` the server answers now (dig over TCP)."""
    return sorted(node.sh(f"dig +short +tcp @{server} {name} A").split())
