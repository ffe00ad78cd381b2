"""The homelab's DNS follower, driven by test_lab_dns.py inside a lab node (the package's code on
sys.path, dnspython from Debian): `/usr/bin/python3 dns_driver.py SERVER NAME ANSWERS...`.

Each line on stdin is a run of the watchdog, {"healthy": {IFACE: bool}, "now": SECONDS}, maybe
with "key_file": [PATH, TEXT] (an administrator's edit of the key file before the run): the
driver calls Follower.follow(), then asks SERVER (TCP) for NAME's A and AAAA records until they
hold "expect" (at most 5 s), and prints one JSON line: {"records": [...], "serial": the zone's
SOA serial, "seconds": from follow() being called to the server answering so, "log": [the
journal lines of the run]}.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
import time

import dns.message
import dns.query
import dns.rdatatype

from cgnat_homelab.dns import Follower
from installer import answers as answers_toml
from installer.validate import load_answers


def serial(server: str, name: str) -> int:
    zone = name.partition(".")[2]
    response = dns.query.tcp(dns.message.make_query(zone, "SOA"), server, timeout=2)
    return response.answer[0][0].serial


def records(server: str, name: str) -> list[str]:
    found = []
    for rdtype in ("A", "AAAA"):
        response = dns.query.tcp(dns.message.make_query(name, rdtype), server, timeout=2)
        found += [rdata.address for rrset in response.answer for rdata in rrset
                  if rrset.rdtype == dns.rdatatype.from_text(rdtype)]
    return sorted(found)


def main(server: str, name: str, answers_files: list[str]) -> None:
    tunnels = [load_answers(answers_toml.parse_toml(open(path, "rb").read()), None, None)
               for path in answers_files]
    follower = Follower.from_answers(tunnels)
    for line in sys.stdin:
        run = json.loads(line)
        if "key_file" in run:
            path, text = run["key_file"]
            with open(path, "w") as file:
                file.write(text)
        journal = io.StringIO()
        started = time.monotonic()
        with contextlib.redirect_stderr(journal):
            follower.follow(run["healthy"], run["now"])
        deadline = started + 5
        while (found := records(server, name)) != sorted(run["expect"]) and time.monotonic() < deadline:
            time.sleep(0.005)
        print(json.dumps({"records": found, "serial": serial(server, name), "seconds": time.monotonic() - started,
                          "log": journal.getvalue().splitlines()}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
