#!/usr/bin/python3
"""A narrated tour of the cgnat-tunnel chain, in throwaway network namespaces.

Run as root from the repository (after ./build.sh, which makes dist/*.deb):
    python3 tests/lab/demo.py
It builds a small Internet, a homelab behind carrier-grade NAT and a public bridge,
installs the two packages, runs the real `cgnat-setup` and `wg-quick up`, then shows a
client connecting to the bridge's public address and what the homelab's service sees.
Nothing outside the namespaces is changed; everything is removed at the end.
Exit status 0 when the chain works as promised.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import netlab     # beside this script: python puts the script's folder first on sys.path
from netlab import (BRIDGE_PUBLIC, BRIDGE_SSH_PORT, CGNAT_PUBLIC, CLIENT, CONTAINER,
                    HOMELAB_LAN, HOMELAB_TUNNEL, PUBLISHED_PORT)


def say(text: str = "") -> None:
    print(text, flush=True)


def step(title: str) -> None:
    say(f"\n== {title}")


def show(node: netlab.Node, command: str) -> str:
    out = node.sh(command)
    say(f"   {node.name}$ {command}")
    for line in out.rstrip().splitlines():
        say(f"     {line}")
    return out


def main() -> int:
    started = time.monotonic()
    say(__doc__.split("\n\n")[0].strip())
    staged = Path(tempfile.mkdtemp(prefix="cgnat-demo-debs-"))
    try:
        packages = netlab.stage_packages(staged)
        with netlab.Lab(packages, homelab_rp_filter=1) as lab:
            return tour(lab, started)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def tour(lab: netlab.Lab, started: float) -> int:
    step("1. The cast (each one a network namespace of its own)")
    say(f"   client   {CLIENT:<15} somewhere on the Internet")
    say(f"   bridge   {BRIDGE_PUBLIC:<15} a rented VPS, public interface ens3")
    say(f"   cgnat    {CGNAT_PUBLIC:<15} the ISP's carrier-grade NAT: out yes, in never")
    say(f"   homelab  {HOMELAB_LAN:<15} behind the CGNAT; runs a service and a container")
    say(f"   ctr      {CONTAINER:<15} a Docker-like container on the homelab (port {PUBLISHED_PORT} -> 80)")
    lab.build()
    lab.install()

    step("2. Without the tunnel, nothing reaches the homelab")
    lab.serve_peer_tcp("homelab", 8000)
    lab.serve_peer_tcp("ctr", 80)
    direct = lab.tcp_ask("client", HOMELAB_LAN, 8000, timeout=2)
    via_cgnat = lab.tcp_ask("client", CGNAT_PUBLIC, 8000, timeout=2)
    say(f"   client -> {HOMELAB_LAN}:8000      {direct or 'no answer (no route, private address)'}")
    say(f"   client -> {CGNAT_PUBLIC}:8000       {via_cgnat or 'no answer (the CGNAT drops it)'}")
    if direct or via_cgnat:
        return fail("the homelab was reachable without the tunnel: the lab is wrong")

    step("3. Install the packages and answer the questions (unattended: an answers file)")
    lab.keypairs()
    for role in ("bridge", "homelab"):
        node = lab.nodes[role]
        node.write("/run/lab/answers.toml", lab.answers(role))
        say(f"   {role}: /run/lab/answers.toml")
        for line in lab.answers(role).splitlines():
            say(f"     | {line}")
        show(node, "cgnat-setup --answers /run/lab/answers.toml --root / | head -3")
    show(lab.bridge, "cat /etc/cgnat/wg0.rules | grep -v '^#'")
    lab.start_sshd("bridge")
    lab.start_sshd("homelab")

    step("4. Bring the tunnel up (the homelab dials out through the CGNAT)")
    for role in ("bridge", "homelab"):
        lab.nodes[role].sh("wg-quick up wg0")
        say(f"   {role}$ wg-quick up wg0")
    lab.wait_handshake()
    show(lab.bridge, "wg show wg0 endpoints")
    say(f"   (the bridge sees the homelab at the CGNAT's address {CGNAT_PUBLIC})")

    step(f"5. The client connects to the bridge's public address {BRIDGE_PUBLIC}")
    seen = lab.tcp_ask("client", BRIDGE_PUBLIC, 8000)
    say(f"   client -> {BRIDGE_PUBLIC}:8000   the homelab's service sees the client as: {seen}")
    seen_ctr = lab.tcp_ask("client", BRIDGE_PUBLIC, PUBLISHED_PORT)
    say(f"   client -> {BRIDGE_PUBLIC}:{PUBLISHED_PORT}   the container sees the client as:      {seen_ctr}")
    lab.bridge.wait_listening("tcp", BRIDGE_SSH_PORT)
    lab.homelab.wait_listening("tcp", 22)
    keys = {role: lab.host_key(role) for role in ("bridge", "homelab")}
    landed = {}
    for port in (22, BRIDGE_SSH_PORT):
        scan = lab.client.sh(f"ssh-keyscan -T 5 -t ed25519 -p {port} {BRIDGE_PUBLIC} 2>/dev/null")
        landed[port] = next((role for role, key in keys.items() if key in scan), "nobody")
        say(f"   ssh -p {port:<4} {BRIDGE_PUBLIC}   answered by the {landed[port]}'s sshd (host key)")

    step("6. The homelab's own traffic still leaves through its home connection")
    lab.serve_peer_tcp("client", 9000)
    out = lab.tcp_ask("homelab", CLIENT, 9000)
    say(f"   homelab -> {CLIENT}:9000   the client sees the homelab as: {out} (the CGNAT, not the bridge)")

    step("7. What is where")
    show(lab.homelab, "ip rule show | grep 'lookup 200'")
    show(lab.homelab, "ip route show table 200")
    say(f"   replies of connections that came in through wg0 carry a connection mark and go back")
    say(f"   through the tunnel; everything else uses the main table (the CGNAT).")

    ok = (seen == CLIENT and seen_ctr == CLIENT and out == CGNAT_PUBLIC
          and landed == {22: "homelab", BRIDGE_SSH_PORT: "bridge"})
    step("Result")
    if not ok:
        return fail(f"unexpected: service saw {seen}, container saw {seen_ctr}, outbound {out}, ssh {landed}")
    say(f"   The homelab at {HOMELAB_LAN} ({HOMELAB_TUNNEL} in the tunnel) serves the Internet at {BRIDGE_PUBLIC},")
    say(f"   every service sees the real client {CLIENT}, and the bridge keeps ssh -p {BRIDGE_SSH_PORT}.")
    say(f"   ({time.monotonic() - started:.1f}s; tearing the lab down)")
    return 0


def fail(message: str) -> int:
    say(f"   FAILED: {message}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
