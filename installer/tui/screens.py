"""The wizard's screens. Each one only edits answers (through WizardState) and shows facts;
validation, planning and applying are imported from the installer, never written here."""
from __future__ import annotations

import functools

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import (Footer, Header, Input, Log, OptionList, RadioButton, RadioSet,
                             Static)
from textual.widgets.option_list import Option

from installer import ROLES
from installer.apply import apply
from installer.errors import Problem, SetupError
from installer.tui.state import Outcome, WizardState, as_int, field_of, split_list
from installer.tui.widgets import Field, say, slug

WATCHDOG_ACTIONS = ("reboot", "restart-tunnel", "none")


def guarded(handler):
    """Any error in a handler becomes one line on the screen, never a traceback."""

    @functools.wraps(handler)
    def wrapper(self, *args, **kwargs):
        try:
            return handler(self, *args, **kwargs)
        except (SetupError, OSError) as error:
            self.app.show_error(str(error))
        except Exception as error:  # noqa: BLE001 - one line, not a traceback
            self.app.show_error(f"internal error: {type(error).__name__}: {error}")

    return wrapper


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,question_mark,f1,q", "app.pop_screen", "Close help")]
    AUTO_FOCUS = "#help"

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self._title, self._text = title, text

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(f"Help: {self._title}", classes="title", markup=False)
            yield Static(self._text, markup=False)
            yield Static("Keys: Tab/Shift+Tab move, Ctrl+N next step, Escape back "
                         "(answers are kept), F1 or ? help, Ctrl+Q quit without writing.",
                         classes="hint",
                         markup=False)
        yield Footer()


class Step(Screen):
    """One step of the wizard: the fields of a few answers keys."""

    STEP_TITLE = ""
    HELP = ""
    KEYS: tuple[str, ...] = ()
    OWN_ENTER: tuple[str, ...] = ()   # inputs whose Enter the screen handles itself
    AUTO_FOCUS = "RadioSet, OptionList, Input"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+n", "next", "Next"),
        # F1 works everywhere; "?" where no text field takes it as a character.
        Binding("f1,question_mark", "help", "Help"),
    ]

    @property
    def state(self) -> WizardState:
        return self.app.state

    def compose(self) -> ComposeResult:
        yield Header(icon="#")
        with VerticalScroll(id="body"):
            yield Static(self.STEP_TITLE, classes="title", markup=False)
            yield from self.body()
        yield say(Static(id="status", markup=False), "")
        yield Footer()

    def body(self) -> ComposeResult:
        return iter(())

    def patch(self) -> dict:
        """The screen's fields as flat answers keys ("bridge.ssh_port": 2222)."""
        return {}

    def typed(self) -> dict[str, str]:
        return {f.key: f.text for f in self.query(Field)}

    def on_mount(self) -> None:
        self.app.sub_title = self.app.step_label(self)
        self.show_problems(self.state.problems_for(self.KEYS))
        self.refresh_facts()

    def refresh_facts(self) -> None:
        """Update what the screen shows from the answers (called after edits)."""

    def show_problems(self, problems: list[Problem]) -> None:
        for error in self.query(".error"):
            say(error, "")
        loose = []
        by_field: dict[str, list[str]] = {}
        for p in problems:
            by_field.setdefault(field_of(p.key), []).append(p.message)
        for key, messages in by_field.items():
            found = self.query(f"#err-{slug(key)}")
            if found:
                say(found.first(), "\n".join(messages))
            else:
                loose += [f"{key}: {m}" for m in messages]
        say(self.query_one("#status", Static), "\n".join(loose))
        if by_field:
            first = next(iter(by_field))
            target = self.query(f"#in-{slug(first)}")
            if target:
                target.first().focus()

    @guarded
    def action_next(self) -> None:
        problems = self.state.submit(self.patch(), self.KEYS)
        self.show_problems(problems)
        if not problems:
            self.app.advance(self)

    @guarded
    def action_back(self) -> None:
        self.state.keep_drafts(self.typed())
        self.app.go_back()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self.STEP_TITLE, self.HELP))

    @on(Input.Submitted)
    def enter_moves_on(self, event: Input.Submitted) -> None:
        if event.input.id in self.OWN_ENTER:
            return
        inputs = list(self.query(Input))
        if event.input is inputs[-1]:
            self.run_action("next")
        else:
            self.focus_next()


