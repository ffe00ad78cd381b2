"""What the homelab watchdog looks at (I/O, read-only): one `observe()` per run.

A healthy run costs one interface lookup and one TCP touch through the tunnel; the end-to-end
check comes every check_interval, and the DNS lookup, the bridge's own port and `wg show`
only while something fails.

    probe     a TCP touch of the bridge's tunnel address on its WireGuard port number, which the
              bridge's rules refuse (the refusal is the answer; no daemon sees it); real data
              through the tunnel, so WireGuard re-handshakes at once after the bridge
              restarted, where keepalives alone wait ~2 minutes
    e2e       out the home line to check_host (its IPv4 address: the bridge forwards IPv4) on
              the chosen port, in through the bridge; identity per cgnat_homelab/endtoend.py
    bridge    while failing, whether the bridge's own ssh port answers from outside
"""
from __future__ import annotations

import errno
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from cgnat_homelab import sshkey
from cgnat_homelab.endtoend import EndToEnd
from cgnat_homelab.decision import (Config, Observation, State, e2e_due, is_address, probe_timeout,
                                    split_endpoint)
from installer.detect import SSH_DIR, our_host_keys
from installer.probes import connect, run, touch, tunnel_job
from installer.probes import interface_exists as interface_up

PROBE_TIMEOUT = 2.0        # seconds for the first touch through the tunnel (then more: probe_timeout)
CHECK_TIMEOUT = 3.0        # seconds for each connection from outside (end to end, bridge ssh)


def resolve(host: str, port: int) -> str | None:
    """host:port with host's first IPv4 address (A record only), None when it does not resolve."""
    address = ipv4(host)
    return f"{address}:{port}" if address else None


def ipv4(host: str) -> str | None:
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return None
    return infos[0][4][0] if infos else None


def _offer(keys: dict[str, str]) -> list[str]:
    """The host key algorithms to offer: our key types, the strongest and cheapest first."""
    algorithms = {"ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256"]}
    have = sorted(set(keys.values()), key=lambda t: (t != "ssh-ed25519", t.startswith("ssh-rsa"), t))
    return [a for t in have for a in algorithms.get(t, [t])]


def ssh_check(host: str, port: int, ssh_dir: Path = SSH_DIR) -> tuple[bool, bool]:
    """One connection to the sshd at host:port: (it accepted, it showed a host key that is not
    one of ours). The second is False when it cannot tell: not an sshd there, no key type in
    common, no host keys of ours (cgnat_homelab/sshkey.py reads the key, in-process)."""
    ours = our_host_keys(ssh_dir)
    try:
        sock = socket.create_connection((host, port), timeout=CHECK_TIMEOUT)
    except OSError:
        return False, False
    with sock:
        try:
            theirs = sshkey.host_key(sock, _offer(ours)) if ours else None
        except OSError:
            theirs = None
    return True, theirs is not None and theirs not in ours


def another_hosts_sshd(host: str, port: int, ssh_dir: Path = SSH_DIR) -> bool:
    """Whether an sshd answers at host:port with none of this host's keys: the bridge's own
    sshd (it keeps port 22 too) once its forwarding rules are gone."""
    return ssh_check(host, port, ssh_dir)[1]


def listening(port: int, proc_net: Path = Path("/proc/net")) -> bool:
    """Whether a TCP socket of this host listens on `port` (any address, IPv4 or IPv6)."""
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc_net / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 3 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def ipv4_listeners(tunnel_address: str) -> frozenset[int] | None:
    """The TCP ports where this host takes IPv4 connections to its tunnel address (what the
    bridge forwards to): listening on 0.0.0.0, on that address, or dual-stack on "*" (an IPv6
    socket that takes IPv4; ss tells it from an IPv6-only "[::]"). None when ss fails."""
    done = run(["ss", "-H", "-l", "-t", "-n"])
    if done.returncode != 0:
        return None
    wanted = {"0.0.0.0", "*", tunnel_address, f"[::ffff:{tunnel_address}]"}
    ports = set()
    for line in done.stdout.splitlines():
        cols = line.split()
        if len(cols) >= 4:
            address, _, port = cols[3].rpartition(":")
            if address in wanted and port.isdigit():
                ports.add(int(port))
    return frozenset(ports)


def end_to_end(config: Config, check: EndToEnd, ssh_dir: Path = SSH_DIR) -> tuple[bool, bool]:
    """(ok, foreign): whether the check reached this host, whether the bridge answered it itself."""
    address = ipv4(config.target_host)
    if address is None:
        return False, False
    if check.identity == "ssh":
        return ssh_check(address, check.port, ssh_dir)
    if check.identity == "self":
        return self_check(address, check.port, config.homelab_address)
    result = connect(address, check.port, CHECK_TIMEOUT)
    return result == "ok", result == "refused" and listening(check.port)


