"""Calibration of the listening metrics on known audio (espeak-ng speech), as issue 12 asks.

Each case can fail: the numbers come from whisper, resemblyzer and DNSMOS on real audio."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import speechgen
from speechgen import RATE, SENTENCES, say

from engine.listen import textmetrics as tm

S1, S2 = SENTENCES[0], SENTENCES[1]


# ------------------------------------------------------------------ text side (no models)
def test_normalisation_and_error_rates():
    assert tm.normalise("The  5 dogs, [music] barked!", "en") == "the five dogs barked"
    r = tm.error_rates("The quick brown fox.", "the quick brown fox", "en")
    assert r["cer"] == 0.0 and r["wer"] == 0.0
    r = tm.error_rates("The quick brown fox.", "the quick red fox", "en")
    assert r["wer"] == pytest.approx(0.25) and 0 < r["cer"] < 0.3
    assert tm.error_rates("abc def", "", "en")["cer"] == 1.0


def test_loop_and_truncation_rules():
    text = "The morning train was late again today."
    assert tm.looped(text, text + " " + text)[0]
    assert tm.looped(text, "the the the morning train was late again today")[0]
    assert not tm.looped(text, text)[0]
    assert tm.truncated(text, "the morning train was") == (True, 3)
    assert tm.truncated(text, "the morning train was late again today") == (False, 0)
    assert not tm.truncated(text, "the morning train was late again")[0]     # one word of seven: whisper slip
    assert not tm.truncated(text, "")[0]                                       # unintelligible, not cut
    assert tm.truncated("Yes, thank you.", "yes thank")[0]                     # short sentences: one word counts


# ------------------------------------------------------------------ calibration on audio
@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("listen_cal")
    rng = np.random.default_rng(0)
    a = say(S1)
    pad = np.zeros(int(0.3 * RATE), np.float32)

    def w(name, x):
        sf.write(d / f"{name}.wav", np.concatenate([pad, x, pad]), RATE)
        return d / f"{name}.wav"

    babble = speechgen.say(SENTENCES[5])[::-1][: 2 * RATE]      # reversed speech: babble, no words
    return {
        "ref": w("ref", np.concatenate([say(SENTENCES[3]), pad, say(SENTENCES[7])])),
        "clean": w("clean", a),
        "tail": w("tail", np.concatenate([a, babble])),
        "twice": w("twice", np.concatenate([a, pad, a])),
        "half": w("half", a[: len(a) // 2]),
        "other": w("other", say(S1, voice="en+f4", pitch=90)),
        "noise": w("noise", (0.1 * rng.standard_normal(3 * RATE)).astype(np.float32)),
    }


@pytest.fixture(scope="module")
def scored(clips, whisper_model):
    from engine.listen.score import Scorer

    sc = Scorer("en", whisper_model=whisper_model)
    refs = sc.references([clips["ref"]])
    return {name: sc.score(clips[name], S1, refs) for name in ("clean", "tail", "twice", "half", "other", "noise")}


def test_intelligibility(scored):
    clean = scored["clean"]
    assert clean["cer"] < 0.15, clean
    assert tm.error_rates(S2, clean["transcript"])["cer"] > 0.5
    assert clean["flags"] == [], clean


def test_hallucination_flags(scored):
    assert "tail" in scored["tail"]["flags"] and scored["tail"]["tail_s"] > 1.5, scored["tail"]
    assert "loop" in scored["twice"]["flags"], scored["twice"]
    assert "truncated" in scored["half"]["flags"], scored["half"]
    for name in ("tail", "twice"):
        assert "truncated" not in scored[name]["flags"], scored[name]


def test_similarity_and_mos(scored):
    assert scored["clean"]["similarity"] > scored["other"]["similarity"] + 0.1, (scored["clean"], scored["other"])
    assert scored["noise"]["mos"] < scored["clean"]["mos"] - 0.5, (scored["noise"], scored["clean"])


def test_score_cli_json_and_bad_input(clips, whisper_model, capsys):
    from engine.cli import main

    rc = main(["listen", "--score", str(clips["clean"]), "--text", S1, "--reference", str(clips["ref"]),
               "--whisper-model", whisper_model, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    for key in ("cer", "wer", "similarity", "mos", "flags"):
        assert key in out
    assert out["cer"] < 0.15 and out["similarity_xtts"] is None      # no --model: no XTTS encoder
    rc = main(["listen", "--score", str(clips["clean"]), "--text", S1, "--reference", "/nonexistent/ref.wav"])
    err = capsys.readouterr().err
    assert rc == 2 and "file not found: /nonexistent/ref.wav" in err and len(err.strip().splitlines()) == 1
    rc = main(["listen", "--score", str(clips["clean"]), "--text", "Hola", "--reference", str(clips["ref"]),
               "--language", "xx", "--whisper-model", whisper_model])
    err = capsys.readouterr().err
    assert rc == 2 and "whisper cannot transcribe language 'xx'" in err
    rc = main(["listen", "--score", str(clips["clean"]), "--text", "Hola", "--reference", str(clips["ref"]),
               "--language", "es", "--whisper-model", whisper_model])
    err = capsys.readouterr().err
    assert rc == 2 and "English-only" in err
