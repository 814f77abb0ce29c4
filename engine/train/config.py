"""Training options: names, the guide's defaults, validated ranges, TOML loading, resolution.

One table (`OPTIONS`) drives the CLI flags, the `--config run.toml` keys, validation and the
resolved `run_config.json` written into the run folder. CLI flags override TOML, which
overrides the defaults.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OPTIMIZERS = {"adamw": "AdamW", "adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop"}
SCHEDULERS = ("cosine-warm-restarts", "cosine", "step", "exponential", "plateau", "none")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
CHECKPOINTING = ("auto", "on", "off")
DEVICES = ("auto", "cpu", "cuda")
SAMPLE_RATE = 22050


class ConfigError(ValueError):
    """A bad option value; the message names the option and its allowed range."""


@dataclass(frozen=True)
class Option:
    name: str  # python / TOML name; the CLI flag is --name-with-dashes
    type: type
    default: Any
    help: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS: list[Option] = [
    Option("epochs", int, 10, "passes over the training set (guide: 10-15 standard voices, 15-20 accents, "
           "20-30 stylised)", 1, 1000),
    Option("batch_size", int, 4, "clips per step; lower it when VRAM runs out", 1, 512),
    Option("grad_accum", int, 1, "steps whose gradients are summed before one optimizer update "
           "(effective batch = batch x accum)", 1, 1024),
    Option("lr", float, 5e-6, "learning rate (guide: 1e-6..5e-6 precise, 1e-5 balanced, >=1e-3 unstable)",
           1e-9, 1e-1),
    Option("optimizer", str, "adamw", "optimizer", choices=tuple(OPTIMIZERS)),
    Option("weight_decay", float, 1e-2, "AdamW weight decay", 0.0, 1.0),
    Option("scheduler", str, "cosine-warm-restarts", "learning-rate schedule", choices=SCHEDULERS),
    Option("warmup_steps", int, 0, "optimizer steps of linear learning-rate warm-up", 0, 1_000_000),
    Option("max_audio_seconds", float, 11.0, "clips longer than this are skipped (XTTS limit ~11.6 s)",
           1.0, 20.0),
    Option("max_text_length", int, 200, "texts with more tokens are skipped", 8, 400),
    Option("workers", int, 2, "data-loader worker processes (guide: 2-4)", 0, 32),
    Option("precision", str, "auto", "auto (bf16 mixed precision on GPUs that support it, else fp16; fp32 on "
           "the CPU), fp32, or fp16/bf16 mixed precision (CUDA only)", choices=PRECISIONS),
    Option("grad_checkpointing", str, "auto", "activation checkpointing of the GPT blocks (less memory, "
           "~30% slower steps); auto = on when the memory estimate says the run would not fit the GPU "
           "without it", choices=CHECKPOINTING),
    Option("tanh_gelu", bool, True, "one-op tanh GELU instead of GPT-2's multi-op gelu_new (same function, "
           "~1/3 fewer saved activations)"),
    Option("fused_adamw", bool, True, "fused AdamW/Adam kernel (same update, no parameter-sized temporaries)"),
    Option("adamw_8bit", bool, False, "8-bit AdamW states from bitsandbytes (CUDA only, optional install; "
           "changes the optimizer's numerics)"),
    Option("frozen_off_gpu", bool, True, "keep the modules GPT training never runs (HiFiGAN decoder, speaker "
           "encoder, DVAE decoder) on the CPU"),
    Option("grad_clip", float, 0.0, "clip gradient norm to this value; 0 = off", 0.0, 1000.0),
    Option("text_ce_weight", float, 0.01, "weight of the text cross-entropy in the loss (coqui's "
           "gpt_loss_text_ce_weight; the guide's custom loss: raise it to stress pronunciation)", 0.0, 10.0),
    Option("mel_ce_weight", float, 1.0, "weight of the audio-token (mel) cross-entropy in the loss (coqui's "
           "gpt_loss_mel_ce_weight: the sound itself)", 0.0, 10.0),
    Option("vram_fraction", float, 0.0, "cap this process at this share of the GPU's memory (torch's "
           "per-process memory fraction; AllTalk uses 0.95) for GPUs shared with other work; 0 = no cap",
           0.0, 1.0),
    Option("save_every_steps", int, 1000, "write a checkpoint every N optimizer steps; 0 = only at "
           "the end and on stop", 0, 10_000_000),
    Option("keep_checkpoints", int, 2, "keep at most K checkpoints (the best model is kept apart)", 1, 100),
    Option("early_stop_patience", int, 0, "stop after N evaluations without a new best eval loss; 0 = off",
           0, 1000),
    Option("alert_window", int, 3, "evaluations without improvement before an overtraining/plateau alert",
           2, 100),
    Option("eval_every_steps", int, 0, "evaluate every N steps as well as at each epoch end; 0 = epoch end",
           0, 10_000_000),
    Option("seed", int, 1, "random seed", 0, 2**31 - 1),
    Option("language", str, "", "dataset language (default: from dataset.json, else en)"),
    Option("device", str, "auto", "auto (CUDA when present), cpu or cuda", choices=DEVICES),
    Option("threads", int, 0, "CPU threads for torch; 0 = all cores", 0, 1024),
    Option("oom_backoff", bool, True, "on CUDA out-of-memory continue with half the batch and double "
           "the accumulation"),
    Option("ab_samples", int, 2, "sentences written with the base and the finetuned model into "
           "R/samples/ after training; 0 = none", 0, 10),
    Option("samples_on_best", bool, False, "also write the finetuned samples at every new best model"),
    Option("gpu_sample_seconds", float, 5.0, "seconds between GPU/RAM samples in the event stream", 0.5, 3600.0),
    Option("print_step", int, 25, "coqui console print interval in steps (log file only)", 1, 100000),
    Option("max_new_tokens", int, 0, "cap on generated audio tokens for samples; 0 = model default "
           "(tiny random models are capped at 60)", 0, 10000),
    # listening test during training: engine/listen/training.py, docs/listening.md
    Option("listen_every", str, "auto", "listening test (synthesise a fixed test with the model in memory; "
           "CER, speaker similarity, MOS, hallucination flags) every N epochs; auto = on a GPU, as often as it costs at "
           "most 10% of the run's time (off on a CPU); 0 = off"),
    Option("listen_sentences", int, 0, "sentences per voice in the listening test; 0 = eval clips (up to 3) + "
           "the 4 fixed unseen sentences", 0, 100),
    Option("listen_datasets", str, "", "more dataset folders (comma-separated) whose voices the listening "
           "test also scores: forgetting an earlier voice shows as a curve"),
    Option("listen_whisper_model", str, "auto", "whisper model of the listening test (as prep's --whisper-model)"),
    Option("best_by", str, "loss", "which checkpoint is 'best' for export and samples: eval loss, or the "
           "listening test's recommendation (BEST LISTEN)", choices=("loss", "listen")),
    # several GPUs / processes: engine/train/distributed.py
    Option("gpus", str, "", "train on several GPUs of this machine with DistributedDataParallel: 0,1 or all; "
           "empty = one process (batch size is then per GPU)"),
    Option("cpu_processes", int, 0, "N CPU processes with the gloo backend (tests the multi-GPU path without "
           "GPUs); 0 = off", 0, 64),
    Option("nnodes", int, 1, "machines taking part (torchrun --nnodes); >1 needs --rdzv-endpoint", 1, 1024),
    Option("rdzv_endpoint", str, "", "HOST:PORT of the rendezvous for --nnodes > 1 (torchrun --rdzv-endpoint)"),
]
OPTIONS_BY_NAME = {o.name: o for o in OPTIONS}
PATH_KEYS = ("dataset", "model", "run", "base_checkpoint")


def _coerce(opt: Option, value: Any) -> Any:
    if value is None:
        return None
    try:
        if opt.type is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if opt.type is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if opt.type is float:
            v = float(value)
            if math.isnan(v) or math.isinf(v):
                raise ValueError(value)
            return v
        return str(value).strip().lower() if opt.choices else str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{opt.flag}: {value!r} is not a valid {opt.type.__name__}") from None


def validate_value(opt: Option, value: Any) -> Any:
    value = _coerce(opt, value)
    if opt.choices is not None and value not in opt.choices:
        raise ConfigError(f"{opt.flag}: {value!r} is not one of: {', '.join(opt.choices)}")
    if opt.lo is not None and value < opt.lo:
        raise ConfigError(f"{opt.flag}: {value} is below the minimum {opt.lo:g} (allowed {opt.lo:g}..{opt.hi:g})")
    if opt.hi is not None and value > opt.hi:
        raise ConfigError(f"{opt.flag}: {value} is above the maximum {opt.hi:g} (allowed {opt.lo:g}..{opt.hi:g})")
    return value


def load_toml(path: str | Path) -> dict:
    import tomllib

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config: file not found: {p}")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {p}: not valid TOML ({exc})") from None
    if isinstance(data.get("train"), dict):  # a [train] table is allowed
        data = {**{k: v for k, v in data.items() if k != "train"}, **data["train"]}
    out = {}
    for key, value in data.items():
        k = key.replace("-", "_")
        if k not in OPTIONS_BY_NAME and k not in PATH_KEYS:
            known = ", ".join(sorted(list(OPTIONS_BY_NAME) + list(PATH_KEYS)))
            raise ConfigError(f"--config {p}: unknown key {key!r} (known: {known})")
        out[k] = value
    return out


def resolve(cli_values: dict, toml_path: str | None = None) -> dict:
    """Merge defaults < TOML < CLI, validate every value; returns a plain dict (no paths checked)."""
    merged: dict[str, Any] = {o.name: o.default for o in OPTIONS}
    for k in PATH_KEYS:
        merged[k] = None
    if toml_path:
        merged.update(load_toml(toml_path))
    for k, v in cli_values.items():
        if v is not None:
            merged[k] = v
    for opt in OPTIONS:
        merged[opt.name] = validate_value(opt, merged[opt.name])
    for k in ("dataset", "model", "run"):
        if not merged.get(k):
            raise ConfigError(f"--{k} is required (on the command line or in --config)")
    le = str(merged["listen_every"]).strip().lower()
    if le != "auto" and not (le.isdigit() and int(le) <= 1000):
        raise ConfigError(f"--listen-every: {merged['listen_every']!r} is not auto or a number of epochs 0..1000")
    merged["listen_every"] = le
    if merged["best_by"] == "listen" and le == "0":
        raise ConfigError("--best-by listen needs the listening test (--listen-every auto or N > 0)")
    if merged["text_ce_weight"] == 0 and merged["mel_ce_weight"] == 0:
        raise ConfigError("--text-ce-weight and --mel-ce-weight are both 0: the loss would be 0 and nothing "
                          "would be learned")
    if merged["adamw_8bit"] and merged["optimizer"] != "adamw":
        raise ConfigError("--adamw-8bit needs --optimizer adamw")
    if merged["optimizer"] != "adamw" and merged["weight_decay"] and merged["weight_decay"] != 1e-2:
        pass  # weight decay only applies to AdamW; kept in the file for the record
    return merged


def effective_batch(cfg: dict) -> int:
    """per-GPU batch x accumulation x processes (world size, 1 without --gpus)."""
    return int(cfg["batch_size"]) * int(cfg["grad_accum"]) * int(cfg.get("world_size") or 1)


def max_wav_samples(cfg: dict) -> int:
    return int(cfg["max_audio_seconds"] * SAMPLE_RATE)


def optimizer_spec(cfg: dict) -> tuple[str, dict]:
    """torch.optim class name and its parameters (never a scheduler name)."""
    name = OPTIMIZERS[cfg["optimizer"]]
    fused = {"fused": True} if cfg.get("fused_adamw", True) else {}
    if name == "AdamW":
        return name, {"betas": [0.9, 0.96], "eps": 1e-8, "weight_decay": float(cfg["weight_decay"]), **fused}
    if name == "Adam":
        return name, {"betas": [0.9, 0.96], "eps": 1e-8, **fused}
    if name == "SGD":
        return name, {"momentum": 0.9}
    return name, {"alpha": 0.99, "eps": 1e-8}


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return max(1, math.ceil(n_train / batch_size))


def optimizer_steps_per_epoch(n_train: int, batch_size: int, grad_accum: int) -> int:
    return max(1, math.ceil(steps_per_epoch(n_train, batch_size) / grad_accum))


def dump(cfg: dict) -> str:
    return json.dumps(cfg, indent=2, ensure_ascii=False, default=os.fspath) + "\n"
