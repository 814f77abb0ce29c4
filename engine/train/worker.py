"""Entry point of the detached training process: `python -m engine.train.worker RUN [--resume]`."""

import sys

from engine.train.runner import main

if __name__ == "__main__":
    sys.exit(main())
