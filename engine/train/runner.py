"""The training process itself (`python -m engine.train.worker RUN [--resume]`).

It runs coqui's GPTTrainer under coqui's Trainer and turns the Trainer's callbacks and
dashboard-logger calls into events in RUN/events.jsonl (schema: docs/events.md). The Trainer
subclass only wraps hooks: checkpoints and the best model are written by this module
(atomically, without frozen weights), resume is done here (coqui's --continue_path is
unreliable), SIGINT/SIGTERM stop after the current optimizer step.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from itertools import islice
from pathlib import Path

from engine import ioerrors
from engine.events import EventWriter
from engine.prep.report import Reporter
from engine.train import checkpoints as ck
from engine.train import config as tc
from engine.train.monitor import Monitor

OOM_ADVICE = [
    "Reduce the batch size (--batch-size).",
    "Increase gradient accumulation (--grad-accum) to keep the effective batch size.",
    "Lower the number of data-loader workers (--workers, 2-4).",
    "Limit the maximum audio length (--max-audio-seconds).",
]


class StopTraining(Exception):
    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind  # "user" | "early_stop"
        self.reason = reason


class PartialLoader:
    """The first `remaining` batches of a loader: the rest of an epoch after a resume or back-off.

    XTTSDataset draws a random clip for every item, so an epoch is "N random draws"; finishing an
    interrupted epoch means drawing the batches it still had to do.
    """

    def __init__(self, loader, remaining: int):
        self.loader = loader
        self.remaining = max(1, remaining)

    def __len__(self) -> int:
        return self.remaining

    def __iter__(self):
        return islice(iter(self.loader), self.remaining)


def is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _finite(x):
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


class Engine:
    def __init__(self, run: Path, resume: bool = False):
        self.run = Path(run)
        self.cfg = json.loads((self.run / "run_config.json").read_text(encoding="utf-8"))
        self.resume = resume
        from engine.train import distributed as dist_mod

        self.dist = dist_mod.context(self.cfg)  # rank / world size from torchrun (one process: rank 0 of 1)
        self.dist_gpus: list | None = None  # latest per-rank GPU samples (distributed runs)
        self._gather_state: dict = {}
        # only global rank 0 writes events.jsonl (and checkpoints, best model, samples)
        if self.dist.is_main:  # events.jsonl (the studio's source), mirrored into R/tensorboard/
            from engine.train.tensorboard import TensorBoardEvents

            self.events = TensorBoardEvents(EventWriter(self.run / "events.jsonl"), self.run)
        else:
            self.events = dist_mod.NullEvents()
        from rich.console import Console

        console = Console(file=sys.stdout, no_color=True, force_terminal=False, width=160, soft_wrap=True)
        self.rep = Reporter(console=console, events=self.events, show_progress=False)
        self.stop_requested = False
        self.signals = 0
        self.pending_stop: StopTraining | None = None
        self.monitor = Monitor(window=self.cfg["alert_window"], patience=self.cfg["early_stop_patience"])
        self.epoch_step = 0  # steps done in the current epoch (including a resumed offset)
        self.epoch_offset = 0
        self.steps_in_epoch = 0
        self.opt_steps = 0
        self.last_saved_step = -1
        self.train_losses_since_eval: list[float] = []
        self.epoch_train_losses: list[float] = []
        self.best_path = self.run / "best_model.pth"
        self.trainer = None
        self._faults = [f for f in os.environ.get("XTTS_FT_FAULT", "").split(",") if f]
        self._fault_fired = False
        self._sampler_stop = threading.Event()
        self.batch_size = int(self.cfg["batch_size"])
        self.grad_accum = int(self.cfg["grad_accum"])
        self.device = "cpu"
        self._last_cpu: float | None = None

    # ---------------------------------------------------------------- events
    def state(self, state: str, **kw) -> None:
        self.events.emit("state", state=state, **kw)

    def emit(self, type_: str, **kw) -> None:
        self.events.emit(type_, **kw)

    # ---------------------------------------------------------------- signals
    def install_signals(self) -> None:
        def handler(signum, frame):
            self.signals += 1
            name = signal.Signals(signum).name
            if self.signals == 1 and not self.dist.is_main:  # rank 0 speaks for the run
                self.stop_requested = True
            elif self.signals == 1:
                self.stop_requested = True
                self.state("stopping", signal=name,
                           msg="finishing the current step, then writing a checkpoint; signal again to stop at once")
                self.rep.info(f"{name}: stopping after the current step (send it again to stop at once)",
                              tag="TRAIN")
            else:
                self.state("stopped", reason=f"forced by a second {name}: no checkpoint written", forced=True)
                self.events.close()
                os._exit(130)

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    # ---------------------------------------------------------------- resources
    def _sampler(self) -> None:
        from engine.gpu import gpu_sample, ram_sample

        period = float(self.cfg["gpu_sample_seconds"])
        while not self._sampler_stop.is_set():
            try:
                gpu = gpu_sample() if self.device == "cuda" else {"available": False, "reason": "no GPU"
                                                                  if self.device == "cpu" else "not used"}
                if self.dist.enabled:  # one entry per rank (per GPU), gathered at step ends
                    if gpu.get("available"):
                        gpu["index"] = self.dist.gpu
                    self.emit("resources", gpu=gpu, ram=ram_sample(), gpus=self.dist_gpus,
                              world_size=self.dist.world)
                else:
                    self.emit("resources", gpu=gpu, ram=ram_sample())
            except Exception as exc:  # never let monitoring kill the run
                self.emit("resources", gpu={"available": False, "reason": f"sample failed: {exc}"}, ram=None)
            self._sampler_stop.wait(period)

    # ---------------------------------------------------------------- main
    def main(self) -> int:
        if self.dist.is_main:
            (self.run / "worker.json").write_text(json.dumps({"pid": os.getpid(), "started": time.time(),
                                                              "rank": self.dist.rank}))
        self.install_signals()
        self.state("preparing", resume=self.resume, pid=os.getpid())
        code = 1
        sampler = None
        try:
            self.preflight()
            if self.dist.is_main:
                sampler = threading.Thread(target=self._sampler, name="resources", daemon=True)
                sampler.start()
            self.build()
            if self.resume:
                self.restore()
            self.state("training", epochs=self.cfg["epochs"], global_step=self.trainer.total_steps_done)
            self.fit_loop()
            self.save_checkpoint("final")
            self.after_training()
            self.state("finished", reason="completed all epochs", global_step=self.trainer.total_steps_done,
                       best_loss=_finite(self.monitor.best), best_model=self._best_or_none())
            code = 0
        except StopTraining as stop:
            if stop.kind == "early_stop":
                self.after_training()
                self.state("finished", reason=stop.reason, early_stopped=True,
                           global_step=self.trainer.total_steps_done, best_loss=_finite(self.monitor.best),
                           best_model=self._best_or_none())
                code = 0
            else:
                self.state("stopped", reason=stop.reason, global_step=self.trainer.total_steps_done)
                code = 130
        except _OOMFailure as exc:
            self.state("failed", reason=str(exc), oom=True)
            code = 1
        except UserFacingError as exc:
            self.rep.error(str(exc))
            self.state("failed", reason=str(exc))
            code = 1
        except BaseException as exc:  # noqa: BLE001 - the run must always end with a state
            known = ioerrors.as_os_error(exc, self.run) if isinstance(exc, Exception) else None
            with contextlib.suppress(OSError):      # the log may sit on the disk that is full
                traceback.print_exc()
            if known is not None and not self.dist.enabled:
                # disk full / permission denied writing a checkpoint, the best model, a log: say so
                reason = self._io_failure(known)
                self.rep.error(reason)
                self.state("failed", reason=reason, io_error=errno.errorcode.get(known.errno, str(known.errno)),
                           path=known.filename, global_step=self.trainer.total_steps_done if self.trainer else 0)
                code = 1
                return code
            self.rep.error(f"training failed: {type(exc).__name__}: {exc}")
            if self.dist.enabled:
                code = self._rank_failed(exc)
            else:
                self.state("failed", reason=f"{type(exc).__name__}: {exc}")
                code = 1
        finally:
            self._sampler_stop.set()
            if self.dist.enabled:
                from engine.train import distributed as dist_mod

                if code == 130:
                    code = 0  # a clean stop: exit 0 so torchrun does not tear down ranks still saving
                dist_mod.shutdown()
            sys.stdout.flush()
            self.events.close()
        return code

    def _io_failure(self, exc: OSError) -> str:
        """One line for a write that failed: what, where, and what was kept."""
        reason = ioerrors.describe(exc)
        kept = ck.list_checkpoints(self.run)
        if kept:
            reason += (f"; the checkpoints written before it are kept (newest: step {kept[-1][0]}): "
                       f"make room, then `xtts-ft resume {self.run}`")
        else:
            reason += f"; no checkpoint was written yet: make room, then `xtts-ft resume {self.run} --restart`"
        return reason

    def _rank_failed(self, exc: BaseException) -> int:
        """A failure in a distributed run: record the reason in torchrun's error file; rank 0 writes
        `failed` itself unless it only lost contact with another rank (then the launcher writes the
        failing rank's reason)."""
        from engine.train import distributed as dist_mod

        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:400]
        if dist_mod.is_comm_error(exc):
            dist_mod.record_error(f"{dist_mod.COMM_ERROR_PREFIX}: {reason}")
        else:
            dist_mod.record_error(reason)
            if self.dist.is_main:
                self.state("failed", reason=f"rank 0: {reason}", rank=0)
        return 1

    def _best_or_none(self):
        return str(self.best_path) if self.best_path.exists() else None

    # ---------------------------------------------------------------- pre-flight
    def preflight(self) -> None:
        from engine.gpu import disk_free_mb, gpu_info, ram_sample
        from engine.model.files import ModelFilesError, check_model, human_size

        cfg, rep = self.cfg, self.rep
        try:
            info = check_model(cfg["model"], deep=True)
        except ModelFilesError as exc:
            raise UserFacingError(str(exc)) from None
        self.model_info = info
        rep.info(f"✓ All required files found for model: {info.name}", tag="MODEL")
        self.emit("preflight", check="model", ok=True, model=info.as_dict())
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
            self.device = "cuda"
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
            self.device = "cpu"
            rep.info(f"No CUDA GPU available ({g.get('reason')}): training runs on the CPU "
                     f"({os.cpu_count()} cores). This is slow for a real model.", tag="GPU")
            if cfg["precision"] not in ("fp32", "auto"):
                rep.warn(f"--precision {cfg['precision']} needs a CUDA GPU: using fp32 on the CPU.", tag="GPU")
                cfg["precision"] = "fp32"
        self.emit("preflight", check="gpu", ok=True, gpu=g, device=self.device)
        from engine.train import lean  # issue 9: auto precision / checkpointing, memory estimate

        from engine.train import memory as em

        try:
            dims = em.dims_from_folder(cfg["model"])  # the model's own size: memory, RAM and disk below
        except em.ModelDimsError as exc:
            raise UserFacingError(str(exc)) from None
        mem = lean.resolve_options(cfg, self.device, g, dims=dims)
        for level, line in mem["notes"]:
            (rep.warn if level == "warn" else rep.info)(line, tag="GPU")
        self.emit("preflight", check="memory", **mem["estimate"])
        if self.dist.enabled:
            from engine.train import distributed as dist_mod

            rep.info(f"DistributedDataParallel: {self.dist.world} processes, backend {self.dist.backend}"
                     + (f", GPUs {cfg['gpus']} (rank 0 on GPU {self.dist.gpu})" if cfg.get("gpus") else ", CPU")
                     + f"; effective batch {dist_batch_text(cfg)}", tag="GPU")
            self.emit("preflight", check="distributed", world_size=self.dist.world, backend=self.dist.backend,
                      nproc_per_node=cfg.get("nproc_per_node"), nnodes=cfg.get("nnodes", 1),
                      gpus=[int(x) for x in str(cfg.get("gpus") or "").split(",") if x],
                      effective_batch=dist_mod.effective_batch(cfg))
        for line in _lr_advice(cfg):
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
        free = disk_free_mb(self.run) * 1024 * 1024
        rep.info(f"Disk: {human_size(free)} free in {self.run}; checkpoints need about {human_size(need)} "
                 f"({cfg['keep_checkpoints']} kept x {human_size(per_ckpt)} + best model)", tag="INFO")
        if free < need * 1.1:
            rep.warn(f"Free disk space ({human_size(free)}) is below the ~{human_size(need)} the checkpoints need.",
                     tag="WARNING", free_bytes=free, need_bytes=need)
        self.emit("preflight", check="resources", ram=ram, disk_free_bytes=free, disk_need_bytes=need)

    # ---------------------------------------------------------------- building
    def build(self) -> None:
        import torch

        cfg = self.cfg
        threads = cfg["threads"] or os.cpu_count() or 1
        torch.set_num_threads(threads)
        if self.dist.enabled:
            from engine.train import distributed as dist_mod

            dist_mod.init_process_group(self.dist)
        frac = float(cfg.get("vram_fraction") or 0)
        if self.device == "cuda" and 0 < frac < 1:  # a shared GPU: this process allocates at most frac of it
            torch.cuda.set_per_process_memory_fraction(frac, torch.cuda.current_device())
            self.rep.info(f"GPU memory capped at {frac:g} of the card for this process (--vram-fraction)", tag="GPU")
        from TTS.tts.layers.xtts.trainer.gpt_trainer import GPTArgs, GPTTrainer, GPTTrainerConfig  # noqa: F401

        torch.set_num_threads(threads)  # the XTTS dataset module sets 1 on import (STACK.md)
        from trainer import Trainer, TrainerArgs

        from engine.train.coqui_hooks import EventDashboardLogger, make_model_class, make_trainer_class

        self.rep.info("Loading training samples...", tag="MODEL")
        train_samples, eval_samples = load_samples(cfg)
        if not train_samples:
            raise UserFacingError(f"no training samples found in {cfg['dataset']}/metadata_train.csv")
        self.n_train, self.n_eval = len(train_samples), len(eval_samples)
        self.rep.info(f"Loaded {self.n_train} training and {self.n_eval} eval samples", tag="MODEL")
        from engine.train import datacheck  # every listed clip decodes whole and is long enough

        clips = datacheck.check_clips(train_samples, eval_samples, cfg["dataset"], cfg["max_audio_seconds"])
        if clips.bad:
            self.emit("preflight", check="audio", ok=False, bad=[{"file": f, "reason": r} for f, r in clips.bad[:50]])
            raise UserFacingError(datacheck.problem_message(clips, cfg["dataset"]))
        self.emit("preflight", check="audio", ok=True, clips=clips.checked, train_seconds=round(clips.seconds, 2))
        dataset_warnings(self.rep, train_samples, eval_samples, cfg)
        self.emit("preflight", check="dataset", train_samples=self.n_train, eval_samples=self.n_eval)

        config = build_coqui_config(cfg, self.model_info, run_eval=bool(eval_samples))
        self.coqui_config = config
        from engine.train.distributed import per_rank_items

        n_rank = per_rank_items(self.n_train, cfg)  # items per process and epoch (all of them with one)
        spe = tc.steps_per_epoch(n_rank, self.batch_size)
        ospe = tc.optimizer_steps_per_epoch(n_rank, self.batch_size, self.grad_accum)
        from engine.train import schedule

        self.sched_params = schedule.describe(cfg["scheduler"], ospe * cfg["epochs"], ospe, cfg["epochs"],
                                              cfg["lr"], cfg["warmup_steps"])
        self.rep.info(f"Learning Scheduler {cfg['scheduler']} Parameters", tag="INFO",
                      details=[str(self.sched_params)])
        Model = make_model_class(GPTTrainer, self)
        model = Model(config)
        if cfg.get("base_checkpoint"):
            load_base_checkpoint(model, cfg["base_checkpoint"], self.rep)
        from engine.train import lean

        lean.apply(model, cfg)  # frozen modules in eval, tanh GELU, activation checkpointing
        self.dashboard = EventDashboardLogger(self)
        args = TrainerArgs(restore_path=None, skip_train_epoch=False, start_with_eval=False,
                           grad_accum_steps=self.grad_accum, rank=self.dist.rank)
        TrainerCls = make_trainer_class(Trainer, self)
        callbacks = {
            "on_train_epoch_start": self.on_train_epoch_start,
            "on_train_step_end": self.on_train_step_end,
            "on_train_epoch_end": self.on_train_epoch_end,
            "on_epoch_end": self.on_epoch_end,
        }
        self.trainer = TrainerCls(
            args, config, output_path=str(self.run / "coqui"), model=model, train_samples=train_samples,
            eval_samples=eval_samples or None, parse_command_line_args=False, callbacks=callbacks,
            dashboard_logger=self.dashboard, gpu=0 if self.device == "cuda" else None,
        )
        torch.set_num_threads(threads)
        if self.dist.enabled:
            from engine.train import distributed as dist_mod

            dist_mod.wrap_gpt(model, self.dist)
            self._step_sync = dist_mod.StepSync(self.dist)
        n_params = sum(p.numel() for p in model.parameters())
        n_train = sum(p.numel() for p in model.xtts.gpt.parameters())
        self.rep.info(f"Model has {n_params} parameters ({n_train} trainable GPT parameters)", tag="MODEL")
        self.steps_per_epoch_full = spe

    def restore(self) -> None:
        import torch

        if self.dist.is_main:  # only rank 0 touches the run folder
            ck.clean_partials(self.run)
        damaged: list = []
        found = ck.latest_loadable(self.run, damaged)
        for bad, why in damaged:
            self.rep.warn(f"{bad.name} is damaged ({why}); it was set aside and is not resumed from", tag="TRAIN")
            self.emit("alert", level="warning", kind="damaged_checkpoint", path=str(bad), reason=why,
                      msg=f"{bad.name} is damaged ({why}); set aside")
        if found is None:
            what = f"{len(damaged)} damaged checkpoint(s) set aside" if damaged else "no checkpoint"
            raise UserFacingError(f"nothing to resume in {ck.checkpoint_dir(self.run)} ({what}); start the run "
                                  f"again with `xtts-ft resume {self.run} --restart`")
        path, data = found
        if damaged:
            self.rep.warn(f"Resuming from {path.name}, the newest checkpoint that loads: the steps after it are "
                          "trained again", tag="TRAIN")
        t = self.trainer
        model = t.model
        missing, unexpected = model.load_state_dict(data["model"], strict=False)
        bad_missing = [k for k in missing if not k.startswith(ck.FROZEN_PREFIXES)]
        if bad_missing or unexpected:
            raise UserFacingError(f"checkpoint {path.name} does not match the model "
                                  f"(missing {bad_missing[:3]}, unexpected {list(unexpected)[:3]})")
        if data.get("batch_size") and int(data["batch_size"]) != self.batch_size:
            self.batch_size, self.grad_accum = int(data["batch_size"]), int(data["grad_accum"])
            self.set_batch(self.batch_size, self.grad_accum)
        t.optimizer[0].load_state_dict(data["optimizer"])
        if data.get("scheduler") and t.scheduler[0] is not None:
            t.scheduler[0].load_state_dict(data["scheduler"])
        if data.get("scaler") and t.scaler is not None:
            t.scaler.load_state_dict(data["scaler"])
        t.total_steps_done = int(data["step"])
        t.epochs_done = int(data["next_epoch"])
        self.opt_steps = int(data.get("opt_steps", 0))
        self.last_saved_step = int(data["step"])
        self.monitor = Monitor.from_state(data.get("monitor", {}), window=self.cfg["alert_window"],
                                          patience=self.cfg["early_stop_patience"])
        offset = int(data.get("next_epoch_step", 0))
        import random

        if data.get("rng"):
            _set_rng_state(data["rng"])     # where every generator was when the checkpoint was written
        else:                               # checkpoints of older versions
            random.seed(self.cfg["seed"] + t.total_steps_done)
            torch.manual_seed(self.cfg["seed"] + t.total_steps_done)
        if offset > 0:
            loader = t.get_train_dataloader(t.train_samples, verbose=False)
            t.train_loader = PartialLoader(loader, len(loader) - offset)
        self.epoch_offset = offset
        self.rep.info(f"Resumed from {path.name}: global step {t.total_steps_done}, epoch {t.epochs_done + 1}"
                      f"/{self.cfg['epochs']}, step {offset} of the epoch", tag="TRAIN")
        self.emit("resumed", checkpoint=str(path), global_step=t.total_steps_done, epoch=t.epochs_done,
                  epoch_step=offset, opt_steps=self.opt_steps)

    def set_batch(self, batch: int, accum: int) -> None:
        t = self.trainer
        t.config.batch_size = batch
        t.config.eval_batch_size = batch
        t.grad_accum_steps = accum
        t.train_loader = None
        t.eval_loader = None

    # ---------------------------------------------------------------- loop
    def fit_loop(self) -> None:
        import torch

        t = self.trainer
        while True:
            try:
                t._fit()
                return
            except StopTraining:
                raise
            except BaseException as exc:
                if not is_oom(exc):
                    raise
                self._handle_oom(exc)
                gc.collect()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()

    def _handle_oom(self, exc: BaseException) -> None:
        t = self.trainer
        msg = str(exc).splitlines()[0][:300]
        self.rep.error(f"CUDA out of memory at global step {t.total_steps_done} "
                       f"(batch {self.batch_size}, accumulation {self.grad_accum}): {msg}",
                       details=OOM_ADVICE)
        can = self.cfg["oom_backoff"] and self.batch_size > 1 and not self.dist.enabled  # ranks must agree
        self.emit("alert", kind="oom", level="error", msg=msg, advice=OOM_ADVICE, global_step=t.total_steps_done,
                  batch_size=self.batch_size, grad_accum=self.grad_accum, backoff=can)
        if not can:
            raise _OOMFailure("CUDA out of memory" + ("" if self.cfg["oom_backoff"] else " (automatic back-off off)")
                              + (" at batch size 1" if self.batch_size == 1 else "")) from exc
        for opt in t.optimizer:
            opt.zero_grad(set_to_none=True)
        old_b, old_a = self.batch_size, self.grad_accum
        self.batch_size, self.grad_accum = max(1, old_b // 2), old_a * 2
        done_samples = self.epoch_step * old_b
        self.set_batch(self.batch_size, self.grad_accum)
        loader = t.get_train_dataloader(t.train_samples, verbose=False)
        skip = min(len(loader) - 1, done_samples // self.batch_size)
        self.epoch_offset = skip
        if skip > 0:
            t.train_loader = PartialLoader(loader, len(loader) - skip)
        else:
            t.train_loader = loader
        self.rep.warn(f"Continuing with batch size {self.batch_size} and gradient accumulation {self.grad_accum} "
                      f"(effective batch {self.batch_size * self.grad_accum}, unchanged).", tag="GPU")
        self.emit("config_change", reason="oom_backoff", batch_size=self.batch_size, grad_accum=self.grad_accum,
                  previous={"batch_size": old_b, "grad_accum": old_a}, global_step=t.total_steps_done)

    # ---------------------------------------------------------------- hooks from coqui_hooks
    def before_step(self, trainer, step: int, n_steps: int) -> None:
        model = trainer.model
        if model.dvae.training:  # coqui calls model.train() after a mid-epoch eval (STACK.md pitfall)
            model.eval()
            model.xtts.gpt.train()
        trainer._xf_step_optimizer = ((step + 1) % trainer.grad_accum_steps == 0) or (step + 1 == n_steps)
        trainer._xf_n_steps = n_steps
        for f in self._faults:  # fault injection for the tests (XTTS_FT_FAULT=oom@3,sleep@0.5)
            if f.startswith("oom@") and not self._fault_fired and trainer.total_steps_done >= int(f[4:]):
                import torch

                self._fault_fired = True
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB "
                                             "(injected by XTTS_FT_FAULT)")
            if f.startswith("sleep@"):  # slow steps so a signal lands mid-epoch
                time.sleep(float(f[6:]))

    def on_train_epoch_start(self, trainer) -> None:
        self._last_cpu = time.process_time()
        self.epoch_step = self.epoch_offset
        self.steps_in_epoch = len(trainer.train_loader) + self.epoch_offset
        self.epoch_train_losses = []
        self.rep.info(f"> EPOCH: {trainer.epochs_done + 1}/{self.cfg['epochs']}", tag="TRAIN")
        self.emit("epoch_start", epoch=trainer.epochs_done, epochs=self.cfg["epochs"],
                  steps_per_epoch=self.steps_in_epoch, epoch_step=self.epoch_step,
                  global_step=trainer.total_steps_done)

    def on_train_step_end(self, trainer) -> None:
        cpu_now = time.process_time()
        cpu = cpu_now - self._last_cpu if self._last_cpu is not None else None
        self._last_cpu = cpu_now
        self.epoch_step += 1
        st = self.dashboard.last_step or {}
        self.dashboard.last_step = None
        if trainer._xf_step_optimizer:
            self.opt_steps += 1
        text_ce, mel_ce = _finite(st.get("loss_text_ce")), _finite(st.get("loss_mel_ce"))
        if self.dist.enabled:  # the step's loss is the mean over all ranks; stop requests reach every rank
            ld = getattr(trainer, "_xf_loss_dict", None) or {}
            text_ce, mel_ce = self._sync(_finite(ld.get("loss_text_ce")), _finite(ld.get("loss_mel_ce")))
            from engine.train import distributed as dist_mod

            g = dist_mod.gather_gpu_samples(self.dist, float(self.cfg["gpu_sample_seconds"]), self._gather_state)
            if g is not None:
                self.dist_gpus = g
        loss = (text_ce + mel_ce) if text_ce is not None and mel_ce is not None else _finite(st.get("loss"))
        if loss is not None:
            self.train_losses_since_eval.append(loss)
            self.epoch_train_losses.append(loss)
        self.emit(
            "step", epoch=trainer.epochs_done, epochs=self.cfg["epochs"], step=self.epoch_step,
            steps_per_epoch=self.steps_in_epoch, global_step=trainer.total_steps_done, opt_step=self.opt_steps,
            loss_text_ce=text_ce, loss_mel_ce=mel_ce, loss=loss, lr=_finite(st.get("current_lr")),
            grad_norm=_finite(st.get("grad_norm")) if trainer._xf_step_optimizer else None,
            step_time=_finite(trainer._xf_step_time), loader_time=_finite(trainer._xf_loader_time),
            batch_size=self.batch_size, grad_accum=self.grad_accum, optimizer_step=trainer._xf_step_optimizer,
            cpu_time=None if cpu is None else round(cpu, 5),
        )
        if not trainer._xf_step_optimizer:
            return
        every = int(self.cfg["save_every_steps"])
        if every and trainer.total_steps_done - max(self.last_saved_step, 0) >= every:
            self.save_checkpoint("periodic")
        self._honour_stop(trainer)

    def _honour_stop(self, trainer) -> None:
        """A requested stop (signal, `xtts-ft stop`) or an early stop: checkpoint, then end the run."""
        if self.stop_requested:
            self.save_checkpoint("stop")
            raise StopTraining("user", f"stopped by request at global step {trainer.total_steps_done}; "
                                       f"resume with: xtts-ft resume {self.run}")
        if self.pending_stop is not None:
            self.save_checkpoint("early_stop")
            raise self.pending_stop

    def on_train_epoch_end(self, trainer) -> None:
        if isinstance(trainer.train_loader, PartialLoader):
            trainer.train_loader = None  # the next epoch gets a full loader
        self.epoch_offset = 0

    def on_epoch_end(self, trainer) -> None:
        mean = sum(self.epoch_train_losses) / len(self.epoch_train_losses) if self.epoch_train_losses else None
        self.emit("epoch_end", epoch=trainer.epochs_done, epochs=self.cfg["epochs"],
                  global_step=trainer.total_steps_done, train_loss=mean)
        if not trainer.config.run_eval and mean is not None:
            self.judge(mean, mean_train=None, source="train")
        if self.dist.enabled:
            self._sync(None, None)  # every rank takes the same stop / early-stop decision here
        self._honour_stop(trainer)

    def on_eval(self, step: int, stats: dict) -> None:
        t = self.trainer
        ev = {k: _finite(stats.get(k)) for k in ("avg_loss_text_ce", "avg_loss_mel_ce", "avg_loss")}
        ev["avg_loader_time"] = _finite(stats.get("avg_loader_time"))
        mean_train = (sum(self.train_losses_since_eval) / len(self.train_losses_since_eval)
                      if self.train_losses_since_eval else None)
        self.train_losses_since_eval = []
        self.emit("eval", epoch=t.epochs_done, global_step=t.total_steps_done, train_loss=mean_train, **ev)
        self.rep.info(f"EVAL epoch {t.epochs_done + 1}: text_ce: {ev['avg_loss_text_ce']:.5f} | "
                      f"mel_ce: {ev['avg_loss_mel_ce']:.5f} | avg_loss: {ev['avg_loss']:.5f}", tag="TRAIN")
        if ev["avg_loss"] is not None:
            self.judge(ev["avg_loss"], mean_train=mean_train, source="eval")
            sch = t.scheduler[0]
            if sch is not None and hasattr(sch, "on_eval") and sch.on_eval(ev["avg_loss"]):
                self.rep.info(f"Plateau: learning rate reduced to {t.optimizer[0].param_groups[0]['lr']:.3g}",
                              tag="INFO")

    def judge(self, loss: float, mean_train: float | None, source: str) -> None:
        t = self.trainer
        d = self.monitor.observe(loss, mean_train, step=t.total_steps_done)
        if d.new_best:
            self.save_best(loss, source)
        for a in d.alerts:
            self.rep.warn(a["msg"], tag="TRAIN", alert=a["kind"])
            self.emit("alert", level="warning", global_step=t.total_steps_done, **a)
        if d.stop and self.pending_stop is None:
            self.rep.info(d.stop_reason, tag="TRAIN")
            self.pending_stop = StopTraining("early_stop", d.stop_reason)

    # ---------------------------------------------------------------- saving
    def _payload(self, full: bool) -> dict:
        t = self.trainer
        state = ck.strip_frozen(t.model.state_dict())
        complete = self.epoch_step >= self.steps_in_epoch and self.steps_in_epoch > 0
        data = {
            "format": ck.FORMAT,
            "model": state,
            "step": t.total_steps_done,
            "epoch": t.epochs_done,
            "next_epoch": t.epochs_done + 1 if complete else t.epochs_done,
            "next_epoch_step": 0 if complete else self.epoch_step,
            "opt_steps": self.opt_steps,
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "stripped_prefixes": list(ck.FROZEN_PREFIXES),
            "restore_from": {"model": self.cfg["model"], "base_checkpoint": self.cfg.get("base_checkpoint")},
            "time": time.time(),
        }
        if full:
            data["rng"] = _rng_state()
            data["optimizer"] = t.optimizer[0].state_dict()
            data["scheduler"] = t.scheduler[0].state_dict() if t.scheduler[0] is not None else None
            data["scaler"] = t.scaler.state_dict() if t.scaler is not None else None
            data["monitor"] = self.monitor.state()
        return data

    def _sync(self, text_ce, mel_ce):
        text_ce, mel_ce, stop, early = self._step_sync(text_ce, mel_ce, self.stop_requested,
                                                       self.pending_stop is not None)
        self.stop_requested = stop
        if early and self.pending_stop is None:
            self.pending_stop = StopTraining("early_stop", "early stopping (decided on rank 0)")
        return text_ce, mel_ce

    def draw_key(self) -> tuple[int, int, int]:
        """(seed, epoch, items already drawn this epoch): keys each item's random clip draw."""
        t = self.trainer
        done = self.epoch_offset * self.batch_size * max(1, self.dist.world)
        return int(self.cfg["seed"]), int(t.epochs_done if t is not None else 0), int(done)

    def save_checkpoint(self, reason: str) -> Path | None:
        t = self.trainer
        if not self.dist.is_main:
            return None
        if t is None or t.total_steps_done == self.last_saved_step:
            return None
        path = ck.checkpoint_dir(self.run) / f"checkpoint_{t.total_steps_done}.pth"
        t0 = time.time()
        ck.write(path, self._payload(full=True))
        removed = ck.prune(self.run, int(self.cfg["keep_checkpoints"]))
        self.last_saved_step = t.total_steps_done
        size = path.stat().st_size
        self.rep.info(f"CHECKPOINT : {path} ({size / 1e6:.1f} MB, {reason})", tag="TRAIN")
        self.emit("checkpoint", path=str(path), global_step=t.total_steps_done, epoch=t.epochs_done,
                  reason=reason, size_bytes=size, seconds=round(time.time() - t0, 3),
                  removed=[str(p) for p in removed])
        return path

    def save_best(self, loss: float, source: str) -> None:
        t = self.trainer
        if not self.dist.is_main:
            return
        data = self._payload(full=False)
        data["loss"] = loss
        data["loss_source"] = source
        ck.write(self.best_path, data)
        self.rep.info(f"BEST MODEL = {self.best_path}", tag="TRAIN")
        self.emit("best_model", path=str(self.best_path), loss=loss, source=source,
                  global_step=t.total_steps_done, epoch=t.epochs_done)
        if self.cfg.get("samples_on_best") and self.cfg["ab_samples"]:
            try:
                self.write_samples(which="finetuned", tag=f"step{t.total_steps_done}")
            except Exception as exc:  # noqa: BLE001
                self.rep.warn(f"could not write samples at the new best model: {exc}", tag="TRAIN")

    # ---------------------------------------------------------------- samples
    def after_training(self) -> None:
        if not self.cfg["ab_samples"] or not self.dist.is_main:
            return
        try:
            self.write_samples(which="both", tag="final")
        except Exception as exc:  # noqa: BLE001 - samples are a bonus, never fail the run for them
            traceback.print_exc()
            self.rep.warn(f"A/B samples not written: {type(exc).__name__}: {exc}", tag="TRAIN")

    def write_samples(self, which: str, tag: str) -> None:
        from engine.model import synth

        ref = synth.pick_reference(self.cfg["dataset"])
        if ref is None:
            self.rep.warn("no reference clip for the A/B samples", tag="TRAIN")
            return
        sentences = synth.sample_sentences(self.cfg["language"], self.cfg["dataset"], int(self.cfg["ab_samples"]))
        out = self.run / "samples"
        cap = int(self.cfg["max_new_tokens"]) or (60 if self.model_info.tiny else None)
        weights = self.best_path if self.best_path.exists() else None
        if weights is None:
            last = ck.list_checkpoints(self.run)
            weights = last[-1][1] if last else None
        self.rep.info(f"Writing A/B samples into {out} (reference {Path(ref).name})", tag="TRAIN")
        model = synth.load_model(self.cfg["model"], device=self.device)
        variants = ["base", "finetuned"] if which == "both" else ["finetuned"]
        for variant in variants:
            if variant == "finetuned":
                if weights is None:
                    break
                synth.load_run_weights(model, weights)
            for i, text in enumerate(sentences, 1):
                path = out / f"{tag}_{variant}_{i}.wav"
                info = synth.synthesize(model, text, ref, self.cfg["language"], path, max_new_tokens=cap)
                self.emit("sample", variant=variant, path=str(path), text=text, reference=str(ref),
                          weights=str(weights) if variant == "finetuned" else str(self.cfg["model"]),
                          seconds=info["seconds"], tag=tag)
        del model
        gc.collect()


class UserFacingError(Exception):
    pass


def dist_batch_text(cfg: dict) -> str:
    from engine.train.distributed import batch_breakdown

    return batch_breakdown(cfg)


def _lr_advice(cfg: dict) -> list[str]:
    from engine.train.distributed import lr_advice

    return lr_advice(cfg)


class _OOMFailure(Exception):
    pass


# -------------------------------------------------------------------- helpers
def _rng_state() -> dict:
    """Python, numpy and torch generator states in plain types (a weights_only load accepts them)."""
    import random

    import numpy as np
    import torch

    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [name, keys.tolist(), pos, has_gauss, cached],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    import random

    import numpy as np
    import torch

    py = state.get("python")
    if py is not None:
        random.setstate((py[0], tuple(py[1]), py[2]))
    if state.get("numpy") is not None:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if state.get("torch") is not None:
        torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        with contextlib.suppress(Exception):   # another number of GPUs: their streams start fresh
            torch.cuda.set_rng_state_all(state["cuda"])


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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m engine.train.worker RUN_DIR [--resume]", file=sys.stderr)
        return 2
    engine = Engine(Path(argv[0]), resume="--resume" in argv)
    return engine.main()
