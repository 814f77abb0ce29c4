"""Peak GPU memory of an XTTS v2 GPT finetune, estimated before the run starts (issue 9).

    from engine.train.memory import estimate
    e = estimate(batch=8, clip_seconds=11.0, precision="bf16", grad_checkpointing=True)
    e["gpu_bytes"], e["fits"](12 * 2**30), e["summary"]

Model of a training step (all terms in bytes, P = trainable GPT parameters):
- static: GPT weights 4P + optimizer states (AdamW 8P, 8-bit AdamW 2P, SGD momentum 4P, ...)
  + frozen weights kept on the device (DVAE encoder + codebook and mel front-ends 25.3M x 4 B with
  `frozen_off_gpu`, all 77.4M frozen parameters x 4 B without);
- then the largest of three phases: the end of the forward = saved activations, linear in the batch
  B and quadratic in the sequence length T (attention probabilities), T = 36 + text tokens + audio
  codes (21.5 codes per second of the longest clip + 3); later in the backward = most gradients +
  the activations still alive (with activation checkpointing this is the peak: stored block inputs
  + one recomputed block + the conditioning encoder's activations); the optimizer step = gradients
  4P + the optimizer's temporaries (`foreach` AdamW: one more 4P; fused: a small fraction).
Coefficients per precision, GELU kind and checkpointing were fitted to MemTracker measurements of
the full-size architecture (bench/memory.py: 36 points, max error 0.08%, table in
bench/results/memory.txt; a real-tensor run checks that the fake-tensor figures are exact). The GPU total adds CUDA context, cuBLAS workspace and allocator
fragmentation as 1.1 x tensors + 0.8 GiB: an assumption, not measured here (no GPU was lent).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

GiB = 2**30


@dataclass(frozen=True)
class ModelDims:
    """What the GPT's size depends on: config.json's model_args and the vocabulary's size."""
    layers: int = 30
    model_dim: int = 1024
    heads: int = 16
    text_tokens: int = 6681
    audio_tokens: int = 1026
    max_audio_tokens: int = 605
    max_text_tokens: int = 402
    perceiver: bool = True


XTTS_V2 = ModelDims()
# trainable GPT parameters of the full-size model with a 6681-token vocabulary (STACK.md, measured)
FULL_GPT_PARAMS = 441_018_563  # = gpt_params(XTTS_V2)
FROZEN_PARAMS_ALL = 77_400_000  # HiFiGAN 17.8M + speaker encoder 8.0M + DVAE 51.6M
FROZEN_PARAMS_ON_DEVICE = 25_300_000  # DVAE encoder + codebook (what code extraction runs)
CODES_PER_SECOND = 22050 / 1024
COND_MEL_FRAMES = 517  # 6 s conditioning crop (max_conditioning_length 132300 / hop 256)
PERCEIVER_LATENTS = 32

# fitted activation model, per sample: act(T) = a + b*T + q*T^2 GiB (T = sequence length), exact
# fit to MemTracker measurements of the full-size GPT (bench/results/memory.json): a = conditioning
# encoder + perceiver on the 6 s conditioning mel, b = the blocks' saved tensors and both heads,
# q = attention probabilities (16 heads x 30 blocks). Peak at the end of the forward (no gradients
# yet). bf16/fp16 autocast (CPU autocast measured; 4 points, least squares): once 2P bytes (autocast
# caches a half copy of every weight for the step) + per sample a x 1.04, b x 0.62 (the linear
# layers' saved tensors are halved, layer norms and softmax stay fp32), q x 1.04 (attention
# probabilities stay fp32). gelu_new in half precision applies the same ratios (not measured: the
# engine's bf16 runs use the tanh GELU unless it is turned off).
_FP32_NEW = (0.1998, 0.003621, 5.30e-6)
_FP32_TANH = (0.1992, 0.002252, 5.29e-6)
_HALF_TANH = (0.207008, 0.00140047, 5.47627e-6)
_HALF_RATIO = tuple(h / f for h, f in zip(_HALF_TANH, _FP32_TANH))

