"""The wizard's screens, one module per flow: base (the step frame, help, role), bridge,
homelab, and finish (review, apply, done)."""
from installer.tui.screens.base import HelpScreen, RoleScreen, Step, guarded
from installer.tui.screens.bridge import (ForwardScreen, PublicInterfaceScreen, SshScreen,
                                          WireGuardScreen)
from installer.tui.screens.finish import ApplyScreen, DoneScreen, ReviewScreen
from installer.tui.screens.homelab import DockerScreen, ExposureScreen, PairScreen, WatchdogScreen

__all__ = ["ApplyScreen", "DockerScreen", "DoneScreen", "ExposureScreen", "ForwardScreen",
           "HelpScreen", "PairScreen", "PublicInterfaceScreen", "ReviewScreen", "RoleScreen",
           "SshScreen", "Step", "WatchdogScreen", "WireGuardScreen", "guarded"]
