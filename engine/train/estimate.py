"""`xtts-ft estimate`: the Params screen's memory estimate as a command (headless parity).

    xtts-ft estimate [--model M] [--batch-size N] [--max-audio-seconds S] [--gpu-gb G] [--precision P] [--json]

The figures come from `engine.train.lean.resolve_options` (the training preflight and the Params
screen call the same function) for the model it is given: its own dimensions and vocabulary
(config.json + vocab.json); without --model it assumes XTTS v2 and says so. The GPU is the one
found here, or `--gpu-gb` (then assumed bf16-capable), or the guide's 12 GB when there is none.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.cli import UserError
from engine.train import config as tc

MEMORY_OPTIONS = ("batch_size", "max_audio_seconds", "precision", "grad_checkpointing", "tanh_gelu", "fused_adamw",
                  "adamw_8bit", "frozen_off_gpu", "optimizer", "keep_checkpoints", "vram_fraction")
NO_GPU_GB = 12  # the guide's minimum


def register(sub) -> None:
    from engine.train.cli import add_option

    p = sub.add_parser(
        "estimate", help="GPU memory and disk a training run needs, and the largest batch that fits",
        description="The memory estimate of the Params screen as a command: for the model given (its own "
        "dimensions and vocabulary; XTTS v2 without --model), the training options and a GPU size, the peak "
        "GPU memory, whether it fits, the largest batch that fits, and the disk the checkpoints need.")
    p.add_argument("--model", help="model folder (config.json + vocab.json are read); default: XTTS v2's size")
    p.add_argument("--gpu-gb", type=float, default=None,
                   help="GPU memory to plan for, in GiB (default: the GPU found here, else 12)")
    for name in MEMORY_OPTIONS:
        add_option(p, tc.OPTIONS_BY_NAME[name])
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_estimate)


def run_estimate(model: str | None = None, gpu_gb: float | None = None, options: dict | None = None,
                 gpu: dict | None = None) -> dict:
    """The estimate as a dict (what `--json` prints). gpu: a `gpu_info()` answer (queried when None
    and no gpu_gb is given)."""
    from engine.train import lean
    from engine.train import memory as em

    cfg = {o.name: o.default for o in tc.OPTIONS}
    for k, v in (options or {}).items():
        if v is not None:
            try:
                cfg[k] = tc.validate_value(tc.OPTIONS_BY_NAME[k], v)
            except tc.ConfigError as exc:
                raise UserError(str(exc)) from None
    if cfg["adamw_8bit"] and cfg["optimizer"] != "adamw":
        raise UserError("--adamw-8bit needs --optimizer adamw")
    if model:
        try:
            dims = em.dims_from_folder(model)
        except em.ModelDimsError as exc:
            raise UserError(f"--model {exc}") from None
        model_name, assumed = Path(model).expanduser().resolve().name, False
    else:
        dims, model_name, assumed = em.XTTS_V2, "XTTS v2 (assumed: no --model given)", True
    if gpu_gb is not None:
        if not 0 < gpu_gb <= 4096:
            raise UserError(f"--gpu-gb: {gpu_gb:g} is not a GPU size in GiB")
        card = {"available": True, "bf16": True, "total_mb": gpu_gb * 1024, "name": f"a {gpu_gb:g} GiB GPU"}
        where = "given (--gpu-gb)"
    else:
        if gpu is None:
            from engine.gpu import gpu_info

            gpu = gpu_info()
        if gpu.get("available"):
            card, where = dict(gpu), "found here"
            card.setdefault("bf16", True)
        else:
            card = {"available": True, "bf16": True, "total_mb": NO_GPU_GB * 1024, "name": f"a {NO_GPU_GB} GiB GPU"}
            where = f"no GPU here ({gpu.get('reason', 'none found')}): the guide's {NO_GPU_GB} GB assumed"
    requested = dict(cfg)
    out = lean.resolve_options(cfg, "cuda", card, dims=dims, planning=True)
    per_ckpt, disk = em.disk_need_bytes(cfg, dims)
    return {
        "model": model_name, "model_folder": str(Path(model).expanduser().resolve()) if model else None,
        "model_assumed": assumed, "dims": out["estimate"]["dims"], "gpt_params": out["estimate"]["gpt_params"],
        "gpu": {"name": card.get("name"), "total_bytes": out["total_bytes"], "where": where},
        "options": {k: cfg[k] for k in MEMORY_OPTIONS},
        "auto": {k: requested[k] for k in ("precision", "grad_checkpointing") if requested[k] == "auto"},
        "estimate": out["estimate"], "fits": out["fits"], "largest_batch": out["largest_batch"],
        "notes": [line for _, line in out["notes"]],
        "disk": {"per_checkpoint_bytes": per_ckpt, "total_bytes": disk},
        "ram_to_load_bytes": em.load_ram_bytes(dims),
    }


def cmd_estimate(args) -> int:
    from engine.model.files import human_size
    from engine.train import memory as em

    opts = {k: getattr(args, k, None) for k in MEMORY_OPTIONS}
    r = run_estimate(args.model, args.gpu_gb, opts)
    if args.json:
        print(json.dumps(r, default=str))
        return 0
    e, gib = r["estimate"], em.GiB
    dims = em.ModelDims(**r["dims"])
    print(f"Model: {r['model']}: {em.describe_dims(dims)}")
    print(f"GPU:   {r['gpu']['name']}, {r['gpu']['total_bytes'] / gib:.1f} GiB ({r['gpu']['where']})")
    o = r["options"]
    auto = f" (auto: {', '.join(k.replace('_', ' ') for k in r['auto'])})" if r["auto"] else ""
    print(f"Run:   batch {o['batch_size']} x clips up to {float(o['max_audio_seconds']):g} s, precision "
          f"{o['precision']}, activation checkpointing {o['grad_checkpointing']}, optimizer {e['optimizer']}{auto}")
    verdict = "fits" if r["fits"] else "does NOT fit"
    print(f"Peak:  {e['summary']}: {verdict}")
    lb = r["largest_batch"]
    print(f"Largest batch that fits: {lb}{' or more' if lb == 64 else ''}" if lb else "Largest batch that fits: none (use shorter clips, "
          "--grad-checkpointing on, or a bigger GPU)")
    print(f"Disk:  {human_size(r['disk']['total_bytes'])} for the checkpoints "
          f"({o['keep_checkpoints']} kept + 1 being written, {human_size(r['disk']['per_checkpoint_bytes'])} "
          "each, + the best model)")
    print(f"RAM:   about {human_size(r['ram_to_load_bytes'])} to load the model")
    print("(GPU overhead is assumed: 1.1 x tensors + 0.8 GiB; see docs/training.md)")
    return 0
