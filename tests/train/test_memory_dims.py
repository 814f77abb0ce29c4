"""The memory / disk estimator describes the model it is given (issues 13 and 18): parameters from
the model's own dimensions (exact), activations scaled from the full-size fit and checked against a
fake-tensor measurement of a model of other dimensions; one `lean.resolve_options` behind the
training preflight, the Params screen and `xtts-ft estimate`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import xtts_ft
from engine.train import lean
from engine.train import memory as em

ROOT = Path(__file__).resolve().parents[2]
GiB = 2**30
TINY = em.ModelDims(layers=2, model_dim=64, heads=2, text_tokens=256)
MID = em.ModelDims(layers=3, model_dim=192, heads=4, text_tokens=700, max_audio_tokens=300, max_text_tokens=150)


def _built_params(d: em.ModelDims) -> int:
    import torch

    from TTS.tts.layers.xtts.gpt import GPT

    with torch.device("meta"):
        g = GPT(layers=d.layers, model_dim=d.model_dim, heads=d.heads, max_text_tokens=d.max_text_tokens,
                max_mel_tokens=d.max_audio_tokens, max_prompt_tokens=70, number_text_tokens=d.text_tokens,
                num_audio_tokens=d.audio_tokens, start_audio_token=d.audio_tokens - 2,
                stop_audio_token=d.audio_tokens - 1, use_perceiver_resampler=d.perceiver, code_stride_len=1024)
    return sum(p.numel() for p in g.parameters())


@pytest.mark.parametrize("dims", [TINY, MID], ids=["tiny", "mid"])
def test_parameter_count_is_the_built_models(dims):
    assert em.gpt_params(dims) == _built_params(dims)


def test_full_size_parameters_unchanged():
    assert em.gpt_params(em.XTTS_V2) == em.FULL_GPT_PARAMS == 441_018_563
    assert em.gpt_params(7000) - em.gpt_params(6681) == (2 * 1024 + 1) * 319  # a grown vocabulary


def test_dims_from_the_tiny_model_folder(tiny_model):
    d = em.dims_from_folder(tiny_model)
    assert (d.layers, d.model_dim, d.heads) == (2, 64, 2)
    tok = json.loads((tiny_model / "vocab.json").read_text())
    assert d.text_tokens == len(tok["model"]["vocab"]) == 256
    with pytest.raises(em.ModelDimsError, match="no config.json"):
        em.dims_from_folder(tiny_model.parent)


def test_activation_estimate_matches_a_measurement_of_another_size():
    """bench/memory.py's fake-tensor MemTracker step for the tiny model; the estimate derived from its
    dimensions is within 10%, the full-size figures would be off by two orders of magnitude."""
    sys.path.insert(0, str(ROOT / "bench"))
    import memory as bench_memory

    opts = dict(precision="fp32", tanh_gelu=True, grad_checkpointing=False, optimizer="adamw-fused")
    m = bench_memory.measure(2, 11.6, opts, dims=TINY)
    e = em.estimate(2, 11.6, m["text_tokens"], gpt_only=True, dims=TINY, **opts)
    assert abs(e["gpt_peak_bytes"] / m["peak_bytes"] - 1) < 0.10, (e["gpt_peak_bytes"], m["peak_bytes"])
    full = em.estimate(2, 11.6, m["text_tokens"], gpt_only=True, **opts)
    assert full["gpt_peak_bytes"] > 50 * m["peak_bytes"]


def test_resolve_options_has_no_model_special_case():
    """On a GPU the tiny model gets the estimate line and auto checkpointing like any model: off
    because it fits, not because it is tiny; the full model on a small card gets it on."""
    base = {"batch_size": 8, "max_audio_seconds": 11.0, "precision": "auto", "grad_checkpointing": "auto",
            "tanh_gelu": True, "fused_adamw": True, "adamw_8bit": False, "frozen_off_gpu": True,
            "optimizer": "adamw", "keep_checkpoints": 2}
    gpu = {"available": True, "bf16": False, "total_mb": 8 * 1024}
    tiny, full = dict(base), dict(base)
    t = lean.resolve_options(tiny, "cuda", gpu, dims=TINY)
    f = lean.resolve_options(full, "cuda", gpu, dims=em.XTTS_V2)
    assert tiny["precision"] == full["precision"] == "fp16"  # no bf16 on this card
    assert tiny["grad_checkpointing"] == "off" and full["grad_checkpointing"] == "on"
    assert any("Memory estimate" in line for _, line in t["notes"])
    assert t["fits"] and t["largest_batch"] == 64
    assert t["estimate"]["gpu_bytes"] < f["estimate"]["gpu_bytes"] / 4
    # disk and RAM follow the model too
    assert em.disk_need_bytes(tiny, TINY)[1] < 50e6 < 10e9 < em.disk_need_bytes(full, em.XTTS_V2)[1]
    assert em.load_ram_bytes(TINY) < 2 * GiB < 4 * GiB < em.load_ram_bytes(em.XTTS_V2)


def test_params_screen_and_estimate_command_agree(tiny_model):
    """Headless parity: the Params screen's memory_fit and `xtts-ft estimate --json` give the same peak
    and largest batch for the same model, options and card."""
    from tui.screens.params import memory_fit

    vals = {"batch_size": 6, "max_audio_seconds": 9.0, "precision": "auto", "grad_checkpointing": "auto",
            "tanh_gelu": True, "fused_adamw": False, "adamw_8bit": False, "frozen_off_gpu": True,
            "optimizer": "adamw", "keep_checkpoints": 2}
    for dims, model_args in ((em.XTTS_V2, []), (em.dims_from_folder(tiny_model), ["--model", str(tiny_model)])):
        fit = memory_fit(vals, 10 * GiB, dims)
        out = xtts_ft("estimate", *model_args, "--gpu-gb", "10", "--batch-size", "6", "--max-audio-seconds", "9",
                      "--no-fused-adamw", "--json")
        r = json.loads(out.stdout)
        assert r["estimate"]["gpu_bytes"] == fit["gpu_bytes"]
        assert r["largest_batch"] == fit["largest"] and r["fits"] == fit["fits"]
        assert r["model_assumed"] == (not model_args)
        assert r["estimate"]["optimizer"] == "adamw-foreach"


def test_estimate_command_text_and_bad_input(tiny_model, tmp_path):
    out = xtts_ft("estimate", "--batch-size", "8", "--gpu-gb", "12").stdout
    assert "XTTS v2 (assumed" in out and "441.0M" in out and "Largest batch that fits:" in out
    out = xtts_ft("estimate", "--model", str(tiny_model)).stdout
    assert "2 layers x 64 channels" in out and "0.8M trainable" in out
    (tmp_path / "model.pth").write_bytes(b"x")
    bad = xtts_ft("estimate", "--model", str(tmp_path), check=False)
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "no config.json" in lines[0], bad.stderr
    bad = xtts_ft("estimate", "--batch-size", "0", check=False)
    assert bad.returncode == 2 and "--batch-size" in bad.stderr
