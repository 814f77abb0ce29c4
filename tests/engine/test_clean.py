"""Cleaning checks (issue: other speakers, noise, music, reverb) on generated speech.

Every source has a .txt transcript beside it, so no ASR runs: each short recording becomes one
clip and the checks are what is being tested."""

import json
import subprocess

import numpy as np
import pytest
import speechgen

from engine.audio import clean
from engine.prep import PrepOptions, run_prep
from engine.prep.report import Reporter

S = speechgen.SENTENCES
RATE = speechgen.RATE


def _prep(src, out, **kw):
    events = []
    rep = Reporter(console=None)
    rep.add_listener(events.append)
    result = run_prep(PrepOptions([str(src)], out, transcripts="files", **kw), rep)
    assert result.ok, result.reason
    return json.loads((out / "dataset.json").read_text()), events


def _clip(folder, name, audio, text):
    speechgen.write(folder / f"{name}.wav", audio)
    (folder / f"{name}.txt").write_text(text)


def pink(n, rng):
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec))
    spec[1:] /= np.sqrt(f[1:])
    x = np.fft.irfft(spec, n)
    return x / np.sqrt(np.mean(x**2))


def active_power(x):
    frames = x[: len(x) // 220 * 220].reshape(-1, 220)
    p = (frames**2).mean(axis=1)
    return float(p[p > 1e-6].mean())


@pytest.fixture(scope="module")
def two_voices(tmp_path_factory):
    src = tmp_path_factory.mktemp("voices")
    speechgen.two_voice_set(src, 16, 4)
    return src


def test_minority_voice_is_flagged_and_left_out(two_voices, tmp_path):
    m, events = _prep(two_voices, tmp_path / "ds")
    names = {s["id"]: s["name"] for s in m["sources"]}
    flagged = {names[s["source"]] for s in m["segments"] if "other_speaker" in s["flags"]}
    assert flagged == {f"other_{k:02d}.wav" for k in range(4)}
    for s in m["segments"]:
        assert isinstance(s["speaker_similarity"], float)
        assert s["excluded"] == ("other_speaker" in s["flags"])
    rows = (tmp_path / "ds" / "metadata_train.csv").read_text() + (tmp_path / "ds" / "metadata_eval.csv").read_text()
    assert "other_" not in rows and rows.count("main_") == 16
    assert any(e.get("code") == "other_speaker" for e in events if e["type"] == "log")


def test_speaker_reference_and_threshold_options(two_voices, tmp_path):
    # with the minority voice as the reference, the roles swap
    ref = two_voices / "other_00.wav"
    m, _ = _prep(two_voices, tmp_path / "ds", speaker_ref=str(ref))
    names = {s["id"]: s["name"] for s in m["sources"]}
    flagged = {names[s["source"]] for s in m["segments"] if "other_speaker" in s["flags"]}
    assert len(flagged) == 16 and all(n.startswith("main_") for n in flagged)
    # a threshold no clip reaches flags everything; one every clip passes flags nothing
    m, _ = _prep(two_voices, tmp_path / "ds2", speaker_threshold=0.05)
    assert not any("other_speaker" in s["flags"] for s in m["segments"])


@pytest.mark.parametrize("kind, target_db", [("white", 20.0), ("white", 10.0), ("pink", 15.0)])
def test_snr_is_measured_within_3_db_and_denoise_improves_it(tmp_path, kind, target_db):
    rng = np.random.default_rng(3)
    speech, _ = speechgen.compose(S[0:2], pauses=0.9, lead=0.8)
    speech = np.concatenate([speech, np.zeros(int(0.8 * RATE), np.float32)])
    noise = rng.standard_normal(len(speech)) if kind == "white" else pink(len(speech), rng)
    noise *= np.sqrt(active_power(speech) / 10 ** (target_db / 10) / np.mean(noise**2))
    src = tmp_path / "src"
    _clip(src, "noisy", (speech + noise).astype(np.float32) * 0.5, f"{S[0]} {S[1]}")
    filler, _ = speechgen.compose(S[2:4], pauses=0.5)       # a dataset needs two clips
    _clip(src, "filler", filler, f"{S[2]} {S[3]}")

    def noisy_clip(m):
        sid = next(x["id"] for x in m["sources"] if x["name"] == "noisy.wav")
        return next(s for s in m["segments"] if s["source"] == sid), next(x for x in m["sources"] if x["id"] == sid)

    m, _ = _prep(src, tmp_path / "plain", speaker_check=False)
    seg, source = noisy_clip(m)
    measured = seg["snr_db"]
    print(f"\nSNR {kind} {target_db}: measured {measured}")
    assert measured == pytest.approx(target_db, abs=3.0), (kind, target_db, measured)
    assert source["quality"]["snr_db"] == pytest.approx(target_db, abs=3.0)
    d, events = _prep(src, tmp_path / "denoised", denoise=True, speaker_check=False)
    seg, _ = noisy_clip(d)
    assert seg["snr_db_before"] == pytest.approx(measured, abs=0.5)
    assert seg["snr_db"] >= measured + 6, seg
    assert any("denoised; median clip SNR" in e["msg"] for e in events if e["type"] == "log")
    if target_db <= 10:
        assert "noisy" in noisy_clip(m)[0]["flags"]


def test_music_bed_and_reverb_are_flagged_clean_clips_are_not(tmp_path):
    src = tmp_path / "src"
    t = np.arange(int(12 * RATE)) / RATE
    for k in range(3):
        a, _ = speechgen.compose([S[k], S[k + 3]], pauses=1.0, seed=k)
        _clip(src, f"clean_{k}", a, f"{S[k]} {S[k + 3]}")
    a, _ = speechgen.compose([S[6], S[7]], pauses=1.0)
    chord = sum(np.sin(2 * np.pi * f * t[: len(a)]) for f in (196.0, 247.0, 294.0)) / 3
    melody = np.sin(2 * np.pi * 440.0 * (1 + 0.12 * (np.floor(t[: len(a)] * 2) % 4)) * t[: len(a)])
    _clip(src, "music_bed", (a + 0.06 * chord + 0.03 * melody).astype(np.float32), f"{S[6]} {S[7]}")
    a, _ = speechgen.compose([S[8], S[9]], pauses=1.2)
    speechgen.write(src / "dry.wav", a)
    subprocess.run(["sox", str(src / "dry.wav"), str(src / "reverb.wav"), "reverb", "60", "50", "80"], check=True)
    (src / "dry.wav").unlink()
    (src / "reverb.txt").write_text(f"{S[8]} {S[9]}")
    m, _ = _prep(src, tmp_path / "ds", speaker_check=False)
    flags = {next(x["name"] for x in m["sources"] if x["id"] == s["source"]): s for s in m["segments"]}
    for name, f in flags.items():
        print(name, f["flags"], f["pauses"])
    assert "music" in flags["music_bed.wav"]["flags"], flags["music_bed.wav"]["pauses"]
    assert "reverb" in flags["reverb.wav"]["flags"], flags["reverb.wav"]["pauses"]
    assert "music" not in flags["reverb.wav"]["flags"]
    for k in range(3):
        f = flags[f"clean_{k}.wav"]
        assert not {"music", "reverb", "noisy"} & set(f["flags"]), f
    # the measure that triggered each flag is recorded with the clip
    assert flags["reverb.wav"]["pauses"]["t60_s"] >= clean.REVERB_T60_S
    assert flags["music_bed.wav"]["pauses"]["flatness"] < clean.MUSIC_FLATNESS


def test_main_voice_rule_on_synthetic_embeddings():
    rng = np.random.default_rng(0)
    base = rng.standard_normal(256)
    same = [base + 0.3 * rng.standard_normal(256) for _ in range(12)]
    other = [rng.standard_normal(256) + 0.2 * base for _ in range(3)]
    sims, threshold, _ = clean.main_voice(np.stack(same + other))
    assert (sims[:12] >= threshold).all() and (sims[12:] < threshold).all()
    assert clean.SPEAKER_THRESHOLD_MIN <= threshold <= clean.SPEAKER_THRESHOLD_MAX


def test_voice_prints_of_many_clips_at_once_are_resemblyzers_clip_by_clip():
    """Prep embeds a source's clips together (one LSTM run over all their partials) in a worker
    thread: the prints must be the ones resemblyzer's embed_utterance gives clip by clip."""
    from resemblyzer import audio as rza
    from scipy.signal import resample_poly

    clips = [speechgen.say(S[k], voice=v) for k, v in enumerate(["en-us", "en-gb", "en+f4", "en-us"])]
    clips = [resample_poly(c, 16000, RATE).astype(np.float32) for c in clips]
    clips.append(np.concatenate([np.zeros(16000, np.float32), clips[0][:4000], np.zeros(16000, np.float32)]))
    batch = clean.speaker_embeddings(clips, 16000)
    enc = clean.speaker_encoder()
    for clip, got in zip(clips[:4], batch):
        wav = rza.trim_long_silences(rza.normalize_volume(clip, rza.audio_norm_target_dBFS, increase_only=True))
        want = enc.embed_utterance(wav)
        assert float(np.dot(got, want)) > 0.9999
    assert all(abs(float(np.linalg.norm(e)) - 1.0) < 1e-5 for e in batch)
    # different voices stay apart, the same voice stays close, whatever else is in the batch
    assert float(np.dot(batch[0], batch[3])) > float(np.dot(batch[0], batch[2])) + 0.05
    # a clip that is mostly silence still gets a print (resemblyzer would trim it to nothing)
    assert batch[4].shape == (256,) and np.isfinite(batch[4]).all()
    # one clip alone gives the same as in the batch
    assert float(np.dot(clean.speaker_embedding(clips[2], 16000), batch[2])) > 0.9999
