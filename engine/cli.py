"""`xtts-ft` / `python -m engine`: the command line over the engine.

Each area registers its own sub-commands (`register(subparsers)` in its module), so the CLI
stays one thin file. The `xtts-ft` console script enters through `tui.launch`, which opens the
terminal studio when no sub-command is given; the engine itself never imports the TUI.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

# modules that add sub-commands; a module that is not there yet is skipped
COMMAND_MODULES = [
    "engine.prep.cli",
    "engine.model.vocab_cli",
    "engine.demo",
    "engine.train.cli",
    "engine.listen.cli",
    "engine.train.estimate",
    "engine.serve",
]


class UserError(Exception):
    """A problem the user can fix: printed as one line, exit code 2, no traceback."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every command's help: a literal `%` in a help text is printed as is (argparse would
    %-format it), and `(default: X)` is added once, only where the option has a real default and
    its help does not name one already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        text = re.sub(r"%(?!\(|%)", "%%", text.replace("%%", "\0")).replace("\0", "%%")
        default = action.default
        if (action.option_strings and default is not None and default is not False
                and default != argparse.SUPPRESS and "default" not in text
                and not isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """argparse with the project's help formatter, for the top level and every sub-command."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="xtts-ft",
        description="Finetune Coqui XTTS v2 voices: prepare a dataset, train, export. "
        "Run with no command to open the terminal studio.",
    )
    from engine import __version__

    parser.add_argument("--version", action="version", version=f"xtts-ft {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if name.startswith(exc.name or "\0"):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"xtts-ft {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"xtts-ft {args.command}: interrupted", file=sys.stderr)
        return 130
