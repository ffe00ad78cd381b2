"""Which end-to-end check the homelab can make, from what the bridge forwards and what this
host really serves. Pure.

The check goes out the home line to the bridge's public name and must come back in through
the bridge to this host. It needs a TCP port the bridge forwards on which a service here takes
the bridge's IPv4 connections (the bridge forwards to our tunnel address), and a way to know
that the answer came from this host and not from the bridge itself:

    self     the bridge's WireGuard port number, over TCP: the bridge forwards it to this host
             in every forward mode and this host's rules let it in from the tunnel; the
             watchdog itself listens there during the check and the connection must carry
             its random nonce. No daemon sees it, so nothing logs or penalises it.
    ssh      port 22 and an sshd here: the answer must show one of our host keys (the
             bridge's own sshd keeps port 22 too and answers once its rules are gone)
    connect  another port: the connection must be accepted; refused while our own service
             listens on that port means the bridge answered itself

An explicit check_port always wins. Else self, unless a service here holds that port; then ssh
on 22 when an sshd listens there, else connect on the lowest other port that listens and is
forwarded. The watchdog chooses again from what listens at each check (a service started or
stopped on the self check's port, an sshd masked or moved); `listening` None (not looked at:
setup, status of another root) means self.
"""
from __future__ import annotations

from dataclasses import dataclass

from installer.forward import SSH_PORT, forwards


@dataclass(frozen=True)
class EndToEnd:
    port: int
    identity: str          # "self", "ssh" or "connect"

    def __str__(self) -> str:
        return f"tcp/{self.port} ({self.identity})"


def choose(forward, bridge_ssh_port: int, check_port: int | None, homelab_sshd: bool,
           listening: frozenset[int] | None, self_port: int) -> tuple[EndToEnd | None, str]:
    """The check to make (or None) and, when there is none, what to add to make one.
    `listening`: the TCP ports where this host takes IPv4 connections to its tunnel address
    (None: cannot tell); `self_port`: the bridge's WireGuard port number."""
    if check_port is not None:
        return EndToEnd(check_port, "ssh" if homelab_sshd and check_port == SSH_PORT else "connect"), ""
    if listening is None or self_port not in listening:
        return EndToEnd(self_port, "self"), ""
    # A service of this host holds the self check's port: check through what listens.
    served = sorted(p for p in listening if forwards(forward, bridge_ssh_port, p))
    if homelab_sshd and SSH_PORT in served:
        return EndToEnd(SSH_PORT, "ssh"), ""
    # Port 22 without our host keys cannot tell this host from the bridge's own sshd.
    others = [p for p in served if p != SSH_PORT]
    if others:
        return EndToEnd(others[0], "connect"), ""
    return None, (f"a service here holds tcp/{self_port}, the self check's port, and nothing else "
                  "listens for the bridge's IPv4 connections (on all addresses or the tunnel "
                  "address) on a TCP port it forwards; start a service on one, or set "
                  "homelab.watchdog.check_port")
