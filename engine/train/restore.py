"""`xtts-ft resume`: the run's state back from its newest loadable checkpoint."""

from __future__ import annotations

from engine.train import checkpoints as ck
from engine.train import rng
from engine.train.batches import PartialLoader, set_batch
from engine.train.errors import UserFacingError
from engine.train.monitor import Monitor


def restore(engine) -> None:
    """Weights, optimizer, scheduler, scaler, counters and monitor from the newest loadable checkpoint;
    the interrupted epoch goes on where it stopped."""
    import torch

    if engine.dist.is_main:  # only rank 0 touches the run folder
        ck.clean_partials(engine.run)
    damaged: list = []
    found = ck.latest_loadable(engine.run, damaged)
    for bad, why in damaged:
        name = bad.name.removesuffix(".damaged")
        engine.rep.warn(f"{name} is damaged ({why}); it was set aside as {bad.name} and is not resumed from",
                        tag="TRAIN")
        engine.emit("alert", level="warning", kind="damaged_checkpoint", path=str(bad), reason=why,
                    msg=f"{name} is damaged ({why}); set aside as {bad.name}")
    if found is None:
        what = f"{len(damaged)} damaged checkpoint(s) set aside" if damaged else "no checkpoint"
        raise UserFacingError(f"nothing to resume in {ck.checkpoint_dir(engine.run)} ({what}); start the run "
                              f"again with `xtts-ft resume {engine.run} --restart`")
    path, data = found
    if damaged:
        engine.rep.warn(f"Resuming from {path.name}, the newest checkpoint that loads: the steps after it are "
                        "trained again", tag="TRAIN")
    t = engine.trainer
    model = t.model
    missing, unexpected = model.load_state_dict(data["model"], strict=False)
    bad_missing = [k for k in missing if not k.startswith(ck.FROZEN_PREFIXES)]
    if bad_missing or unexpected:
        raise UserFacingError(f"checkpoint {path.name} does not match the model "
                              f"(missing {bad_missing[:3]}, unexpected {list(unexpected)[:3]})")
    if data.get("batch_size") and int(data["batch_size"]) != engine.batch_size:
        engine.batch_size, engine.grad_accum = int(data["batch_size"]), int(data["grad_accum"])
        set_batch(t, engine.batch_size, engine.grad_accum)
    t.optimizer[0].load_state_dict(data["optimizer"])
    if data.get("scheduler") and t.scheduler[0] is not None:
        t.scheduler[0].load_state_dict(data["scheduler"])
    if data.get("scaler") and t.scaler is not None:
        t.scaler.load_state_dict(data["scaler"])
    t.total_steps_done = int(data["step"])
    t.epochs_done = int(data["next_epoch"])
    engine.opt_steps = int(data.get("opt_steps", 0))
    engine.last_saved_step = int(data["step"])
    engine.monitor = Monitor.from_state(data.get("monitor", {}), window=engine.cfg["alert_window"],
                                        patience=engine.cfg["early_stop_patience"])
    offset = int(data.get("next_epoch_step", 0))
    import random

    if data.get("rng"):
        rng.set_state(data["rng"])      # where every generator was when the checkpoint was written
    else:                               # checkpoints of older versions
        random.seed(engine.cfg["seed"] + t.total_steps_done)
        torch.manual_seed(engine.cfg["seed"] + t.total_steps_done)
    if offset > 0:
        loader = t.get_train_dataloader(t.train_samples, verbose=False)
        t.train_loader = PartialLoader(loader, len(loader) - offset)
    engine.epoch_offset = offset
    engine.rep.info(f"Resumed from {path.name}: global step {t.total_steps_done}, epoch {t.epochs_done + 1}"
                    f"/{engine.cfg['epochs']}, step {offset} of the epoch", tag="TRAIN")
    engine.emit("resumed", checkpoint=str(path), global_step=t.total_steps_done, epoch=t.epochs_done,
                epoch_step=offset, opt_steps=engine.opt_steps)
