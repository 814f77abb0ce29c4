"""engine/prep/review.py: every edit persisted atomically (dataset.json + CSVs) and undoable, no UI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from helpers import make_dataset  # noqa: E402

from engine.prep import review  # noqa: E402


def manifest(d):
    return json.loads((d / "dataset.json").read_text())


def csv_rows(d, name="metadata_train.csv"):
    return (d / name).read_text().splitlines()[1:]


@pytest.fixture
def ds(tmp_path):
    return make_dataset(tmp_path / "ds")


def test_edit_text_persists_and_undoes(ds):
    before = (ds / "dataset.json").read_text()
    review.edit_text(ds, "alpha_aaaa01_000", "  A brand   new text. ")
    seg = next(s for s in manifest(ds)["segments"] if s["id"] == "alpha_aaaa01_000")
    assert seg["text"] == "A brand new text." and seg["text_source"] == "edited" and "edited" in seg["flags"]
    assert any("A brand new text." in r for r in csv_rows(ds))
    entry = review.undo(ds)
    assert entry["op"] == "edit" and entry["undone"]
    assert manifest(ds)["segments"] == json.loads(before)["segments"]
    assert not any("A brand new text." in r for r in csv_rows(ds))
    assert review.undo(ds) is None


def test_drop_restore(ds):
    n = len(csv_rows(ds))
    review.drop(ds, "alpha_aaaa01_002")
    assert len(csv_rows(ds)) == n - 1
    seg = next(s for s in manifest(ds)["segments"] if s["id"] == "alpha_aaaa01_002")
    assert seg["excluded"] and seg["exclude_reason"] == "dropped in review"
    with pytest.raises(review.ReviewError):
        review.drop(ds, "alpha_aaaa01_002")
    review.restore(ds, "alpha_aaaa01_002")
    assert len(csv_rows(ds)) == n
    review.undo(ds)
    assert len(csv_rows(ds)) == n - 1
    review.undo(ds)
    assert len(csv_rows(ds)) == n


def test_merge_next_and_undo(ds):
    m0 = manifest(ds)
    a, b = m0["segments"][0], m0["segments"][1]
    entry = review.merge_next(ds, a["id"])
    m = manifest(ds)
    assert len(m["segments"]) == len(m0["segments"]) - 1
    merged = m["segments"][0]
    assert merged["merged_from"] == [a["id"], b["id"]]
    assert merged["text"] == f"{a['text']} {b['text']}"
    x, sr = sf.read(str(ds / merged["file"]))
    assert abs(len(x) / sr - (a["duration"] + b["duration"] + 0.25)) < 0.01  # the 0.25 s gap is kept
    assert (ds / merged["file"]).exists()
    assert (ds / a["file"]).exists() and (ds / b["file"]).exists()  # originals are never deleted
    review.undo(ds)
    assert manifest(ds)["segments"] == m0["segments"]
    assert not (ds / entry["created"][0]).exists()
    last = [s for s in m0["segments"] if s["source"] == a["source"]][-1]
    with pytest.raises(review.ReviewError, match="last clip"):
        review.merge_next(ds, last["id"])


def test_split_at_a_word_lands_in_the_pause(ds):
    m0 = manifest(ds)
    seg = m0["segments"][0]  # 3 s tone with silence 1.5-1.8 s; 9 words
    words = seg["text"].split()
    # the 4th word ends at ~ 4/9 of the characters (~1.3 s): the pause is within the search window
    review.split(ds, seg["id"], 3)
    m = manifest(ds)
    a, b = m["segments"][0], m["segments"][1]
    assert a["text"] == " ".join(words[:4]) and b["text"] == " ".join(words[4:])
    assert 1.5 <= a["duration"] <= 1.8, a["duration"]
    assert abs(a["duration"] + b["duration"] - seg["duration"]) < 0.01
    assert "too_short" in a["flags"]
    assert a["split_from"] == seg["id"]
    review.undo(ds)
    assert manifest(ds)["segments"] == m0["segments"]
    with pytest.raises(review.ReviewError):
        review.split(ds, seg["id"], len(words) - 1)


def test_undo_skips_a_change_that_never_landed(ds):
    """A crash after the journal entry but before dataset.json was written: undo drops the entry."""
    review.edit_text(ds, "alpha_aaaa01_000", "first")
    j = review.journal(ds)
    fake = dict(j[-1], after=[dict(j[-1]["after"][0], text="never written")])
    (ds / review.JOURNAL).write_text(json.dumps(j + [fake]))
    e = review.undo(ds)
    assert e["undone"] is False
    assert next(s for s in manifest(ds)["segments"] if s["id"] == "alpha_aaaa01_000")["text"] == "first"
    assert review.undo(ds)["undone"] is True


def test_energy(ds):
    e, dur = review.energy(ds / "wavs/alpha_aaaa01_000.wav", frames=30)
    assert len(e) == 30 and abs(dur - 3.0) < 0.01
    assert min(e) < -60 < max(e)  # the silent gap is visible
