"""Writing the run's checkpoints (resumable, every N steps and at a stop) and its best model
(weights only, after each eval that improves), as files and as `checkpoint` / `best_model` events."""

from __future__ import annotations

import time
from pathlib import Path

from engine.train import checkpoints as ck
from engine.train.samples import write_samples


class Saver:
    def __init__(self, engine):
        self.e = engine

    def payload(self, full: bool) -> dict:
        t = self.e.trainer
        state = ck.strip_frozen(t.model.state_dict())
        complete = self.e.epoch_step >= self.e.steps_in_epoch and self.e.steps_in_epoch > 0
        data = {
            "format": ck.FORMAT,
            "model": state,
            "step": t.total_steps_done,
            "epoch": t.epochs_done,
            "next_epoch": t.epochs_done + 1 if complete else t.epochs_done,
            "next_epoch_step": 0 if complete else self.e.epoch_step,
            "opt_steps": self.e.opt_steps,
            "batch_size": self.e.batch_size,
            "grad_accum": self.e.grad_accum,
            "stripped_prefixes": list(ck.FROZEN_PREFIXES),
            "restore_from": {"model": self.e.cfg["model"], "base_checkpoint": self.e.cfg.get("base_checkpoint")},
            "time": time.time(),
        }
        if full:
            from engine.train import rng

            data["rng"] = rng.state()
            data["optimizer"] = t.optimizer[0].state_dict()
            data["scheduler"] = t.scheduler[0].state_dict() if t.scheduler[0] is not None else None
            data["scaler"] = t.scaler.state_dict() if t.scaler is not None else None
            data["monitor"] = self.e.monitor.state()
        return data

    def save_checkpoint(self, reason: str) -> Path | None:
        t = self.e.trainer
        if not self.e.dist.is_main:
            return None
        if t is None or t.total_steps_done == self.e.last_saved_step:
            return None
        path = ck.checkpoint_dir(self.e.run) / f"checkpoint_{t.total_steps_done}.pth"
        t0 = time.time()
        ck.write(path, self.payload(full=True))
        removed = ck.prune(self.e.run, int(self.e.cfg["keep_checkpoints"]))
        self.e.last_saved_step = t.total_steps_done
        size = path.stat().st_size
        self.e.rep.info(f"CHECKPOINT : {path} ({size / 1e6:.1f} MB, {reason})", tag="TRAIN")
        self.e.emit("checkpoint", path=str(path), global_step=t.total_steps_done, epoch=t.epochs_done,
                    reason=reason, size_bytes=size, seconds=round(time.time() - t0, 3),
                    removed=[str(p) for p in removed])
        return path

    def save_best(self, loss: float, source: str) -> None:
        t = self.e.trainer
        if not self.e.dist.is_main:
            return
        data = self.payload(full=False)
        data["loss"] = loss
        data["loss_source"] = source
        ck.write(self.e.best_path, data)
        self.e.rep.info(f"BEST MODEL = {self.e.best_path}", tag="TRAIN")
        self.e.emit("best_model", path=str(self.e.best_path), loss=loss, source=source,
                    global_step=t.total_steps_done, epoch=t.epochs_done)
        if self.e.cfg.get("samples_on_best") and self.e.cfg["ab_samples"]:
            try:
                write_samples(self.e, which="finetuned", tag=f"step{t.total_steps_done}")
            except Exception as exc:  # noqa: BLE001
                self.e.rep.warn(f"could not write samples at the new best model: {exc}", tag="TRAIN")

