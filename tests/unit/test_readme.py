"""The README and the man page say what the program does: every `cgnat-setup` command line
they show parses with the real argument parser, every answers key they show is in the
published schema, every relative link of the README (and of the docs it links) resolves,
and the guide's blocks the booted-host test runs are there."""
from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from readme_guide import (MAN_PAGE, README, REPO, TOKEN_PLACEHOLDER, code_blocks,
                          guide_blocks, indented_lines, inline_code, with_token)
from installer.cli import parser

SCHEMA = REPO / "docs" / "answers.schema.json"
DOCS = (README, REPO / "docs" / "measurements.md", REPO / "docs" / "performance.md")
HEREDOC = re.compile(r"<<'(\w+)'\n(.*?)^\1$", re.M | re.S)
COMMENTED_KEY = re.compile(r"^# ?([a-z_0-9]+ *= *\S.*?)(?:\s+#.*)?$")
PROGRAM = re.compile(r"(?:^|(?<=[\s(`]))cgnat-setup(?=\s|$)")


# ---------------------------------------------------------------- command lines

def command_lines(text: str) -> list[str]:
    """Every cgnat-setup command line of a Markdown text: in shell blocks, indented blocks
    and inline code; up to a comment, or to the description after two spaces (the
    reference's table of commands). Output like `cgnat-setup: ...` is not a command."""
    candidates = [line for lang, body in code_blocks(text) if lang in ("sh", "")
                  for line in body.splitlines()]
    candidates += indented_lines(text)
    candidates += [span for span in inline_code(text) if PROGRAM.match(span)]   # not prose quoted
    found = []
    for line in candidates:
        for match in PROGRAM.finditer(line):
            rest = line[match.start():]
            rest = re.split(r"\s+#|\s{2,}|;|&&|\|", rest)[0].strip()
            found.append(rest)
    return found


def man_examples() -> list[str]:
    """The command lines of the man page's example blocks (.EX ... .EE), roff escapes undone."""
    roff = MAN_PAGE.read_text()
    lines = []
    for block in re.findall(r"^\.EX\n(.*?)^\.EE$", roff, re.M | re.S):
        for line in block.splitlines():
            line = line.replace("\\-", "-").replace("\\(aq", "'").replace("\\e", "\\")
            if PROGRAM.search(line) and not line.startswith("#"):
                lines.append(re.split(r"\s+#", line[PROGRAM.search(line).start():])[0].strip())
    return lines


def parse_error(command: str) -> str | None:
    """argparse's complaint about a command line, None when it parses ('...' stands for more
    the text leaves out)."""
    argv = [word for word in shlex.split(command)[1:] if word != "..."]
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            parser().parse_args(argv)
    except SystemExit as exit:
        if exit.code != 0:           # 0: --version, --help
            return errors.getvalue().strip() or f"exit {exit.code}"
    return None


README_COMMANDS = command_lines(README.read_text())
MAN_COMMANDS = man_examples()


def test_the_docs_show_the_commands_this_test_checks():
    assert len(README_COMMANDS) >= 20, README_COMMANDS
    assert len(MAN_COMMANDS) >= 5, MAN_COMMANDS
    shown = " ".join(README_COMMANDS + MAN_COMMANDS)
    for option in ("--answers", "--pair", "--check", "--plan", "--root", "--role", "--debug",
                   "--replace-existing", "status", "--json"):
        assert option in shown, f"no example uses {option}"


@pytest.mark.parametrize("command", README_COMMANDS + MAN_COMMANDS)
def test_every_command_line_parses(command):
    assert parse_error(command) is None, f"{command!r} does not parse: {parse_error(command)}"


def test_the_parser_refuses_what_the_docs_must_not_show():
    """The check above could fail: a misspelt option or a command that does not exist."""
    assert parse_error("cgnat-setup --anwsers FILE")
    assert parse_error("cgnat-setup statuss")


# ---------------------------------------------------------------- answers keys

def schema_keys() -> dict[str, set[str]]:
    """role -> every dotted key its answers may have."""
    keys = {}

    def walk(node, prefix, into):
        for name, sub in node.get("properties", {}).items():
            into.add(prefix + name)
            walk(sub, prefix + name + ".", into)
    for variant in json.loads(SCHEMA.read_text())["oneOf"]:
        role = variant["properties"]["role"]["const"] if "const" in variant["properties"]["role"] \
            else variant["properties"]["role"]["enum"][0]
        keys[role] = set()
        walk(variant, "", keys[role])
    return keys


