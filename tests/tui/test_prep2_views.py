"""The studio's views of prep's content report, clip-end flags and doubtful clips."""

from types import SimpleNamespace

from engine.prep import content
from tui.screens.prep import content_section
from tui.screens.review import FILTERS, SORTS, ReviewScreen
from tui.studio import RESTORED_FLAGS, flagged_in_training


def _manifest():
    segs = []
    for k, flags in enumerate([[], ["cut_end"], ["tail_noise", "cut_start"], ["doubtful"], ["duplicate_text"]]):
        segs.append({"id": f"a_{k:03d}", "source": "a", "start": k * 5.0, "duration": 4.0, "speech_seconds": 3.5,
                     "text": "Where is the station?" if k == 0 else "The river was cold and very clear.",
                     "confidence": 0.9, "flags": flags, "excluded": "doubtful" in flags,
                     "edge_fixes": ["tail_trimmed"] if k == 4 else []})
    m = {"segments": segs, "sources": [{"id": "a", "name": "a.wav"}]}
    m["content"] = content.content_report([s for s in segs if not s["excluded"]], m["sources"], "en", 2.0, 11.0)
    return m


def test_quality_report_shows_the_content_report_and_clip_ends():
    text = content_section(_manifest()).plain
    assert "Content" in text and "questions 25%" in text
    assert "Phoneme coverage" in text and "Speaking rate" in text
    assert "Clip ends: 1 fixed by prep; 1 cut end, 1 cut start, 1 tail noise" in text
    assert content_section({"segments": []}).plain == ""          # an older dataset.json: nothing to add


def test_review_filters_and_sorts_the_new_flags():
    assert {"clip_ends", "doubtful"} <= set(FILTERS) and "ends" in SORTS
    m = _manifest()
    view = SimpleNamespace(manifest=m, filter="clip_ends", sort="source")
    assert [s["id"] for s in ReviewScreen._visible(view)] == ["a_001", "a_002"]
    view.filter = "doubtful"
    assert [s["id"] for s in ReviewScreen._visible(view)] == ["a_003"]
    view.filter, view.sort = "all", "ends"
    assert [s["id"] for s in ReviewScreen._visible(view)][:2] == ["a_002", "a_001"]


def test_params_counts_clip_end_flags_and_restored_doubtful_clips(tmp_path):
    import json

    m = _manifest()
    m["segments"][3]["excluded"] = False               # restored in Review
    (tmp_path / "dataset.json").write_text(json.dumps(m))
    counts = flagged_in_training(tmp_path)
    assert counts["cut_end"] == 1 and counts["tail_noise"] == 1 and counts["doubtful"] == 1
    assert "doubtful" in RESTORED_FLAGS
