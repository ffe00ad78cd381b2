"""The bridge's own SSH port (DESIGN.md section 4): make sshd listen on it before forwarding.

Port 22 will belong to the homelab once the DNAT rules exist, so the bridge's sshd must
answer on ssh_port first. What sshd listens on is read once, with the host's facts
(`SshdFacts.detect`, through `sshd -T`); the plan adds a drop-in (`plan_change`); apply
validates it with `sshd -t`, reloads sshd and confirms the port answers before anything is
forwarded (`SshdChange.take`); if it does not, the drop-in is taken back and setup stops.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from installer import grammar
from installer.apply import log
from installer.detect import HostFacts
from installer.errors import SetupError
from installer.roles import HostChanges

DROPIN = "/etc/ssh/sshd_config.d/cgnat-bridge.conf"
SOCKET_DROPIN = "/etc/systemd/system/ssh.socket.d/cgnat-bridge.conf"
MAIN_CONFIG = "/etc/ssh/sshd_config"
PRIVSEP_DIR = Path("/run/sshd")


@dataclass(frozen=True)
class SshdFacts:
    """What the bridge's sshd does now (HostFacts.role_facts["bridge"]); read once, never written."""
    ports: list[int] | None = None      # None: no sshd on this host
    kept_ports: list[int] = field(default_factory=list)   # kept whatever Port a drop-in adds
    dropin: str | None = None           # our drop-in from an earlier run, if any
    error: str | None = None            # why `sshd -T` failed, when it did
    socket: bool = False                # sshd is socket-activated (ssh.socket enabled or active)

    @classmethod
    def detect(cls, root: Path = Path("/")) -> "SshdFacts":
        effective = _effective_config()
        ports = listening_ports(effective[0]) if effective and not effective[1] else None
        return cls(ports=ports,
                   kept_ports=kept_ports(ports) if ports is not None else [],
                   dropin=_read(root / DROPIN.lstrip("/")),
                   error=effective[1] if effective else None,
                   socket=ports is not None and root == Path("/") and _socket_activated())


def facts_of(facts: HostFacts) -> SshdFacts:
    """The bridge's sshd facts among the host's (none detected: no sshd)."""
    return facts.role_facts.get("bridge") or SshdFacts()


def listening_ports(sshd_t_output: str) -> list[int]:
    """The ports sshd listens on, from its effective configuration (`sshd -T`)."""
    ports = set()
    for line in sshd_t_output.splitlines():
        key, _, value = line.partition(" ")
        port = value if key == "port" else value.rpartition(":")[2] if key == "listenaddress" else ""
        if grammar.is_port(port):
            ports.add(int(port))
    return sorted(ports)


def kept_ports(ports_now: list[int], main_config: str = MAIN_CONFIG) -> list[int]:
    """The ports sshd keeps listening on whatever Port line a drop-in adds: those its own
    configuration names (Port, ListenAddress); a drop-in's Port replaces only the default 22.
    Asked of sshd itself (`sshd -T -f`), once, with a drop-in naming a port it does not use."""
    probe = next(p for p in range(65535, 1024, -1) if p not in ports_now)
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "probe.conf").write_text(f"Port {probe}\n")
        Path(tmp, "sshd_config").write_text(f"Include {tmp}/probe.conf\nInclude {main_config}\n")
        done = run_sshd("-T", "-f", str(Path(tmp, "sshd_config")))
    return [p for p in listening_ports(done.stdout) if p != probe] if done.returncode == 0 else []


def run_sshd(*args: str) -> subprocess.CompletedProcess:
    """`sshd ARGS` (FileNotFoundError without sshd). sshd -T and -t refuse to run without
    their privilege separation directory, which systemd creates only while ssh.service
    runs: create it first, as Debian's own ssh scripts do."""
    try:
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    except PermissionError:
        pass                      # not root: sshd says what is wrong
    return subprocess.run(["sshd", *args], capture_output=True, text=True)


def _socket_activated() -> bool:
    for verb in ("is-enabled", "is-active"):
        try:
            if subprocess.run(["systemctl", verb, "--quiet", "ssh.socket"],
                              capture_output=True).returncode == 0:
                return True
        except FileNotFoundError:
            return False
    return False


