"""The watchdog's name and its state file: what setup, `cgnat-setup status` and both roles'
watchdogs agree on. The state is a dataclass per role (cgnat_bridge.decision.State,
cgnat_homelab.decision.State) kept as JSON in STATE_PATH between runs and across restarts.
Pure but for reading and writing that file; the service loop is installer/watchdog_runtime.py."""
from __future__ import annotations

import dataclasses
import json
import sys
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from installer import atomic

STATE_PATH = "/var/lib/cgnat/watchdog.json"     # the first tunnel's (a single-bridge host's only one)
UNIT = "cgnat-watchdog.service"     # shipped by each package, enabled and started by cgnat-setup
PROGRAM = "cgnat-watchdog"


def state_path(interface: str, first: bool, first_path: str = STATE_PATH) -> str:
    """A tunnel's state file: the first tunnel's (its answers in /etc/cgnat/answers.toml) is
    `first_path`; a further tunnel's is watchdog-IFACE.json beside it."""
    return first_path if first else str(Path(first_path).with_name(f"watchdog-{interface}.json"))


def log(message: str) -> None:
    """One line for the journal (the units send stderr there)."""
    print(f"{PROGRAM}: {message}", file=sys.stderr, flush=True)


def step_note(kind: str, now: float) -> str:
    """The last step taken, for `cgnat-setup status`: "restart at 2026-11-25 06:00:00"."""
    return f"{kind} at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))}"


@dataclass
class JsonState:
    """A dataclass kept between runs as JSON; unknown keys (a newer version's) are ignored.
    Both roles' states count the steps taken by kind and keep when health last changed (for
    the metrics and `cgnat-setup status --json`); a subclass says what `healthy` means."""
    steps_taken: dict[str, int] = field(default_factory=dict)
    health_changed_at: float | None = None
    interface: str = ""       # the tunnel it is of ("": saved before a host could have several)
    # Fields that change on every run without changing what the state says: not worth a write
    # (a role's state adds its own, as a class attribute, not a field).
    VOLATILE: typing.ClassVar[tuple[str, ...]] = ("last_run_at",)

    def account(self, before, steps, now: float) -> None:
        """Count this run's steps and note a change of health (self: the state after the run,
        before: the one before it)."""
        for step in steps:   # a new dict: self may share before's (dataclasses.replace)
            self.steps_taken = {**self.steps_taken, step.kind: self.steps_taken.get(step.kind, 0) + 1}
        if self.health_changed_at is None or self.healthy != before.healthy:
            self.health_changed_at = now

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict):
        """The state from its JSON object; a value of a type its field does not hold (a string for
        a time, NaN, a list for a count: a hand's edit, a disk error) is left at the default, so a
        damaged state never crashes the watchdog later, in its arithmetic."""
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not an object")
        hints = typing.get_type_hints(cls)
        fitting = {f.name: _as_type(data[f.name], hints[f.name]) for f in dataclasses.fields(cls) if f.name in data}
        return cls(**{name: value for name, value in fitting.items() if value is not _UNFIT})

    @classmethod
    def load(cls, path: Path, interface: str = ""):
        """The saved state of `interface`'s tunnel, or a fresh one when there is none, it cannot
        be read, or it is another tunnel's (remove-tunnel of the first made a further one the
        first: its state file is the first's, state_path)."""
        try:
            state = cls.from_json(path.read_text())
        except FileNotFoundError:
            state = cls()
        except (OSError, ValueError, TypeError) as error:
            log(f"ignoring unreadable state {path}: {error}")
            state = cls()
        if interface and state.interface not in ("", interface):
            log(f"ignoring {path}: the state of {state.interface}, not of {interface}")
            state = cls()
        state.interface = interface or state.interface
        return state

    def differs(self, other) -> bool:
        """Whether saving self over other would change what the state says (not just when)."""
        theirs = vars(other)       # shallow: runs every few seconds, asdict() would deep-copy
        return any(value != theirs.get(key) for key, value in vars(self).items() if key not in self.VOLATILE)

    def save_if_changed(self, path: Path, before) -> None:
        """Save unless only the time of the run changed: no write, no fsync on a healthy run.
        `before` None: the first run of this process, which always saves."""
        if before is None or self.differs(before):
            self.save(path)

    def save(self, path: Path) -> None:
        """Atomically and durably: a reboot right after must not lose it (the reboot count)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_atomic(path, self.to_json(), 0o600)


_UNFIT = object()


def _as_type(value, hint):
    """`value` as a field of type `hint` holds it (float, int, bool, str, X | None, list[X],
    dict[str, X]; numbers finite, floats as float), or _UNFIT."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return next((v for v in (_as_type(value, arg) for arg in args) if v is not _UNFIT), _UNFIT)
    if hint is type(None):
        return None if value is None else _UNFIT
    if origin is list and isinstance(value, list):
        items = [_as_type(item, args[0]) for item in value]
        return _UNFIT if any(item is _UNFIT for item in items) else items
    if origin is dict and isinstance(value, dict):
        items = {key: _as_type(item, args[1]) for key, item in value.items()}
        fits = all(isinstance(key, str) and item is not _UNFIT for key, item in items.items())
        return items if fits else _UNFIT
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) <= 1e300
    if hint is float and number:
        return float(value)
    if hint is int and number and isinstance(value, int):
        return value
    return value if hint in (bool, str) and type(value) is hint else _UNFIT
