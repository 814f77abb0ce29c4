"""bench/gpu_check.py (issue 15) cannot rot: on this CPU-only machine it says there is no CUDA GPU,
runs its CPU-safe parts through the engine itself and exits 0; its analysis (estimator error, the
CUDA overhead fit tested on held-out runs, gauges against NVML, OOM back-off) is checked on events."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_check  # noqa: E402

GiB = 2**30
MiB = 2**20


def test_gpu_check_on_a_cpu(tiny_model, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--out", str(out), "--work", str(tmp_path / "w"),
         "--model", str(tiny_model), "--parts", "env,train,oom,gauge,ddp", "--batch", "2", "--steps", "2",
         "--clip-seconds", "3", "--max-audio-seconds", "3.5", "--workers", "0", "--threads", "1",
         "--audio-shim", "always"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "NO CUDA GPU" in proc.stdout
    res = json.loads((out / "results.json").read_text())
    assert res["cuda"] is False and res["parts"]["env"]["nvml_readable"] is False
    assert res["parts"]["env"]["audio_decoding"].startswith("soundfile shim")
    run = res["parts"]["train"]["runs"]["defaults"]
    # the engine's own run, with the soundfile shim decoding the generated clips
    assert run["state"] == "finished" and run["steps"] == 2 and run["losses_finite"], run
    assert run["device"] == "cpu" and run["options"]["precision"] == "fp32"
    assert run["estimate"]["gpu_bytes"] > run["estimate"]["peak_bytes"] > 0
    assert res["parts"]["oom"]["skipped"].startswith("no CUDA GPU")
    ddp = res["parts"]["ddp"]
    assert ddp["ok"] and ddp["run"]["distributed"]["world_size"] == 1 and ddp["run"]["distributed"]["backend"] == "gloo"
    summary = (out / "summary.txt").read_text()
    assert "NONE: no CUDA GPU" in summary and "defaults" in summary and "ddp: gloo, world size 1" in summary
    with tarfile.open(out / "runs.tar.gz") as tar:
        names = tar.getnames()
    assert "defaults/events.jsonl" in names and "ddp1/events.jsonl" in names
    assert not any(n.endswith(".pth") for n in names)


def _runs_with_overhead(factor, const, sizes):
    """Finished runs whose NVML peak is exactly factor x allocated + const."""
    runs = {}
    names = ["defaults", "defaults+ckpt", "fp16", "fp32", "coqui-options", "frozen-on-gpu"]
    for name, t in zip(names, sizes):
        runs[name] = {"state": "finished", "peak_allocated_mb": t / MiB, "peak_used_mb": (factor * t + const) / MiB,
                      "estimate": {"peak_bytes": int(t * 1.02), "gpu_bytes": int(1.1 * t * 1.02 + 0.8 * GiB)}}
    return runs


def test_overhead_fit_recovers_the_term_and_is_tested_on_held_out_runs():
    sizes = [s * GiB for s in (9.0, 12.0, 20.0, 31.0, 44.0, 16.0)]
    runs = _runs_with_overhead(1.04, 0.6 * GiB, sizes)
    runs["oom"] = {"state": "failed", "peak_allocated_mb": 1.0, "peak_used_mb": 99.0, "estimate": {"peak_bytes": 1}}
    ov = gpu_check.overhead_analysis(runs, (1.1, int(0.8 * GiB)))
    ft = ov["fitted_term"]
    assert ft["factor"] == pytest.approx(1.04, abs=1e-6) and ft["bytes"] == pytest.approx(0.6 * GiB, rel=1e-6)
    assert ft["fit_points"] == len(sizes) - len(gpu_check.HOLDOUT)  # held-out runs are not in the fit
    assert len(ov["holdout_error_fitted"]) == len(gpu_check.HOLDOUT)
    assert all(abs(e) < 1e-6 for e in ov["holdout_error_fitted"])
    assert all(e > 0.02 for e in ov["holdout_error_current"])  # 1.1 x + 0.8 GiB overestimates this device
    rows = {r["name"]: r for r in ov["rows"]}
    assert "oom" not in rows and rows["fp32"]["tensor_error"] == pytest.approx(0.02, abs=1e-3)
    assert rows["fp16"]["holdout"] and not rows["fp32"]["holdout"]
    # the fit can fail: a held-out run that does not follow the fitted line shows its error
    bad = _runs_with_overhead(1.04, 0.6 * GiB, sizes)
    bad["fp16"]["peak_used_mb"] *= 1.3
    errs = gpu_check.overhead_analysis(bad, (1.1, int(0.8 * GiB)))["holdout_error_fitted"]
    assert max(abs(e) for e in errs) > 0.2
    assert gpu_check.fit_overhead([(1.0, 2.0)]) is None
    assert set(gpu_check.HOLDOUT) < set(gpu_check.OPTION_SETS) and set(gpu_check.CPU_SETS) <= set(gpu_check.OPTION_SETS)


def _ev(type_, **kw):
    return {"v": 1, "ts": kw.pop("ts", 0.0), "type": type_, **kw}


def test_summarize_run_reads_oom_backoff_gauges_and_the_estimate():
    gpu = {"available": True, "source": "nvml", "total_mb": 143771.0}
    evs = [
        _ev("preflight", check="gpu", device="cuda"),
        _ev("preflight", check="memory", precision="fp32", tanh_gelu=False, grad_checkpointing=False,
            optimizer="adamw-foreach", gpu_bytes=200 * GiB, peak_bytes=180 * GiB),
        _ev("alert", kind="oom", level="error", msg="CUDA out of memory", global_step=0, batch_size=96,
            grad_accum=1, backoff=True),
        _ev("config_change", reason="oom_backoff", batch_size=48, grad_accum=2,
            previous={"batch_size": 96, "grad_accum": 1}, global_step=0),
        *[_ev("step", step_time=t, loader_time=0.1, loss=5.0, batch_size=48) for t in (3.0, 1.2, 1.0, 1.1, 1.0)],
        _ev("resources", ts=10.0, gpu={**gpu, "used_mb": 90000.0, "torch_allocated_mb": 80000.0,
                                       "torch_reserved_mb": 85000.0, "torch_peak_allocated_mb": 88000.0}),
        _ev("resources", ts=11.0, gpu={**gpu, "used_mb": 99000.0, "torch_allocated_mb": 81000.0,
                                       "torch_reserved_mb": 97000.0, "torch_peak_allocated_mb": 95000.0,
                                       "torch_peak_reserved_mb": 97500.0}),
        _ev("state", state="finished", reason="completed all epochs"),
    ]
    s = gpu_check.summarize_run(evs)
    assert s["state"] == "finished" and s["steps"] == 5 and s["batch_sizes"] == [48]
    assert s["step_time_s"] == pytest.approx(1.0)  # the first two steps (set-up, 3.0 and 1.2) are not timed
    assert s["peak_allocated_mb"] == 95000.0 and s["peak_reserved_mb"] == 97500.0 and s["peak_used_mb"] == 99000.0
    assert s["oom_alerts"][0]["batch_size"] == 96 and s["backoffs"][0]["previous"]["batch_size"] == 96
    assert s["estimate"]["gpu_bytes"] == 200 * GiB and s["options"]["optimizer"] == "adamw-foreach"
    # gauges against this script's own NVML samples at the same moments
    g = gpu_check.gauge_analysis({"oom": s}, {"oom": [(9.9, 90010.0), (11.2, 98000.0), (30.0, 1.0)]})
    assert g["compared"] == 2 and g["abs_diff_mb_max"] == 1000.0 and g["abs_diff_mb_median"] == 505.0
    assert g["allocated<=reserved<=used violations"] == 0
