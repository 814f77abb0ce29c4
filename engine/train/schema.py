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
}
STATES = ("preparing", "training", "stopping", "stopped", "finished", "failed")
FINAL = ("stopped", "finished", "failed")


def validate(e: dict) -> list[str]:
    problems = []
    if e.get("v") != SCHEMA_VERSION:
        problems.append(f"v is {e.get('v')!r}, expected {SCHEMA_VERSION}")
    if not isinstance(e.get("ts"), (int, float)):
        problems.append("ts missing or not a number")
    t = e.get("type")
    spec = TRAIN_EVENTS.get(t)
    if spec is None:
        problems.append(f"unknown type {t!r}")
        return problems
    for key, types in spec.items():
        if key not in e:
            problems.append(f"{t}: missing {key}")
        elif not isinstance(e[key], types) or (isinstance(e[key], bool) and bool not in types):
            problems.append(f"{t}: {key}={e[key]!r} has the wrong type")
    if t == "state" and e.get("state") not in STATES:
        problems.append(f"state: unknown state {e.get('state')!r}")
    if t == "state" and e.get("state") in ("stopped", "failed") and not e.get("reason"):
        problems.append(f"state {e.get('state')}: no reason")
    return problems
