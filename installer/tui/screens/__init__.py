"""The wizard's shared screens: base (the step frame, help, role) and finish (review, apply,
done). Each role's own questions are its package's (cgnat_<role>/wizard.py), reached through
the role interface's `wizard_steps`."""
from installer.tui.screens.base import HelpScreen, RoleScreen, Step, guarded
from installer.tui.screens.finish import ApplyScreen, DoneScreen, ReviewScreen

__all__ = ["ApplyScreen", "DoneScreen", "HelpScreen", "ReviewScreen", "RoleScreen", "Step", "guarded"]
