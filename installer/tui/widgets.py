"""Small widgets of the wizard: a labelled input with its validator message."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Static


def slug(key: str) -> str:
    """A widget id for an answers key: "bridge.ssh_port" -> "bridge-ssh_port"."""
    return key.replace(".", "-")


def say(static: Static, text: str) -> Static:
    """Show `text` in a Static; an empty one takes no line."""
    static.update(text)
    static.display = bool(text)
    return static


class Field(Vertical):
    """Label, input and the validator's message for one answers key."""

    DEFAULT_CSS = """
    Field { height: auto; margin: 0 0 1 0; }
    Field > .label { height: 1; }
    Field > .error { height: auto; color: $error; }
    Field > .hint { height: auto; color: $text-muted; }
    """

    def __init__(self, key: str, label: str, value: str, *, placeholder: str = "",
                 hint: str = "", password: bool = False) -> None:
        super().__init__(id=f"field-{slug(key)}")
        self.key = key
        self._label = label
        self._value = value
        self._placeholder = placeholder
        self._hint = hint
        self._password = password

    def compose(self) -> ComposeResult:
        yield Static(self._label, classes="label", markup=False)
        yield Input(self._value, placeholder=self._placeholder, id=f"in-{slug(self.key)}",
                    password=self._password, compact=True)
        yield say(Static(classes="hint", markup=False, id=f"hint-{slug(self.key)}"), self._hint)
        yield say(Static(classes="error", markup=False, id=f"err-{slug(self.key)}"), "")

    @property
    def text(self) -> str:
        return self.query_one(Input).value

    def show_error(self, message: str) -> None:
        say(self.query_one(".error", Static), message)
