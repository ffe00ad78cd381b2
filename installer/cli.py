"""cgnat-setup: the command line. Parses, then hands the answers to validate/plan/apply."""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

from installer import ROLES, __version__
from installer import answers as answers_toml
from installer.answers import ANSWERS_PATH
from installer import keys, pairing
from installer.apply import apply, host_path, log
from installer.detect import HostFacts
from installer.errors import InvalidAnswers, Problem, SetupError
from installer.plan import WATCHDOG_TIMER, make_plan, resolve_defaults
from installer.validate import load_answers
from installer.watchdog import interface_exists

EXIT_OK, EXIT_FAILURE, EXIT_INVALID = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cgnat-setup",
        description="Configure this host as the bridge or the homelab of a CGNAT tunnel.")
    p.add_argument("command", nargs="?", choices=["status", "teardown"],
                   help="status: health of every link, exit 0 only if all are healthy; "
                        "teardown: stop the tunnel and the watchdog and remove our rules (used by prerm)")
    p.add_argument("--answers", metavar="FILE", help="answers file (TOML), '-' for stdin: run unattended")
    p.add_argument("--check", action="store_true", help="validate the answers only; write nothing")
    p.add_argument("--plan", action="store_true", help="print every file and rule; write nothing")
    p.add_argument("--root", metavar="DIR", help="write all files under DIR and start nothing")
    p.add_argument("--pair", metavar="TOKEN", help="fill the peer's key and addresses from its pairing token")
    p.add_argument("--role", choices=ROLES, help="the role when neither the answers nor the package say")
    p.add_argument("--replace-existing", action="store_true",
                   help="replace a WireGuard config of the same interface that cgnat-setup did not "
                        "write (it is kept as IFACE.conf.before-cgnat; its key is not reused)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"cgnat-setup {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "teardown":
            return teardown(Path(args.root or "/"))
        if args.command == "status":
            from installer import status
            return status.main(Path(args.root or "/"))
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
        source = "-" if args.answers == "-" else (args.answers or "--pair")
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
    """A person is at a terminal and the run is not a dry one (--check, --plan), nor one of
    a package's maintainer scripts (dpkg sets DPKG_MAINTSCRIPT_NAME): those never prompt."""
    return (sys.stdin.isatty() and sys.stdout.isatty() and args.answers != "-"
            and not (args.check or args.plan) and "DPKG_MAINTSCRIPT_NAME" not in os.environ)


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
    report(outcome.answers, outcome.private_key, outcome.changed, Path(args.root or "/"))
    return EXIT_OK


def read_answers_data(args, root: Path) -> dict:
    """The answers as parsed TOML: from --answers, else (for --pair) the saved ones."""
    if args.answers == "-":
        raw = sys.stdin.buffer.read()
    elif args.answers is not None:
        raw = Path(args.answers).read_bytes()
    else:
        saved = host_path(root, ANSWERS_PATH)
        raw = saved.read_bytes() if saved.exists() else b""
    data = answers_toml.parse_toml(raw)
    if args.role and "role" not in data:
        data["role"] = args.role
    return data


def unattended(args) -> int:
    root = Path(args.root or "/")
    facts = HostFacts.detect(root)
    default_role = args.role or facts.installed_role
    data = read_answers_data(args, root)
    if args.pair:
        pairing.fill_answers(data, args.pair, default_role)
    answers = load_answers(data, default_role, facts)
    if args.check:
        print(f"{args.answers}: ok ({answers.role})")
        return EXIT_OK
    answers = resolve_defaults(answers, facts)
    private_key = private_key_for(answers, root, facts)
    plan = make_plan(answers, facts, private_key, start=args.root is None,
                     replace_existing=args.replace_existing)
    if args.plan:
        print(plan.describe(), end="")
        return EXIT_OK
    changed = apply(plan, root)
    report(answers, private_key, changed, root)
    return EXIT_OK


def private_key_for(answers, root: Path, facts: HostFacts) -> str:
    """private_key_file, else the key of an earlier run (same identity), else a new one.
    Never the key of a config setup did not write: that is another VPN's identity."""
    if answers.private_key_file:
        return keys.read_key_file(Path(answers.private_key_file))
    conf = f"/etc/wireguard/{answers.interface}.conf"
    existing = None if facts.foreign(conf) else keys.key_in_config(host_path(root, conf))
    return existing or keys.generate_private_key()


def report(answers, private_key: str, changed: list[str], root: Path) -> None:
    public = keys.public_key(private_key)
    other = "homelab" if answers.role == "bridge" else "bridge"
    token = pairing.token_for(answers, public)
    state = f"{len(changed)} file(s) changed" if changed else "already up to date"
    print(f"cgnat-setup: {answers.role} configured ({state}).")
    print(f"Public key:    {public}")
    print(f"Pairing token: {token}")
    print(f"On the {other}, run:  sudo cgnat-setup --pair {token}")
    print(f"Answers saved to {host_path(root, ANSWERS_PATH)} (replay: cgnat-setup --answers FILE)")
    if answers.role == "bridge":
        print(f"Open UDP {answers.listen_port} and TCP {answers.bridge.ssh_port} in your provider's "
              f"firewall; from now on `ssh -p {answers.bridge.ssh_port}` reaches the bridge.")
        print(answers.dns_records())


def teardown(root: Path) -> int:
    """Stop what setup started (the prerm on remove): the watchdog timer and the tunnel, then
    the down hook for what is left (an interface brought up by hand, or deleted before).
    Forgiving: no saved answers, no systemd, units already stopped are fine; with --root
    nothing was started, so nothing is stopped."""
    saved = host_path(root, ANSWERS_PATH)
    if not saved.exists():
        log("no saved answers: nothing to tear down")
        return EXIT_OK
    if root != Path("/"):
        log(f"--root {root}: nothing was started there, nothing to stop")
        return EXIT_OK
    data = answers_toml.parse_toml(saved.read_text())
    interface, role = data.get("interface", "wg0"), data.get("role")
    if shutil.which("systemctl") is not None:
        for unit in (WATCHDOG_TIMER, f"wg-quick@{interface}"):
            log(f"systemctl disable --now {unit}")
            subprocess.run(["systemctl", "disable", "--now", unit], capture_output=True)
    steps = []
    if interface_exists(interface):
        steps.append(["wg-quick", "down", interface])          # its PostDown runs the hook
    hook = Path(f"/usr/lib/cgnat-{role}/hooks/down")
    if role in ROLES and hook.exists():
        steps.append([str(hook), interface])                     # idempotent: removes leftovers
    failed = False
    for argv in steps:
        log(" ".join(argv))
        done = subprocess.run(argv, capture_output=True, text=True)
        for line in done.stderr.splitlines():
            print(f"    {line}", file=sys.stderr)
        failed |= done.returncode != 0
    return EXIT_FAILURE if failed else EXIT_OK