def self_check(address: str, port: int, tunnel_address: str) -> tuple[bool, bool]:
    """(reached, foreign) of a connection out the home line to address:port that must come back
    through the tunnel to our own listener on the tunnel address and carry our nonce. A
    refusal is foreign: nothing of ours was there to refuse, the bridge answered it itself."""
    nonce = os.urandom(16)
    deadline = time.monotonic() + CHECK_TIMEOUT
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if not bind_while_busy(listener, (tunnel_address, port), deadline):
            return False, False
        listener.listen(8)
        result = connect_and_send(address, port, nonce)
        if result != "ok":
            return False, result == "refused"
        while (left := deadline - time.monotonic()) > 0:   # strangers may come in first
            listener.settimeout(left)
            try:
                conn, _ = listener.accept()
            except OSError:
                return False, False
            with conn:
                if receive(conn, len(nonce), deadline) == nonce:
                    return True, False
    return False, False


def bind_while_busy(sock: socket.socket, address: tuple[str, int], deadline: float) -> bool:
    """Bind, waiting while another self check (`status` beside the watchdog) holds the port."""
    while True:
        try:
            sock.bind(address)
            return True
        except OSError as error:
            if error.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                return False
        time.sleep(0.05)


def connect_and_send(address: str, port: int, data: bytes) -> str:
    """"ok" once `data` is sent on a new connection to address:port, else "refused" or "failed"."""
    try:
        with socket.create_connection((address, port), timeout=CHECK_TIMEOUT) as sock:
            sock.sendall(data)
            return "ok"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "failed"


def receive(conn: socket.socket, size: int, deadline: float) -> bytes:
    data = b""
    while len(data) < size and (left := deadline - time.monotonic()) > 0:
        conn.settimeout(left)
        try:
            chunk = conn.recv(size - len(data))
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


@dataclass(frozen=True)
class Peer:
    public_key: str
    endpoint: str | None
    allowed_ips: str
    handshake_age: float | None


def wg_peer(interface: str, now: float) -> Peer | None:
    """The (only) peer of the interface from `wg show IFACE dump`."""
    done = run(["wg", "show", interface, "dump"])
    lines = done.stdout.splitlines()[1:] if done.returncode == 0 else []
    for line in lines:
        cols = line.split("\t")
        if len(cols) >= 8:
            handshake = int(cols[4])
            return Peer(cols[0], None if cols[2] == "(none)" else cols[2], cols[3],
                        now - handshake if handshake else None)
    return None


def uptime() -> float:
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def observe(config: Config, state: State, now: float | None = None) -> tuple[Observation, Peer | None]:
    now = time.time() if now is None else now
    up = interface_up(config.interface)
    probe_ok = up and touch(config.bridge_address, config.wireguard_port,
                            probe_timeout(state, PROBE_TIMEOUT), refused_ok=True)
    target = config.target_host
    e2e, foreign, took, check, none = None, False, None, None, ""
    if probe_ok and target and e2e_due(config, state, now):
        check, none = config.check_for(ipv4_listeners(config.homelab_address))
        if check is not None:
            started = time.monotonic()
            e2e, foreign = end_to_end(config, check)
            took = time.monotonic() - started
    # What only a failing run needs (wg, a DNS lookup, the bridge's own port), not a healthy one.
    suspect = not (probe_ok and e2e is not False and not foreign and state.last_e2e_ok is not False)
    if not suspect:                   # (the uptime only matters to a due action)
        return Observation(now=now, uptime=None, interface_up=up, probe_ok=True, e2e_ok=e2e,
                           e2e_check=check, e2e_none=none, e2e_seconds=took), None
    peer = wg_peer(config.interface, now) if up else None
    resolved = resolve(*split_endpoint(config.endpoint)) if config.endpoint else None
    address = target if is_address(target) else ipv4(target) if target else None
    bridge_ssh = touch(address, config.bridge_ssh_port, CHECK_TIMEOUT, refused_ok=False) if address else None
    obs = Observation(now=now, uptime=uptime(), interface_up=up, probe_ok=probe_ok,
                      e2e_ok=e2e, e2e_check=check, e2e_none=none, e2e_foreign=foreign,
                      e2e_seconds=took, bridge_ssh_ok=bridge_ssh,
                      endpoint=peer.endpoint if peer else None, resolved_endpoint=resolved,
                      handshake_age=peer.handshake_age if peer else None,
                      tunnel_job=tunnel_job(config.interface))
    return obs, peer
