"""Which end-to-end check the homelab can make, from what the bridge forwards and what this
host really serves. Pure.

The check goes out the home line to the bridge's public name and must come back in through
the bridge to this host. It needs a TCP port the bridge forwards on which a service here takes
the bridge's IPv4 connections (the bridge forwards to our tunnel address), and a way to know
that the answer came from this host and not from the bridge itself:

    ssh      port 22 and an sshd here: the answer must show one of our host keys (the
             bridge's own sshd keeps port 22 too and answers once its rules are gone)
    connect  another port: the connection must be accepted; refused while our own service
             listens on that port means the bridge answered itself

An explicit check_port always wins. Else ssh on 22 when an sshd listens there, else connect on
the lowest other port that listens and is forwarded. The watchdog chooses again from what
listens at each check (an sshd masked, moved, bound to the LAN address only; a service
started); `listening` None (not looked at: setup, status of another root) assumes an sshd with
host keys listens on 22, and the first TCP port of an allowlist.
"""
from __future__ import annotations

from dataclasses import dataclass

from installer.forward import SSH_PORT, forwards, tcp_ranges


@dataclass(frozen=True)
class EndToEnd:
    port: int
    identity: str          # "ssh" or "connect"

    def __str__(self) -> str:
        return f"tcp/{self.port} ({self.identity})"


def choose(forward, bridge_ssh_port: int, check_port: int | None, homelab_sshd: bool,
           listening: frozenset[int] | None = None) -> tuple[EndToEnd | None, str]:
    """The check to make (or None) and, when there is none, what to add to make one.
    `listening`: the TCP ports where this host takes IPv4 connections to its tunnel address."""
    def identity(port: int) -> str:
        return "ssh" if homelab_sshd and port == SSH_PORT else "connect"

    if check_port is not None:
        return EndToEnd(check_port, identity(check_port)), ""
    if listening is None:
        return _assumed(forward, bridge_ssh_port, homelab_sshd)
    served = sorted(p for p in listening if forwards(forward, bridge_ssh_port, p))
    if homelab_sshd and SSH_PORT in served:
        return EndToEnd(SSH_PORT, "ssh"), ""
    # Port 22 without our host keys cannot tell this host from the bridge's own sshd.
    others = [p for p in served if p != SSH_PORT]
    if others:
        return EndToEnd(others[0], "connect"), ""
    return None, ("nothing here listens for the bridge's IPv4 connections (on all addresses or "
                  "the tunnel address) on a TCP port it forwards; start a service on one, or set "
                  "homelab.watchdog.check_port")


def _assumed(forward, bridge_ssh_port: int, homelab_sshd: bool) -> tuple[EndToEnd | None, str]:
    if homelab_sshd and forwards(forward, bridge_ssh_port, SSH_PORT):
        return EndToEnd(SSH_PORT, "ssh"), ""
    ranges = tcp_ranges(forward)
    if ranges:
        return EndToEnd(ranges[0][0], "connect"), ""
    if ranges is None:
        return None, ("this host has no sshd for the check on port 22: install openssh-server, "
                      "or set homelab.watchdog.check_port to a TCP port a service listens on here")
    return None, ("the bridge forwards no TCP port: add one to its forward list (e.g. \"tcp/22\" "
                  "with an sshd here) and set homelab.watchdog.bridge_forward to the same list")
