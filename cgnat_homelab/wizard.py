"""The homelab's questions in the wizard (installer/tui/): which tunnel (on a homelab paired
already: change one, or add another bridge), pairing token, Docker networks, what is exposed, the
watchdog. STEPS is their order, between the role screen and the review (the role interface's
`wizard_steps`)."""
from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, RadioButton, RadioSet, Static

from cgnat_homelab.answers import WATCHDOG_ACTIONS
from installer import pairing
from installer.detect import HostFacts, Socket
from installer.tui.screens.base import Step, guarded
from installer.tui.state import as_int, split_list
from installer.tui.widgets import Field, say, slug


def bridge_of(data: dict) -> str:
    """A saved tunnel's bridge, as its answers name it."""
    homelab = data.get("homelab")
    endpoint = homelab.get("endpoint") if isinstance(homelab, dict) else None
    return f"bridge {endpoint}" if isinstance(endpoint, str) else "no bridge named"


class TunnelScreen(Step):
    STEP_TITLE = "Homelab: change a tunnel, or add another bridge"
    KEYS = ()
    chosen: int | None = None      # the choice the answers hold now (back here and on: kept)
    HELP = ("This homelab is paired with a bridge already; it may serve through several at once, "
            "one tunnel each.\n\n"
            "Change: that tunnel's saved answers, nothing of the others.\n\n"
            "Add another bridge: a tunnel of its own (the next free wgN, with its own routing "
            "table and connection mark) beside those here, which stay as they are. Set up the "
            "new bridge first: its pairing token comes next. Its tunnel must not overlap "
            "another bridge's.")

    @classmethod
    def wanted(cls, state) -> bool:
        return bool(state.saved_tunnels())

    def body(self) -> ComposeResult:
        saved = self.state.saved_tunnels()
        current = self.state.value("interface")
        with RadioSet(id="in-tunnel-choice"):
            for name, data in saved.items():
                yield RadioButton(f"Change {name} ({bridge_of(data)})", value=name == current)
            yield RadioButton("Add another bridge", value=current not in saved)

    @guarded
    def action_next(self) -> None:
        saved = list(self.state.saved_tunnels())
        index = self.query_one(RadioSet).pressed_index
        if index != self.chosen:
            problems = self.state.choose_tunnel(saved[index] if index < len(saved) else None)
            self.show_problems(problems)
            if problems:
                return
            self.chosen = index
        self.app.advance(self)


class PairScreen(Step):
    STEP_TITLE = "Homelab: pair with the bridge"
    KEYS = ("pair", "homelab.endpoint", "peer_public_key", "tunnel", "tunnel6", "interface")
    OWN_ENTER = ("in-pair",)
    HELP = ("Paste the pairing token the bridge printed (cgnat3-...) and press Enter: it fills "
            "the bridge's address, key and tunnel. A token wrapped over lines still works.\n\n"
            "Without a token, type the bridge's endpoint (address or name, with its WireGuard "
            "port) and its public key. The key may stay empty for now; the tunnel then comes "
            "up after you run setup again with it.")

    def body(self) -> ComposeResult:
        yield Field("pair", "Pairing token from the bridge (Enter fills the fields below)",
                    self.state.drafts.get("pair", ""), placeholder="cgnat3-...")
        yield Field("homelab.endpoint", "Bridge endpoint (host:port)",
                    self.state.text("homelab.endpoint"), placeholder="203.0.113.7:51820")
        yield Field("peer_public_key", "Bridge's public key", self.state.text("peer_public_key"))
        yield Field("tunnel", "Tunnel network", self.state.text("tunnel"))
        yield Field("interface", "WireGuard interface", self.state.text("interface"))

    @on(Input.Submitted, "#in-pair")
    @guarded
    def use_token(self, event: Input.Submitted) -> None:
        event.stop()
        token = event.value.strip()
        if not token:
            self.focus_next()
            return
        problems = self.state.apply_token(token)
        self.state.drafts["pair"] = token
        if problems:
            self.show_problems(problems)
            return
        for key in ("homelab.endpoint", "peer_public_key", "tunnel"):
            self.query_one(f"#in-{slug(key)}", Input).value = self.state.text(key)
        address6 = pairing.PairingToken.decode(token).address6
        say(self.query_one("#hint-pair", Static), "Filled from the token." + (
            f" The bridge forwards IPv6 too: {address6} (its AAAA record)." if address6 else ""))
        self.query_one("#in-homelab-endpoint", Input).focus()
        self.show_problems(self.state.problems_for(self.KEYS))   # another tunnel's bridge, say

    def patch(self) -> dict:
        t = self.typed()
        return {"homelab.endpoint": t["homelab.endpoint"].strip() or None,
                "peer_public_key": t["peer_public_key"].strip() or None,
                "tunnel": t["tunnel"].strip(), "interface": t["interface"].strip()}

    @guarded
    def action_next(self) -> None:
        token = self.query_one("#in-pair", Input).value.strip()
        if token and self.state.drafts.get("pair") != token:
            problems = self.state.apply_token(token)   # typed but Enter not pressed
            if problems:
                self.show_problems(problems)
                return
            self.state.drafts["pair"] = token
            for key in ("homelab.endpoint", "peer_public_key", "tunnel"):
                self.query_one(f"#in-{slug(key)}", Input).value = self.state.text(key)
        problems = self.state.submit(self.patch(), self.KEYS)
        self.show_problems(problems)
        if not problems:
            self.app.advance(self)


