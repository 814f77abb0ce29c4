"""Checks before a run loads anything: model files, GPU, precision, memory, RAM, disk (preflight
events), and the training set's size once its samples are read."""

from __future__ import annotations

import os

from engine.prep.report import Reporter
from engine.train import config as tc
from engine.train.errors import UserFacingError


def preflight(engine) -> None:
    """Model files, GPU, precision, memory, RAM and disk, checked and reported before anything loads.
    Sets `engine.model_info` and `engine.device`."""
    from engine.gpu import disk_free_mb, gpu_info, ram_sample
    from engine.model.files import ModelFilesError, check_model, human_size

    cfg, rep = engine.cfg, engine.rep
    try:
        info = check_model(cfg["model"], deep=True)
    except ModelFilesError as exc:
        raise UserFacingError(str(exc)) from None
    engine.model_info = info
    rep.info(f"✓ All required files found for model: {info.name}", tag="MODEL")
    engine.emit("preflight", check="model", ok=True, model=info.as_dict())
    sched = cfg["scheduler"]
    rep.info("Training Configuration:", tag="MODEL", details=[
        f"- Language: {cfg['language']}",
        f"- Epochs: {cfg['epochs']}",
        f"- Batch Size: {cfg['batch_size']}",
        f"- Gradient Accumulation: {cfg['grad_accum']}",
        f"- Effective Batch Size: {dist_batch_text(cfg)}",
        f"- Learning Rate: {cfg['lr']:g}",
        f"- Learning Rate Scheduler: {sched}",
        f"- Optimizer: {tc.OPTIMIZERS[cfg['optimizer']]}",
        f"- Precision: {cfg['precision']}",
        f"- Loss weights: text_ce {cfg.get('text_ce_weight', 0.01):g}, mel_ce {cfg.get('mel_ce_weight', 1.0):g}",
    ])
    # GPU
    want = cfg["device"]
    g = gpu_info() if want != "cpu" else {"available": False, "reason": "--device cpu"}
    if g["available"]:
        engine.device = "cuda"
        rep.info("GPU Information:", tag="GPU", details=[
            f"- Device: {g['name']}", f"- CUDA Version: {g['cuda_version']}",
            f"- Total VRAM: {g['total_mb'] / 1024:.2f}GB", f"- Free VRAM: {g['free_mb'] / 1024:.2f}GB",
        ])
        if g["total_mb"] < 12 * 1024 - 64:
            rep.warn("Your available VRAM is below the recommended 12GB threshold.", tag="GPU",
                     total_mb=g["total_mb"])
        if cfg["precision"] == "bf16" and not g.get("bf16"):
            rep.warn("This GPU has no bf16 support: using fp16 mixed precision instead.", tag="GPU")
            cfg["precision"] = "fp16"
    else:
        if want == "cuda":
            raise UserFacingError(f"--device cuda: no CUDA GPU available ({g.get('reason')})")
        engine.device = "cpu"
        rep.info(f"No CUDA GPU available ({g.get('reason')}): training runs on the CPU "
                 f"({os.cpu_count()} cores). This is slow for a real model.", tag="GPU")
        if cfg["precision"] not in ("fp32", "auto"):
            rep.warn(f"--precision {cfg['precision']} needs a CUDA GPU: using fp32 on the CPU.", tag="GPU")
            cfg["precision"] = "fp32"
    engine.emit("preflight", check="gpu", ok=True, gpu=g, device=engine.device)
    from engine.train import lean  # issue 9: auto precision / checkpointing, memory estimate
    from engine.train import memory as em

    try:
        dims = em.dims_from_folder(cfg["model"])  # the model's own size: memory, RAM and disk below
    except em.ModelDimsError as exc:
        raise UserFacingError(str(exc)) from None
    mem = lean.resolve_options(cfg, engine.device, g, dims=dims)
    for level, line in mem["notes"]:
        (rep.warn if level == "warn" else rep.info)(line, tag="GPU")
    engine.emit("preflight", check="memory", **mem["estimate"])
    if engine.dist.enabled:
        from engine.train import distributed as dist_mod

        rep.info(f"DistributedDataParallel: {engine.dist.world} processes, backend {engine.dist.backend}"
                 + (f", GPUs {cfg['gpus']} (rank 0 on GPU {engine.dist.gpu})" if cfg.get("gpus") else ", CPU")
                 + f"; effective batch {dist_batch_text(cfg)}", tag="GPU")
        engine.emit("preflight", check="distributed", world_size=engine.dist.world, backend=engine.dist.backend,
                    nproc_per_node=cfg.get("nproc_per_node"), nnodes=cfg.get("nnodes", 1),
                    gpus=[int(x) for x in str(cfg.get("gpus") or "").split(",") if x],
                    effective_batch=dist_mod.effective_batch(cfg))
    for line in lr_advice(cfg):
        rep.warn(line, tag="TRAIN")
    ram = ram_sample()
    rep.info(f"System RAM: {ram['total_mb'] / 1024:.1f} GB total, {ram['available_mb'] / 1024:.1f} GB available",
             tag="INFO")
    ram_need = em.load_ram_bytes(dims)
    if ram["available_mb"] * 2**20 < ram_need:
        rep.warn(f"Only {ram['available_mb'] / 1024:.1f} GB of RAM available: loading this model needs about "
                 f"{ram_need / 2**30:.1f} GB.", tag="WARNING")
    # disk: each resumable checkpoint holds the GPT weights + the optimizer states of this model
    per_ckpt, need = em.disk_need_bytes(cfg, dims)
    free = disk_free_mb(engine.run) * 1024 * 1024
    rep.info(f"Disk: {human_size(free)} free in {engine.run}; checkpoints need about {human_size(need)} "
             f"({cfg['keep_checkpoints']} kept x {human_size(per_ckpt)} + best model)", tag="INFO")
    if free < need * 1.1:
        rep.warn(f"Free disk space ({human_size(free)}) is below the ~{human_size(need)} the checkpoints need.",
                 tag="WARNING", free_bytes=free, need_bytes=need)
    engine.emit("preflight", check="resources", ram=ram, disk_free_bytes=free, disk_need_bytes=need)


