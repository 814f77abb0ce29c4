"""The dataset on disk: `dataset.json` (everything known about sources and clips), the clips in
`wavs/`, and the two CSVs coqui's "coqui" formatter and AllTalk read.

`dataset.json` is the single source of truth; the CSVs are always rewritten from it, so adding
sources, editing a transcript or dropping a clip can never lose or renumber rows. Every file is
written atomically.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path
from typing import Iterable

from engine.atomic import write_json, write_text

SCHEMA = 1
CSV_HEADER = "audio_file|text|speaker_name"
TRAIN_CSV = "metadata_train.csv"
EVAL_CSV = "metadata_eval.csv"
MANIFEST = "dataset.json"
# flags that keep a clip out of the CSVs unless the user restores it
EXCLUDING_FLAGS = {"hallucination", "repeated_text", "empty_text", "other_speaker", "doubtful"}


class DatasetError(Exception):
    pass


def slug(text: str, limit: int = 40) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    return (s or "audio")[:limit]


def empty_manifest(language: str, sample_rate: int) -> dict:
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    return {
        "schema": SCHEMA, "created": now, "updated": now, "language": language,
        "sample_rate": sample_rate, "settings": {}, "sources": [], "segments": [],
        "skipped": [], "totals": {}, "warnings": [],
    }


def load_manifest(folder: Path) -> dict | None:
    import json

    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DatasetError(f"{path} is damaged ({exc}); move it away to start a new dataset") from exc
    if not isinstance(data, dict) or "segments" not in data:
        raise DatasetError(f"{path} is not an xtts-ft dataset manifest")
    if data.get("schema", 0) > SCHEMA:
        raise DatasetError(f"{path} was written by a newer xtts-ft (schema {data.get('schema')})")
    return data


def included(seg: dict) -> bool:
    return not seg.get("excluded", False)


def csv_text(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("|", ",")).strip()


def assign_splits(segments: list[dict], eval_fraction: float, seed: int) -> int:
    """Give every included clip without a split one; existing clips keep theirs.

    Eval clips are spread round-robin over sources, and a source keeps at least one training clip
    whenever it has two or more. Returns how many clips were newly put in eval.
    """
    usable = [s for s in segments if included(s)]
    if not usable:
        return 0
    target = max(1, round(eval_fraction * len(usable))) if len(usable) >= 2 else 0
    have = sum(1 for s in usable if s.get("split") == "eval")
    need = max(0, target - have)
    new = sorted((s for s in usable if s.get("split") not in ("train", "eval")), key=lambda s: s["id"])
    rng = random.Random(seed)
    by_source: dict[str, list[dict]] = {}
    for s in new:
        by_source.setdefault(s["source"], []).append(s)
    train_left = {src: sum(1 for s in usable if s["source"] == src and s.get("split") != "eval") for src in by_source}
    for clips in by_source.values():
        rng.shuffle(clips)
    order = sorted(by_source, key=lambda src: (-len(by_source[src]), src))
    picked = 0
    # first pass: only from sources that keep a training clip; second: whatever is left
    for allow_last in (False, True):
        progress = True
        while need > 0 and progress:
            progress = False
            for src in order:
                if need == 0:
                    break
                pool = [c for c in by_source[src] if c.get("split") is None]
                if not pool or (not allow_last and train_left[src] <= 1):
                    continue
                pool[0]["split"] = "eval"
                train_left[src] -= 1
                need -= 1
                picked += 1
                progress = True
    for s in new:
        if s.get("split") is None:
            s["split"] = "train"
    return picked


def write_csvs(folder: Path, segments: Iterable[dict]) -> tuple[int, int]:
    rows = {"train": [], "eval": []}
    for s in segments:
        if included(s) and s.get("split") in rows and s.get("text", "").strip():
            rows[s["split"]].append(f"{s['file']}|{csv_text(s['text'])}|{s['speaker']}")
    write_text(Path(folder) / TRAIN_CSV, "\n".join([CSV_HEADER, *rows["train"]]) + "\n")
    write_text(Path(folder) / EVAL_CSV, "\n".join([CSV_HEADER, *rows["eval"]]) + "\n")
    return len(rows["train"]), len(rows["eval"])


def save(folder: Path, manifest: dict) -> tuple[int, int]:
    """Write dataset.json and both CSVs (each atomically)."""
    manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    counts = write_csvs(folder, manifest["segments"])
    write_json(Path(folder) / MANIFEST, manifest)
    return counts