# --- both roles --------------------------------------------------------------------------

class RoleScreen(Step):
    STEP_TITLE = "Which end of the tunnel is this host?"
    KEYS = ("role",)
    HELP = ("bridge: the small VPS with a public IPv4 address. Every port except its WireGuard "
            "port and its own SSH port is forwarded to the homelab.\n\n"
            "homelab: the server at home behind carrier-grade NAT. It dials out to the bridge "
            "and serves what the bridge forwards.\n\n"
            "Set up the bridge first: it prints a pairing token to paste here on the homelab.")

    def body(self) -> ComposeResult:
        current = self.state.role
        with RadioSet(id="in-role"):
            yield RadioButton("bridge  - the public VPS that forwards", value=current != "homelab")
            yield RadioButton("homelab - the server at home behind CGNAT", value=current == "homelab")
        yield say(Static(classes="error", id="err-role", markup=False), "")

    def patch(self) -> dict:
        return {}

    @guarded
    def action_next(self) -> None:
        self.state.set_role(ROLES[self.query_one(RadioSet).pressed_index])
        self.app.advance(self)


# --- bridge ------------------------------------------------------------------------------

class PublicInterfaceScreen(Step):
    STEP_TITLE = "Bridge: the public interface"
    KEYS = ("bridge.public_interface", "bridge.public_address")
    HELP = ("The interface whose address the Internet reaches: connections arriving on it are "
            "forwarded to the homelab. The interface of the default route is preselected.\n\n"
            "Public address: the address the homelab dials (it goes into the pairing token). "
            "Leave it empty to use the interface's IPv4 address; set it when the provider maps "
            "a public address onto a private one (1:1 NAT).")

    def body(self) -> ComposeResult:
        facts = self.state.facts
        chosen = self.state.value("bridge.public_interface") or facts.default_interface
        options = []
        for name, addresses in sorted(facts.interfaces.items()):
            if name == "lo":
                continue
            mark = "  (default route)" if name == facts.default_interface else ""
            shown = [a for a in addresses if not a.startswith("fe80:")]
            shown.sort(key=lambda a: ":" in a)
            label = f"{name:<12} {' '.join(shown) or '(no address)'}"[:56] + mark
            options.append(Option(Text(label), id=name))
        yield Static("Interface (Up/Down to choose):", classes="label")
        menu = OptionList(*options, id="in-bridge-public_interface")
        ids = [o.id for o in options]
        if chosen in ids:
            menu.highlighted = ids.index(chosen)
        yield menu
        yield say(Static(classes="error", id="err-bridge-public_interface", markup=False), "")
        yield Field("bridge.public_address", "Public IPv4 address (empty: the interface's)",
                    self.state.text("bridge.public_address"), placeholder="203.0.113.7")

    def patch(self) -> dict:
        menu = self.query_one(OptionList)
        option = menu.get_option_at_index(menu.highlighted) if menu.highlighted is not None else None
        address = self.query_one("#in-bridge-public_address", Input).value.strip()
        return {"bridge.public_interface": option.id if option else None,
                "bridge.public_address": address or None}


class WireGuardScreen(Step):
    STEP_TITLE = "Bridge: WireGuard"
    KEYS = ("listen_port", "interface", "tunnel")
    HELP = ("UDP port: where the homelab's WireGuard reaches the bridge. It stays on the bridge "
            "(never forwarded); open it in the provider's firewall.\n\n"
            "Interface: the WireGuard interface name (wg0 unless it is taken).\n\n"
            "Tunnel: a private /30 or larger network unused on both hosts; the bridge takes its "
            "first address, the homelab the second.")

    def body(self) -> ComposeResult:
        yield Field("listen_port", "WireGuard UDP port", self.state.text("listen_port"),
                    placeholder="51820")
        yield Field("interface", "WireGuard interface", self.state.text("interface"))
        yield Field("tunnel", "Tunnel network", self.state.text("tunnel"))

    def patch(self) -> dict:
        t = self.typed()
        return {"listen_port": as_int(t["listen_port"]), "interface": t["interface"].strip(),
                "tunnel": t["tunnel"].strip()}

    @on(Input.Changed, "#in-listen_port")
    def refresh_facts(self) -> None:
        port = as_int(self.query_one("#in-listen_port", Input).value)
        users = self.state.port_in_use("udp", port)
        hint = ""
        if users:
            who = ", ".join(sorted({s.process or "unknown process" for s in users}))
            hint = (f"UDP {port} is in use on this host ({who}); pick another port unless "
                    f"that is this tunnel from an earlier run.")
        elif isinstance(port, int):
            hint = f"UDP {port} is free on this host."
        say(self.query_one("#hint-listen_port", Static), hint)


