"""The bridge's own SSH port (DESIGN.md section 4): make sshd listen on it before forwarding.

Port 22 will belong to the homelab once the DNAT rules exist, so the bridge's sshd must
answer on ssh_port first. We add a drop-in, validate with `sshd -t`, reload, and confirm
the port answers; if it does not, the drop-in is taken back and setup stops.
"""
from __future__ import annotations

import socket
import time
from pathlib import Path

from installer.detect import SSHD_DROPIN, run_sshd
from installer.errors import SetupError

DROPIN = SSHD_DROPIN
SOCKET_DROPIN = "/etc/systemd/system/ssh.socket.d/cgnat-bridge.conf"
MAIN_CONFIG = "/etc/ssh/sshd_config"
SSH_DIR = Path("/etc/ssh")


def our_host_keys(ssh_dir: Path = SSH_DIR) -> dict[str, str]:
    """This host's sshd host keys: {base64 blob: key type}."""
    keys = {}
    for pub in ssh_dir.glob("ssh_host_*_key.pub"):
        for line in pub.read_text().splitlines():
            cols = line.split()
            if len(cols) >= 2:
                keys[cols[1]] = cols[0]
    return keys


def dropin_text(ssh_port: int, lost_ports: list[int]) -> str:
    """The drop-in: ssh_port, plus the ports sshd would stop listening on because of it.

    A Port line in a drop-in replaces the default port 22 rather than adding to it, so
    ports sshd listens on now are kept unless the main config names them already.
    """
    lines = [f"# Written by cgnat-setup: the bridge keeps port {ssh_port} for its own sshd,",
             "# because every other port is forwarded to the homelab.",
             f"Port {ssh_port}"]
    lines += [f"Port {port}" for port in sorted(set(lost_ports) - {ssh_port})]
    return "\n".join(lines) + "\n"


def plan_dropin(ssh_port: int, ports_now: list[int], kept_ports: list[int]) -> str | None:
    """The drop-in to write, or None when sshd already listens on ssh_port. Pure: the ports
    sshd keeps with any drop-in (HostFacts.sshd_kept_ports) were read once, with the facts."""
    if ssh_port in ports_now:
        return None
    return dropin_text(ssh_port, [p for p in ports_now if p not in kept_ports])


def validate_config(config: str = MAIN_CONFIG) -> None:
    _sshd("-t", "-f", config)


def socket_dropin_text(ports: list[int]) -> str:
    """ssh.socket's ports with socket activation: its own ListenStream (22 on Debian 13) is
    fixed in the unit, so sshd's Port lines never reach it; this drop-in lists them all."""
    return ("# Written by cgnat-setup: with socket activation, ssh.socket holds sshd's ports.\n"
            "[Socket]\nListenStream=\n" + "".join(f"ListenStream={port}\n" for port in ports))


def reload_sshd(run, socket: bool) -> None:
    """Make sshd take its new ports. With socket activation the socket holds them, and
    ssh.socket refuses a restart while the ssh.service it started runs: stop that first
    (KillMode=process: open sessions stay)."""
    if socket:
        run(["systemctl", "daemon-reload"])
        run(["systemctl", "stop", "ssh.service"])
        run(["systemctl", "restart", "ssh.socket"])
    else:
        run(["systemctl", "reload-or-restart", "ssh.service"])


def confirm_listening(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    """Wait until sshd greets on `port`; SetupError if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=2) as conn:
                if conn.recv(8).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SetupError(f"sshd does not answer on port {port}; nothing is forwarded "
                             f"(check `sshd -T | grep port` and the drop-in {DROPIN})")
        time.sleep(0.2)


def _sshd(*args: str) -> str:
    try:
        done = run_sshd(*args)
    except FileNotFoundError:
        raise SetupError("sshd not found: the bridge needs openssh-server") from None
    if done.returncode != 0:
        raise SetupError(f"sshd {' '.join(args)} rejected the configuration: {done.stderr.strip()}")
    return done.stdout
