"""--text-ce-weight / --mel-ce-weight (coqui's GPTArgs loss weights, the guide's custom loss) and
--vram-fraction (a per-process GPU memory cap for shared GPUs): validated, in the CLI and Params,
passed to coqui, and the cap counted by the one memory resolution."""

from __future__ import annotations

import pytest

from engine.train import config as tc
from engine.train import lean
from engine.train import memory as em

GiB = 2**30
PATHS = {"dataset": "d", "model": "m", "run": "r"}


def test_options_validate():
    cfg = tc.resolve({**PATHS, "text_ce_weight": "0.5", "mel_ce_weight": "2", "vram_fraction": "0.95"})
    assert (cfg["text_ce_weight"], cfg["mel_ce_weight"], cfg["vram_fraction"]) == (0.5, 2.0, 0.95)
    d = tc.resolve(dict(PATHS))
    assert (d["text_ce_weight"], d["mel_ce_weight"], d["vram_fraction"]) == (0.01, 1.0, 0.0)
    with pytest.raises(tc.ConfigError, match="both 0"):
        tc.resolve({**PATHS, "text_ce_weight": 0, "mel_ce_weight": 0})
    with pytest.raises(tc.ConfigError, match="--vram-fraction"):
        tc.resolve({**PATHS, "vram_fraction": 1.5})
    with pytest.raises(tc.ConfigError, match="--mel-ce-weight"):
        tc.resolve({**PATHS, "mel_ce_weight": -1})


def test_weights_reach_coqui(tiny_model):
    from engine.model.files import check_model
    from engine.train.build import build_coqui_config

    cfg = tc.resolve({**PATHS, "model": str(tiny_model), "text_ce_weight": 0.2, "mel_ce_weight": 0.7})
    config = build_coqui_config(cfg, check_model(tiny_model), run_eval=False)
    assert config.model_args.gpt_loss_text_ce_weight == 0.2
    assert config.model_args.gpt_loss_mel_ce_weight == 0.7
    old = {k: v for k, v in cfg.items() if k not in ("text_ce_weight", "mel_ce_weight")}  # a run from before
    config = build_coqui_config(old, check_model(tiny_model), run_eval=False)
    assert (config.model_args.gpt_loss_text_ce_weight, config.model_args.gpt_loss_mel_ce_weight) == (0.01, 1.0)


def test_vram_fraction_caps_the_estimate():
    base = tc.resolve({**PATHS, "batch_size": 8})
    card = {"available": True, "bf16": True, "total_mb": 24 * 1024}
    full = lean.resolve_options(dict(base), "cuda", card)
    half = lean.resolve_options({**base, "vram_fraction": 0.5}, "cuda", card)
    twelve = lean.resolve_options(dict(base), "cuda", {**card, "total_mb": 12 * 1024})
    assert half["total_bytes"] == 12 * GiB == twelve["total_bytes"]
    assert half["largest_batch"] == twelve["largest_batch"] < full["largest_batch"]
    assert any("--vram-fraction" in line for _, line in half["notes"])
    assert em.XTTS_V2.layers == 30  # the default model when none is given


def test_flags_in_train_help(capsys):
    from engine.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for flag in ("--text-ce-weight", "--mel-ce-weight", "--vram-fraction"):
        assert flag in out
