"""Whether WireGuard really listens on its UDP port after setup (re)started the tunnel.

`wg-quick up` can succeed although another program holds the port: wireguard-go binds it when
the link comes up, after `wg setconf` has returned, and only logs a failed bind (seen on Debian
13 under load). So setup confirms it, as it confirms sshd's port: `wg show IFACE listen-port`
is the configured port, and every UDP socket on that port is WireGuard's (the kernel module's,
which no process owns, or wireguard-go's). Before the restart, setup refuses a port another
program holds (refuse_taken): the start would fail, and a failed start can leave wireguard-go
behind in the unit, which systemd then waits for (up to TimeoutStopSec, seen on Debian 13).
"""
from __future__ import annotations

import re
import subprocess
import time

from installer.errors import SetupError

WIREGUARD_PROCESSES = ("", "wireguard-go")     # "": a kernel socket, owned by no process
_PROCESS = re.compile(r'users:\(\("([^"]*)"')
LOOK_TIMEOUT = 5.0     # seconds one look may take (`wg show` waits for a wedged wireguard-go)


def _output(argv: list[str]) -> str:
    """A look's output; "" when it does not answer in time."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=LOOK_TIMEOUT).stdout
    except subprocess.TimeoutExpired:
        return ""


def socket_owners(port: int) -> list[str]:
    """The process that owns each UDP socket bound to `port` ("" for none), both families."""
    owners = []
    for line in _output(["ss", "-H", "-u", "-a", "-n", "-p", f"sport = :{port}"]).splitlines():
        if line.strip():
            found = _PROCESS.search(line)
            owners.append(found.group(1) if found else "")
    return owners


def wireguard_port(interface: str) -> int | None:
    out = _output(["wg", "show", interface, "listen-port"]).strip()
    return int(out) if out.isdigit() else None


def refuse_taken(interface: str, port: int) -> list[str]:
    """SetupError when a program other than WireGuard holds UDP `port`; else its owners."""
    owners = socket_owners(port)
    others = sorted(set(owners) - set(WIREGUARD_PROCESSES))
    if others:
        raise SetupError(f"UDP port {port} is held by {', '.join(others)}, not by WireGuard "
                         f"({interface}); choose another listen_port or stop that program "
                         f"(ss -uanp 'sport = :{port}')")
    return owners


def confirm(interface: str, port: int, timeout: float = 10.0) -> None:
    """Wait until `interface` listens on UDP `port` and nothing else holds it; SetupError if not."""
    deadline = time.monotonic() + timeout
    while True:
        owners = refuse_taken(interface, port)
        if owners and wireguard_port(interface) == port:
            return
        if time.monotonic() > deadline:
            raise SetupError(f"{interface} does not listen on UDP port {port} "
                             f"(wg show {interface} listen-port; journalctl -u wg-quick@{interface})")
        time.sleep(0.2)
