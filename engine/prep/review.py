"""Segment review edits, headless: edit a transcript, drop/restore a clip, merge a clip with the
next one of its source, split a clip at a word, and undo.

Every change is atomic and undoable:
1. new clip wavs are written atomically under new names (existing wavs are never modified or
   deleted, so undoing never needs a backup of audio);
2. an undo entry (the affected segments before and after) is appended to
   DATASET/review_journal.json, rewritten atomically;
3. dataset.json and both CSVs are rewritten atomically by `engine.prep.dataset.save`.
`undo()` takes the last entry, checks dataset.json still holds its "after" state, puts the
"before" segments back in place and removes the wavs the change had created. A crash between 2
and 3 leaves an entry whose "after" never landed: `undo()` then just drops it.

Used by the TUI's review screen; no UI code here.
"""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from engine import locks
from engine.atomic import atomic_path, write_json
from engine.prep import dataset as ds

JOURNAL = "review_journal.json"
JOURNAL_LIMIT = 500
MAX_MERGE_GAP = 0.4  # seconds of silence kept between two merged clips


class ReviewError(Exception):
    """An edit that cannot be done (unknown clip, no next clip, bad split point...)."""


# ------------------------------------------------------------------ loading
def _locked(fn):
    """Hold the dataset's lock while an edit reads, changes and writes it: a prep running into the
    same dataset would otherwise overwrite the edit, or the edit the prep's new clips."""
    import functools

    @functools.wraps(fn)
    def wrapper(folder, *args, **kwargs):
        try:
            with locks.hold(Path(folder), "xtts-ft review"):
                return fn(folder, *args, **kwargs)
        except locks.Busy as exc:
            raise ReviewError(f"{exc} (the dataset cannot be edited meanwhile)") from None
    return wrapper


def load(folder: str | Path) -> dict:
    m = ds.load_manifest(Path(folder))
    if m is None:
        raise ReviewError(f"{folder}: no dataset.json (run prep first)")
    return m


def _index(m: dict, seg_id: str) -> int:
    for i, s in enumerate(m["segments"]):
        if s["id"] == seg_id:
            return i
    raise ReviewError(f"no clip with id {seg_id!r}")


def journal(folder: str | Path) -> list[dict]:
    p = Path(folder) / JOURNAL
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        return data if isinstance(data, list) else []
    except (OSError, ValueError):
        return []


def can_undo(folder: str | Path) -> bool:
    return bool(journal(folder))


# ------------------------------------------------------------------ the one commit path
def _commit(folder: Path, m: dict, op: str, before: list[dict], after: list[dict], created: list[str],
            summary: str) -> dict:
    """Record the undo entry, then write the manifest + CSVs. `before` and `after` are the affected
    segments (deep copies), in manifest order; `after` replaces `before` at the same place."""
    entry = {"op": op, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "summary": summary,
             "before": copy.deepcopy(before), "after": copy.deepcopy(after), "created": created}
    entries = journal(folder)
    entries.append(entry)
    write_json(folder / JOURNAL, entries[-JOURNAL_LIMIT:])
    ds.save(folder, m)
    return entry


def _replace(m: dict, old_ids: list[str], new_segs: list[dict]) -> None:
    idx = [_index(m, i) for i in old_ids]
    at = min(idx)
    m["segments"] = [s for s in m["segments"] if s["id"] not in set(old_ids)]
    m["segments"][at:at] = new_segs


# ------------------------------------------------------------------ edits
@_locked
def edit_text(folder: str | Path, seg_id: str, text: str) -> dict:
    folder = Path(folder)
    text = re.sub(r"\s+", " ", text).strip()
    m = load(folder)
    i = _index(m, seg_id)
    before = copy.deepcopy(m["segments"][i])
    if before.get("text", "") == text:
        raise ReviewError("the text is unchanged")
    seg = m["segments"][i]
    seg["text"] = text
    seg["text_source"] = "edited"
    flags = set(seg.get("flags", []))
    flags.discard("empty_text")
    if not text:
        flags.add("empty_text")
    seg["flags"] = sorted(flags | {"edited"})
    return _commit(folder, m, "edit", [before], [copy.deepcopy(seg)], [], f"edited the text of {seg_id}")


@_locked
def set_excluded(folder: str | Path, seg_id: str, excluded: bool, reason: str = "dropped in review") -> dict:
    folder = Path(folder)
    m = load(folder)
    i = _index(m, seg_id)
    before = copy.deepcopy(m["segments"][i])
    seg = m["segments"][i]
    if bool(seg.get("excluded")) == excluded:
        raise ReviewError(f"{seg_id} is already {'dropped' if excluded else 'kept'}")
    seg["excluded"] = excluded
    if excluded:
        seg["exclude_reason"] = reason
    else:
        seg.pop("exclude_reason", None)
        if not seg.get("split"):
            seg["split"] = "train"
    return _commit(folder, m, "drop" if excluded else "restore", [before], [copy.deepcopy(seg)], [],
                   f"{'dropped' if excluded else 'restored'} {seg_id}")


