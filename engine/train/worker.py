"""Entry point of the detached training process: `python -m engine.train.worker RUN [--resume]`.

A worker started on its own holds the run folder's lock (engine/locks.py) for its whole life; the
workers torchrun starts for a distributed run are covered by their launcher's lock."""

import os
import sys


def main() -> int:
    from engine.train.runner import main as run_main

    if len(sys.argv) < 2 or "TORCHELASTIC_RUN_ID" in os.environ:
        return run_main()
    return held(sys.argv[1], run_main)


def held(run: str, body) -> int:
    """Run `body()` holding RUN's lock; a second job on the same run is refused with the holder's pid."""
    from engine import locks

    try:
        with locks.hold(run, "xtts-ft train"):
            return body()
    except locks.Busy as exc:
        print(f"[ERROR] {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