class SshScreen(Step):
    STEP_TITLE = "Bridge: its own SSH port (port 22 goes to the homelab)"
    KEYS = ("bridge.ssh_port",)
    HELP = ("Every port except the WireGuard port and this SSH port is forwarded to the "
            "homelab, port 22 too. So the bridge's own sshd must listen on this port before "
            "anything is forwarded, or you lose SSH access to the bridge.\n\n"
            "cgnat-setup adds a drop-in to /etc/ssh/sshd_config.d/, checks it with sshd -t, "
            "reloads sshd and confirms the port answers. If it does not, setup stops and "
            "forwards nothing. Open this TCP port in the provider's firewall first.")

    def body(self) -> ComposeResult:
        yield Static("", id="sshd-now", markup=False)
        yield Field("bridge.ssh_port", "The bridge's own SSH port (TCP)",
                    self.state.text("bridge.ssh_port"), placeholder="2222")
        yield Static("", id="sshd-change", markup=False)

    def patch(self) -> dict:
        return {"bridge.ssh_port": as_int(self.typed()["bridge.ssh_port"])}

    @on(Input.Changed, "#in-bridge-ssh_port")
    def refresh_facts(self) -> None:
        self.query_one("#sshd-now", Static).update(self.conflict_text())
        self.query_one("#sshd-change", Static).update(self.change_text())

    def conflict_text(self) -> str:
        ports = self.state.facts.sshd_ports
        now = ("No sshd on this host (openssh-server missing): only the console reaches the "
               "bridge once port 22 is forwarded." if ports is None else
               f"sshd listens now on: {', '.join(map(str, ports)) or 'no port'}.")
        return (f"{now}\nAfter setup, TCP 22 of the public address belongs to the homelab: "
                f"`ssh bridge` reaches the homelab, `ssh -p PORT bridge` the bridge.")

    def change_text(self) -> str:
        port = as_int(self.query_one("#in-bridge-ssh_port", Input).value)
        if not isinstance(port, int) or not 1 <= port <= 65535:
            return ""
        if self.state.facts.sshd_ports is None:
            return "What will change: nothing for sshd (none installed)."
        try:
            dropin = self.state.sshd_change(port)
        except SetupError as error:
            return f"Cannot ask sshd about its configuration: {error}"
        lines = ["What will change:"]
        if dropin is None:
            lines.append(f"  nothing: sshd already listens on {port}.")
        else:
            lines.append("  /etc/ssh/sshd_config.d/cgnat-bridge.conf:")
            lines += [f"    {line}" for line in dropin.splitlines() if not line.startswith("#")]
            lines.append("  then `sshd -t` and a reload of ssh.service (or ssh.socket).")
        lines.append(f"Before anything is forwarded, setup confirms sshd answers on {port}; "
                     f"if not, it stops and forwards nothing.")
        if not self.state.start:
            lines.append(f"(--root: files go under {self.state.root}; sshd is not touched.)")
        lines.append(f"Open TCP {port} in your provider's firewall now.")
        return "\n".join(lines)


