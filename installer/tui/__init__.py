"""The interactive wizard (`cgnat-setup` with a terminal). The only package importing Textual.

`run_wizard` builds the wizard's state from the same sources as the unattended path (the
answers file or saved answers, `--pair`, `--role`, the installed package, the host's facts)
and returns what `installer.cli.report` needs, or None when the user quit.
"""
from __future__ import annotations

from pathlib import Path

from installer import cli, pairing
from installer.detect import HostFacts
from installer.errors import InvalidAnswers, SetupError
from installer.tui.state import Outcome, WizardState


def run_wizard(args, hybrid: bool = False) -> Outcome | None:
    root = Path(args.root or "/")
    facts = HostFacts.detect(root)
    installed = facts.installed_role
    role = args.role or installed
    data, problems = {}, []
    if hybrid:
        data = cli.read_answers_data(args, root)
        if args.pair:
            try:
                pairing.fill_answers(data, args.pair, role)
            except InvalidAnswers as invalid:
                problems = invalid.problems
                data.setdefault("role", "homelab")
    role_fixed = bool(args.role or installed or data.get("role") in ("bridge", "homelab"))
    state = WizardState.from_data(facts, root, args.root is None,
                                  data.get("role", role), role_fixed, data, problems,
                                  source=args.answers)
    if args.pair and problems:
        state.drafts["pair"] = args.pair
    from installer.tui.app import SetupApp

    app = SetupApp(state, hybrid=hybrid)
    outcome = app.run()
    if app.internal_error:
        raise SetupError(f"internal error in the wizard: {app.internal_error} (nothing more was "
                         f"written; rerun with --answers FILE)")
    return outcome
