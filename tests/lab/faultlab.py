"""The namespace lab (netlab.Lab) set up for the watchdog: the homelab reaches the bridge by a
DNS name (a hosts file in the homelab's own mount namespace), the watchdog runs in a loop
(as cgnat-watchdog.service runs it; no systemd in the lab) with its restart and action commands replaced through the answers.
Used by test_faults.py and bench/recovery.py."""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import netlab
from netlab import BRIDGE_PUBLIC, BRIDGE_SSH_PORT, CLIENT, WG_PORT, wait_for

BRIDGE_NAME = "bridge.lab.example"      # .example: never resolvable outside the lab
SERVICE_PORT = 8000                     # a peer-echo service on the homelab, reached via the bridge
ACTIONS = "/run/lab/actions"            # the replaced action appends a line here
RESTART = "wg-quick down wg0; wg-quick up wg0"

# Fast but production-shaped settings for the fault tests (seconds).
FAST = {"check_interval": 5, "restart_after": 8, "restart_interval": 8, "action_after": 20,
        "action_interval": 60, "boot_grace": 0, "max_reboots_per_day": 3}


@dataclass(frozen=True)
class Variant:
    """How the bridge is set up, and what the homelab's answers know of it."""
    name: str
    forward: object = "all"
    ssh_port: int = BRIDGE_SSH_PORT
    check_port: int = 22                  # the end-to-end check the homelab should choose
    homelab_keys: dict = field(default_factory=dict)   # [homelab.watchdog] keys about the bridge


# forward "all", ssh_port 2222; the homelab told explicitly (check_port, bridge_ssh_port).
DEFAULT = Variant("all", homelab_keys={"check_port": 22, "bridge_ssh_port": BRIDGE_SSH_PORT})
# An allowlist without tcp/22 and the bridge's sshd on 2299, as the bridge's token tells it:
# the homelab checks by its own listener on the WireGuard port's number (the self check).
ALLOWLIST = Variant("allowlist-2299", forward=[f"tcp/{SERVICE_PORT}", "udp/5353"], ssh_port=2299,
                    check_port=WG_PORT,
                    homelab_keys={"bridge_forward": [f"tcp/{SERVICE_PORT}", "udp/5353"],
                                  "bridge_ssh_port": 2299})
VARIANTS = (DEFAULT, ALLOWLIST)


def variant(lab: netlab.Lab) -> Variant:
    return getattr(lab, "variant", DEFAULT)


def bridge_answers(lab: netlab.Lab) -> str:
    """The lab's bridge answers (its forward came with the Lab) on the variant's ssh port."""
    return lab.answers("bridge").replace(f"ssh_port = {BRIDGE_SSH_PORT}\n",
                                         f"ssh_port = {variant(lab).ssh_port}\n")


def homelab_answers(lab: netlab.Lab, keepalive: int = 25, watchdog: dict | None = None) -> str:
    w = {"check_host": BRIDGE_NAME, "action": "reboot", **variant(lab).homelab_keys,
         "restart_command": RESTART, "action_command": f"echo action >> {ACTIONS}", **(watchdog or {})}
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in w.items())
    return (f'role = "homelab"\ninterface = "wg0"\ntunnel = "10.0.0.0/24"\n'
            f'private_key_file = "/run/lab/wg.key"\npeer_public_key = "{lab.keys["bridge"]}"\n\n'
            f'[homelab]\nendpoint = "{BRIDGE_NAME}:{WG_PORT}"\nkeepalive = {keepalive}\n'
            f'docker_subnets = ["172.19.0.0/16"]\n\n[homelab.watchdog]\n{lines}')


def set_dns(lab: netlab.Lab, address: str | None) -> None:
    """The homelab's "DNS": its own /etc/hosts (a private overlay in its mount namespace).
    Without an entry the name fails like DNS at boot does, at once and temporarily
    (EAI_AGAIN): the only nameserver is the homelab's own loopback, where none listens."""
    entry = f"{address} {BRIDGE_NAME}\n" if address else ""
    lab.homelab.write("/etc/hosts", "127.0.0.1 localhost\n" + entry)
    lab.homelab.write("/etc/resolv.conf", "nameserver 127.0.0.1\n")


