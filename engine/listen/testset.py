"""The listening test of a run: what every checkpoint (and the base) is asked to say.

Per voice (the run's dataset, plus any `--listen-datasets`): up to `max_eval` eval clips' texts
with their real recordings, the fixed unseen sentences of the language (engine/listen/sentences),
the speaker reference clips (the same pick as the A/B samples and the export:
engine/model/synth.pick_references) and the voice's own speaking rate. Stored once in
R/listen/testset.json, so every checkpoint hears the same test even if the dataset changes later.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from engine.listen.encoders import ListenError
from engine.listen.sentences import unseen

TESTSET = "testset.json"


def listen_dir(run: Path) -> Path:
    return Path(run) / "listen"


def _eval_rows(dataset: Path) -> list[tuple[Path, str]]:
    p = dataset / "metadata_eval.csv"
    rows = []
    if p.is_file():
        with open(p, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh, delimiter="|"):
                text = (row.get("text") or "").strip()
                if text and row.get("audio_file"):
                    rows.append((dataset / row["audio_file"], text))
    return rows


def dataset_language(dataset: Path, default: str) -> str:
    try:
        return json.loads((dataset / "dataset.json").read_text(encoding="utf-8")).get("language") or default
    except (OSError, ValueError):
        return default


def speaking_rate(dataset: Path, language: str, limit: int = 200) -> float | None:
    """Characters (normalised, no spaces) per second of sound over the dataset's clips."""
    from engine.listen import textmetrics as tm
    from engine.listen.audio import load16k, sound_span
    from engine.model import synth

    chars = secs = 0.0
    for wav, text, _ in synth._clips(dataset)[:limit]:
        try:
            y = load16k(wav)
        except ValueError:
            continue
        a, b = sound_span(y)
        if b - a < 0.3 or not text:
            continue
        chars += len(tm.normalise(text, language).replace(" ", ""))
        secs += b - a
    return round(chars / secs, 3) if secs else None


def voice_section(dataset: str | Path, language: str, max_eval: int = 3, n_refs: int = 3) -> dict:
    from engine.model import synth

    d = Path(dataset)
    if not d.is_dir():
        raise ListenError(f"dataset folder not found: {d}")
    refs = synth.pick_references(d, n=n_refs)
    if not refs:
        raise ListenError(f"{d}: no clip to use as speaker reference (metadata_*.csv empty or clips missing)")
    for r in refs:
        if not Path(r).is_file():
            raise ListenError(f"reference clip missing: {r}")
    items = []
    rows = [(w, t) for w, t in _eval_rows(d) if w.is_file()]
    step = max(1, len(rows) // max_eval) if rows else 1
    for k, (wav, text) in enumerate(rows[::step][:max_eval]):
        items.append({"id": f"eval{k + 1}", "kind": "eval", "text": text, "real": str(wav.resolve())})
    for k, (kind, text) in enumerate(unseen(language)):
        items.append({"id": f"{kind}{k + 1}", "kind": kind, "text": text, "real": None})
    if not items:
        raise ListenError(f"{d}: no eval clip and no fixed sentences for language '{language}': nothing to listen to")
    return {"name": d.name, "dataset": str(d.resolve()), "language": language,
            "references": [str(Path(r).resolve()) for r in refs], "rate_cps": speaking_rate(d, language),
            "items": items}


def extra_datasets(cfg: dict) -> list[str]:
    """`listen_datasets` of a run config (comma-separated folders) as a list."""
    raw = cfg.get("listen_datasets") or ""
    return [p.strip() for p in str(raw).split(",") if p.strip()]


def build(run: Path, cfg: dict, datasets: list[str] | None = None, max_eval: int = 3, sentences: int = 0) -> dict:
    """Create (first time) or load the run's test set. `sentences` > 0 caps the sentences per voice
    (eval clips first, then the short, long and medium unseen ones)."""
    path = listen_dir(run) / TESTSET
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("voices"):
                return data
        except ValueError:
            pass
    language = cfg.get("language") or "en"
    voices = [voice_section(cfg["dataset"], language, max_eval)]
    for extra in datasets or []:
        if Path(extra).resolve() == Path(cfg["dataset"]).resolve():
            continue
        voices.append(voice_section(extra, dataset_language(Path(extra), language), max_eval))
    if sentences > 0:
        order = {"eval": 0, "short": 1, "long": 2, "medium": 3}
        for v in voices:
            keep = sorted(v["items"], key=lambda it: order.get(it["kind"], 9))[:sentences]
            v["items"] = [it for it in v["items"] if it in keep]
    data = {"version": 1, "voices": voices}
    data["hash"] = hashlib.sha1(json.dumps(voices, sort_keys=True).encode()).hexdigest()[:12]
    from engine.atomic import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)
    return data
