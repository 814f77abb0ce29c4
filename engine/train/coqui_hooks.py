"""Thin subclasses of coqui's classes: where the engine listens to the real training code.

- EventDashboardLogger: coqui's Trainer hands it every step's loss dict, each eval's averages and
  each epoch's averages; it forwards them to the engine (structured, no console parsing).
- The Trainer subclass records step/loader time, sets the DVAE back to eval mode after a
  mid-epoch eval, and routes checkpoint/best-model writes to the engine (atomic, compact).
- The GPTTrainer subclass builds the engine's learning-rate schedule, the optional 8-bit AdamW,
  keeps every frozen module in eval mode and leaves the unused ones on the CPU (engine/train/lean.py).
"""

from __future__ import annotations

import time

from trainer.logging.base_dash_logger import BaseDashboardLogger


class EventDashboardLogger(BaseDashboardLogger):
    def __init__(self, engine):
        self.engine = engine
        self.last_step: dict | None = None

    def train_step_stats(self, step, stats):
        self.last_step = dict(stats)

    def eval_stats(self, step, stats):
        self.engine.progress.on_eval(step, dict(stats))

    def train_epoch_stats(self, step, stats):
        self.last_epoch = dict(stats)

    # the rest of the dashboard interface has nothing to record
    def model_weights(self, model, step):
        pass

    def add_scalar(self, title, value, step):
        pass

    def add_figure(self, title, figure, step):
        pass

    def add_config(self, config):
        pass

    def add_audio(self, title, audio, step, sample_rate):
        pass

    def add_text(self, title, text, step):
        pass

    def add_artifact(self, file_or_dir, name, artifact_type, aliases=None):
        pass

    def add_scalars(self, scope_name, scalars, step):
        pass

    def add_figures(self, scope_name, figures, step):
        pass

    def add_audios(self, scope_name, audios, step, sample_rate):
        pass

    def train_figures(self, step, figures):
        pass

    def train_audios(self, step, audios, sample_rate):
        pass

    def eval_figures(self, step, figures):
        pass

    def eval_audios(self, step, audios, sample_rate):
        pass

    def test_audios(self, step, audios, sample_rate):
        pass

    def test_figures(self, step, figures):
        pass

    def flush(self):
        pass

    def finish(self):
        pass


def make_trainer_class(Trainer, engine):
    class EngineTrainer(Trainer):
        _xf_step_time = None
        _xf_loader_time = None
        _xf_step_optimizer = True
        _xf_n_steps = 0

        def train_step(self, batch, batch_n_steps, step, loader_start_time):
            engine.progress.before_step(self, step, batch_n_steps)
            self._xf_loader_start = loader_start_time
            ddp = getattr(self.model, "_xf_ddp", None)
            if ddp is not None:  # all-reduce gradients only on the batch that steps the optimizer
                ddp.require_backward_grad_sync = bool(self._xf_step_optimizer)
            self._xf_loss_dict = None
            from engine.train.distributed import seed_step

            seed_step(engine, step)  # dropout masks keyed by the batch's items, as the clip draws
            return super().train_step(batch, batch_n_steps, step, loader_start_time)

        def format_batch(self, batch):
            out = super().format_batch(batch)
            if self.model.training or self.model.xtts.gpt.training:
                self._xf_loader_time = time.time() - getattr(self, "_xf_loader_start", time.time())
            return out

        def optimize(self, *args, **kwargs):
            outputs, loss_dict, step_time = super().optimize(*args, **kwargs)
            self._xf_step_time = step_time
            if loss_dict:  # this rank's losses (rank > 0 has no dashboard logger)
                self._xf_loss_dict = {k: float(v.detach()) if hasattr(v, "detach") else v
                                      for k, v in loss_dict.items() if k in ("loss_text_ce", "loss_mel_ce")}
            return outputs, loss_dict, step_time

        def save_checkpoint(self):
            engine.saver.save_checkpoint("coqui")

        def save_best_model(self):
            # the engine saves the best model after each eval (atomic, without frozen weights)
            pass

        def save_training_script(self):
            pass

    return EngineTrainer


def make_model_class(GPTTrainer, engine):
    class EngineGPTTrainer(GPTTrainer):
        def get_scheduler(self, optimizer):
            from engine.train.schedule import EngineLR

            cfg = engine.cfg
            if cfg["scheduler"] == "none" and not cfg["warmup_steps"]:
                return None
            opt = optimizer[0] if isinstance(optimizer, list) else optimizer
            return EngineLR(opt, cfg["scheduler"], engine.sched_params, float(cfg["lr"]))

        def get_optimizer(self):
            opt = super().get_optimizer()
            if not engine.cfg.get("adamw_8bit"):
                return opt
            from engine.train import lean  # 8-bit AdamW (bitsandbytes, CUDA): same parameter groups

            p = self.config.optimizer_params
            groups = [{"params": g["params"], "weight_decay": g.get("weight_decay", 0.0)} for g in opt.param_groups]
            new = lean.make_8bit_adamw(groups, lr=self.config.lr, betas=p["betas"], eps=p["eps"],
                                       weight_decay=p.get("weight_decay", 0.0))
            if hasattr(opt, "_group_names"):
                new._group_names = opt._group_names
            return new

        def train(self, mode: bool = True):
            # the frozen modules (the DVAE above all, whose Quantize updates its codebook in training
            # mode) stay in eval whatever coqui's Trainer calls (STACK.md pitfall)
            super().train(mode)
            from engine.train import lean

            lean.keep_frozen_in_eval(self)
            return self

        def cuda(self, device=None):
            if not engine.cfg.get("frozen_off_gpu", True):
                return super().cuda(device)
            import torch

            from engine.train import lean

            return lean.place_on_device(self, torch.device("cuda", torch.cuda.current_device()
                                                           if device is None else device))

        def forward(self, *args, **kwargs):
            ddp = getattr(self, "_xf_ddp", None)
            if ddp is None or not self.xtts.gpt.training:
                return super().forward(*args, **kwargs)
            gpt = self.xtts._modules["gpt"]
            self.xtts._modules["gpt"] = ddp  # coqui's forward calls self.xtts.gpt(...): go through DDP
            try:
                return super().forward(*args, **kwargs)
            finally:
                self.xtts._modules["gpt"] = gpt

        def get_sampler(self, config, dataset):
            from engine.train import distributed as dist

            return dist.sampler(dataset, engine.dist) if engine.dist.enabled else None

        def get_data_loader(self, config, *, is_eval=False, samples=None, verbose=True):
            # XTTSDataset shuffles the list it is given in place (seeded): handing it a copy keeps the
            # trainer's list in file order, so every loader built (at the start, after a resume, after
            # an out-of-memory back-off) maps item numbers to the same clips, and a resumed run draws
            # exactly what the uninterrupted run drew
            samples = list(samples) if samples is not None else None
            loader = super().get_data_loader(config, is_eval=is_eval, samples=samples, verbose=verbose)
            if not is_eval:
                from engine.train import distributed as dist

                dist.seed_item_draws(loader.dataset, engine.draw_key)
            return loader

    return EngineGPTTrainer
