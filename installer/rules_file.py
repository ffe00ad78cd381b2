"""Our rules files (/etc/cgnat/IFACE.rules) and the names of their chains, for Python, and
which of the rules are in the kernel (status and the bridge's watchdog ask).

The shell side is installer/hooks/lib.sh (declared_chains, builtin_of); both read
the file the same way: a line `*TABLE` starts a table, a line `:CGNAT-...` declares
one of our chains in it.

Each interface has its own chains, `CGNAT-<interface>-<ABBR>`, jumped to from the
builtin chain ABBR stands for (PRE, FWD, POST, IN, OUT; see BUILTINS): with a
15-character interface name that is at most 26 characters, under iptables' 28. The
builtin is read after the last "-" (interface names may contain "-"). A chain named
`CGNAT-<BUILTIN>` (the shared chains of versions before 0.1.0-per-interface rules
files) still maps to its builtin, so hooks and watchdog keep working on a rules file
rendered by an older cgnat-setup.
"""
from __future__ import annotations

from pathlib import Path

from installer.watchdog import run

PREFIX = "CGNAT-"
BUILTINS = {"PRE": "PREROUTING", "FWD": "FORWARD", "POST": "POSTROUTING", "IN": "INPUT", "OUT": "OUTPUT"}
_ABBREVIATIONS = {builtin: abbr for abbr, builtin in BUILTINS.items()}


def chain_name(interface: str, builtin: str) -> str:
    """Our chain of `interface` jumped to from `builtin`: chain_name("wg0", "FORWARD") == "CGNAT-wg0-FWD"."""
    return f"{PREFIX}{interface}-{_ABBREVIATIONS[builtin]}"


def builtin_of(chain: str) -> str:
    """The builtin chain our `chain` is jumped to from: "CGNAT-wg0-PRE" -> "PREROUTING"."""
    last = chain.rsplit("-", 1)[-1]
    return BUILTINS.get(last, last)


def declared_chains(rules_text: str) -> list[tuple[str, str]]:
    """(table, chain) of each CGNAT-* chain an iptables-restore file declares."""
    table, chains = None, []
    for line in rules_text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":" + PREFIX) and table:
            chains.append((table, line[1:].split()[0]))
    return chains


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


def _missing_rules(iptables: str, interface: str, rules_path: str) -> tuple[str, ...]:
    try:
        chains = declared_chains(Path(rules_path).read_text())
    except OSError:
        return ()
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
