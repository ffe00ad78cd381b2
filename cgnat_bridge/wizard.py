"""The bridge's questions in the wizard (installer/tui/): public interface, WireGuard port, its own
SSH port, what to forward. STEPS is their order, between the role screen and the review (the
role interface's `wizard_steps`)."""
from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import Checkbox, Input, OptionList, RadioButton, RadioSet, Static
from textual.widgets.option_list import Option

from cgnat_bridge import sshd
from installer.errors import SetupError
from installer.tui.screens.base import Step
from installer.tui.state import as_int, split_list
from installer.tui.widgets import Field, say


class PublicInterfaceScreen(Step):
    STEP_TITLE = "Bridge: the public interface"
    KEYS = ("bridge.public_interface", "bridge.public_address", "bridge.ipv6", "bridge.public_address6")
    HELP = ("The interface whose address the Internet reaches: connections arriving on it are "
            "forwarded to the homelab. The interface of the default route is preselected.\n\n"
            "Public address: the address the homelab dials (it goes into the pairing token). "
            "Leave it empty to use the interface's IPv4 address; set it when the provider maps "
            "a public address onto a private one (1:1 NAT).\n\n"
            "IPv6: the interface's global IPv6 address is forwarded to the homelab too (through "
            "the tunnel, with the client's real address), unless you untick it. Publish the "
            "AAAA record shown only when IPv6 is forwarded: else IPv6 clients reach the bridge "
            "itself.")

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
        yield Checkbox("Forward IPv6 too", self.state.value("bridge.ipv6") != "off",
                       id="in-bridge-ipv6", compact=True)
        yield say(Static(classes="error", id="err-bridge-ipv6", markup=False), "")
        yield Field("bridge.public_address6", "Public IPv6 address (empty: the interface's global one)",
                    self.state.text("bridge.public_address6"), placeholder="2001:db8::7")
        yield Static("", id="forwarded", markup=False)

    def patch(self) -> dict:
        menu = self.query_one(OptionList)
        option = menu.get_option_at_index(menu.highlighted) if menu.highlighted is not None else None
        t = self.typed()
        return {"bridge.public_interface": option.id if option else None,
                "bridge.public_address": t["bridge.public_address"].strip() or None,
                "bridge.ipv6": "auto" if self.query_one(Checkbox).value else "off",
                "bridge.public_address6": t["bridge.public_address6"].strip() or None}

    @on(OptionList.OptionHighlighted)
    @on(Input.Changed)
    @on(Checkbox.Changed)
    def refresh_facts(self) -> None:
        self.query_one("#forwarded", Static).update(self.forwarded_text())

    def forwarded_text(self) -> str:
        """What the homelab will get of each family, and the DNS records to publish."""
        a = self.state.resolved_with(self.patch(), self.KEYS)
        if a is None or a.bridge.public_address is None:
            return ""
        b = a.bridge
        ipv6 = f" and {b.public_address6} (IPv6)" if a.forwards_ipv6 else " only"
        return f"Forwarded to the homelab: {b.public_address} (IPv4){ipv6}.\n{a.dns_records()}"


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
        ports = sshd.facts_of(self.state.facts).ports
        now = ("No sshd on this host (openssh-server missing): only the console reaches the "
               "bridge once port 22 is forwarded." if ports is None else
               f"sshd listens now on: {', '.join(map(str, ports)) or 'no port'}.")
        return (f"{now}\nAfter setup, TCP 22 of the public address belongs to the homelab: "
                f"`ssh bridge` reaches the homelab, `ssh -p PORT bridge` the bridge.")

    def change_text(self) -> str:
        port = as_int(self.query_one("#in-bridge-ssh_port", Input).value)
        if not isinstance(port, int) or not 1 <= port <= 65535:
            return ""
        if sshd.facts_of(self.state.facts).ports is None:
            return "What will change: nothing for sshd (none installed)."
        try:
            dropin = sshd.dropin_for(port, sshd.facts_of(self.state.facts))
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


STEPS = [PublicInterfaceScreen, WireGuardScreen, SshScreen, ForwardScreen]
