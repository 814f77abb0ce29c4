"""The one event schema: every event type of every job, with its required fields.

Each job writes JSON lines (engine/events.py: `v`, `ts`, `type` + fields) into its events file;
docs/events.md describes every type with a section per job. `validate(event, job)` returns the
problems of one event (an empty list when it is valid): the tests run it over every line that a
real prep, training and stop wrote.

Version 2 (this one) adds to version 1: every warning `log` carries a machine `code` (the studio
raises alerts from codes only), state events carry `job`, and an interrupted prep ends `stopped`
instead of `finished`. Version 1 files still read: `upgrade(event)` gives their warnings the codes
a version-2 writer would have given, from their structured fields.
"""

from __future__ import annotations

from engine.events import SCHEMA_VERSION
from engine.jobs import states

NUM = (int, float)
OPT_NUM = (int, float, type(None))
OPT_STR = (str, type(None))
KNOWN_VERSIONS = (1, 2)

# every job: its life cycle, its messages and its progress bars
COMMON: dict[str, dict[str, tuple]] = {
    "state": {"state": (str,)},
    "log": {"tag": (str,), "level": (str,), "msg": (str,)},
    "progress": {"stage": (str,), "done": NUM, "total": OPT_NUM},
}

PREP: dict[str, dict[str, tuple]] = {
    "source_report": {"source": (dict,)},
    "prep_summary": {"clips": (int,)},
    "content_report": {"content": (dict,)},
}

TRAIN: dict[str, dict[str, tuple]] = {
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
    # the listening test during training (engine/listen; docs/listening.md)
    "listen": {"label": (str,), "source": (str,), "seconds": NUM, "cer": OPT_NUM, "similarity": OPT_NUM,
               "mos": OPT_NUM, "flags": (dict, type(None))},
    "listen_progress": {"label": (str,), "done": (int,), "total": (int,)},
    "best_listen": {"path": (str,), "label": (str,), "reason": (str,)},
}

# the `xtts-ft listen` job's own stream (R/listen_events.jsonl): its log lines have no tag, its
# progress counts sentences of a label
LISTEN: dict[str, dict[str, tuple]] = {
    "state": COMMON["state"],
    "log": {"level": (str,), "msg": (str,)},
    "progress": {"label": (str,), "done": (int,), "total": (int,)},
    "listen": TRAIN["listen"],
    "recommendation": {"label": (str,), "reason": (str,)},
}

# job kind -> its event types (COMMON included). A new job adds its entry here and a section to
# docs/events.md; a new event type goes into its job's table.
JOBS: dict[str, dict[str, dict[str, tuple]]] = {
    "prep": {**COMMON, **PREP},
    "train": {**COMMON, **TRAIN},
    "listen": LISTEN,
    "export": dict(COMMON),   # `xtts-ft export` (R/export_events.jsonl): its states only; `finished` carries the result
}
LEVELS = ("info", "warning", "error")


def event_types(job: str | None = None) -> dict[str, dict[str, tuple]]:
    if job is not None:
        return JOBS[job]
    merged: dict[str, dict[str, tuple]] = {}
    for types in JOBS.values():
        merged.update(types)
    return merged


def validate(e: dict, job: str | None = None) -> list[str]:
    """Problems of one event (empty when valid). `job` restricts the types to that job's."""
    problems = []
    v = e.get("v")
    if v not in KNOWN_VERSIONS:
        problems.append(f"v is {v!r}, expected one of {KNOWN_VERSIONS}")
    if not isinstance(e.get("ts"), (int, float)):
        problems.append("ts missing or not a number")
    t = e.get("type")
    spec = event_types(job).get(t)
    if spec is None:
        problems.append(f"unknown type {t!r}" + (f" for a {job} job" if job else ""))
        return problems
    for key, types in spec.items():
        if key not in e:
            problems.append(f"{t}: missing {key}")
        elif not isinstance(e[key], types) or (isinstance(e[key], bool) and bool not in types):
            problems.append(f"{t}: {key}={e[key]!r} has the wrong type")
    if t == "state":
        st = e.get("state")
        if st not in states.STATES:
            problems.append(f"state: unknown state {st!r}")
        if st in ("stopped", "failed") and not e.get("reason"):
            problems.append(f"state {st}: no reason")
        if v == SCHEMA_VERSION and not isinstance(e.get("job"), str):
            problems.append("state: missing job")
    if t == "log":
        if e.get("level") not in LEVELS:
            problems.append(f"log: unknown level {e.get('level')!r}")
        if e.get("level") == "warning" and v == SCHEMA_VERSION and not isinstance(e.get("code"), str):
            problems.append(f"log: warning without a code: {e.get('msg')!r}")
    return problems


def upgrade(e: dict) -> dict:
    """A version-1 event as a version-2 reader expects it (codes on the warnings the studio alerts
    on, from their fields); newer events are returned as they are."""
    if e.get("v") != 1 or e.get("type") != "log" or e.get("level") != "warning" or "code" in e:
        return e
    code = None
    if "total_mb" in e and e.get("tag") == "GPU":
        code = "low_vram"
    elif "train_samples" in e:
        code = "small_dataset"
    return {**e, "code": code} if code else e
