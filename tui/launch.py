"""The `xtts-ft` console script: the TUI with no arguments, the engine's CLI otherwise."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("--workspace", "--run") or argv[0].startswith(("--workspace=", "--run=")):
        try:
            from tui.app import run_app
        except ModuleNotFoundError as exc:
            if exc.name != "tui.app":
                raise
        else:
            return run_app(argv)
    from engine.cli import main as engine_main

    return engine_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
