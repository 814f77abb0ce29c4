"""The finetuning guide's advice, keyed by alert kind (../shared/reference/xtts-finetuning-guide.md)."""

from __future__ import annotations

from engine.train.oom import OOM_ADVICE

TITLES = {
    "oom": "Out of memory",
    "overtraining": "Overtraining",
    "plateau": "Plateau",
    "low_vram": "Low VRAM",
    "vram_full": "VRAM almost full",
    "small_dataset": "Small dataset",
    "failed": "Run failed",
    "early_stop": "Early stop",
}

ADVICE = {
    "oom": OOM_ADVICE,  # the engine's own (the oom alert carries it too)
    "overtraining": [
        "Early stopping: stop now, the best model is kept (s stops safely).",
        "Lower the learning rate for finer adjustments without overfitting.",
        "Add more varied recordings (sentences, tones, phonetic variety).",
    ],
    "plateau": [
        "Further epochs are unlikely to help at this learning rate: stop (the best model is kept),",
        "or resume later with a lower learning rate; a warm-restart schedule can escape a poor minimum.",
    ],
    "low_vram": [
        "The guide recommends 12 GB of VRAM or more (16 GB+ on Linux, which cannot borrow system RAM).",
        "Use a lower batch size with more gradient accumulation, and shorter clips.",
    ],
    "vram_full": [
        "Free memory is close to zero: an out-of-memory error is likely.",
        "Lower the batch size (raise gradient accumulation) or the maximum audio length.",
    ],
    "small_dataset": [
        "3 minutes of speech is the minimum; 5+ minutes is recommended for better accuracy.",
        "More clips with varied sentence lengths, tones and speeds give a more robust voice.",
    ],
}


def advice_for(kind: str | None, given: list | None = None) -> list[str]:
    if given:
        return [str(a) for a in given]
    return ADVICE.get(kind or "", [])


def title_for(kind: str | None) -> str:
    return TITLES.get(kind or "", (kind or "alert").replace("_", " "))