def drop(folder, seg_id, reason: str = "dropped in review") -> dict:
    return set_excluded(folder, seg_id, True, reason)


def restore(folder, seg_id) -> dict:
    return set_excluded(folder, seg_id, False)


def next_in_source(m: dict, seg_id: str) -> dict | None:
    seg = m["segments"][_index(m, seg_id)]
    later = [s for s in m["segments"] if s["source"] == seg["source"] and s["id"] != seg_id
             and float(s.get("start", 0)) >= float(seg.get("end", 0)) - 0.05]
    return min(later, key=lambda s: float(s.get("start", 0))) if later else None


def neighbours(m: dict, seg_id: str) -> tuple[dict | None, dict | None]:
    seg = m["segments"][_index(m, seg_id)]
    same = sorted((s for s in m["segments"] if s["source"] == seg["source"]), key=lambda s: float(s.get("start", 0)))
    k = [s["id"] for s in same].index(seg_id)
    return (same[k - 1] if k > 0 else None), (same[k + 1] if k + 1 < len(same) else None)


def _new_id(m: dict, base: str) -> str:
    ids = {s["id"] for s in m["segments"]}
    ids |= {Path(s["file"]).stem for s in m["segments"]}
    n = 1
    while f"{base}{n}" in ids:
        n += 1
    return f"{base}{n}"


def _write_wav(folder: Path, rel: str, audio: np.ndarray, sr: int) -> None:
    target = folder / rel
    if target.exists():
        raise ReviewError(f"{rel} already exists")
    with atomic_path(target, suffix=".wav") as tmp:
        sf.write(str(tmp), audio, sr, subtype="PCM_16", format="WAV")


@_locked
def merge_next(folder: str | Path, seg_id: str) -> dict:
    """Join a clip with the next clip of the same source (the silence between them is kept, up to
    MAX_MERGE_GAP s). The merged clip gets a new id and wav; the two originals leave the dataset."""
    folder = Path(folder)
    m = load(folder)
    a = m["segments"][_index(m, seg_id)]
    b = next_in_source(m, seg_id)
    if b is None:
        raise ReviewError(f"{seg_id} is the last clip of its source: nothing to merge with")
    xa, sra = sf.read(str(folder / a["file"]), dtype="float32", always_2d=False)
    xb, srb = sf.read(str(folder / b["file"]), dtype="float32", always_2d=False)
    if sra != srb:
        raise ReviewError("the two clips have different sample rates")
    gap = max(0.0, min(MAX_MERGE_GAP, float(b["start"]) - float(a["end"])))
    audio = np.concatenate([xa, np.zeros(int(gap * sra), dtype=np.float32), xb])
    new_id = _new_id(m, f"{a['id']}_m")
    rel = f"wavs/{new_id}.wav"
    _write_wav(folder, rel, audio, sra)
    merged = copy.deepcopy(a)
    merged.update(id=new_id, file=rel, start=a["start"], end=b["end"], duration=round(len(audio) / sra, 3),
                  text=f"{a.get('text', '').strip()} {b.get('text', '').strip()}".strip(), text_source="edited",
                  confidence=min(float(a.get("confidence") or 0), float(b.get("confidence") or 0)),
                  merged_from=[a["id"], b["id"]])
    flags = (set(a.get("flags", [])) | set(b.get("flags", []))) - {"too_short"}
    dur = merged["duration"]
    max_s = float((m.get("settings") or {}).get("max_seconds", 11.0))
    if dur > max_s:
        flags.add("too_long")
    merged["flags"] = sorted(flags | {"edited"})
    merged["excluded"] = bool(a.get("excluded")) and bool(b.get("excluded"))
    if not merged["excluded"]:
        merged.pop("exclude_reason", None)
    before = [copy.deepcopy(s) for s in m["segments"] if s["id"] in (a["id"], b["id"])]
    _replace(m, [a["id"], b["id"]], [merged])
    return _commit(folder, m, "merge", before, [copy.deepcopy(merged)], [rel],
                   f"merged {a['id']} + {b['id']} into {new_id} ({dur:.1f} s)")


def words(text: str) -> list[str]:
    return text.split()


