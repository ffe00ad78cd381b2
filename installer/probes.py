"""Read-only looks at the host that status and both watchdogs make: a probe command, a TCP
touch, whether an interface exists, the age of a tunnel's latest handshake, systemd's job for
a tunnel's unit. None of them
raises for a missing program, a refusal or a hang: each is an answer."""
from __future__ import annotations

import errno
import socket
import subprocess

# WireGuard re-handshakes every 2 minutes while data flows: a handshake older than this means
# the peer is silent (status's handshake check, the bridge watchdog's "homelab silent").
HANDSHAKE_STALE = 180


def run(argv: list[str], timeout: float = 10) -> subprocess.CompletedProcess:
    """A probe command; a missing program or a hang is a failed run, never an exception."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        return subprocess.CompletedProcess(argv, 127, "", str(error))


def touch(host: str, port: int, timeout: float, refused_ok: bool) -> bool:
    """A TCP connection to host:port; a refusal counts when refused_ok (the host did answer)."""
    return connect(host, port, timeout) in (("ok", "refused") if refused_ok else ("ok",))


def connect(host: str, port: int, timeout: float) -> str:
    """"ok", "refused" or "failed": a TCP connection to host:port (an IPv4 address or name)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "ok"
    except ConnectionRefusedError:
        return "refused"
    except OSError as error:
        return "refused" if error.errno == errno.ECONNREFUSED else "failed"


def interface_exists(interface: str) -> bool:
    """In this process's network namespace; no program to start (/sys may be another netns's)."""
    try:
        socket.if_nametoindex(interface)
        return True
    except OSError:
        return False


def handshake_age(interface: str, now: float) -> float | None:
    """Seconds since the interface's latest handshake with any peer; None if never."""
    out = run(["wg", "show", interface, "latest-handshakes"]).stdout.split()
    latest = max((int(x) for x in out[1::2] if x.isdigit()), default=0)
    return now - latest if latest else None


def tunnel_job(interface: str) -> str:
    """The job systemd runs or has queued for the tunnel's unit ("restart running"); "" when
    none, or no systemd. While one runs, someone else (an admin, the boot) is starting or
    stopping the tunnel: a restart of the watchdog's own would make systemd start it over."""
    unit = f"wg-quick@{interface}.service"
    done = run(["systemctl", "list-jobs", "--no-legend", "--no-pager", "--full", unit], timeout=5)
    for fields in (line.split() for line in done.stdout.splitlines()):
        if len(fields) >= 4 and fields[1] == unit:
            return f"{fields[2]} {fields[3]}"
    return ""
