"""`xtts-ft` / `python -m engine`: the command line over the engine.

Each area registers its own sub-commands (`register(subparsers)` in its module), so the CLI
stays one thin file. The `xtts-ft` console script enters through `tui.launch`, which opens the
terminal studio when no sub-command is given; the engine itself never imports the TUI.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# modules that add sub-commands; a module that is not there yet is skipped
COMMAND_MODULES = [
    "engine.prep_cli",
    "engine.vocab_cli",
    "engine.demo",
    "engine.train.cli",
    "engine.listen.cli",
]


class UserError(Exception):
    """A problem the user can fix: printed as one line, exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xtts-ft",
        description="Finetune Coqui XTTS v2 voices: prepare a dataset, train, export. "
        "Run with no command to open the terminal studio.",
    )
    from engine import __version__

    parser.add_argument("--version", action="version", version=f"xtts-ft {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
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