def split_time(audio: np.ndarray, sr: int, text: str, word_index: int, window: float = 0.6) -> float:
    """Where to cut a clip after word `word_index` (0-based; the cut falls before word
    word_index+1): the time estimated from the share of characters, moved to the quietest 20 ms
    frame within +-window s (the pause between two words)."""
    w = words(text)
    if not 0 <= word_index < len(w) - 1:
        raise ReviewError(f"choose a word between 1 and {len(w) - 1}: the cut goes after it")
    chars_before = len(" ".join(w[: word_index + 1]))
    guess = len(audio) / sr * chars_before / max(1, len(" ".join(w)))
    frame = max(1, int(0.02 * sr))
    lo = max(frame, int((guess - window) * sr))
    hi = min(len(audio) - frame, int((guess + window) * sr))
    if hi <= lo:
        return guess
    best, best_e = guess, float("inf")
    for start in range(lo, hi, frame // 2):
        e = float(np.mean(audio[start:start + frame] ** 2))
        if e < best_e:
            best_e, best = e, (start + frame / 2) / sr
    return best


@_locked
def split(folder: str | Path, seg_id: str, word_index: int, at: float | None = None) -> dict:
    """Cut a clip in two after word `word_index`: the text splits there, the audio at the pause
    nearest the estimated time (or at `at` seconds when given)."""
    folder = Path(folder)
    m = load(folder)
    seg = m["segments"][_index(m, seg_id)]
    audio, sr = sf.read(str(folder / seg["file"]), dtype="float32", always_2d=False)
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    w = words(seg.get("text", ""))
    cut = at if at is not None else split_time(audio, sr, seg.get("text", ""), word_index)
    if not 0 <= word_index < len(w) - 1:
        raise ReviewError(f"choose a word between 1 and {len(w) - 1}: the cut goes after it")
    n = int(round(cut * sr))
    if n < int(0.1 * sr) or n > len(audio) - int(0.1 * sr):
        raise ReviewError(f"the cut at {cut:.2f} s leaves a part shorter than 0.1 s")
    min_s = float((m.get("settings") or {}).get("min_seconds", 2.0))
    parts, created = [], []
    for k, (chunk, text, t0, t1) in enumerate((
            (audio[:n], " ".join(w[: word_index + 1]), float(seg["start"]), float(seg["start"]) + cut),
            (audio[n:], " ".join(w[word_index + 1:]), float(seg["start"]) + cut, float(seg["end"])))):
        new_id = _new_id(m, f"{seg_id}_{'ab'[k]}")
        rel = f"wavs/{new_id}.wav"
        _write_wav(folder, rel, chunk, sr)
        created.append(rel)
        p = copy.deepcopy(seg)
        p.update(id=new_id, file=rel, start=round(t0, 3), end=round(t1, 3), duration=round(len(chunk) / sr, 3),
                 text=text, text_source="edited", split_from=seg_id)
        flags = set(seg.get("flags", [])) - {"too_long"}
        if p["duration"] < min_s:
            flags.add("too_short")
        p["flags"] = sorted(flags | {"edited"})
        parts.append(p)
        m["segments"].append(p)  # so the next _new_id sees it
    m["segments"] = [s for s in m["segments"] if s["id"] not in {p["id"] for p in parts}]
    before = [copy.deepcopy(seg)]
    _replace(m, [seg_id], parts)
    return _commit(folder, m, "split", before, [copy.deepcopy(p) for p in parts], created,
                   f"split {seg_id} at {cut:.2f} s into {parts[0]['id']} + {parts[1]['id']}")


# ------------------------------------------------------------------ undo
@_locked
def undo(folder: str | Path) -> dict | None:
    """Revert the last change; returns its journal entry, or None when there is nothing to undo."""
    folder = Path(folder)
    entries = journal(folder)
    if not entries:
        return None
    entry = entries.pop()
    m = load(folder)
    have = {s["id"]: s for s in m["segments"]}
    after_ids = [s["id"] for s in entry["after"]]
    landed = all(i in have for i in after_ids) and all(have[s["id"]] == s for s in entry["after"])
    if landed:
        _replace(m, after_ids, copy.deepcopy(entry["before"]))
        # the journal shrinks first: a crash now leaves the change in place, never a half undo
        write_json(folder / JOURNAL, entries)
        ds.save(folder, m)
    else:
        write_json(folder / JOURNAL, entries)
    for rel in entry.get("created", []):
        if all(s.get("file") != rel for s in m["segments"]):
            try:
                (folder / rel).unlink()
            except OSError:
                pass
    entry["undone"] = landed
    return entry


# ------------------------------------------------------------------ display helpers
def energy(path: str | Path, frames: int = 120) -> tuple[list[float], float]:
    """RMS energy (dBFS) of a clip in `frames` equal slices, and its duration in seconds."""
    audio, sr = sf.read(str(path), dtype="float32", always_2d=False)
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if len(audio) == 0:
        return [], 0.0
    frames = max(1, min(frames, len(audio)))
    edges = np.linspace(0, len(audio), frames + 1).astype(int)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        rms = float(np.sqrt(np.mean(audio[a:max(b, a + 1)] ** 2)))
        out.append(20 * np.log10(max(rms, 1e-5)))
    return out, len(audio) / sr
