"""The two ways cgnat-setup fails: bad input (exit 2) and everything else (exit 1)."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the answers, reported as `FILE: key: message`."""

    key: str
    message: str

    def format(self, source: str) -> str:
        return f"{source}: {self.key}: {self.message}"


class InvalidAnswers(Exception):
    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} problem(s) in the answers")
        self.problems = problems


class SetupError(Exception):
    """A failure with a one-line reason for the administrator."""
