"""How a training run ends early: each exception maps to one final state in `runner.Engine.main`."""

from __future__ import annotations


class StopTraining(Exception):
    """A stop asked for (signal, `xtts-ft stop`) or decided (early stopping): checkpoint, then end."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind  # "user" | "early_stop"
        self.reason = reason


class UserFacingError(Exception):
    """A problem with the run's inputs: its message is the one-line reason of the `failed` state."""


class OOMFailure(Exception):
    """Out of memory and no back-off left (batch size 1, back-off off, or several processes)."""


def finite(x):
    """`x` as a float when it is a finite number, else None (events never carry NaN or inf)."""
    import math

    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
