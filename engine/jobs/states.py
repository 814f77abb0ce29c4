"""The states every job (prep, train, listen, export...) passes through: one set, in one place.

    preparing  loading, checking (training's first state)
    running    working (prep, listen, export...)
    training   training steps under way
    listening  the listening test is synthesising and scoring (xtts-ft listen)
    stopping   a stop was asked for; the job finishes its current unit of work and saves
    stopped    ended on request (or interrupted) with its work so far saved; can be resumed / run again
    finished   done
    failed     ended by an error (`reason` says which) or the process died without a final state

A job whose last state is active but whose process is gone has died: it is shown as `failed`.
"""

from __future__ import annotations

ACTIVE = ("preparing", "running", "training", "listening", "stopping")
FINAL = ("stopped", "finished", "failed")
STATES = ACTIVE + FINAL
NEW = "new"  # no state event yet (shown before the job's first event)
EXIT_CODES = {"finished": 0, "failed": 1, "stopped": 130}
DIED = "process ended without a final state"


def is_active(state: str | None) -> bool:
    return state in ACTIVE


def is_final(state: str | None) -> bool:
    return state in FINAL


def shown(state: str, alive: bool | None) -> str:
    """The state to show people: an active state whose process is gone is a failure."""
    if state in ACTIVE and alive is False:
        return "failed"
    return state
