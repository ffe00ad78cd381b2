"""The last screens of either role: review the plan, apply it, show the report."""
from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Log, Static

from installer import setup
from installer.errors import Problem, SetupError
from installer.tui.screens.base import HelpScreen, Step, guarded
from installer.tui.state import Outcome


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
            changed = setup.apply(state.plan, state.root)
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
        report = self.report = self.app.state.report(self.changed)
        yield Header(icon="#")
        with VerticalScroll(id="body"):
            yield Static(f"Done: {report.summary}.", classes="title", markup=False)
            yield Static("Public key", classes="label")
            yield Static(report.public_key, id="public-key", classes="big", markup=False)
            yield Static(f"Pairing token (paste it into the {report.other}'s wizard)", classes="label")
            yield Static(report.token, id="token", classes="big", markup=False)
            lines = report.notes + ["Both are printed again when the wizard closes."]
            yield Static("\n".join(lines), id="saved", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.app.sub_title = f"{self.app.state.role}: done"

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.report.token)
        self.app.notify("Pairing token copied (terminals with OSC 52 clipboard support).")

    def action_finish(self) -> None:
        self.app.exit(Outcome(self.report))

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen("Done", "Select the token with the mouse or press c to "
                                        "copy it (OSC 52). Enter closes the wizard; the key and "
                                        "token are printed again on the terminal."))