class ForwardScreen(Step):
    STEP_TITLE = "Bridge: what to forward to the homelab"
    KEYS = ("bridge.forward", "bridge.keep_local")
    HELP = ("All ports: every TCP/UDP port and ICMP reaches the homelab, except the WireGuard "
            "port, the SSH port and the ports kept below.\n\n"
            "Only these ports: an allowlist like `tcp/80 tcp/443 udp/51900-51910 icmp`; "
            "everything else stays closed on the bridge. The homelab's wizard suggests a list "
            "from the services it has listening.\n\n"
            "Kept on the bridge: more ports the bridge serves itself (`tcp/25`).")

    def body(self) -> ComposeResult:
        forward = self.state.value("bridge.forward")
        listed = "bridge.forward" in self.state.drafts or isinstance(forward, list)
        with RadioSet(id="in-forward-mode"):
            yield RadioButton("All ports (except the bridge's own)", value=not listed)
            yield RadioButton("Only these ports:", value=listed)
        text = self.state.drafts.get("bridge.forward") or (
            " ".join(forward) if isinstance(forward, list) else "")
        yield Field("bridge.forward", "Ports to forward (only used with 'Only these ports')",
                    text, placeholder="tcp/80 tcp/443 udp/51900-51910 icmp")
        yield Field("bridge.keep_local", "More ports the bridge keeps for itself (optional)",
                    self.state.text("bridge.keep_local"), placeholder="tcp/25")
        yield Static("", id="kept", markup=False)

    def refresh_facts(self) -> None:
        a = self.state.answers
        self.query_one("#kept", Static).update(
            f"Always kept on the bridge: UDP {a.listen_port} (WireGuard), "
            f"TCP {a.bridge.ssh_port} (its SSH).")

    def patch(self) -> dict:
        t = self.typed()
        listed = self.query_one(RadioSet).pressed_index == 1
        return {"bridge.forward": split_list(t["bridge.forward"]) if listed else "all",
                "bridge.keep_local": split_list(t["bridge.keep_local"])}


# --- homelab -----------------------------------------------------------------------------

class PairScreen(Step):
    STEP_TITLE = "Homelab: pair with the bridge"
    KEYS = ("pair", "homelab.endpoint", "peer_public_key", "tunnel", "interface")
    OWN_ENTER = ("in-pair",)
    HELP = ("Paste the pairing token the bridge printed (cgnat1-...) and press Enter: it fills "
            "the bridge's address, key and tunnel. A token wrapped over lines still works.\n\n"
            "Without a token, type the bridge's endpoint (address or name, with its WireGuard "
            "port) and its public key. The key may stay empty for now; the tunnel then comes "
            "up after you run setup again with it.")

    def body(self) -> ComposeResult:
        yield Field("pair", "Pairing token from the bridge (Enter fills the fields below)",
                    self.state.drafts.get("pair", ""), placeholder="cgnat1-...")
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
        self.show_problems([])
        say(self.query_one("#hint-pair", Static), "Filled from the token.")
        self.query_one("#in-homelab-endpoint", Input).focus()

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
        exposed = self.state.exposed()
        lines = ["With the bridge forwarding all ports, these services of this homelab become",
                 "reachable from the Internet:"]
        lines += [f"  {s.proto}/{s.port:<6} on {s.address:<16} {s.process or '?'}"
                  for s in exposed] or ["  (none listening on all addresses right now)"]
        lines.append("Services bound to 127.0.0.1/::1 only stay private.")
        self.query_one("#exposed", Static).update("\n".join(lines))

    def action_allowlist(self) -> None:
        box = self.query_one("#allowlist", Static)
        if box.display:
            say(box, "")
            return
        ports = self.state.suggested_allowlist()
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


# --- review, apply, done -----------------------------------------------------------------

class ReviewScreen(Step):
    STEP_TITLE = "Review: exactly what will be written (nothing is written yet)"
    HELP = ("Every file with its content (the private key is hidden) and every command, the "
            "same as `cgnat-setup --answers FILE --plan` prints. Ctrl+N writes it; Escape "
            "goes back to change answers.")
    BINDINGS = [Binding("ctrl+n", "next", "Apply")]
    AUTO_FOCUS = "#body"

    def body(self) -> ComposeResult:
        yield Static("", id="plan", markup=False)

    @guarded
    def refresh_facts(self) -> None:
        problems = self.state.final_problems()
        if problems:
            self.problems = problems
            self.query_one("#plan", Static).update(
                "These answers are not valid yet (Ctrl+N goes to the first one):\n" +
                "\n".join(f"  {p.key}: {p.message}" for p in problems))
            return
        try:
            plan = self.state.make_plan()
        except SetupError as error:
            self.problems = [Problem("interface", str(error))]
            self.query_one("#plan", Static).update(f"This setup cannot be applied: {error}")
            return
        self.problems = []
        where = ("" if self.state.start else
                 f"--root {self.state.root}: files go under it; nothing is started.\n\n")
        self.query_one("#plan", Static).update(where + plan.describe())

    @guarded
    def action_next(self) -> None:
        if self.problems:
            self.app.fix(self.problems[0].key)
            return
        self.app.push_screen(ApplyScreen())


