"""The commands' table: each command module declares its arguments right above its handler.

``@command("tag", help=..., arguments=[argument("--name", ...)])`` on ``cmd_tag`` adds one row;
``add_commands`` turns the rows into argparse subcommands, in the order the modules registered
them (watchdog's ``watchmedo`` keeps a command's options on its handler the same way).
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Sequence, Tuple


@dataclass(frozen=True)
class Argument:
    flags: Tuple[str, ...]
    options: Dict[str, object]


def argument(*flags: str, **options) -> Argument:
    """One ``add_argument`` call, kept for later."""
    return Argument(flags, options)


@dataclass(frozen=True)
class Action:
    """A second word under a command (``ranges update``), with its own arguments."""

    name: str
    help: str
    arguments: Sequence[Argument] = ()


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    description: str
    run: Callable
    arguments: Sequence[Argument] = ()
    actions: Sequence[Action] = field(default_factory=tuple)
    # The desktop's files hold names and addresses: its commands create them for the user
    # alone (umask 077). The server's commands keep the modes their files need (group-read hits).
    private_files: bool = True

    @property
    def action_dest(self) -> str:
        """Where the chosen action's name lands in ``args`` (``ranges_action``)."""
        return self.name.replace("-", "_") + "_action"


COMMANDS: List[Command] = []


def command(name: str, *, help: str, description: str = "",
            arguments: Sequence[Argument] = (), actions: Sequence[Action] = (), private_files: bool = True):
    """Register the decorated ``run(args, home) -> int`` as the command ``name``."""
    def register(run: Callable) -> Callable:
        COMMANDS.append(Command(name, help, description or help, run, tuple(arguments), tuple(actions),
                                private_files))
        return run
    return register


def _add_arguments(parser, arguments: Sequence[Argument]) -> None:
    for arg in arguments:
        parser.add_argument(*arg.flags, **arg.options)


def add_commands(subparsers) -> None:
    """Every registered command as a subparser of ``subparsers``."""
    for cmd in COMMANDS:
        parser = subparsers.add_parser(cmd.name, help=cmd.help, description=cmd.description)
        _add_arguments(parser, cmd.arguments)
        if cmd.actions:
            actions = parser.add_subparsers(title="actions", metavar="ACTION", dest=cmd.action_dest,
                                            required=True)
            for action in cmd.actions:
                _add_arguments(actions.add_parser(action.name, help=action.help), action.arguments)
        parser.set_defaults(run=cmd.run, private_files=cmd.private_files)