ACT_COEF: dict[tuple, tuple[float, float, float]] = {
    ("fp32", False): _FP32_NEW,
    ("fp32", True): _FP32_TANH,
    ("half", False): tuple(x * r for x, r in zip(_FP32_NEW, _HALF_RATIO)),
    ("half", True): _HALF_TANH,
}
HALF_WEIGHT_COPY_BYTES = 2  # per trainable parameter, autocast's cast cache (no checkpointing)
# Peaks later in the backward, when most gradients already exist (4P + d GiB, d < 0: the gradients
# not computed yet) plus per-sample activations still alive. Fitted (least squares) to the
# checkpointing measurements of bench/memory.py (9 batch x clip points per precision, error < 0.1%):
# - "tail": the conditioning encoder's backward (the last one): its saved activations of the 6 s
#   conditioning mel, independent of T; every option set has it, it wins at short clips.
# - "blocks" (activation checkpointing only): the recomputed blocks' backward: the stored block
#   inputs + one recomputed block (b*T; q = one block's attention probabilities, q_fp32 / 30) +
#   the conditioning activations still alive.
# Without checkpointing the end-of-forward peak is far above "blocks", which is not used.
BACKWARD_TAIL = {"fp32": (-0.11812, 0.21982), "half": (-0.07590, 0.22010)}  # (d, a)
CK_BLOCKS = {"fp32": (-0.23703, 0.202734, 1.07697e-4, 1.76333e-7),
             "half": (-0.12967, 0.198836, 8.83698e-5, 1.58307e-7)}  # (d, a, b, q)
# optimizer step temporaries as a multiple of 4P
OPT_TEMP = {"adamw-foreach": 1.0, "adamw-fused": 0.06, "adamw8bit": 0.06, "sgd": 1.0, "rmsprop": 1.0,
            "adam-foreach": 1.0, "adam-fused": 0.06}
OPT_STATE_BYTES = {"adamw-foreach": 8, "adamw-fused": 8, "adam-foreach": 8, "adam-fused": 8, "adamw8bit": 2,
                   "sgd": 4, "rmsprop": 4}
# The conditioning encoder + perceiver term ("a", per sample) scales with the width for its
# feature maps and with the heads for the encoder's attention probabilities on the 6 s mel
# (COND_WIDTH_SHARE fitted to fake-tensor measurements at other widths and head counts).
COND_WIDTH_SHARE = 0.42
# Parts that do not scale with the GPT's size (fitted to the tiny 2 x 64 model's measurements): the
# perceiver's attention (always 8 heads x 64) per sample, and the mel head's logits per token and
# audio-vocabulary entry (logits + log-softmax), already inside the full-size coefficients.
PERCEIVER_FIXED_BYTES = 5 * 2**20
LOGIT_BYTES = 14
GPU_OVERHEAD_FACTOR = 1.1
GPU_OVERHEAD_BYTES = int(0.8 * GiB)


def default_text_tokens(clip_seconds: float) -> int:
    """Text tokens of a clip when only its length is known (~9 BPE tokens per second of speech)."""
    return int(math.ceil(9.0 * clip_seconds))


def codes_for(clip_seconds: float) -> int:
    return int(math.ceil(clip_seconds * CODES_PER_SECOND)) + 3


def sequence_length(clip_seconds: float, text_tokens: int | None = None) -> int:
    nt = default_text_tokens(clip_seconds) if text_tokens is None else int(text_tokens)
    return PERCEIVER_LATENTS + nt + 2 + codes_for(clip_seconds) + 2


def gpt_params(dims: ModelDims | int = XTTS_V2) -> int:
    """Trainable parameters of coqui's XTTS GPT with these dimensions (exact: the module sizes of
    TTS/tts/layers/xtts/gpt.py; tests compare it with the built model). An int is the text
    vocabulary of the full-size model (older callers)."""
    if isinstance(dims, int):
        dims = ModelDims(text_tokens=dims)
    L, d, V, A = dims.layers, dims.model_dim, dims.text_tokens, dims.audio_tokens
    blocks = L * (12 * d * d + 13 * d) + 2 * d  # GPT-2 blocks (attention, MLP, 2 layer norms) + ln_f
    cond = 24 * d * d + 117 * d  # conditioning encoder: 1x1 conv from 80 mels + 6 attention blocks
    perceiver = 0
    if dims.perceiver:  # 32 latents, 2 x (attention with 8 heads of 64, GEGLU feed-forward), RMSNorm
        di = int(d * 4 * 2 / 3)
        perceiver = 32 * d + 2 * (2048 * d + 3 * di * d + 2 * di + d) + d
    heads = 2 * V * d + V + 2 * A * d + A + 2 * d  # text/mel embeddings and heads, final norm
    positions = (dims.max_audio_tokens + 3 + dims.max_text_tokens + 2) * d
    return blocks + cond + perceiver + heads + positions


