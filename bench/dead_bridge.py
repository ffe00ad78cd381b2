#!/usr/bin/python3
"""What a client sees while one of two bridges is dead (README, "Two bridges"): curl given a
name with both bridges' addresses, the dead one first, against the same name once the dead
bridge's record is withdrawn.

    sudo python3 bench/dead_bridge.py

Two namespaces of its own: a client (203.0.113.10) and a "bridges" node with both bridges'
addresses, 198.51.100.1 silently dropping every packet (a powered-off VPS: no answer, no
reset) and 198.51.100.2 serving HTTP. curl runs with its defaults, then with
--connect-timeout 10, then with the live address only. Prints a markdown table of curl's
time_connect and time_total. Not part of CI (the default case waits for the kernel's SYN
retries, over two minutes). Nothing outside its namespaces is changed.
"""
from __future__ import annotations

import subprocess
import sys

CLIENT, DEAD, LIVE, ROUTER = "203.0.113.10", "198.51.100.1", "198.51.100.2", "203.0.113.1"
NAME, NETNS = "www.example.test", ("cgnat-bench-client", "cgnat-bench-bridges")
CASES = [("both records, curl's defaults", "", f"{DEAD},{LIVE}"),
         ("both records, --connect-timeout 10", "--connect-timeout 10", f"{DEAD},{LIVE}"),
         ("the dead bridge's record withdrawn", "", LIVE)]


def sh(command: str, netns: str | None = None) -> str:
    argv = ["ip", "netns", "exec", netns, "sh", "-c", command] if netns else ["sh", "-c", command]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def main() -> int:
    client, bridges = NETNS
    try:
        for netns in NETNS:
            sh(f"ip netns add {netns} && ip -n {netns} link set lo up")
        sh(f"ip link add c0 netns {client} type veth peer name b0 netns {bridges}")
        sh(f"ip link set c0 up && ip addr add {CLIENT}/24 dev c0 && ip route add 198.51.100.0/24 via {ROUTER}", client)
        sh(f"ip link set b0 up && ip addr add {ROUTER}/24 dev b0 && ip addr add {DEAD}/32 dev lo && "
           f"ip addr add {LIVE}/32 dev lo && iptables -A INPUT -d {DEAD} -j DROP", bridges)
        server = subprocess.Popen(["ip", "netns", "exec", bridges, "python3", "-m", "http.server", "80"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sh(f"timeout 10 sh -c 'until curl -s -o /dev/null http://{LIVE}/; do sleep 0.1; done'", client)
        print("| what the client's curl is given | HTTP | time_connect | time_total |")
        print("| --- | --- | --- | --- |")
        for label, options, addresses in CASES:
            out = sh(f"curl -s -o /dev/null {options} --resolve {NAME}:80:{addresses} "
                     f"-w '%{{http_code}} %{{time_connect}} %{{time_total}}' http://{NAME}/", client)
            code, connect, total = out.split()
            print(f"| {label} | {code} | {float(connect):.2f} s | {float(total):.2f} s |")
        server.terminate()
        server.wait(10)
        return 0
    finally:
        for netns in NETNS:
            subprocess.run(f"ip netns pids {netns} | xargs -r kill; ip netns del {netns}", shell=True,
                           capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
