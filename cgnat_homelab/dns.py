"""DNS that follows health: the homelab's watchdog keeps the public name's A/AAAA records to
the bridges whose chain serves ([homelab.dns], RFC 2136 dynamic updates). Placeholder of the
interface the watchdog calls; the updates come with the [homelab.dns] settings."""
from __future__ import annotations


class Follower:
    """The records of one name, kept to the healthy tunnels' bridges."""

    @classmethod
    def from_answers(cls, tunnels: list) -> "Follower | None":
        """From every tunnel's answers (the first first); None when none has [homelab.dns]."""
        return None

    def follow(self, healthy: dict[str, bool], now: float) -> None:
        """interface -> whether its chain serves now: withdraw the broken bridges' records, put
        back those that serve again, never leave the name without a record (I/O, logged)."""
