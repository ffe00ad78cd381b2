"""The wizard's state: one answers object, edited screen by screen, judged by the validator.

No Textual here. Screens hand in what the user typed as a patch in answers-file form
(the same nested dict an answers file parses to); the patch goes through the same
`answers_from_dict` and `check` as `--answers`, so every message the wizard shows is the
validator's `Problem.message` for that key.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

from installer import ROLES
from installer import answers as answers_toml
from installer import pairing, roles, setup
from installer.detect import HostFacts, Socket, port_free
from installer.errors import InvalidAnswers, Problem, SetupError
from installer.plan import Plan, resolve_defaults
from installer.validate import answers_from_dict, load_answers


def evaluate(data: dict, role: str | None, facts: HostFacts):
    """(answers or None, problems) for answers-file data, exactly as --answers judges it."""
    answers, problems = answers_from_dict(data, role)
    if answers is None:
        return None, problems
    try:
        load_answers(data, role, facts)
        return answers, []
    except InvalidAnswers as invalid:
        return answers, invalid.problems


def field_of(key: str) -> str:
    """The field a problem belongs to: "bridge.forward[2]" -> "bridge.forward"."""
    return re.sub(r"\[\d+\]$", "", key)


def owns(prefixes, key: str) -> bool:
    key = field_of(key)
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def split_list(text: str) -> list[str]:
    """"tcp/80, tcp/443 udp/53" -> ["tcp/80", "tcp/443", "udp/53"]."""
    return [item for item in re.split(r"[\s,]+", text.strip()) if item]


def as_int(text: str):
    """An int when the text is one, else the text itself (the validator then says why not)."""
    text = text.strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def _merge(base: dict, patch: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _nest(flat: dict) -> dict:
    """{"bridge.ssh_port": 22} -> {"bridge": {"ssh_port": 22}}."""
    nested: dict = {}
    for key, value in flat.items():
        *tables, name = key.split(".")
        target = nested
        for table in tables:
            target = target.setdefault(table, {})
        target[name] = value
    return nested


@dataclass
class Outcome:
    """What a finished wizard hands back to the command line: the setup's report."""
    report: setup.Report


