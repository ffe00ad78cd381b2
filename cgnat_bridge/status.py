"""The bridge's part of `cgnat-setup status` (installer/status.py): its own sshd."""
from __future__ import annotations

from cgnat_bridge import watchdog
from installer import status as shared
from installer.status import Check
from installer.watchdog import touch

State, STEP_KINDS = watchdog.State, watchdog.STEP_KINDS    # its watchdog's, for the report


class Probe(shared.Probe):
    """The shared looks at the host, and the bridge's own."""

    def port_answers(self, host: str, port: int, timeout: float = 3) -> bool:
        return touch(host, port, timeout, refused_ok=False)


def handshake_hint(answers) -> str:
    return (f"the homelab has not dialed in: check that UDP {answers.listen_port} is open "
            f"in the provider's firewall and that the homelab's tunnel is up")


def checks(answers, probe) -> list[Check]:
    port = answers.bridge.ssh_port
    ssh_ok = probe.port_answers("127.0.0.1", port)
    return [Check("sshd", ssh_ok, f"port {port} {'answers' if ssh_ok else 'does not answer'}",
                  f"the bridge's own ssh needs port {port}: rerun cgnat-setup; systemctl status ssh")]


def notes(probe) -> list[Check]:
    return []