class ApplyScreen(Screen):
    BINDINGS = [Binding("escape", "back", "Back to review"),
                Binding("f1,question_mark", "help", "Help")]

    def compose(self) -> ComposeResult:
        yield Header(icon="#")
        yield Static("Applying the plan", classes="title", markup=False)
        yield Log(id="log")
        yield Static("", id="result", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.app.sub_title = f"{self.app.state.role}: applying"
        self.done = False
        self.app.begin_capture_print(self, stdout=True, stderr=True)
        self.app.applying = True
        self.run_apply()

    def on_print(self, event) -> None:
        for line in event.text.splitlines():
            if line.strip():
                self.query_one(Log).write_line(line)

    @work(thread=True, exclusive=True)
    def run_apply(self) -> None:
        state = self.app.state
        try:
            changed = apply(state.plan, state.root)
        except (SetupError, OSError) as error:
            self.app.call_from_thread(self.failed, str(error))
        except Exception as error:  # noqa: BLE001
            self.app.call_from_thread(self.failed, f"internal error: {type(error).__name__}: {error}")
        else:
            self.app.call_from_thread(self.succeeded, changed)

    def failed(self, message: str) -> None:
        self.finish()
        self.query_one("#result", Static).update(
            f"Setup failed: {message}\nEvery file was put back as it was, and every service "
            f"to the state it had before. Escape: back to the review; Ctrl+Q: quit.")
        self.query_one("#result").add_class("error")

    def succeeded(self, changed: list[str]) -> None:
        self.finish()
        self.app.changed = changed
        self.app.switch_screen(DoneScreen(changed))

    def finish(self) -> None:
        self.app.end_capture_print(self)
        self.app.applying = False
        self.done = True

    def action_back(self) -> None:
        if self.done:
            self.app.pop_screen()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen("Apply", "Each line is a step carried out on the host. "
                                        "If one fails, every file written so far is restored "
                                        "and every service returns to its earlier state."))


class DoneScreen(Screen):
    BINDINGS = [Binding("c", "copy", "Copy token"), Binding("enter,ctrl+n", "finish", "Finish"),
                Binding("f1,question_mark", "help", "Help")]

    def __init__(self, changed: list[str]) -> None:
        super().__init__()
        self.changed = changed

    def compose(self) -> ComposeResult:
        state = self.app.state
        a = state.plan.answers
        other = "homelab" if a.role == "bridge" else "bridge"
        yield Header(icon="#")
        with VerticalScroll(id="body"):
            count = f"{len(self.changed)} file(s) changed" if self.changed else "already up to date"
            yield Static(f"Done: {a.role} configured ({count}).", classes="title", markup=False)
            yield Static("Public key", classes="label")
            yield Static(state.public_key(), id="public-key", classes="big", markup=False)
            yield Static(f"Pairing token (paste it into the {other}'s wizard)", classes="label")
            yield Static(state.token(), id="token", classes="big", markup=False)
            lines = [f"Answers saved to {state.answers_path()}",
                     "  replay unattended: cgnat-setup --answers FILE"]
            if a.role == "bridge":
                lines.append(f"Open UDP {a.listen_port} and TCP {a.bridge.ssh_port} in the "
                             f"provider's firewall; `ssh -p {a.bridge.ssh_port}` reaches the bridge.")
                lines.append(a.dns_records())
            lines.append("Both are printed again when the wizard closes.")
            yield Static("\n".join(lines), id="saved", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.app.sub_title = f"{self.app.state.role}: done"

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.app.state.token())
        self.app.notify("Pairing token copied (terminals with OSC 52 clipboard support).")

    def action_finish(self) -> None:
        state = self.app.state
        self.app.exit(Outcome(state.plan.answers, state.private_key, self.changed))

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen("Done", "Select the token with the mouse or press c to "
                                        "copy it (OSC 52). Enter closes the wizard; the key and "
                                        "token are printed again on the terminal."))
