"""cgnat-setup: the command line. Parses arguments, runs installer.setup, prints, and turns
the outcome into an exit code."""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from installer import ROLES, __version__, grammar, setup
from installer.detect import HostFacts
from installer.errors import InvalidAnswers, Problem, SetupError
from installer.validate import INTERFACE_RULE

EXIT_OK, EXIT_FAILURE, EXIT_INVALID = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cgnat-setup",
        description="Configure this host as the bridge or the homelab of a CGNAT tunnel.")
    p.add_argument("command", nargs="?", choices=["status", "teardown", "remove-tunnel"],
                   help="status: health of every link, exit 0 only if all are healthy; "
                        "teardown: stop the tunnel and the watchdog and remove our rules (used by prerm); "
                        "remove-tunnel IFACE: take one tunnel (one bridge) away, its files too")
    p.add_argument("interface", nargs="?", metavar="IFACE", help="remove-tunnel: the tunnel's interface")
    p.add_argument("--answers", metavar="FILE", help="answers file (TOML), '-' for stdin: run unattended")
    p.add_argument("--check", action="store_true", help="validate the answers only; write nothing")
    p.add_argument("--plan", action="store_true", help="print every file and rule; write nothing")
    p.add_argument("--root", metavar="DIR", help="write all files under DIR and start nothing")
    p.add_argument("--no-start", action="store_true",
                   help="write the files and enable the units, start nothing (image builds, a "
                        "package's postinst where services may not start): they start at the next boot")
    p.add_argument("--pair", metavar="TOKEN", help="fill the peer's key and addresses from its pairing token")
    p.add_argument("--role", choices=ROLES, help="the role when neither the answers nor the package say")
    p.add_argument("--replace-existing", action="store_true",
                   help="replace a WireGuard config of the same interface that cgnat-setup did not "
                        "write (it is kept as IFACE.conf.before-cgnat; its key is not reused)")
    p.add_argument("--json", action="store_true", help="status: one JSON object (its shape: README, "
                                                        "\"Watching it\")")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"cgnat-setup {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if (args.command == "remove-tunnel") != (args.interface is not None):
        p.error("remove-tunnel takes the tunnel's interface (cgnat-setup remove-tunnel wg1), and "
                "only it takes one")
    if args.json and args.command != "status":
        p.error("--json goes with status (cgnat-setup status --json)")
    if args.no_start and (args.root is not None or args.command is not None):
        p.error("--no-start goes with setup alone (--root DIR already starts and enables nothing)")
    unattended_only = "--check" if args.check else "--plan" if args.plan else "--no-start" if args.no_start else None
    if unattended_only and args.command is None and args.answers is None and args.pair is None:
        p.error(f"{unattended_only} needs --answers FILE or --pair TOKEN (without them the wizard "
                f"would open, and it writes and starts)")
    try:
        if args.command == "teardown":
            return EXIT_OK if setup.teardown(Path(args.root or "/")) else EXIT_FAILURE
        if args.command == "remove-tunnel":
            return remove_tunnel(args)
        if args.command == "status":
            from installer import status
            return status.main(Path(args.root or "/"), as_json=args.json)
        if args.answers is None and args.pair is None:
            return wizard(args, hybrid=False)
        try:
            return unattended(args)
        except InvalidAnswers as invalid:
            # Hybrid: with a terminal, ask only what the file lacks or gets wrong.
            # Not for a syntax error, nor for answers of the other role: no question fixes those.
            if not can_ask(args) or {p.key for p in invalid.problems} & {"(syntax)", "role"}:
                raise
            return wizard(args, hybrid=True)
    except InvalidAnswers as invalid:
        source = "-" if args.answers == "-" else (args.answers or ("--pair" if args.pair else args.command))
        for problem in invalid.problems:
            print(problem.format(source), file=sys.stderr)
        return EXIT_INVALID
    except (SetupError, OSError) as error:
        if args.debug:
            traceback.print_exc()
        print(f"cgnat-setup: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("cgnat-setup: interrupted; nothing was left half-done", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as error:  # noqa: BLE001 - the contract is one line, not a traceback
        if args.debug:
            traceback.print_exc()
        print(f"cgnat-setup: internal error: {type(error).__name__}: {error} (rerun with --debug)",
              file=sys.stderr)
        return EXIT_FAILURE


def can_ask(args) -> bool:
    """A person is at a terminal and the run is not a dry one (--check, --plan), nor one that
    must start nothing (--no-start: the wizard starts), nor one of a package's maintainer
    scripts (dpkg sets DPKG_MAINTSCRIPT_NAME): those never prompt."""
    return (sys.stdin.isatty() and sys.stdout.isatty() and args.answers != "-"
            and not (args.check or args.plan or args.no_start) and "DPKG_MAINTSCRIPT_NAME" not in os.environ)


def wizard(args, hybrid: bool) -> int:
    """The Textual wizard; then the same report as the unattended path."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise SetupError("the wizard needs a terminal; without one use --answers FILE")
    try:
        from installer.tui import run_wizard  # the only import of Textual
    except ImportError as error:
        raise SetupError(f"the wizard cannot start ({error}); use --answers FILE") from None
    outcome = run_wizard(args, hybrid=hybrid)
    if outcome is None:
        print("cgnat-setup: quit; nothing was written", file=sys.stderr)
        return EXIT_FAILURE
    print("\n".join(outcome.report.lines()))
    return EXIT_OK


def unattended(args) -> int:
    root = Path(args.root or "/")
    facts = HostFacts.detect(root)
    role = args.role or facts.installed_role
    answers = setup.load(setup.read_source(args.answers, root, args.pair, role, facts), args.pair, role, facts)
    print_warnings(answers, args)
    if args.check:
        print(f"{'-' if args.answers == '-' else (args.answers or '--pair')}: ok ({answers.role})")
        return EXIT_OK
    plan, private_key = setup.plan(answers, facts, root, start=args.root is None and not args.no_start,
                                   enable=args.root is None, replace_existing=args.replace_existing)
    if args.plan:
        print(plan.describe(), end="")
        return EXIT_OK
    changed = setup.apply(plan, root)
    print("\n".join(setup.report(plan, private_key, changed, root).lines()))
    return EXIT_OK


def remove_tunnel(args) -> int:
    root = Path(args.root or "/")
    if not grammar.is_interface(args.interface):
        raise InvalidAnswers([Problem("interface", INTERFACE_RULE)])
    changed = setup.remove_tunnel(args.interface, root, HostFacts.detect(root), start=args.root is None)
    print(f"cgnat-setup: tunnel {args.interface} removed ({len(changed)} file(s) changed).")
    return EXIT_OK


def print_warnings(answers, args) -> None:
    """`FILE: key: warning: ...` for what works but is worth a look (exit stays 0)."""
    source = "-" if args.answers == "-" else (args.answers or "--pair")
    for warning in setup.warnings(answers):
        print(warning.format(source), file=sys.stderr)
