"""Building the training: the dataset's samples, coqui's GPTTrainerConfig from the run's options,
the model (with an optional base checkpoint's GPT weights) and coqui's Trainer with the engine's hooks."""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.prep.report import Reporter
from engine.train import config as tc
from engine.train.errors import UserFacingError
from engine.train.preflight import dataset_warnings


def build(engine) -> None:
    """Samples, coqui config, model (+ base checkpoint), lean options and the hooked Trainer:
    sets `engine.trainer` and what the hooks read (`sched_params`, `dashboard`, sizes)."""
    import torch

    cfg = engine.cfg
    threads = cfg["threads"] or os.cpu_count() or 1
    torch.set_num_threads(threads)
    if engine.dist.enabled:
        from engine.train import distributed as dist_mod

        dist_mod.init_process_group(engine.dist)
    frac = float(cfg.get("vram_fraction") or 0)
    if engine.device == "cuda" and 0 < frac < 1:  # a shared GPU: this process allocates at most frac of it
        torch.cuda.set_per_process_memory_fraction(frac, torch.cuda.current_device())
        engine.rep.info(f"GPU memory capped at {frac:g} of the card for this process (--vram-fraction)", tag="GPU")
    from TTS.tts.layers.xtts.trainer.gpt_trainer import GPTArgs, GPTTrainer, GPTTrainerConfig  # noqa: F401

    torch.set_num_threads(threads)  # the XTTS dataset module sets 1 on import (STACK.md)
    from trainer import Trainer, TrainerArgs

    from engine.train.coqui_hooks import EventDashboardLogger, make_model_class, make_trainer_class

    engine.rep.info("Loading training samples...", tag="MODEL")
    train_samples, eval_samples = load_samples(cfg)
    if not train_samples:
        raise UserFacingError(f"no training samples found in {cfg['dataset']}/metadata_train.csv")
    engine.n_train, engine.n_eval = len(train_samples), len(eval_samples)
    engine.rep.info(f"Loaded {engine.n_train} training and {engine.n_eval} eval samples", tag="MODEL")
    from engine.train import datacheck  # every listed clip decodes whole and is long enough

    clips = datacheck.check_clips(train_samples, eval_samples, cfg["dataset"], cfg["max_audio_seconds"])
    if clips.bad:
        engine.emit("preflight", check="audio", ok=False, bad=[{"file": f, "reason": r} for f, r in clips.bad[:50]])
        raise UserFacingError(datacheck.problem_message(clips, cfg["dataset"]))
    engine.emit("preflight", check="audio", ok=True, clips=clips.checked, train_seconds=round(clips.seconds, 2))
    dataset_warnings(engine.rep, train_samples, eval_samples, cfg)
    engine.emit("preflight", check="dataset", train_samples=engine.n_train, eval_samples=engine.n_eval)

    config = build_coqui_config(cfg, engine.model_info, run_eval=bool(eval_samples))
    engine.coqui_config = config
    from engine.train.distributed import per_rank_items

    n_rank = per_rank_items(engine.n_train, cfg)  # items per process and epoch (all of them with one)
    spe = tc.steps_per_epoch(n_rank, engine.batch_size)
    ospe = tc.optimizer_steps_per_epoch(n_rank, engine.batch_size, engine.grad_accum)
    from engine.train import schedule

    engine.sched_params = schedule.describe(cfg["scheduler"], ospe * cfg["epochs"], ospe, cfg["epochs"],
                                            cfg["lr"], cfg["warmup_steps"])
    engine.rep.info(f"Learning Scheduler {cfg['scheduler']} Parameters", tag="INFO",
                    details=[str(engine.sched_params)])
    Model = make_model_class(GPTTrainer, engine)
    model = Model(config)
    if cfg.get("base_checkpoint"):
        load_base_checkpoint(model, cfg["base_checkpoint"], engine.rep)
    from engine.train import lean

    lean.apply(model, cfg)  # frozen modules in eval, tanh GELU, activation checkpointing
    engine.dashboard = EventDashboardLogger(engine)
    args = TrainerArgs(restore_path=None, skip_train_epoch=False, start_with_eval=False,
                       grad_accum_steps=engine.grad_accum, rank=engine.dist.rank)
    TrainerCls = make_trainer_class(Trainer, engine)
    callbacks = {
        "on_train_epoch_start": engine.progress.on_train_epoch_start,
        "on_train_step_end": engine.progress.on_train_step_end,
        "on_train_epoch_end": engine.progress.on_train_epoch_end,
        "on_epoch_end": engine.progress.on_epoch_end,
    }
    engine.trainer = TrainerCls(
        args, config, output_path=str(engine.run / "coqui"), model=model, train_samples=train_samples,
        eval_samples=eval_samples or None, parse_command_line_args=False, callbacks=callbacks,
        dashboard_logger=engine.dashboard, gpu=0 if engine.device == "cuda" else None,
    )
    torch.set_num_threads(threads)
    if engine.dist.enabled:
        from engine.train import distributed as dist_mod

        dist_mod.wrap_gpt(model, engine.dist)
        engine._step_sync = dist_mod.StepSync(engine.dist)
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.xtts.gpt.parameters())
    engine.rep.info(f"Model has {n_params} parameters ({n_train} trainable GPT parameters)", tag="MODEL")
    engine.steps_per_epoch_full = spe


