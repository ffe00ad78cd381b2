"""The interactive wizard (`cgnat-setup` with a terminal). The only package importing Textual.

`run_wizard` builds the wizard's state from the same sources as the unattended path (the
answers file or saved answers, `--pair`, `--role`, the installed package, the host's facts)
and returns the Outcome (with the setup's report), or None when the user quit.
"""
from __future__ import annotations

from pathlib import Path

from installer import answers as answers_toml
from installer import ROLES, pairing, roles, setup
from installer.detect import HostFacts
from installer.errors import InvalidAnswers, SetupError
from installer.tui.state import Outcome, WizardState, owns


def run_wizard(args, hybrid: bool = False) -> Outcome | None:
    state = starting_state(args, hybrid)
    from installer.tui.app import SetupApp

    app = SetupApp(state, hybrid=hybrid)
    outcome = app.run()
    if app.internal_error:
        raise SetupError(f"internal error in the wizard: {app.internal_error} (nothing more was "
                         f"written; rerun with --answers FILE)")
    return outcome


def starting_state(args, hybrid: bool) -> WizardState:
    """The wizard's state before its first screen, from the command line's arguments."""
    root = Path(args.root or "/")
    facts = HostFacts.detect(root)
    installed = facts.installed_role
    role = args.role or installed
    data, problems = {}, []
    if hybrid:
        # as the command line: --pair of a known peer edits its tunnel, of a new one adds one
        data = answers_toml.parse_toml(setup.read_source(args.answers, root, args.pair, role, facts))
        if args.role and "role" not in data:
            data["role"] = args.role
        if args.pair:
            try:
                pairing.fill_answers(data, args.pair, role)
            except InvalidAnswers as invalid:
                problems = invalid.problems
                data.setdefault("role", role or asking_for_a_token())   # its screen shows the problem
    role_fixed = bool(args.role or installed or data.get("role") in ROLES)
    state = WizardState.from_data(facts, root, args.root is None,
                                  data.get("role", role), role_fixed, data, problems,
                                  source=args.answers)
    state.replace_existing = args.replace_existing
    if args.pair and problems:
        state.drafts["pair"] = args.pair
    return state


def asking_for_a_token() -> str | None:
    """The role whose wizard asks for a pairing token (the one a token is pasted on)."""
    return next((name for name in roles.available()
                 if any(owns(step.KEYS, "pair") for step in roles.get(name).wizard_steps())), None)
