"""The ``mailtracker`` command line: the only place that configures logging and prints.

One module per command group, each command's arguments declared right above its handler
(``cli/registry.py``); this module parses, runs the chosen command and turns its errors into
plain messages and exit codes.
"""

import argparse
import logging
import os
import re
import sys
from typing import List, Optional

from mailtracker import __version__
from mailtracker.cli import extras, registry
from mailtracker.core.errors import FileAccessError, MailtrackerError, MissingExtraError
from mailtracker.core.paths import Home

# The command groups, in the order --help lists them; importing one registers its commands.
from mailtracker.cli import home, server, counts, ranges, thunderbird, demo, desktop, sync  # noqa: E402,F401

log = logging.getLogger("mailtracker")

# Options whose value may begin with '-' (a Syncthing API key can): 'KEY' is taken as
# the value even when argparse would read it as an option.
DASH_VALUE_OPTIONS = ("--api-key",)


def main(argv: Optional[List[str]] = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            # Flushed here, not at exit (also after argparse's --help exits), so a reader
            # that went away is seen below.
            sys.stdout.flush()
    except BrokenPipeError:
        return stdout_closed()


def stdout_closed() -> int:
    """The reader of stdout went away (``mailtracker tag | head``): end quietly, like a
    program killed by SIGPIPE, instead of a BrokenPipeError traceback."""
    # Python flushes stdout again at exit; point it at /dev/null so that flush is silent.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + 13


def join_dash_values(argv: List[str]) -> List[str]:
    """``--api-key -abc`` as ``--api-key=-abc``, which argparse reads as the value."""
    joined, args = [], iter(argv)
    for arg in args:
        if arg in DASH_VALUE_OPTIONS:
            value = next(args, None)
            joined.append(arg if value is None else f"{arg}={value}")
        else:
            joined.append(arg)
    return joined


def _main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    argv = join_dash_values(sys.argv[1:] if argv is None else list(argv))
    typo = mistyped(parser, argv)
    if typo:
        return typo
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s: %(message)s" if not args.verbose else "%(asctime)s %(name)s %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    name = next(cmd.name for cmd in registry.COMMANDS if cmd.run is args.run)
    extra = extras.missing_extra(name)
    if extra is not None:
        # Before the command starts, so nothing it would print comes first.
        error = MissingExtraError(extras.missing_extra_message(extra, f"'mailtracker {name}'"))
        print(f"mailtracker: {error}", file=sys.stderr)
        return error.code
    if args.private_files:
        os.umask(0o077)  # files 0600, folders 0700: the desktop's hold names and addresses
    try:
        return args.run(args, Home.locate(args.home)) or 0
    except MailtrackerError as exc:
        print(f"mailtracker: {exc}", file=sys.stderr)
        print_hint(exc)
        return exc.code
    except BrokenPipeError:
        raise  # stdout's reader went away: not a file problem (main ends quietly)
    except OSError as exc:
        # A file the command needed: say which and why, in words, not a traceback.
        where = f" {exc.filename}" if exc.filename else ""
        error = FileAccessError(f"cannot read or write{where}: {exc.strerror or exc}")
        print(f"mailtracker: {error}", file=sys.stderr)
        return error.code
    except ModuleNotFoundError as exc:
        extra = extras.EXTRA_OF_MODULE.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        error = MissingExtraError(extras.missing_extra_message(extra, f"this command ({exc.name})"))
        print(f"mailtracker: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        return 130


def mistyped(parser: argparse.ArgumentParser, argv: List[str]) -> int:
    """A mistyped command or option: the usage of what was meant and a suggestion, exit 2 (0: none)."""
    import difflib

    commands = parser._subparsers._group_actions[0].choices
    words = iter(argv)
    for word in words:
        if word == "--home":
            next(words, None)
        elif not word.startswith("-"):
            break
    else:
        return 0
    if word not in commands:
        close = difflib.get_close_matches(word, commands, n=1)
        parser.print_usage(sys.stderr)
        print(f"mailtracker: error: no command '{word}'" + (f"; did you mean '{close[0]}'?" if close else
              "; 'mailtracker --help' lists them"), file=sys.stderr)
        return 2
    sub = commands[word]
    if any(isinstance(action, argparse._SubParsersAction) for action in sub._actions):
        return 0  # a command with actions (ranges update…): argparse says it well enough
    known = [flag for action in sub._actions for flag in action.option_strings]
    for arg in list(words):
        option = arg.split("=", 1)[0]
        if option == "--":
            break
        # argparse takes a unique abbreviation (--server for --server-url): so does this.
        if option.startswith("--") and not [flag for flag in known if flag.startswith(option)]:
            close = difflib.get_close_matches(option, known, n=1)
            sub.print_usage(sys.stderr)
            print(f"mailtracker {word}: error: no option {option}" + (f"; did you mean {close[0]}?" if close else
                  f"; 'mailtracker {word} --help' lists them"), file=sys.stderr)
            return 2
    return 0


def print_hint(exc: MailtrackerError) -> None:
    """The code's fix (core/hints.py, shared with the add-on), unless the message already names
    the command it gives."""
    from mailtracker.core.hints import hint_for

    if getattr(exc, "fix_in_message", False):
        return
    hint = hint_for(exc.code)
    named = re.findall(r"'(mailtracker [^']*)'", hint)
    if not any(command.split(" --")[0] in str(exc) for command in named):
        print(f"mailtracker: {hint}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailtracker",
        description="Email-open tracking with your own pixel server.",
        epilog="Every command takes --help. Files live in the home: --home, $MAILTRACKER_HOME, "
               "or the platform's standard config and data folders.",
    )
    parser.add_argument("--version", action="version", version=f"mailtracker {__version__}")
    parser.add_argument("--home", metavar="DIR", help="use this directory for all files")
    parser.add_argument("-v", "--verbose", action="store_true", help="say more, with timestamps")
    registry.add_commands(parser.add_subparsers(title="commands", metavar="COMMAND"))
    return parser
