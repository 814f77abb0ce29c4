"""Memory-lean training options applied to coqui's GPTTrainer model (issue 9).

Exact changes (same function, same losses to floating-point tolerance):
- `tanh_gelu`: GPT-2's `gelu_new` (several elementwise ops, each saving a tensor for backward) is
  replaced by `nn.GELU(approximate="tanh")`, the same formula in one op: ~32% fewer saved
  activations in the GPT blocks.
- `grad_checkpointing`: the GPT blocks keep only their inputs for backward and recompute the rest
  (non-reentrant `torch.utils.checkpoint`, RNG state preserved, so dropout masks are identical).
  Costs one more forward of the blocks (~+25-30% step time); removes most activation memory.
- `fused_adamw`: AdamW with `fused=True` (one kernel, no `foreach` temporaries of the size of all
  parameters).
- frozen modules (HiFiGAN decoder, speaker encoder, DVAE decoder) are never moved to the GPU, and
  every frozen module (DVAE above all: its `Quantize` updates the codebook in training mode) stays
  in eval mode for the whole run, whatever `model.train()` coqui calls.

Inexact (measured, see bench/results/memory.txt): bf16/fp16 autocast, the 8-bit AdamW of
bitsandbytes (CUDA only, optional).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: resolve_options also serves the studio and estimate
    from torch import nn

# modules of GPTTrainer that GPT training never runs (forward) on the device
FROZEN_OFF_DEVICE = ("xtts.hifigan_decoder", "dvae.decoder")


def use_tanh_gelu(gpt_module: nn.Module) -> int:
    """Swap `gelu_new` for the single-op tanh GELU in every HF GPT-2 MLP; returns the count."""
    from torch import nn
    from transformers.activations import NewGELUActivation

    n = 0
    for m in gpt_module.modules():
        if hasattr(m, "act") and isinstance(m.act, NewGELUActivation):
            m.act = nn.GELU(approximate="tanh")
            n += 1
    cfg = getattr(getattr(gpt_module, "gpt", None), "config", None)
    if n and cfg is not None:
        cfg.activation_function = "gelu_pytorch_tanh"
    return n


def enable_grad_checkpointing(gpt_module: nn.Module) -> bool:
    """Activation checkpointing of the HF GPT-2 blocks inside coqui's GPT (xtts.gpt.gpt).

    Sets the documented per-layer switch of transformers' `GradientCheckpointingLayer` directly
    (`gradient_checkpointing_enable()` wants the input embeddings, which XTTS deletes)."""
    import functools

    from torch.utils.checkpoint import checkpoint

    hf = getattr(gpt_module, "gpt", None)
    if hf is None:
        return False
    fn = functools.partial(checkpoint, use_reentrant=False)
    n = 0
    for m in hf.modules():
        if hasattr(m, "_gradient_checkpointing_func") or type(m).__name__ == "GPT2Block":
            m.gradient_checkpointing = True
            m._gradient_checkpointing_func = fn
            n += 1
    hf.gradient_checkpointing = True
    hf.config.use_cache = False
    return n > 0


def freeze_frozen(model: nn.Module) -> None:
    """requires_grad off and eval mode for everything outside the trainable GPT."""
    gpt = model.xtts.gpt
    trainable = {id(p) for p in gpt.parameters()}
    for p in model.parameters():
        if id(p) not in trainable:
            p.requires_grad_(False)
    keep_frozen_in_eval(model)


def keep_frozen_in_eval(model: nn.Module) -> None:
    for name, child in model.named_children():
        if name == "xtts":
            for n2, c2 in child.named_children():
                if n2 != "gpt":
                    c2.eval()
        else:
            child.eval()


def place_on_device(model: nn.Module, device) -> nn.Module:
    """Move the model to `device`, leaving the modules training never uses on the CPU.

    Same per-module conversion as `nn.Module.cuda()` (parameters keep their identity on CUDA)."""
    from torch import nn

    off = set()
    for path in FROZEN_OFF_DEVICE:
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.Module):
            off.add(id(obj))
    seen = set()

    def rec(m: nn.Module) -> None:
        if id(m) in off or id(m) in seen:
            return
        seen.add(id(m))
        m._apply(lambda t: t.to(device), recurse=False)  # what nn.Module.cuda() does, one module at a time
        for c in m.children():
            rec(c)

    rec(model)
    return model


def apply(model: nn.Module, cfg: dict) -> dict:
    """Apply the exact options of `cfg` to a freshly built GPTTrainer; returns what was done."""
    gpt = model.xtts.gpt
    done = {}
    freeze_frozen(model)
    if cfg.get("tanh_gelu", True):
        done["tanh_gelu_blocks"] = use_tanh_gelu(gpt)
    if cfg.get("grad_checkpointing") in (True, "on"):
        done["grad_checkpointing"] = enable_grad_checkpointing(gpt)
    return done


def bnb_available() -> tuple[bool, str]:
    """Whether bitsandbytes' 8-bit AdamW can be used here (CUDA + the library importable)."""
    import torch

    if not torch.cuda.is_available():
        return False, "8-bit AdamW needs a CUDA GPU"
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return False, f"bitsandbytes is not installed ({type(exc).__name__}); pip install 'xtts-ft[cuda8bit]'"
    return True, ""