class ModelDimsError(ValueError):
    """The model folder has no readable config.json (not an XTTS model folder)."""


def vocab_size(path) -> int | None:
    """Number of tokens of a `tokenizers` JSON (vocab.json): what coqui's Xtts sets as
    gpt_number_text_tokens; None when the file is missing or unreadable."""
    import json
    from pathlib import Path

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        ids = set((data.get("model") or {}).get("vocab", {}).values())
        ids |= {t["id"] for t in data.get("added_tokens") or [] if isinstance(t, dict) and "id" in t}
        return max(int(i) for i in ids) + 1 if ids else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def dims_from_config(config: dict, text_tokens: int | None = None) -> ModelDims:
    """The dimensions in an XTTS config.json (`model_args`); the vocabulary from vocab.json wins
    over `gpt_number_text_tokens` (coqui overwrites it with the tokenizer's size)."""
    a = config.get("model_args") or {}
    base = XTTS_V2

    def get(key, default):
        v = a.get(key)
        return default if v is None else v

    return ModelDims(
        layers=int(get("gpt_layers", base.layers)), model_dim=int(get("gpt_n_model_channels", base.model_dim)),
        heads=int(get("gpt_n_heads", base.heads)),
        text_tokens=int(text_tokens or get("gpt_number_text_tokens", base.text_tokens)),
        audio_tokens=int(get("gpt_num_audio_tokens", base.audio_tokens)),
        max_audio_tokens=int(get("gpt_max_audio_tokens", base.max_audio_tokens)),
        max_text_tokens=int(get("gpt_max_text_tokens", base.max_text_tokens)),
        perceiver=bool(get("gpt_use_perceiver_resampler", base.perceiver)),
    )


def dims_from_folder(folder) -> ModelDims:
    """The dimensions of the model in a model folder (config.json + vocab.json); raises
    ModelDimsError with a one-line reason when config.json is missing or not an XTTS config."""
    import json
    from pathlib import Path

    folder = Path(folder).expanduser()
    cfg_path = folder / "config.json"
    if not folder.is_dir():
        raise ModelDimsError(f"{folder}: folder not found")
    if not cfg_path.is_file():
        raise ModelDimsError(f"{folder}: no config.json (an XTTS model folder holds config.json, model.pth, "
                             "vocab.json, ...)")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelDimsError(f"{cfg_path}: unreadable JSON ({exc})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_args"), dict):
        raise ModelDimsError(f"{cfg_path}: not an XTTS config (no model_args)")
    return dims_from_config(config, vocab_size(folder / "vocab.json"))


def describe_dims(dims: ModelDims) -> str:
    return (f"GPT {dims.layers} layers x {dims.model_dim} channels, {dims.heads} heads, {dims.text_tokens} text "
            f"tokens: {gpt_params(dims) / 1e6:.1f}M trainable parameters")


def _scales(dims: ModelDims) -> tuple[float, float, float, float]:
    """Activation scale factors of `dims` relative to the full-size model the coefficients were
    fitted to: (conditioning encoder + perceiver, blocks per token, attention per token², one
    block's attention)."""
    f = XTTS_V2
    cond = COND_WIDTH_SHARE * dims.model_dim / f.model_dim + (1 - COND_WIDTH_SHARE) * dims.heads / f.heads
    blocks = (dims.layers * dims.model_dim) / (f.layers * f.model_dim)
    attn = (dims.layers * dims.heads) / (f.layers * f.heads)
    one_block_attn = dims.heads / f.heads
    return cond, blocks, attn, one_block_attn


def frozen_on_device_bytes(frozen_off_gpu: bool = True) -> int:
    return 4 * (FROZEN_PARAMS_ON_DEVICE if frozen_off_gpu else FROZEN_PARAMS_ALL)


def optimizer_kind(optimizer: str = "adamw", fused: bool = True, eight_bit: bool = False) -> str:
    if optimizer in ("adamw", "adam"):
        if eight_bit and optimizer == "adamw":
            return "adamw8bit"
        return f"{optimizer}-{'fused' if fused else 'foreach'}"
    return optimizer


