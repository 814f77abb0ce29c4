"""coqui's training callbacks turned into events (`epoch_start`, `step`, `eval`, `epoch_end`, `alert`)
and into the decisions taken at step ends: periodic checkpoints, a requested stop, early stopping."""

from __future__ import annotations

import time

from engine.train.batches import PartialLoader
from engine.train.errors import StopTraining, finite


class StepEvents:
    def __init__(self, engine):
        self.e = engine
        self._last_cpu: float | None = None
        self._gather_state: dict = {}

    def before_step(self, trainer, step: int, n_steps: int) -> None:
        model = trainer.model
        if model.dvae.training:  # coqui calls model.train() after a mid-epoch eval (STACK.md pitfall)
            model.eval()
            model.xtts.gpt.train()
        trainer._xf_step_optimizer = ((step + 1) % trainer.grad_accum_steps == 0) or (step + 1 == n_steps)
        trainer._xf_n_steps = n_steps

    def on_train_epoch_start(self, trainer) -> None:
        self._last_cpu = time.process_time()
        self.e.epoch_step = self.e.epoch_offset
        self.e.steps_in_epoch = len(trainer.train_loader) + self.e.epoch_offset
        self.e.epoch_train_losses = []
        self.e.rep.info(f"> EPOCH: {trainer.epochs_done + 1}/{self.e.cfg['epochs']}", tag="TRAIN")
        self.e.emit("epoch_start", epoch=trainer.epochs_done, epochs=self.e.cfg["epochs"],
                    steps_per_epoch=self.e.steps_in_epoch, epoch_step=self.e.epoch_step,
                    global_step=trainer.total_steps_done)

    def on_train_step_end(self, trainer) -> None:
        cpu_now = time.process_time()
        cpu = cpu_now - self._last_cpu if self._last_cpu is not None else None
        self._last_cpu = cpu_now
        self.e.epoch_step += 1
        st = self.e.dashboard.last_step or {}
        self.e.dashboard.last_step = None
        if trainer._xf_step_optimizer:
            self.e.opt_steps += 1
        text_ce, mel_ce = finite(st.get("loss_text_ce")), finite(st.get("loss_mel_ce"))
        if self.e.dist.enabled:  # the step's loss is the mean over all ranks; stop requests reach every rank
            ld = getattr(trainer, "_xf_loss_dict", None) or {}
            text_ce, mel_ce = self._sync(finite(ld.get("loss_text_ce")), finite(ld.get("loss_mel_ce")))
            from engine.train import distributed as dist_mod

            g = dist_mod.gather_gpu_samples(self.e.dist, float(self.e.cfg["gpu_sample_seconds"]), self._gather_state)
            if g is not None:
                self.e.dist_gpus = g
        loss = (text_ce + mel_ce) if text_ce is not None and mel_ce is not None else finite(st.get("loss"))
        if loss is not None:
            self.e.train_losses_since_eval.append(loss)
            self.e.epoch_train_losses.append(loss)
        self.e.emit(
            "step", epoch=trainer.epochs_done, epochs=self.e.cfg["epochs"], step=self.e.epoch_step,
            steps_per_epoch=self.e.steps_in_epoch, global_step=trainer.total_steps_done, opt_step=self.e.opt_steps,
            loss_text_ce=text_ce, loss_mel_ce=mel_ce, loss=loss, lr=finite(st.get("current_lr")),
            grad_norm=finite(st.get("grad_norm")) if trainer._xf_step_optimizer else None,
            step_time=finite(trainer._xf_step_time), loader_time=finite(trainer._xf_loader_time),
            batch_size=self.e.batch_size, grad_accum=self.e.grad_accum, optimizer_step=trainer._xf_step_optimizer,
            cpu_time=None if cpu is None else round(cpu, 5),
        )
        if not trainer._xf_step_optimizer:
            return
        every = int(self.e.cfg["save_every_steps"])
        if every and trainer.total_steps_done - max(self.e.last_saved_step, 0) >= every:
            self.e.saver.save_checkpoint("periodic")
        self.honour_stop(trainer)

    def honour_stop(self, trainer) -> None:
        """A requested stop (signal, `xtts-ft stop`) or an early stop: checkpoint, then end the run."""
        if self.e.stop_requested:
            self.e.saver.save_checkpoint("stop")
            raise StopTraining("user", f"stopped by request at global step {trainer.total_steps_done}; "
                                       f"resume with: xtts-ft resume {self.e.run}")
        if self.e.pending_stop is not None:
            self.e.saver.save_checkpoint("early_stop")
            raise self.e.pending_stop

    def on_train_epoch_end(self, trainer) -> None:
        if isinstance(trainer.train_loader, PartialLoader):
            trainer.train_loader = None  # the next epoch gets a full loader
        self.e.epoch_offset = 0

    def on_epoch_end(self, trainer) -> None:
        mean = sum(self.e.epoch_train_losses) / len(self.e.epoch_train_losses) if self.e.epoch_train_losses else None
        self.e.emit("epoch_end", epoch=trainer.epochs_done, epochs=self.e.cfg["epochs"],
                    global_step=trainer.total_steps_done, train_loss=mean)
        if not trainer.config.run_eval and mean is not None:
            self.judge(mean, mean_train=None, source="train")
        self.e.listening.epoch_end(trainer, mean)     # the listening test, when due (rank 0 only)
        if self.e.dist.enabled:
            self._sync(None, None)  # every rank takes the same stop / early-stop decision here
        self.honour_stop(trainer)

    def on_eval(self, step: int, stats: dict) -> None:
        t = self.e.trainer
        ev = {k: finite(stats.get(k)) for k in ("avg_loss_text_ce", "avg_loss_mel_ce", "avg_loss")}
        ev["avg_loader_time"] = finite(stats.get("avg_loader_time"))
        mean_train = (sum(self.e.train_losses_since_eval) / len(self.e.train_losses_since_eval)
                      if self.e.train_losses_since_eval else None)
        self.e.train_losses_since_eval = []
        self.e.emit("eval", epoch=t.epochs_done, global_step=t.total_steps_done, train_loss=mean_train, **ev)
        self.e.rep.info(f"EVAL epoch {t.epochs_done + 1}: text_ce: {ev['avg_loss_text_ce']:.5f} | "
                        f"mel_ce: {ev['avg_loss_mel_ce']:.5f} | avg_loss: {ev['avg_loss']:.5f}", tag="TRAIN")
        if ev["avg_loss"] is not None:
            self.judge(ev["avg_loss"], mean_train=mean_train, source="eval")
            sch = t.scheduler[0]
            if sch is not None and hasattr(sch, "on_eval") and sch.on_eval(ev["avg_loss"]):
                self.e.rep.info(f"Plateau: learning rate reduced to {t.optimizer[0].param_groups[0]['lr']:.3g}",
                                tag="INFO")

    def judge(self, loss: float, mean_train: float | None, source: str) -> None:
        t = self.e.trainer
        d = self.e.monitor.observe(loss, mean_train, step=t.total_steps_done)
        if d.new_best:
            self.e.saver.save_best(loss, source)
        for a in d.alerts:
            self.e.rep.warn(a["msg"], tag="TRAIN", alert=a["kind"])
            self.e.emit("alert", level="warning", global_step=t.total_steps_done, **a)
        if d.stop and self.e.pending_stop is None:
            self.e.rep.info(d.stop_reason, tag="TRAIN")
            self.e.pending_stop = StopTraining("early_stop", d.stop_reason)

    def _sync(self, text_ce, mel_ce):
        text_ce, mel_ce, stop, early = self.e._step_sync(text_ce, mel_ce, self.e.stop_requested,
                                                         self.e.pending_stop is not None)
        self.e.stop_requested = stop
        if early and self.e.pending_stop is None:
            self.e.pending_stop = StopTraining("early_stop", "early stopping (decided on rank 0)")
        return text_ce, mel_ce
