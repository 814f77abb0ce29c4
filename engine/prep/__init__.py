"""Dataset preparation: from recordings to a checked XTTS training set.

    builder      the prep pipeline (`run_prep`, `PrepOptions`)
    cli          `xtts-ft prep`
    report       `Reporter`: console lines + JSON-lines events
    dataset      dataset.json + the coqui CSVs (load / save, atomically)
    review       clip edits from the studio (journaled, undoable)
    transcripts  existing transcripts (sidecars, metadata.csv) aligned to clips
    textnorm     text normalisation and comparison

The public names are loaded on first use, so `from engine.prep import review` stays light.
"""

from __future__ import annotations

_EXPORTS = {"run_prep": "builder", "PrepOptions": "builder", "PrepError": "builder", "Reporter": "report"}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