@dataclass
class WizardState:
    facts: HostFacts
    root: Path
    start: bool                      # False under --root: write files, start nothing
    role: str | None = None
    role_fixed: bool = False
    answers: object = None
    problems: list[Problem] = field(default_factory=list)
    drafts: dict[str, str] = field(default_factory=dict)   # raw text of fields that did not parse
    source: str | None = None        # the answers file of a hybrid run
    private_key: str | None = None
    plan: Plan | None = None
    replace_existing: bool = False   # --replace-existing: an admin's own wg config may go

    @classmethod
    def from_data(cls, facts, root, start, role, role_fixed, data: dict | None = None,
                  problems: list[Problem] | None = None, source: str | None = None):
        """State pre-filled from answers-file data (hybrid mode) or empty."""
        state = cls(facts, Path(root), start, role, role_fixed, source=source)
        data = dict(data or {})
        if role is not None:
            data.setdefault("role", role)
        state.role = data.get("role") if data.get("role") in ROLES else role
        answers, found = evaluate(data, state.role, facts) if state.role else (None, [])
        state.answers = answers
        state.problems = list(problems or []) + [p for p in found if p.key not in
                                                  {q.key for q in problems or []}]
        if state.role is None and "role" in data:
            state.problems.insert(0, Problem("role", f"is {data['role']!r}; must be one of "
                                                     f"{', '.join(ROLES)}"))
        state.keep_what_was_wrong(data)
        return state

    def keep_what_was_wrong(self, data: dict) -> None:
        """Keep what answers-file data said for each problem, so the user sees what to fix."""
        for p in self.problems:
            value = _lookup(data, p.key)
            if value is not None and not isinstance(value, dict):
                self.drafts[p.key] = " ".join(value) if isinstance(value, list) else str(value)

    # --- editing -------------------------------------------------------------
    def set_role(self, role: str) -> None:
        if self.answers is None or self.answers.role != role:
            self.role = role
            self.answers, _ = evaluate({"role": role}, role, self.facts)
        self.problems = [p for p in self.problems if p.key != "role"]

    def data(self) -> dict:
        return answers_toml.to_dict(self.answers)

    def submit(self, flat_patch: dict, keys: tuple[str, ...]) -> list[Problem]:
        """Put the fields of one screen into the answers; the problems of those fields.

        Fields whose value has the wrong type keep their old value in the answers and their
        text in `drafts`, so going back and forth never loses what was typed.
        """
        data = _merge(self.data(), _nest(flat_patch))
        answers, problems = evaluate(data, self.role, self.facts)
        bad = {field_of(p.key) for p in problems}
        if answers is not None:
            self.answers = answers
        for key, value in flat_patch.items():
            if key in bad and value is not None:
                self.drafts[key] = " ".join(value) if isinstance(value, list) else str(value)
            else:
                self.drafts.pop(key, None)
        # A field of another screen that still holds unparsed text keeps its problem.
        found = {p.key for p in problems}
        kept = [p for p in self.problems if p.key in self.drafts and p.key not in flat_patch
                and p.key not in found]
        self.problems = problems + kept
        return [p for p in problems if owns(keys, p.key)]

    def keep_drafts(self, texts: dict[str, str]) -> None:
        """Escape: remember what was typed without judging it."""
        self.drafts.update(texts)

    def text(self, key: str, default: str = "") -> str:
        """What a field shows: the user's draft, else the answers' value."""
        if key in self.drafts:
            return self.drafts[key]
        value = _lookup(self.data(), key)
        if value is None:
            return default
        return " ".join(value) if isinstance(value, list) else str(value)

    def value(self, key: str):
        return _lookup(self.data(), key)

    def problems_for(self, keys) -> list[Problem]:
        return [p for p in self.problems if owns(keys, p.key)]

    def apply_token(self, token: str) -> list[Problem]:
        """Fill endpoint, peer key, tunnel and port from a pairing token, like --pair."""
        data = self.data()
        try:
            pairing.fill_answers(data, token, self.role)
        except InvalidAnswers as invalid:
            return invalid.problems
        answers, problems = evaluate(data, self.role, self.facts)
        self.answers = answers
        for key in ("homelab.endpoint", "peer_public_key", "tunnel", "listen_port", "pair"):
            self.drafts.pop(key, None)
        self.problems = problems
        return []

    # --- which tunnel (a role that may have several: one per peer) -------------
    def saved_tunnels(self) -> dict[str, dict]:
        """Interface -> saved answers data of each tunnel here, when the role may have several
        and the first one is paired already: the wizard then asks which one to change, or adds
        another. Else {} (a new host, or one tunnel not paired yet: today's questions)."""
        code = roles.get(self.role) if self.role else None
        saved = {name: data for name, (_, data) in self.facts.tunnels.items()
                 if data.get("role", self.role) == self.role}
        first = next(iter(self.facts.tunnels.values()), (None, {}))[1]
        if (code is None or not code.several_tunnels or first.get("role", self.role) != self.role
                or not first.get("peer_public_key")):
            return {}
        return saved

    def choose_tunnel(self, interface: str | None) -> list[Problem]:
        """Edit the saved answers of the tunnel `interface` (setup then rewrites that tunnel's
        files only; what they get wrong is shown on its screen), or with None a further tunnel's
        (the role's new_tunnel beside the saved ones, as --pair with a new peer's token: the
        token fills the rest, and is judged then). Starts afresh: no drafts, no key of another
        tunnel. The problem when no further tunnel fits."""
        if interface is None:
            try:
                data = roles.get(self.role).new_tunnel(self.facts.tunnels, self.facts.interfaces)
            except InvalidAnswers as invalid:
                return invalid.problems
        else:
            data = self.facts.tunnels[interface][1]
        self.answers, problems = evaluate(data, self.role, self.facts)
        self.problems, self.drafts = (problems if interface else []), {}
        self.keep_what_was_wrong(data)
        self.private_key = self.plan = None
        return []

    # --- what screens show ---------------------------------------------------
    def resolved_with(self, flat_patch: dict, keys: tuple[str, ...]):
        """The answers with one screen's fields put in and every detected default filled
        in, as setup will save them; None while one of those fields is invalid."""
        answers, problems = evaluate(_merge(self.data(), _nest(flat_patch)), self.role, self.facts)
        if answers is None or any(owns(keys, p.key) for p in problems):
            return None
        return resolve_defaults(answers, self.facts)

    def port_in_use(self, proto: str, port) -> list[Socket]:
        if not isinstance(port, int) or port_free(proto, port, self.facts.sockets):
            return []
        return [s for s in self.facts.sockets if s.proto == proto and s.port == port]

    # --- plan, apply, report -------------------------------------------------
    def final_problems(self) -> list[Problem]:
        _, problems = evaluate(self.data(), self.role, self.facts)
        return problems

    def make_plan(self) -> Plan:
        """The exact plan --answers would carry out for these answers (same key on re-runs)."""
        self.plan, self.private_key = setup.plan(self.answers, self.facts, self.root, start=self.start,
                                                 replace_existing=self.replace_existing,
                                                 private_key=self.private_key)
        return self.plan

    def report(self, changed: list[str]) -> setup.Report:
        return setup.report(self.plan, self.private_key, changed, self.root)


def _lookup(data: dict, key: str):
    target = data
    for part in key.split("."):
        if not isinstance(target, dict) or part not in target:
            return None
        target = target[part]
    return target


__all__ = ["WizardState", "Outcome", "evaluate", "split_list", "as_int", "SetupError"]
