"""Our rules files (/etc/cgnat/IFACE.rules) and the names of their chains, for Python, and
which of the rules are in the kernel (status and the bridge's watchdog ask).

The shell side is installer/hooks/lib.sh (declared_chains, builtin_of, check_rules); both
read the file the same way: a line `*TABLE` starts a table, a line `:CGNAT-...` declares
one of our chains in it. The hooks feed the file as it is to iptables-restore --noflush, so
both refuse one that does more than declare and fill the interface's own chains
(`refusal`): a hand-added `:DOCKER-USER - [0:0]` would flush Docker's chain.

Each interface has its own chains, `CGNAT-<interface>-<ABBR>`, jumped to from the
builtin chain ABBR stands for (PRE, FWD, POST, IN, OUT; see BUILTINS): with a
15-character interface name that is at most 26 characters, under iptables' 28. The
builtin is read after the last "-" (interface names may contain "-").
"""
from __future__ import annotations

import re
from pathlib import Path

from installer.probes import run

PREFIX = "CGNAT-"
BUILTINS = {"PRE": "PREROUTING", "FWD": "FORWARD", "POST": "POSTROUTING", "IN": "INPUT", "OUT": "OUTPUT"}
_ABBREVIATIONS = {builtin: abbr for abbr, builtin in BUILTINS.items()}
# The tables our chains may be in, and the builtins (by ABBR) each one hooks them to.
HOOKS = {"nat": {"PRE", "IN", "OUT", "POST"}, "filter": {"FWD", "IN", "OUT"}, "mangle": set(BUILTINS)}
_DECLARATION = re.compile(r":([^ \t]+) - \[0:0\]")
_APPEND = re.compile(r"-A ([^ \t]+)(?:[ \t]|\Z)")


def chain_name(interface: str, builtin: str) -> str:
    """Our chain of `interface` jumped to from `builtin`: chain_name("wg0", "FORWARD") == "CGNAT-wg0-FWD"."""
    return f"{PREFIX}{interface}-{_ABBREVIATIONS[builtin]}"


def builtin_of(chain: str) -> str:
    """The builtin chain our `chain` is jumped to from: "CGNAT-wg0-PRE" -> "PREROUTING";
    "" for a name without one of our abbreviations (no builtin jumps to it)."""
    return BUILTINS.get(chain.rsplit("-", 1)[-1], "")


def declared_chains(rules_text: str) -> list[tuple[str, str]]:
    """(table, chain) of each CGNAT-* chain an iptables-restore file declares."""
    table, chains = None, []
    for line in rules_text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":" + PREFIX) and table:
            chains.append((table, line[1:].split()[0]))
    return chains


def refusal(rules_text: str, interface: str) -> str | None:
    """Why iptables-restore --noflush must not load this rules file ("LINE: why"), or None:
    it may only hold `*TABLE` (nat, filter, mangle), `:CGNAT-<interface>-<ABBR> - [0:0]` of a
    builtin that table has, `-A` rules of a chain declared above in the same table, `COMMIT`,
    comments and blank lines (lib.sh: check_rules)."""
    ours = f"{PREFIX}{interface}-"
    lines = rules_text.split("\n")    # as awk reads it: "\r" and the like stay in the line
    if lines[-1] == "":
        lines.pop()
    table, declared, number = "", set(), 0
    for number, line in enumerate(lines, 1):
        why = None
        if line == "" or line.startswith("#"):
            continue
        if line.startswith("*"):
            table = line[1:]
            why = None if table in HOOKS else f'table "{table}" is not one of ours'
        elif line == "COMMIT":
            table = ""
        elif not table:
            why = "outside a table"
        elif declaration := _DECLARATION.fullmatch(line):
            chain = declaration.group(1)
            declared.add((table, chain))
            if not (chain.startswith(ours) and chain[len(ours):] in HOOKS[table]):
                why = f"declares {chain} in {table}"
        elif append := _APPEND.match(line):
            if (table, append.group(1)) not in declared:
                why = f"appends to {append.group(1)}, not our chain declared in {table}"
        else:
            why = "not a declaration or an -A rule of ours"
        if why:
            return f"{number}: {_printable(why)} (only {ours}<ABBR> chains may be declared and filled)"
    if table:
        return f"{number}: no COMMIT after *{table} (only {ours}<ABBR> chains may be declared and filled)"
    return None


def _printable(text: str) -> str:
    """One line of printable ASCII, "?" for each other byte (as lib.sh's check_rules prints it)."""
    return "".join(chr(b) if 32 <= b < 127 else "?" for b in text.encode("utf-8", "surrogateescape"))


# ------------------------------------------------------------ the rules in the kernel

def saved_rules(iptables: str = "iptables") -> dict[str, set[str]] | None:
    """Each table's rules ("-A CHAIN ...", quotes dropped) from one `iptables-save` (or
    `ip6tables-save`); None if it fails."""
    done = run([f"{iptables}-save"])
    if done.returncode != 0:
        return None
    tables: dict[str, set[str]] = {}
    table = ""
    for line in done.stdout.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith("-A "):
            tables.setdefault(table, set()).add(line.replace('"', ""))
    return tables


def missing_rules(interface: str, rules_path: str) -> tuple[str, ...]:
    """The jumps (and chains) of the rules file, and of its IPv6 twin RULES_PATH + "6" where
    IPv6 is forwarded, that are not in the kernel, per one `iptables-save` / `ip6tables-save`."""
    return (_missing_rules("iptables", interface, rules_path)
            + _missing_rules("ip6tables", interface, rules_path + "6"))


def refused_rules(interface: str, rules_path: str) -> tuple[str, ...]:
    """Why the up hook refuses the rules file, or its IPv6 twin ("PATH:LINE: why"), if it does."""
    texts = ((path, _read(path)) for path in (rules_path, rules_path + "6"))
    return tuple(f"{path}:{why}" for path, text in texts
                 if text is not None and (why := refusal(text, interface)))


def _read(path: str) -> str | None:
    """The file's text, any bytes (as awk reads them); None if it cannot be read."""
    try:
        return Path(path).read_bytes().decode("utf-8", "surrogateescape")
    except OSError:
        return None


def _missing_rules(iptables: str, interface: str, rules_path: str) -> tuple[str, ...]:
    text = _read(rules_path)
    if text is None:
        return ()
    chains = declared_chains(text)
    tables = saved_rules(iptables) if chains else {}
    family = "" if iptables == "iptables" else "IPv6 "
    missing = []
    for table, chain in chains:
        builtin = builtin_of(chain)
        rules = (tables or {}).get(table, set())
        if f"-A {builtin} -m comment --comment cgnat:{interface} -j {chain}" not in rules:
            missing.append(f"{family}{table} {builtin} -> {chain}")
        elif not any(rule.startswith(f"-A {chain} ") for rule in rules):
            missing.append(f"{family}{table} {chain} is empty")
    return tuple(missing)
