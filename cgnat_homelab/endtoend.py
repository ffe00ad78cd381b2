"""Which end-to-end check the homelab can make, from what the bridge forwards. Pure.

The check goes out the home line to the bridge's public name and must come back in through
the bridge to this host. It needs a TCP port the bridge forwards, and a way to know that the
answer came from this host and not from the bridge itself:

    ssh      port 22 forwarded and an sshd here: the answer must show one of our host keys
             (the bridge's own sshd keeps port 22 too and answers once its rules are gone)
    connect  another forwarded port: the connection must be accepted; refused while our
             own service listens on that port means the bridge answered itself

forward "all" and an sshd here: ssh on 22. An allowlist: ssh on 22 if listed and we have an
sshd, else connect on the first TCP port listed. An explicit check_port always wins.
"""
from __future__ import annotations

from dataclasses import dataclass

from installer.forward import SSH_PORT, forwards, tcp_ranges


@dataclass(frozen=True)
class EndToEnd:
    port: int
    identity: str          # "ssh" or "connect"


def choose(forward, bridge_ssh_port: int, check_port: int | None,
           homelab_sshd: bool) -> tuple[EndToEnd | None, str]:
    """The check to make (or None) and, when there is none, what to add to make one."""
    def identity(port: int) -> str:
        return "ssh" if homelab_sshd and port == SSH_PORT else "connect"

    if check_port is not None:
        return EndToEnd(check_port, identity(check_port)), ""
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
