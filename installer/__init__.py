"""cgnat-setup: configure a CGNAT bridge or homelab for a WireGuard tunnel."""

__version__ = "0.1.0"
ROLES = ("bridge", "homelab")
