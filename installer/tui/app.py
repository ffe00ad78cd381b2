"""The wizard application: holds the state, orders the steps, catches every error."""
from __future__ import annotations

from textual.app import App
from textual.binding import Binding

from installer import roles
from installer.tui import screens
from installer.tui.state import Outcome, WizardState, owns


class SetupApp(App[Outcome | None]):
    """`cgnat-setup` without --answers: the same answers, validated, planned and applied
    by the same functions as the unattended path."""

    CSS_PATH = "wizard.tcss"
    TITLE = "cgnat-setup"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(self, state: WizardState, *, hybrid: bool = False) -> None:
        super().__init__()
        self.state = state
        self.hybrid = hybrid
        self.applying = False
        self.changed: list[str] = []
        self.internal_error: str | None = None
        # Hybrid mode (a partial answers file): ask only the steps with a problem.
        self.asked: set[type] = set()
        if hybrid:
            self.asked = {step for step in self.all_steps() if state.problems_for(step.KEYS)}
        else:
            state.problems = []   # a fresh wizard judges a field when it is submitted

    def on_mount(self) -> None:
        self.theme = "ansi-dark"   # the terminal's own 16 colours
        if self.hybrid:
            steps = self.all_steps()
            for p in self.state.problems:
                if not any(owns(step.KEYS, p.key) for step in steps):
                    self.notify(f"{self.state.source or 'answers'}: {p.key}: {p.message} "
                                f"(ignored: the wizard cannot ask it)", severity="warning",
                                timeout=30)
        self.push_screen(self.next_step(None)())

    # --- the order of the steps --------------------------------------------------------
    def all_steps(self) -> list[type]:
        """The role screen (unless the role is fixed), the role's own questions this host is
        asked, the review."""
        steps = [] if self.state.role_fixed and self.state.role else [screens.RoleScreen]
        own = roles.get(self.state.role).wizard_steps() if self.state.role else []
        own = [step for step in own if step.wanted(self.state)]
        return steps + own + [screens.ReviewScreen]

    def flow(self) -> list[type]:
        steps = self.all_steps()
        if self.hybrid:
            steps = [s for s in steps if s in self.asked or s is screens.ReviewScreen]
        return steps

    def next_step(self, current: type | None) -> type:
        flow = self.flow()
        if current is None or current not in flow:
            return flow[0]
        return flow[flow.index(current) + 1]

    def step_label(self, screen) -> str:
        flow = self.flow()
        role = self.state.role or "role not chosen"
        if type(screen) in flow:
            return f"{role}: step {flow.index(type(screen)) + 1} of {len(flow)}"
        return role

    def advance(self, screen) -> None:
        self.push_screen(self.next_step(type(screen))())

    def go_back(self) -> None:
        if len(self.screen_stack) > 2:
            self.pop_screen()
        else:
            self.notify("This is the first step. Ctrl+Q quits without writing anything.")

    def fix(self, key: str) -> None:
        """Open the step that owns a key the review found invalid."""
        for step in self.all_steps():
            if owns(step.KEYS, key):
                self.asked.add(step)
                self.push_screen(step())
                return
        self.show_error(f"{key}: cannot be set in the wizard; fix it in the answers file")

    # --- errors: one line on the screen, never a traceback ----------------------------------
    def show_error(self, message: str) -> None:
        self.notify(message.splitlines()[0] if message else "error", severity="error",
                    timeout=10)

    def _handle_exception(self, error: Exception) -> None:
        # Textual would print a traceback with local variables (a private key among them).
        self.internal_error = f"{type(error).__name__}: {error}"
        self.exit(None, return_code=1)

    def action_quit(self) -> None:
        if self.applying:
            self.notify("Setup is being applied; wait for it to finish.", severity="warning")
            return
        if isinstance(self.screen, screens.DoneScreen):
            self.screen.action_finish()   # already written: report it
            return
        self.exit(None)