def load_samples(cfg: dict) -> tuple[list, list]:
    from TTS.config.shared_configs import BaseDatasetConfig
    from TTS.tts.configs.shared_configs import BaseTTSConfig
    from TTS.tts.datasets import load_tts_samples

    d = Path(cfg["dataset"])
    has_eval = (d / "metadata_eval.csv").is_file() and _csv_rows(d / "metadata_eval.csv") > 0
    dcfg = BaseDatasetConfig(formatter="coqui", dataset_name="xtts-ft", path=str(d),
                             meta_file_train="metadata_train.csv",
                             meta_file_val="metadata_eval.csv" if has_eval else "",
                             language=cfg["language"])
    train, ev = load_tts_samples(BaseTTSConfig(datasets=[dcfg]), eval_split=has_eval)
    return list(train), list(ev or [])


def _csv_rows(p: Path) -> int:
    with open(p, encoding="utf-8") as fh:
        return max(0, sum(1 for line in fh if line.strip()) - 1)



def build_coqui_config(cfg: dict, info, run_eval: bool):
    from dataclasses import fields

    from TTS.tts.configs.xtts_config import XttsAudioConfig
    from TTS.tts.layers.xtts.trainer.gpt_trainer import GPTArgs, GPTTrainerConfig

    mdir = Path(cfg["model"])
    base = json.loads((mdir / "config.json").read_text(encoding="utf-8"))
    from engine.model.languages import install_for_model

    install_for_model(mdir)      # language codes added by `xtts-ft vocab extend` (no-op otherwise)
    names = {f.name for f in fields(GPTArgs)}
    margs = {k: v for k, v in base.get("model_args", {}).items() if k in names}
    margs.update(
        xtts_checkpoint=str(mdir / "model.pth"),
        dvae_checkpoint=str(mdir / "dvae.pth"),
        mel_norm_file=str(mdir / "mel_stats.pth"),
        tokenizer_file=str(mdir / "vocab.json"),
        max_wav_length=tc.max_wav_samples(cfg),
        max_text_length=int(cfg["max_text_length"]),
        max_conditioning_length=132300,
        min_conditioning_length=66150,
        gpt_checkpoint="",
        debug_loading_failures=False,
    )
    margs.setdefault("gpt_use_masking_gt_prompt_approach", True)
    margs.setdefault("gpt_use_perceiver_resampler", True)
    margs.setdefault("gpt_num_audio_tokens", 1026)
    margs.setdefault("gpt_start_audio_token", 1024)
    margs.setdefault("gpt_stop_audio_token", 1025)
    # the guide's "Custom Loss Functions": coqui's weights of the two cross-entropies (older runs: defaults)
    margs["gpt_loss_text_ce_weight"] = float(cfg.get("text_ce_weight", 0.01))
    margs["gpt_loss_mel_ce_weight"] = float(cfg.get("mel_ce_weight", 1.0))
    opt_name, opt_params = tc.optimizer_spec(cfg)
    mixed = cfg["precision"] != "fp32"
    return GPTTrainerConfig(
        epochs=int(cfg["epochs"]),
        output_path=str(Path(cfg["run"]) / "coqui"),
        run_name="trainer",
        project_name="xtts-ft",
        run_description="xtts-ft training run",
        dashboard_logger="tensorboard",
        model_args=GPTArgs(**margs),
        audio=XttsAudioConfig(sample_rate=22050, dvae_sample_rate=22050, output_sample_rate=24000),
        batch_size=int(cfg["batch_size"]),
        batch_group_size=0,
        eval_batch_size=int(cfg["batch_size"]),
        num_loader_workers=int(cfg["workers"]),
        num_eval_loader_workers=min(int(cfg["workers"]), 2),
        eval_split_max_size=256,
        print_step=int(cfg["print_step"]),
        plot_step=1,
        log_model_step=10**9,
        save_step=10**9,
        save_n_checkpoints=int(cfg["keep_checkpoints"]),
        save_checkpoints=False,
        save_best_after=0,
        print_eval=False,
        optimizer=opt_name,
        optimizer_wd_only_on_weights=opt_name == "AdamW",
        optimizer_params=opt_params,
        lr=float(cfg["lr"]),
        lr_scheduler=None,
        scheduler_after_epoch=False,
        mixed_precision=mixed,
        precision=cfg["precision"] if mixed else "fp16",
        grad_clip=float(cfg["grad_clip"]),
        training_seed=int(cfg["seed"]),
        run_eval=run_eval,
        run_eval_steps=int(cfg["eval_every_steps"]) or None,
        test_delay_epochs=10**9,
        test_sentences=[],
        languages=base.get("languages") or [cfg["language"]],
    )


def load_base_checkpoint(model, path: str, rep: Reporter) -> None:
    """GPT weights from an earlier run (best_model.pth / checkpoint) or an exported model.pth."""
    import torch

    data = torch.load(path, map_location="cpu", weights_only=False)
    state = data.get("model", data) if isinstance(data, dict) else data
    gpt = {}
    for k, v in state.items():
        for prefix in ("xtts.gpt.", "gpt."):
            if k.startswith(prefix):
                gpt[k[len(prefix):]] = v
                break
    gpt = {k: v for k, v in gpt.items() if not k.startswith(("gpt_inference.", "gpt.wte."))}
    if not gpt:
        raise UserFacingError(f"--base-checkpoint {path}: no GPT weights inside")
    missing, unexpected = model.xtts.gpt.load_state_dict(gpt, strict=False)
    missing = [k for k in missing if not k.startswith(("gpt_inference.", "gpt.wte."))]
    if missing or unexpected:
        raise UserFacingError(f"--base-checkpoint {path} does not fit this model "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    rep.info(f"GPT weights restored from base checkpoint: {path}", tag="MODEL")

