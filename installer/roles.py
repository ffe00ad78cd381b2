"""The role interface: what makes a host a bridge or a homelab, behind one small surface.

Each role package (cgnat_bridge, cgnat_homelab) has a module `role` with `ROLE`, an object
with these members; shared code asks `roles.get(name)` and calls them, never branching on
a role's name. A host's package ships only its own role package, so the other role is
simply absent there (`get` says so).

    name            "bridge" or "homelab"
    summary         what such a host is, in a few words (the wizard's role question)
    model           its answers dataclass (the common keys and its own section)
    check(answers, facts)            -> [Problem]  the meaning of its own keys
    warnings(answers, ipv6_disabled) -> [Problem]  what works, but is worth a look
    resolve(answers, facts)          fill what is detected on the host (on a copy)
    rules(answers, family=4)         -> str  /etc/cgnat/IFACE.rules (family 6: IFACE.rules6)
    has_rules6(answers)              -> bool  whether it gets IFACE.rules6
    env(answers)                     -> str  /etc/cgnat/IFACE.env, the hooks' variables
    hook_summary(answers)            -> [str]  what its up hook runs, for --plan
    metrics_dir(answers)             -> str | None  its watchdog's metrics directory setting
    detect(root)                     -> object | None  its own facts of the host (HostFacts.role_facts)
    plan_host(answers, facts)        -> HostChanges  its own changes beside the tunnel's (sshd)
    token_fields(answers)            -> {field: text}  what its pairing token tells the peer
    take_token(data, token)          fill answers from the peer's token (unvalidated)
    notes(answers)                   -> [str]  what the report tells the administrator
    several_tunnels                  whether a host may have several (the homelab: one per bridge);
                                     if not, answers naming another interface replace the tunnel
    new_tunnel(saved, links)         -> dict  (several_tunnels only) a further tunnel's answers data
                                     beside the saved ones (installer/tunnels.py), before the token
    status                           its part of `cgnat-setup status` (cgnat_<role>/status.py):
                                     Probe, handshake_hint, checks, notes, State, STEP_KINDS
    wizard_steps()                   -> [Step]  its questions in the wizard, in order
                                     (cgnat_<role>/wizard.py; imports Textual: only the wizard calls it)
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from installer import ROLES   # every role of the project; a host has one installed


@dataclass(frozen=True)
class HostChanges:
    """A role's own changes to the host beside the tunnel's files (the bridge's sshd drop-ins), and
    what to confirm after them.

    before_forwarding: None, or what a service of the role must do with its files before the
    tunnel restarts and anything is forwarded (the bridge: cgnat_bridge.sshd.SshdChange):
        describe(start) -> str           for --plan (start False: --no-start, it waits for the boot)
        left_for_boot() -> [str]         what --no-start leaves to the boot, a line each
        take(changed, run)               after the files are written: SetupError stops the setup
        give_back(changed, run)          after a rollback put the old files back
    """
    files: dict[str, str] = field(default_factory=dict)
    listen_port: int | None = None      # confirm WireGuard holds this UDP port after the restart
    before_forwarding: object = None


def get(name: str):
    """The role object of `name`, or None when that role's package is not on this host."""
    if name not in ROLES:
        return None
    try:
        return importlib.import_module(f"cgnat_{name}.role").ROLE
    except ModuleNotFoundError:
        return None


def peer(name: str) -> str:
    """The role at the other end of the tunnel from `name` (whether or not it is installed here)."""
    return next(other for other in ROLES if other != name)


def available() -> tuple[str, ...]:
    """The roles whose code is here (both in the source tree, one in an installed package)."""
    return tuple(name for name in ROLES if get(name) is not None)
