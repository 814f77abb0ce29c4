"""The dataset's audio, checked before training starts.

Every clip the CSVs list is opened and decoded whole, and its length checked, before the model is
built: a missing, damaged or empty clip stops the run at once with the first bad files named,
instead of a decoder traceback deep in the data loader minutes (or hours, at the eval) later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MIN_SECONDS = 0.5        # shorter than this a clip holds no sentence (and XTTS drops it anyway)
SHOWN = 5                # bad files named in the message


@dataclass
class ClipReport:
    seconds: float = 0.0                     # total length of the usable training clips
    too_long: int = 0                        # training clips over max_audio_seconds (XTTS skips them)
    bad: list[tuple[str, str]] = field(default_factory=list)    # (file as in the CSV, reason)
    checked: int = 0


def _rel(sample: dict, dataset: Path) -> str:
    p = Path(sample["audio_file"])
    try:
        return str(p.relative_to(dataset))
    except ValueError:
        return str(p)


def check_clip(path: str | Path) -> tuple[float | None, str | None]:
    """(seconds, None) for a clip that decodes whole, (None, reason) for one that does not."""
    import numpy as np
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        return None, "missing"
    try:
        with sf.SoundFile(str(path)) as f:
            rate, frames = f.samplerate, 0
            while True:
                block = f.read(rate * 4, dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                if not np.isfinite(block).all():
                    return None, "damaged (samples that are not numbers)"
                frames += len(block)
    except (RuntimeError, OSError, ValueError) as exc:   # LibsndfileError is a RuntimeError
        reason = str(exc).split(": ", 1)[-1].strip() or type(exc).__name__
        return None, f"not readable as audio ({reason[:120]})"
    if frames == 0:
        return None, "empty (no samples)"
    seconds = frames / rate
    if seconds < MIN_SECONDS:
        return seconds, f"too short ({seconds:.2f} s; at least {MIN_SECONDS} s)"
    return seconds, None


def check_clips(train: list[dict], ev: list[dict], dataset: str | Path, max_seconds: float) -> ClipReport:
    dataset = Path(dataset)
    rep = ClipReport()
    for split, samples in (("train", train), ("eval", ev)):
        for s in samples:
            rep.checked += 1
            seconds, problem = check_clip(s["audio_file"])
            if problem is not None:
                rep.bad.append((f"{_rel(s, dataset)} ({split})", problem))
                continue
            if split == "train":
                rep.seconds += seconds
                if seconds > max_seconds:
                    rep.too_long += 1
    return rep


def problem_message(rep: ClipReport, dataset: str | Path) -> str:
    shown = "; ".join(f"{name}: {why}" for name, why in rep.bad[:SHOWN])
    more = f" and {len(rep.bad) - SHOWN} more" if len(rep.bad) > SHOWN else ""
    return (f"{len(rep.bad)} of the {rep.checked} clips listed in {dataset}'s CSVs cannot be trained on: "
            f"{shown}{more}. Drop them in the studio's review screen, or fix the files, then start again")