def make_8bit_adamw(params, lr: float, betas, eps: float, weight_decay: float):
    import bitsandbytes as bnb

    return bnb.optim.AdamW8bit(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)


def resolve_options(cfg: dict, device: str, gpu: dict, dims=None, planning: bool = False) -> dict:
    """Turn `auto` options into concrete ones for this device (mutates cfg) and estimate the run's
    memory for the model's own dimensions (`engine.train.memory.ModelDims`; default XTTS v2).
    The one resolution that the training preflight, the Params screen and `xtts-ft estimate` use.

    device: cuda | cpu; gpu: `engine.gpu.gpu_info()` (total_mb, bf16) or a planned card;
    planning: an estimate for a GPU that is not here (Params, estimate): libraries are not probed.
    Precision auto: bf16 where the GPU supports it, else fp16 on CUDA, fp32 on the CPU.
    Checkpointing auto: on when the estimate without it does not fit the GPU.
    Returns {estimate, notes [(level, line)], total_bytes, fits, largest_batch}."""
    from engine.train import memory as em

    dims = dims or em.XTTS_V2
    notes = []
    if cfg.get("precision") == "auto":
        cfg["precision"] = ("bf16" if gpu.get("bf16", True) else "fp16") if device == "cuda" else "fp32"
    if cfg.get("adamw_8bit") and not planning:
        ok, why = bnb_available() if device == "cuda" else (False, "8-bit AdamW needs a CUDA GPU")
        if not ok:
            notes.append(("warn", f"--adamw-8bit: {why}; using {'fused ' if cfg.get('fused_adamw') else ''}AdamW"))
            cfg["adamw_8bit"] = False
    total = int(gpu.get("total_mb", 0) * 2**20) if device == "cuda" else 0
    frac = float(cfg.get("vram_fraction") or 0)
    if device == "cuda" and 0 < frac < 1:
        notes.append(("info", f"VRAM cap: {frac:g} of {total / 2**30:.1f} GiB = {frac * total / 2**30:.1f} GiB for "
                              "this run (--vram-fraction)"))
        total = int(total * frac)
    gc_auto = cfg.get("grad_checkpointing") == "auto"
    if gc_auto:
        on = device == "cuda" and em.needs_checkpointing(cfg, total, dims=dims)
        cfg["grad_checkpointing"] = "on" if on else "off"
    est = em.estimate_from_config(cfg, dims=dims)
    opts = em.options_from_config(cfg)
    if gc_auto and device == "cuda":
        opts["grad_checkpointing"] = True  # auto turns it on for a batch that needs it
    largest = em.largest_batch(total, float(cfg.get("max_audio_seconds", 11.0)), dims=dims, **opts) if total else None
    fits = est["gpu_bytes"] <= total if device == "cuda" else None
    if device == "cuda":
        line = (f"Memory estimate for batch {cfg['batch_size']} x {float(cfg['max_audio_seconds']):g} s clips: "
                f"{est['summary']}; this GPU has {total / 2**30:.1f} GiB"
                + (" under the --vram-fraction cap" if 0 < frac < 1 else ""))
        if not fits:
            line += f" (largest batch that fits: {largest})" if largest else " (not even batch 1 fits: shorter clips)"
        notes.append(("info" if fits else "warn", line))
    notes.append(("info", f"Memory options: precision {cfg['precision']}, activation checkpointing "
                          f"{cfg['grad_checkpointing']}, tanh GELU {'on' if cfg.get('tanh_gelu') else 'off'}, "
                          f"{'8-bit' if cfg.get('adamw_8bit') else 'fused' if cfg.get('fused_adamw') else 'foreach'} "
                          f"optimizer, frozen modules {'on the CPU' if cfg.get('frozen_off_gpu') else 'on the device'}"))
    return {"estimate": {k: v for k, v in est.items() if k != "fits"}, "notes": notes, "total_bytes": total,
            "fits": fits, "largest_batch": largest}
