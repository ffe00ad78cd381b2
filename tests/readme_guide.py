"""The README's guide as the tests read it: the shell blocks it marks for them, and every
command line it and the man page show.

A block the tests run is a ```sh fence right after a marker line `<!-- guide: NAME -->`
(both indented alike inside a list item);
its commands run verbatim (tests/system/test_system_readme.py), where the guide tells the
user to replace TOKEN_PLACEHOLDER with the other host's pairing token."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MAN_PAGE = REPO / "debian" / "cgnat-setup.8"
TOKEN_PLACEHOLDER = "cgnat3-..."

MARKED = re.compile(r"^( *)<!-- guide: ([a-z-]+) -->\n\1```sh\n(.*?)^\1```$", re.M | re.S)
FENCE = re.compile(r"^ *```(\w*)\n(.*?)^ *```$", re.M | re.S)


def guide_blocks(text: str | None = None) -> dict[str, str]:
    """NAME -> the commands of each marked block."""
    text = README.read_text() if text is None else text
    blocks: dict[str, str] = {}
    for indent, name, body in MARKED.findall(text):
        if name in blocks:
            raise ValueError(f"README.md: two blocks named {name!r}")
        blocks[name] = "".join(line[len(indent):] for line in body.splitlines(keepends=True))
    return blocks


def with_token(block: str, token: str) -> str:
    """The block as the user runs it: the placeholder replaced by the token, as the guide says."""
    if block.count(TOKEN_PLACEHOLDER) != 1:
        raise ValueError(f"expected one {TOKEN_PLACEHOLDER!r} in the block:\n{block}")
    return block.replace(TOKEN_PLACEHOLDER, token)


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, indented ones (in lists) included."""
    return [(lang, "\n".join(line.strip() for line in body.splitlines()))
            for lang, body in FENCE.findall(text)]


def indented_lines(text: str) -> list[str]:
    """The lines of every indented (4 spaces) block outside fences: examples and output."""
    lines, fence = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence and line.startswith("    "):
            lines.append(line.strip())
    return lines


def inline_code(text: str) -> list[str]:
    """Every `inline code` span outside fences."""
    outside = FENCE.sub("", text)
    return re.findall(r"`([^`\n]+)`", outside)