def up(lab: netlab.Lab, keepalive: int = 25, watchdog: dict | None = None,
       setup: Variant = DEFAULT) -> None:
    """Topology, packages, cgnat-setup (homelab by name), sshds, tunnel, a service on the homelab.
    The lab must have been made with the variant's forward (netlab.Lab(forward=...))."""
    assert lab.forward == setup.forward, (lab.forward, setup.forward)
    lab.variant = setup
    lab.build()
    lab.install()
    lab.keypairs()
    lab.bridge.write("/run/lab/answers.toml", bridge_answers(lab))
    lab.bridge.sh("cgnat-setup --answers /run/lab/answers.toml --root /")
    set_dns(lab, BRIDGE_PUBLIC)
    lab.homelab.write("/run/lab/answers.toml", homelab_answers(lab, keepalive, watchdog))
    lab.homelab.sh("cgnat-setup --answers /run/lab/answers.toml --root /")
    lab.start_sshd("bridge")
    lab.start_sshd("homelab")
    lab.tunnel_up()
    lab.bridge.wait_listening("tcp", setup.ssh_port)
    lab.homelab.wait_listening("tcp", 22)
    lab.serve_peer_tcp("homelab", SERVICE_PORT)


class Watchdog:
    """The homelab (or bridge) watchdog running in a loop in its node, its log read from here."""

    def __init__(self, lab: netlab.Lab, role: str = "homelab", every: float | None = 2,
                 answers: str = "/etc/cgnat/answers.toml", state: str = "/var/lib/cgnat/watchdog.json"):
        """`every` None: the service's own period."""
        self.node = lab.nodes[role]
        self.state_path = state
        period = "" if every is None else f" --every {every}"
        self.command = f"/usr/lib/cgnat-{role}/watchdog{period} --answers {answers} --state {state}"
        self.log_path = lab.workdir / f"watchdog-{role}-{Path(state).stem}.log"
        self.log_path.touch()
        self.start()

    def start(self) -> None:
        self.proc = self.node.spawn(self.command, log=self.log_path)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def mark(self) -> int:
        return self.log_path.stat().st_size

    def lines(self, since: int = 0) -> list[str]:
        with open(self.log_path, "rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace").splitlines()

    def wait_line(self, pattern: str, since: int, timeout: float) -> str:
        regex = re.compile(pattern)
        return wait_for(lambda: next((line for line in self.lines(since) if regex.search(line)), None),
                        timeout, f"watchdog log line /{pattern}/", interval=0.1)

    def state(self) -> dict:
        text = self.node.run(f"cat {self.state_path}", check=False).stdout
        return json.loads(text) if text.strip() else {}


def reachable(lab: netlab.Lab, address: str = BRIDGE_PUBLIC) -> bool:
    """The whole chain: client -> bridge -> tunnel -> homelab's service, real address seen."""
    return lab.tcp_ask("client", address, SERVICE_PORT, timeout=1) == CLIENT


def wait_reachable(lab: netlab.Lab, timeout: float, address: str = BRIDGE_PUBLIC) -> float:
    """Seconds until the chain works again (polled every ~0.2 s); on a timeout, the LabError
    carries what both ends run (see chain_evidence)."""
    start = time.monotonic()
    try:
        wait_for(lambda: reachable(lab, address), timeout, f"the chain via {address} to work", interval=0.2)
    except netlab.LabError as error:
        raise netlab.LabError(f"{error}\n{chain_evidence(lab)}") from None
    return time.monotonic() - start


def chain_evidence(lab: netlab.Lab) -> str:
    """What a broken chain's two ends run, and the homelab watchdog's last lines."""
    shown = {"bridge": "wg show wg0; iptables -w -t nat -S; iptables -w -S FORWARD",
             "homelab": "wg show wg0; ip rule; ip route show table all | grep -v ^local; "
                        "iptables -w -t mangle -S"}
    parts = []
    for role, command in shown.items():
        done = lab.nodes[role].run(command, check=False)
        parts.append(f"--- {role}:\n{done.stdout}{done.stderr}")
    watchdog = getattr(lab, "watchdog", None)
    if watchdog is not None:
        parts.append("--- the homelab's watchdog, last lines:\n" + "\n".join(watchdog.lines()[-40:]))
    return "\n".join(parts)


def mend_bridge(lab: netlab.Lab) -> None:
    """The bridge's tunnel and rules as its up would leave them (after a fault test, whatever
    it left): the next test starts from a working bridge."""
    lab.bridge.sh("ip link show dev wg0 >/dev/null 2>&1 || wg-quick up wg0 2>/dev/null; "
                  "/usr/lib/cgnat-bridge/hooks/up wg0 2>/dev/null")


def actions(lab: netlab.Lab) -> int:
    return len(lab.homelab.run(f"cat {ACTIONS}", check=False).stdout.splitlines())


def restart_bridge_tunnel(lab: netlab.Lab) -> None:
    lab.bridge.sh("wg-quick down wg0 2>/dev/null; wg-quick up wg0 2>/dev/null")