def estimate(batch: int, clip_seconds: float, text_tokens: int | None = None, precision: str = "bf16",
             tanh_gelu: bool = True, grad_checkpointing: bool = False, optimizer: str = "adamw-fused",
             frozen_off_gpu: bool = True, text_vocab: int | None = None, gpt_only: bool = False,
             dims: ModelDims = XTTS_V2) -> dict:
    """Peak memory of one training step of an XTTS GPT with dimensions `dims` (default: XTTS v2).

    batch: clips per step; clip_seconds: the longest clip; text_tokens: the longest transcript in
    BPE tokens (default ~9 per second); precision: fp32 | bf16 | fp16 (| auto = bf16);
    optimizer: adamw-fused | adamw-foreach | adamw8bit | adam-fused | adam-foreach | sgd | rmsprop
    (`optimizer_kind()` builds it from the engine's options); text_vocab overrides dims' vocabulary.
    Returns bytes: gpt_peak_bytes (GPT + optimizer + activations, what bench/memory.py measures),
    peak_bytes (+ frozen weights on the device), gpu_bytes (+ assumed CUDA overhead), the parts,
    and `summary` (one line for a UI).
    """
    if optimizer in ("adamw", "adam"):
        optimizer = optimizer + "-fused"
    if optimizer not in OPT_STATE_BYTES:
        raise ValueError(f"unknown optimizer kind {optimizer!r}")
    if text_vocab:
        dims = replace(dims, text_tokens=int(text_vocab))
    p = gpt_params(dims)
    sc_cond, sc_blocks, sc_attn, sc_one = _scales(dims)
    # per sample, GiB: the conditioning term and the per-token term split into what scales with the
    # model and what does not (the perceiver's fixed 8 x 64 attention, the mel head's logits)
    fixed_a = PERCEIVER_FIXED_BYTES / GiB
    logits_b = LOGIT_BYTES * (dims.audio_tokens - XTTS_V2.audio_tokens * sc_blocks) / GiB
    p_share = p / gpt_params(XTTS_V2)
    half = precision in ("bf16", "fp16", "auto")
    pk = "half" if half else "fp32"
    T = sequence_length(clip_seconds, text_tokens)
    B = max(1, int(batch))
    weights = 4 * p
    states = OPT_STATE_BYTES[optimizer] * p
    grads = 4 * p
    td, ta = BACKWARD_TAIL[pk]
    tail = grads + (td * p_share + B * ((ta - fixed_a) * sc_cond + fixed_a)) * GiB  # grads + conditioning
    if grad_checkpointing:
        d, a, b, q = CK_BLOCKS[pk]
        per = (a - fixed_a) * sc_cond + fixed_a + (b * sc_blocks + logits_b) * T + q * sc_one * T * T
        activations = max(grads + (d * p_share + B * per) * GiB, tail)
    else:
        a, b, q = ACT_COEF[(pk, bool(tanh_gelu))]
        once = HALF_WEIGHT_COPY_BYTES * p if half else 0
        per = (a - fixed_a) * sc_cond + fixed_a + (b * sc_blocks + logits_b) * T + q * sc_attn * T * T
        activations = max(once + B * per * GiB, tail)
    opt_phase = grads * (1 + OPT_TEMP[optimizer])
    gpt_peak = weights + states + max(activations, opt_phase)
    frozen = frozen_on_device_bytes(frozen_off_gpu)
    peak = gpt_peak + (0 if gpt_only else frozen)
    gpu = GPU_OVERHEAD_FACTOR * peak + GPU_OVERHEAD_BYTES
    out = {
        "batch": B, "clip_seconds": clip_seconds, "sequence_length": T, "precision": precision,
        "tanh_gelu": bool(tanh_gelu), "grad_checkpointing": bool(grad_checkpointing), "optimizer": optimizer,
        "dims": asdict(dims), "gpt_params": p, "weights_bytes": weights, "optimizer_state_bytes": states,
        "activation_bytes": int(activations), "optimizer_step_bytes": int(opt_phase),
        "frozen_bytes": 0 if gpt_only else frozen, "gpt_peak_bytes": int(gpt_peak), "peak_bytes": int(peak),
        "gpu_bytes": int(gpu), "phase": "forward/backward" if activations >= opt_phase else "optimizer step",
    }
    out["summary"] = (f"~{gpu / GiB:.1f} GiB on the GPU (tensors {peak / GiB:.1f} GiB: weights+optimizer "
                      f"{(weights + states) / GiB:.1f}, {'activations' if activations >= opt_phase else 'step'} "
                      f"{max(activations, opt_phase) / GiB:.1f}, frozen {out['frozen_bytes'] / GiB:.1f})")
    out["fits"] = lambda total_bytes, _g=gpu: _g <= total_bytes
    return out