def _effective_config() -> tuple[str, str | None] | None:
    """(`sshd -T` output, error or None), or None when sshd is not installed."""
    if shutil.which("sshd") is None:
        return None
    done = run_sshd("-T")
    return done.stdout, (done.stderr.strip() or "failed") if done.returncode else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


# --- the plan (pure) ---------------------------------------------------------------------

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
    sshd keeps with any drop-in (SshdFacts.kept_ports) were read once, with the facts."""
    if ssh_port in ports_now:
        return None
    return dropin_text(ssh_port, [p for p in ports_now if p not in kept_ports])


def dropin_for(ssh_port: int, sshd: SshdFacts) -> str | None:
    """The drop-in setup writes for ssh_port (an earlier run's, when it names the port; None:
    sshd already listens on it)."""
    if sshd.dropin is not None and f"Port {ssh_port}\n" in sshd.dropin:
        return sshd.dropin
    return plan_dropin(ssh_port, sshd.ports or [], sshd.kept_ports)


def socket_dropin_text(ports: list[int]) -> str:
    """ssh.socket's ports with socket activation: its own ListenStream (22 on Debian 13) is
    fixed in the unit, so sshd's Port lines never reach it; this drop-in lists them all."""
    return ("# Written by cgnat-setup: with socket activation, ssh.socket holds sshd's ports.\n"
            "[Socket]\nListenStream=\n" + "".join(f"ListenStream={port}\n" for port in ports))


def plan_change(ssh_port: int, listen_port: int, facts: HostFacts) -> HostChanges:
    """sshd must listen on ssh_port (and keep its ports) before port 22 is forwarded; WireGuard
    must hold listen_port once the tunnel restarted (the homelab dials it)."""
    sshd = facts_of(facts)
    if sshd.error:
        raise SetupError(f"cannot read sshd's effective configuration (sshd -T): {sshd.error}")
    if sshd.ports is None:
        return HostChanges(listen_port=listen_port)      # no sshd here: nothing to move
    dropin = dropin_for(ssh_port, sshd)
    files = {DROPIN: dropin} if dropin is not None else {}
    if sshd.socket:
        files[SOCKET_DROPIN] = socket_dropin_text(sorted(set(sshd.ports) | {ssh_port}))
    change = SshdChange(ssh_port, DROPIN if dropin else None, SOCKET_DROPIN if sshd.socket else None)
    return HostChanges(files, listen_port=listen_port, before_forwarding=change)


@dataclass(frozen=True)
class SshdChange:
    """What apply does with the drop-ins before anything is forwarded (HostChanges.before_forwarding)."""
    port: int
    dropin: str | None = None           # the drop-in path, when there is one to write
    socket_dropin: str | None = None    # with socket activation: ssh.socket's ports

    def describe(self, start: bool) -> str:
        change = f"drop-in {self.dropin}" if self.dropin else "nothing to change"
        if self.socket_dropin:
            change += f", socket drop-in {self.socket_dropin}"
        steps = "sshd -t; reload; confirm the port answers" if start else "read at sshd's next start"
        return f"=== sshd: listen on {self.port} before forwarding ({change}; {steps})\n"

    def left_for_boot(self) -> list[str]:
        if not (self.dropin or self.socket_dropin):
            return []
        return [f"sshd listens on port {self.port} from its next start (not confirmed now)"]

    def changed(self, changed: list[str]) -> bool:
        return bool({self.dropin, self.socket_dropin} & set(changed) - {None})

    def take(self, changed: list[str], run) -> None:
        """sshd takes its changed drop-ins (sshd -t, reload) and answers on the port; else SetupError."""
        if self.changed(changed):
            log("sshd -t")
            validate_config()
            reload_sshd(run, socket=self.socket_dropin is not None)
        log(f"confirm sshd answers on port {self.port}")
        confirm_listening(self.port)

    def give_back(self, changed: list[str], run) -> None:
        """After the rollback put the old drop-ins back: sshd takes them again."""
        if self.changed(changed):
            reload_sshd(run, socket=self.socket_dropin is not None)


# --- apply (I/O) -------------------------------------------------------------------------

def validate_config(config: str = MAIN_CONFIG) -> None:
    _sshd("-t", "-f", config)


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
