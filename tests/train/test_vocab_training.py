"""Issue 6 end to end: a dataset in a made-up orthography and language code trains on the
extended tiny model, exports, and the export loads in coqui-tts and speaks the new language."""

import hashlib
import json

import speechgen
from conftest import FAST, final_state, xtts_ft


def test_extended_vocab_trains_exports_and_synthesises(tmp_path, tiny_model):
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tiny_model.iterdir()}
    speechgen.conlang_set(tmp_path / "src", 10)
    xtts_ft("prep", tmp_path / "src", "--out", tmp_path / "ds", "--language", "qx", "--transcripts", "files",
            "--no-speaker-check")
    proc = xtts_ft("vocab", "extend", "--dataset", tmp_path / "ds", "--model", tiny_model, "--out", tmp_path / "qx")
    assert "0.0% after" in proc.stdout and "language token [qx]" in proc.stdout
    run = tmp_path / "run"
    proc = xtts_ft("train", "--dataset", tmp_path / "ds", "--model", tmp_path / "qx", "--run", run,
                   "--epochs", "1", *FAST, "--ab-samples", "0", check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert final_state(run)["state"] == "finished"
    cfg = json.loads((run / "run_config.json").read_text())
    assert cfg["language"] == "qx"
    xtts_ft("export", run, "--out", tmp_path / "export")
    exported = json.loads((tmp_path / "export" / "config.json").read_text())
    assert exported["xtts_ft"]["extra_languages"] == {"qx": "basic"}
    wav = next((tmp_path / "ds" / "wavs").glob("*.wav"))
    xtts_ft("synth", tmp_path / "export", "--text", speechgen.conlang("the river was cold"), "--speaker-wav", wav,
            "--out", tmp_path / "out.wav", "--language", "qx", "--max-new-tokens", "30")
    assert (tmp_path / "out.wav").stat().st_size > 1000
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tiny_model.iterdir()}
    assert after == before                      # the base model folder is unchanged