class DockerScreen(Step):
    STEP_TITLE = "Homelab: Docker networks"
    KEYS = ("homelab.docker_subnets",)
    HELP = ("Containers behind Docker's own NAT answer forwarded connections from these "
            "subnets; their replies must go back through the tunnel too, so the hooks route "
            "them. The subnets detected on this host (docker0, br-...) are filled in; add or "
            "remove networks separated by spaces. Empty: no containers.")

    def body(self) -> ComposeResult:
        detected = self.state.facts.docker_subnets
        current = self.state.value("homelab.docker_subnets")
        text = self.state.drafts.get("homelab.docker_subnets")
        if text is None:
            text = " ".join(detected if current is None else current)
        yield Static(f"Detected here: {' '.join(detected) or 'no Docker networks'}",
                     markup=False)
        yield Field("homelab.docker_subnets", "Container subnets (space separated)", text,
                    placeholder="172.19.0.0/16")

    def patch(self) -> dict:
        return {"homelab.docker_subnets": split_list(self.typed()["homelab.docker_subnets"])}


def exposed(facts: HostFacts) -> list[Socket]:
    """The homelab's sockets that listen on every address: the bridge will forward to them."""
    seen, out = set(), []
    for s in sorted(facts.sockets, key=lambda s: (s.proto, s.port)):
        if s.public and (s.proto, s.port) not in seen:
            seen.add((s.proto, s.port))
            out.append(s)
    return out


def suggested_allowlist(facts: HostFacts) -> list[str]:
    """The exposed services as a bridge `forward` list, without SSH (opt in to that)."""
    return [f"{s.proto}/{s.port}" for s in exposed(facts) if s.process not in ("sshd", "ssh")]


class ExposureScreen(Step):
    STEP_TITLE = "Homelab: what the Internet will reach"
    KEYS = ()
    HELP = ("The bridge forwards every port but its own to this homelab (unless it was given "
            "an allowlist). So every service listening on all addresses here becomes "
            "reachable from the Internet, with the client's real address.\n\n"
            "Which ports are forwarded is the bridge's decision: press `a` to see the "
            "allowlist that forwards only the services listed, then paste it on the bridge "
            "(wizard: 'Only these ports', or answers: bridge.forward). SSH is left out of the "
            "suggestion; add tcp/22 yourself if you want it public.")
    BINDINGS = [Binding("a", "allowlist", "Allowlist")]

    def body(self) -> ComposeResult:
        yield Static("", id="exposed", markup=False)
        yield say(Static(id="allowlist", markup=False), "")

    def refresh_facts(self) -> None:
        services = exposed(self.state.facts)
        lines = ["With the bridge forwarding all ports, these services of this homelab become",
                 "reachable from the Internet:"]
        lines += [f"  {s.proto}/{s.port:<6} on {s.address:<16} {s.process or '?'}"
                  for s in services] or ["  (none listening on all addresses right now)"]
        lines.append("Services bound to 127.0.0.1/::1 only stay private.")
        self.query_one("#exposed", Static).update("\n".join(lines))

    def action_allowlist(self) -> None:
        box = self.query_one("#allowlist", Static)
        if box.display:
            say(box, "")
            return
        ports = suggested_allowlist(self.state.facts)
        quoted = ", ".join(f'"{p}"' for p in ports)
        say(box, "Allowlist for the bridge (forward only these; SSH left out):\n"
                   f"  wizard 'Only these ports':  {' '.join(ports) or '(nothing to forward)'}\n"
                   f"  answers file:  forward = [{quoted}]\n"
                   "Paste it on the bridge: the homelab cannot limit what the bridge forwards.")


class WatchdogScreen(Step):
    STEP_TITLE = "Homelab: watchdog"
    KEYS = ("homelab.watchdog", "homelab.keepalive")
    HELP = ("The watchdog probes the tunnel often and the whole chain now and then: out "
            "through the home connection to the check host (a public name that points at the "
            "bridge), back in through the bridge. When the chain is broken it re-resolves, "
            "restarts the tunnel, and only then takes the action chosen here, rate-limited.\n\n"
            "Keepalive: seconds between WireGuard keepalives (0: off).")

    def body(self) -> ComposeResult:
        yield Field("homelab.watchdog.check_host", "Check host (public name of the bridge; optional)",
                    self.state.text("homelab.watchdog.check_host"), placeholder="example.org")
        action = self.state.value("homelab.watchdog.action") or "reboot"
        yield Static("Last resort when the chain stays broken:", classes="label")
        with RadioSet(id="in-homelab-watchdog-action"):
            for name in WATCHDOG_ACTIONS:
                yield RadioButton(name, value=name == action)
        yield say(Static(classes="error", id="err-homelab-watchdog-action", markup=False), "")
        yield Field("homelab.keepalive", "WireGuard keepalive (seconds)",
                    self.state.text("homelab.keepalive"))

    def patch(self) -> dict:
        t = self.typed()
        index = self.query_one(RadioSet).pressed_index
        return {"homelab.watchdog.check_host": t["homelab.watchdog.check_host"].strip() or None,
                "homelab.watchdog.action": WATCHDOG_ACTIONS[index] if index >= 0 else "",
                "homelab.keepalive": as_int(t["homelab.keepalive"])}


STEPS = [TunnelScreen, PairScreen, DockerScreen, ExposureScreen, WatchdogScreen]