def options_from_config(cfg: dict, grad_checkpointing: bool | None = None) -> dict:
    """`estimate()` keyword arguments for the engine's options (`engine.train.config` names)."""
    prec = cfg.get("precision", "auto")
    gc = cfg.get("grad_checkpointing", "auto") if grad_checkpointing is None else grad_checkpointing
    return {"precision": "bf16" if prec == "auto" else prec, "tanh_gelu": bool(cfg.get("tanh_gelu", True)),
            "grad_checkpointing": gc in (True, "on"),
            "optimizer": optimizer_kind(cfg.get("optimizer", "adamw"), bool(cfg.get("fused_adamw", True)),
                                        bool(cfg.get("adamw_8bit", False))),
            "frozen_off_gpu": bool(cfg.get("frozen_off_gpu", True))}


def estimate_from_config(cfg: dict, clip_seconds: float | None = None, text_tokens: int | None = None,
                         text_vocab: int | None = None, grad_checkpointing: bool | None = None,
                         dims: ModelDims = XTTS_V2) -> dict:
    """The estimate for the engine's resolved options (`engine.train.config` names)."""
    return estimate(
        batch=int(cfg.get("batch_size", 4)),
        clip_seconds=float(clip_seconds if clip_seconds is not None else cfg.get("max_audio_seconds", 11.0)),
        text_tokens=text_tokens, text_vocab=text_vocab, dims=dims,
        **options_from_config(cfg, grad_checkpointing))


def needs_checkpointing(cfg: dict, total_bytes: int, clip_seconds: float | None = None,
                        text_tokens: int | None = None, text_vocab: int | None = None,
                        dims: ModelDims = XTTS_V2) -> bool:
    """`grad_checkpointing = auto`: on when the run would not fit `total_bytes` without it."""
    e = estimate_from_config(cfg, clip_seconds, text_tokens, text_vocab, grad_checkpointing=False, dims=dims)
    return e["gpu_bytes"] > total_bytes


def checkpoint_bytes(dims: ModelDims = XTTS_V2, optimizer: str = "adamw") -> dict:
    """Disk of one run's files for this model: a resumable checkpoint holds the GPT weights (fp32)
    and the optimizer's states (frozen weights are not stored); best_model.pth the weights."""
    p = gpt_params(dims)
    kind = optimizer_kind(optimizer) if optimizer in ("adamw", "adam", "sgd", "rmsprop") else optimizer
    per = 4 * p + OPT_STATE_BYTES.get(kind, 8) * p
    return {"checkpoint": per, "best_model": 4 * p}


def disk_need_bytes(cfg: dict, dims: ModelDims = XTTS_V2) -> tuple[int, int]:
    """(per checkpoint, total) for `keep_checkpoints` checkpoints, one being written, and the best model."""
    c = checkpoint_bytes(dims, optimizer_kind(cfg.get("optimizer", "adamw"), True, bool(cfg.get("adamw_8bit"))))
    return c["checkpoint"], c["checkpoint"] * (int(cfg.get("keep_checkpoints", 2)) + 1) + c["best_model"]


def load_ram_bytes(dims: ModelDims = XTTS_V2) -> int:
    """RAM to build and load the model before training moves it: the whole GPTTrainer in fp32 plus
    the checkpoint's state dict beside it, and ~1 GiB of libraries."""
    return int(2 * 4 * (gpt_params(dims) + FROZEN_PARAMS_ALL) + 1 * GiB)


def largest_batch(total_bytes: int, clip_seconds: float, text_tokens: int | None = None, limit: int = 64,
                  **opts) -> int:
    """The largest batch (up to `limit`) whose estimate fits `total_bytes`; 0 when even batch 1 does not."""
    best = 0
    for b in range(1, limit + 1):
        if estimate(b, clip_seconds, text_tokens, **opts)["gpu_bytes"] <= total_bytes:
            best = b
        else:
            break
    return best
