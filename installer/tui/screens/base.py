"""The wizard's shared screens: the step frame every question screen is built on, help,
and the first question (the role). A screen only edits answers (through WizardState) and
shows facts; validation, planning and applying are imported, never written here."""
from __future__ import annotations

import functools

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Header, Input, RadioButton, RadioSet, Static

from installer import roles
from installer.errors import Problem, SetupError
from installer.tui.state import WizardState, field_of
from installer.tui.widgets import Field, say, slug


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

    @classmethod
    def wanted(cls, state: WizardState) -> bool:
        """Whether this host is asked the step at all (most steps: always)."""
        return True

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


# --- the role --------------------------------------------------------------------------

class RoleScreen(Step):
    STEP_TITLE = "Which end of the tunnel is this host?"
    KEYS = ("role",)
    HELP = ("bridge: the small VPS with a public IPv4 address. Every port except its WireGuard "
            "port and its own SSH port is forwarded to the homelab.\n\n"
            "homelab: the server at home behind carrier-grade NAT. It dials out to the bridge "
            "and serves what the bridge forwards.\n\n"
            "Set up the bridge first: it prints a pairing token to paste here on the homelab.")

    def body(self) -> ComposeResult:
        offered = roles.available()
        chosen = offered.index(self.state.role) if self.state.role in offered else 0
        with RadioSet(id="in-role"):
            for index, role in enumerate(offered):
                yield RadioButton(f"{role:<7} - {roles.get(role).summary}", value=index == chosen)
        yield say(Static(classes="error", id="err-role", markup=False), "")

    def patch(self) -> dict:
        return {}

    @guarded
    def action_next(self) -> None:
        self.state.set_role(roles.available()[self.query_one(RadioSet).pressed_index])
        self.app.advance(self)