def toml_snippets(text: str) -> list[str]:
    """The answers the text shows: ```toml blocks and the heredocs of its shell blocks, with
    commented-out keys (`# key = value`) taken in as keys too."""
    snippets = [body for lang, body in code_blocks(text) if lang == "toml"]
    snippets += [body for lang, body in code_blocks(text) if lang == "sh"
                 for _, body in HEREDOC.findall(body + "\n")]
    return ["\n".join(m.group(1) if (m := COMMENTED_KEY.match(line)) else line
                      for line in snippet.splitlines()) for snippet in snippets]


def dotted(table: dict, prefix: str = "") -> list[str]:
    found = []
    for name, value in table.items():
        found.append(prefix + name)
        if isinstance(value, dict):
            found += dotted(value, prefix + name + ".")
    return found


SNIPPETS = toml_snippets(README.read_text())


def test_the_readme_shows_answers():
    assert len(SNIPPETS) >= 5, SNIPPETS


@pytest.mark.parametrize("snippet", SNIPPETS)
def test_every_answers_key_shown_is_in_the_schema(snippet):
    data = tomllib.loads(snippet)
    known = schema_keys()
    allowed = known[data["role"]] if "role" in data else set().union(*known.values())
    unknown = [key for key in dotted(data) if key not in allowed]
    assert unknown == [], f"not in {SCHEMA.name}: {unknown}\n{snippet}"


def test_every_dotted_key_named_in_the_prose_is_in_the_schema():
    known = set().union(*schema_keys().values())
    named = {span for span in inline_code(README.read_text())
             if re.fullmatch(r"(bridge|homelab)(\.[a-z_0-9]+)+", span) and not span.endswith(".toml")}
    assert named, "the README names no key like homelab.watchdog.check_host"
    assert sorted(named - known) == []


# ---------------------------------------------------------------- links

def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^a-z0-9 -]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text()
    outside = re.sub(r"^```.*?^```$", "", text, flags=re.M | re.S)
    return {slug(h) for h in re.findall(r"^#+ (.*)$", outside, re.M)}


def relative_links(path: Path) -> list[str]:
    text = re.sub(r"^ *```.*?^ *```$", "", path.read_text(), flags=re.M | re.S)
    return [link for link in re.findall(r"\]\(([^)\s]+)\)", text)
            if not re.match(r"[a-z]+:", link)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_resolves(doc):
    links = relative_links(doc)
    broken = []
    for link in links:
        target, _, anchor = link.partition("#")
        file = (doc.parent / target).resolve() if target else doc
        if not file.exists():
            broken.append(link)
        elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
            broken.append(link)
    assert broken == [], f"{doc.name}: {broken}"
    if doc == README:
        assert any(link.startswith("#") for link in links) and "docs/performance.md" in links


def test_slug_follows_github():
    assert slug("Dual stack (IPv6)") == "dual-stack-ipv6"
    assert slug("2. The provider's firewall, first") == "2-the-providers-firewall-first"


# ---------------------------------------------------------------- the guide's blocks

def test_the_guide_marks_the_blocks_the_booted_test_runs():
    blocks = guide_blocks()
    assert set(blocks) == {"bridge", "homelab", "bridge-pair", "status", "bridge-apply", "homelab-repair"}
    assert blocks["bridge-apply"] == "cgnat-setup --answers /etc/cgnat/answers.toml\n"
    assert with_token(blocks["homelab-repair"], "cgnat3-abc") == "cgnat-setup --answers homelab.toml --pair cgnat3-abc\n"
    assert "apt install ./cgnat-bridge_" in blocks["bridge"]
    assert "apt install ./cgnat-homelab_" in blocks["homelab"]
    assert with_token(blocks["homelab"], "cgnat3-abc").count("--pair cgnat3-abc") == 1
    assert with_token(blocks["bridge-pair"], "cgnat3-abc").strip() == "cgnat-setup --pair cgnat3-abc"
    assert blocks["status"].strip() == "cgnat-setup status"
    with pytest.raises(ValueError):
        with_token(blocks["bridge"], "cgnat3-abc")      # the bridge's block takes no token
    assert TOKEN_PLACEHOLDER in README.read_text()


def test_no_answers_shown_hard_code_the_public_interface():
    """It is detected (the interface of the default route): answers that name ens3 break on
    every VPS whose interface is called otherwise. The reference may show it commented out."""
    shown = [body for lang, body in code_blocks(README.read_text()) if lang in ("toml", "sh")]
    assert any("public_interface" in body for body in shown)
    assert [body for body in shown if re.search(r"^public_interface\s*=", body, re.M)] == []
