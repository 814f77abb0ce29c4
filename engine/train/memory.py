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

GiB = 2**30
FULL_DIMS = {"layers": 30, "model_dim": 1024, "heads": 16, "text_tokens": 6681}
# trainable GPT parameters of the full-size model with a 6681-token vocabulary (STACK.md, measured)
FULL_GPT_PARAMS = 441_018_563
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


def gpt_params(text_vocab: int = FULL_DIMS["text_tokens"]) -> int:
    """Trainable parameters of the full-size GPT for a text vocabulary size (embedding + head)."""
    d = FULL_DIMS["model_dim"]
    return FULL_GPT_PARAMS + (2 * d + 1) * (int(text_vocab) - FULL_DIMS["text_tokens"])


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
             frozen_off_gpu: bool = True, text_vocab: int = FULL_DIMS["text_tokens"],
             gpt_only: bool = False) -> dict:
    """Peak memory of one training step of the full-size XTTS v2 GPT.

    batch: clips per step; clip_seconds: the longest clip; text_tokens: the longest transcript in
    BPE tokens (default ~9 per second); precision: fp32 | bf16 | fp16 (| auto = bf16);
    optimizer: adamw-fused | adamw-foreach | adamw8bit | adam-fused | adam-foreach | sgd | rmsprop
    (`optimizer_kind()` builds it from the engine's options).
    Returns bytes: gpt_peak_bytes (GPT + optimizer + activations, what bench/memory.py measures),
    peak_bytes (+ frozen weights on the device), gpu_bytes (+ assumed CUDA overhead), the parts,
    and `summary` (one line for a UI).
    """
    if optimizer in ("adamw", "adam"):
        optimizer = optimizer + "-fused"
    if optimizer not in OPT_STATE_BYTES:
        raise ValueError(f"unknown optimizer kind {optimizer!r}")
    p = gpt_params(text_vocab)
    half = precision in ("bf16", "fp16", "auto")
    pk = "half" if half else "fp32"
    T = sequence_length(clip_seconds, text_tokens)
    B = max(1, int(batch))
    weights = 4 * p
    states = OPT_STATE_BYTES[optimizer] * p
    grads = 4 * p
    td, ta = BACKWARD_TAIL[pk]
    tail = grads + (td + B * ta) * GiB  # gradients + conditioning activations, end of the backward
    if grad_checkpointing:
        d, a, b, q = CK_BLOCKS[pk]
        activations = max(grads + (d + B * (a + b * T + q * T * T)) * GiB, tail)
    else:
        a, b, q = ACT_COEF[(pk, bool(tanh_gelu))]
        once = HALF_WEIGHT_COPY_BYTES * p if half else 0
        activations = max(once + B * (a + b * T + q * T * T) * GiB, tail)
    opt_phase = grads * (1 + OPT_TEMP[optimizer])
    gpt_peak = weights + states + max(activations, opt_phase)
    frozen = frozen_on_device_bytes(frozen_off_gpu)
    peak = gpt_peak + (0 if gpt_only else frozen)
    gpu = GPU_OVERHEAD_FACTOR * peak + GPU_OVERHEAD_BYTES
    out = {
        "batch": B, "clip_seconds": clip_seconds, "sequence_length": T, "precision": precision,
        "tanh_gelu": bool(tanh_gelu), "grad_checkpointing": bool(grad_checkpointing), "optimizer": optimizer,
        "gpt_params": p, "weights_bytes": weights, "optimizer_state_bytes": states,
        "activation_bytes": int(activations), "optimizer_step_bytes": int(opt_phase),
        "frozen_bytes": 0 if gpt_only else frozen, "gpt_peak_bytes": int(gpt_peak), "peak_bytes": int(peak),
        "gpu_bytes": int(gpu), "phase": "forward/backward" if activations >= opt_phase else "optimizer step",
    }
    out["summary"] = (f"~{gpu / GiB:.1f} GiB on the GPU (tensors {peak / GiB:.1f} GiB: weights+optimizer "
                      f"{(weights + states) / GiB:.1f}, {'activations' if activations >= opt_phase else 'step'} "
                      f"{max(activations, opt_phase) / GiB:.1f}, frozen {out['frozen_bytes'] / GiB:.1f})")
    out["fits"] = lambda total_bytes, _g=gpu: _g <= total_bytes
    return out


def estimate_from_config(cfg: dict, clip_seconds: float | None = None, text_tokens: int | None = None,
                         text_vocab: int = FULL_DIMS["text_tokens"], grad_checkpointing: bool | None = None) -> dict:
    """The estimate for the engine's resolved options (`engine.train.config` names)."""
    prec = cfg.get("precision", "auto")
    gc = cfg.get("grad_checkpointing", "auto") if grad_checkpointing is None else grad_checkpointing
    return estimate(
        batch=int(cfg.get("batch_size", 4)),
        clip_seconds=float(clip_seconds if clip_seconds is not None else cfg.get("max_audio_seconds", 11.0)),
        text_tokens=text_tokens, precision="bf16" if prec == "auto" else prec,
        tanh_gelu=bool(cfg.get("tanh_gelu", True)), grad_checkpointing=gc in (True, "on"),
        optimizer=optimizer_kind(cfg.get("optimizer", "adamw"), bool(cfg.get("fused_adamw", True)),
                                 bool(cfg.get("adamw_8bit", False))),
        frozen_off_gpu=bool(cfg.get("frozen_off_gpu", True)), text_vocab=text_vocab)


def needs_checkpointing(cfg: dict, total_bytes: int, clip_seconds: float | None = None,
                        text_tokens: int | None = None, text_vocab: int = FULL_DIMS["text_tokens"]) -> bool:
    """`grad_checkpointing = auto`: on when the run would not fit `total_bytes` without it."""
    e = estimate_from_config(cfg, clip_seconds, text_tokens, text_vocab, grad_checkpointing=False)
    return e["gpu_bytes"] > total_bytes


def largest_batch(total_bytes: int, clip_seconds: float, text_tokens: int | None = None, **opts) -> int:
    """The largest batch (up to 64) whose estimate fits `total_bytes`; 0 when even batch 1 does not."""
    best = 0
    for b in range(1, 65):
        if estimate(b, clip_seconds, text_tokens, **opts)["gpu_bytes"] <= total_bytes:
            best = b
        else:
            break
    return best