def dist_batch_text(cfg: dict) -> str:
    from engine.train.distributed import batch_breakdown

    return batch_breakdown(cfg)


def lr_advice(cfg: dict) -> list[str]:
    from engine.train.distributed import lr_advice

    return lr_advice(cfg)


def dataset_warnings(rep: Reporter, train: list, ev: list, cfg: dict) -> None:
    import soundfile as sf

    total = 0.0
    long_clips = 0
    for s in train:
        try:
            dur = sf.info(s["audio_file"]).duration
        except Exception:  # noqa: BLE001
            continue
        total += dur
        if dur > cfg["max_audio_seconds"]:
            long_clips += 1
    rep.info(f"Training audio: {total / 60:.1f} minutes in {len(train)} clips", tag="DATA")
    if len(train) < 50 or total < 120:
        rep.warn("Very small training dataset", tag="DATA", details=[
            f"{len(train)} clips, {total / 60:.1f} minutes; the guide recommends several minutes of clean speech "
            "(more clips give a more robust voice)."], train_samples=len(train), train_minutes=round(total / 60, 2))
    if not ev:
        rep.warn("No evaluation samples (metadata_eval.csv empty or missing): the best model is chosen by "
                 "training loss and overtraining cannot be detected.", tag="DATA")
    elif len(ev) < 2:
        rep.warn(f"Only {len(ev)} evaluation sample: eval losses will be noisy.", tag="DATA")
    if long_clips:
        rep.warn(f"{long_clips} clips are longer than {cfg['max_audio_seconds']} s and will be skipped.", tag="DATA")
    if len(train) < cfg["batch_size"]:
        rep.warn(f"Fewer training clips ({len(train)}) than the batch size ({cfg['batch_size']}).", tag="DATA")

