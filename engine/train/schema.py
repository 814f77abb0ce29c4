"""The training event types and their required fields (docs/events.md describes them).

`validate(event)` returns a list of problems (empty when the event is valid); the tests run it
over every line of a real run, and the TUI may use it to skip malformed lines.
"""

from __future__ import annotations

from engine.events import SCHEMA_VERSION

NUM = (int, float)
OPT_NUM = (int, float, type(None))

TRAIN_EVENTS: dict[str, dict[str, tuple]] = {
    "state": {"state": (str,)},
    "log": {"tag": (str,), "level": (str,), "msg": (str,)},
    "preflight": {"check": (str,)},
    "resources": {"gpu": (dict,), "ram": (dict, type(None))},
    "epoch_start": {"epoch": (int,), "epochs": (int,), "steps_per_epoch": (int,), "global_step": (int,)},
    "step": {
        "epoch": (int,), "epochs": (int,), "step": (int,), "steps_per_epoch": (int,), "global_step": (int,),
        "opt_step": (int,), "loss_text_ce": OPT_NUM, "loss_mel_ce": OPT_NUM, "loss": OPT_NUM, "lr": OPT_NUM,
        "grad_norm": OPT_NUM, "step_time": OPT_NUM, "loader_time": OPT_NUM, "batch_size": (int,),
        "grad_accum": (int,),
    },
    "eval": {"epoch": (int,), "global_step": (int,), "avg_loss_text_ce": OPT_NUM, "avg_loss_mel_ce": OPT_NUM,
             "avg_loss": OPT_NUM},
    "epoch_end": {"epoch": (int,), "global_step": (int,), "train_loss": OPT_NUM},
    "best_model": {"path": (str,), "loss": NUM, "global_step": (int,), "epoch": (int,)},
    "checkpoint": {"path": (str,), "global_step": (int,), "epoch": (int,), "reason": (str,), "size_bytes": (int,)},
    "alert": {"kind": (str,), "level": (str,), "msg": (str,)},
    "config_change": {"reason": (str,), "batch_size": (int,), "grad_accum": (int,)},
    "resumed": {"checkpoint": (str,), "global_step": (int,), "epoch": (int,), "epoch_step": (int,)},
    "sample": {"variant": (str,), "path": (str,), "text": (str,)},
    # the listening test (engine/listen; docs/listening.md)
    "listen": {"label": (str,), "source": (str,), "seconds": NUM, "cer": OPT_NUM, "similarity": OPT_NUM,
               "mos": OPT_NUM, "flags": (dict, type(None))},
    "listen_progress": {"label": (str,), "done": (int,), "total": (int,)},
    "best_listen": {"path": (str,), "label": (str,), "reason": (str,)},
}
# the `xtts-ft listen` job's own stream (R/listen/events.jsonl)
LISTEN_JOB_EVENTS: dict[str, dict[str, tuple]] = {
    "state": {"state": (str,)},
    "log": {"level": (str,), "msg": (str,)},
    "progress": {"label": (str,), "done": (int,), "total": (int,)},
    "listen": TRAIN_EVENTS["listen"],
    "recommendation": {"label": (str,), "reason": (str,)},
}
LISTEN_JOB_STATES = ("preparing", "listening", "stopped", "finished", "failed")
STATES = ("preparing", "training", "stopping", "stopped", "finished", "failed")
FINAL = ("stopped", "finished", "failed")


def validate(e: dict, kinds: dict | None = None, states: tuple | None = None) -> list[str]:
    """Problems of one event (empty when valid); `kinds`/`states` select another job's schema
    (LISTEN_JOB_EVENTS / LISTEN_JOB_STATES for the listening job)."""
    kinds = TRAIN_EVENTS if kinds is None else kinds
    states = STATES if states is None else states
    problems = []
    if e.get("v") != SCHEMA_VERSION:
        problems.append(f"v is {e.get('v')!r}, expected {SCHEMA_VERSION}")
    if not isinstance(e.get("ts"), (int, float)):
        problems.append("ts missing or not a number")
    t = e.get("type")
    spec = kinds.get(t)
    if spec is None:
        problems.append(f"unknown type {t!r}")
        return problems
    for key, types in spec.items():
        if key not in e:
            problems.append(f"{t}: missing {key}")
        elif not isinstance(e[key], types) or (isinstance(e[key], bool) and bool not in types):
            problems.append(f"{t}: {key}={e[key]!r} has the wrong type")
    if t == "state" and e.get("state") not in states:
        problems.append(f"state: unknown state {e.get('state')!r}")
    if t == "state" and e.get("state") in ("stopped", "failed") and not e.get("reason"):
        problems.append(f"state {e.get('state')}: no reason")
    return problems
