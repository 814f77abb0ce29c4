"""`xtts-ft vocab extend` on the tiny model and a dataset in a made-up orthography."""

import hashlib
import json
import subprocess
import sys

import pytest
import speechgen
import torch

from engine.model.vocab import VocabError, extend
from engine.prep import PrepOptions, run_prep
from engine.prep.report import Reporter


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from engine.model.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="module")
def conlang_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("qx")
    speechgen.conlang_set(root / "src", 12)
    result = run_prep(PrepOptions([str(root / "src")], root / "ds", language="qx", transcripts="files",
                                  speaker_check=False), Reporter(console=None))
    assert result.ok, result.reason
    return root / "ds"


def test_extension_removes_unk_and_keeps_every_base_token(tiny, conlang_dataset, tmp_path):
    before = digest(tiny)
    out = tmp_path / "qx_model"
    rep = extend(conlang_dataset, tiny, out, language="qx")
    assert digest(tiny) == before                       # the base folder is untouched
    assert rep.before.unk > 0 and rep.after.unk == 0
    assert rep.after.single_share < rep.before.single_share
    assert rep.language_added == "qx" and len(rep.added) > 10
    base = json.loads((tiny / "vocab.json").read_text())["model"]["vocab"]
    new = json.loads((out / "vocab.json").read_text())["model"]["vocab"]
    assert all(new[t] == i for t, i in base.items())    # no renumbering
    assert sorted(new.values()) == list(range(len(new)))
    sd_old = torch.load(tiny / "model.pth", weights_only=False)["model"]
    sd_new = torch.load(out / "model.pth", weights_only=False)["model"]
    for key in ("gpt.text_embedding.weight", "gpt.text_head.weight", "gpt.text_head.bias"):
        assert sd_new[key].shape[0] == rep.new_size
        assert torch.equal(sd_new[key][: sd_old[key].shape[0]], sd_old[key])
        assert torch.isfinite(sd_new[key]).all()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_args"]["gpt_number_text_tokens"] == rep.new_size
    assert "qx" in cfg["languages"] and cfg["xtts_ft"]["extra_languages"] == {"qx": "basic"}
    # coqui's tokenizer on the new folder knows the language and has no unknown pieces
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer

    from engine.model.languages import install_for_model

    install_for_model(out)
    tok = VoiceBpeTokenizer(str(out / "vocab.json"))
    assert tok.get_number_tokens() == rep.new_size
    ids = tok.encode(speechgen.conlang(speechgen.SENTENCES[3]), "qx")
    assert 1 not in ids and ids[0] == tok.tokenizer.token_to_id("[qx]")


def test_extension_loads_in_coqui_and_synthesises_with_the_new_language(tiny, conlang_dataset, tmp_path):
    out = tmp_path / "qx_model"
    extend(conlang_dataset, tiny, out, language="qx")
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.models.xtts import Xtts

    from engine.model.languages import install_for_model

    install_for_model(out)
    cfg = XttsConfig()
    cfg.load_json(str(out / "config.json"))
    model = Xtts.init_from_config(cfg)
    model.load_checkpoint(cfg, checkpoint_dir=str(out), eval=True)
    wav = next((conlang_dataset / "wavs").glob("*.wav"))
    latent, spk = model.get_conditioning_latents(audio_path=[str(wav)])
    res = model.inference(speechgen.conlang("the river was cold"), "qx", latent, spk, max_new_tokens=20)
    assert len(res["wav"]) > 0


def test_extending_an_extended_model_and_nothing_to_add(tiny, conlang_dataset, tmp_path):
    first = tmp_path / "m1"
    extend(conlang_dataset, tiny, first, language="qx")
    with pytest.raises(VocabError, match="nothing to add"):
        extend(conlang_dataset, first, tmp_path / "m2", language="qx")
    assert not (tmp_path / "m2").exists()
    # new characters in a second dataset extend the extended model again
    more = tmp_path / "more"
    speechgen.write(more / "src" / "x.wav", speechgen.compose([speechgen.SENTENCES[1]])[0])
    (more / "src" / "x.txt").write_text("ʒʒiʒ ʒoʒ ħaħ ħiħ ʒʒiʒ ħaħ ʒoʒ ħiħ", encoding="utf-8")
    speechgen.write(more / "src" / "y.wav", speechgen.compose([speechgen.SENTENCES[2]])[0])
    (more / "src" / "y.txt").write_text("ħaħ ʒoʒ ʒʒiʒ ħiħ ħaħ ʒoʒ", encoding="utf-8")
    assert run_prep(PrepOptions([str(more / "src")], more / "ds", language="qx", transcripts="files",
                                speaker_check=False), Reporter(console=None)).ok
    rep = extend(more / "ds", first, tmp_path / "m3", language="qx")
    assert rep.language_added is None and rep.after.unk == 0 and rep.before.unk > 0
    cfg = json.loads((tmp_path / "m3" / "config.json").read_text())
    assert len(cfg["xtts_ft"]["vocab_extensions"]) == 2


def test_cli_bad_input(tiny, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "engine", "vocab", "extend", "--dataset", str(tmp_path),
                           "--model", str(tiny), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2 and "no transcripts found" in proc.stderr and "Traceback" not in proc.stderr
    empty = tmp_path / "empty_model"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "-m", "engine", "vocab", "extend", "--dataset", str(tmp_path),
                           "--model", str(empty), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2 and "missing config.json" in proc.stderr
