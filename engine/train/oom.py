"""CUDA out of memory during training: the advice, and the automatic back-off (half the batch,
twice the accumulation: the same effective batch) that lets the run go on."""

from __future__ import annotations

import gc

from engine.train.batches import PartialLoader, set_batch
from engine.train.errors import OOMFailure, StopTraining

OOM_ADVICE = [
    "Reduce the batch size (--batch-size).",
    "Increase gradient accumulation (--grad-accum) to keep the effective batch size.",
    "Lower the number of data-loader workers (--workers, 2-4).",
    "Limit the maximum audio length (--max-audio-seconds).",
]


def is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()



def fit_with_backoff(engine) -> None:
    """coqui's fit loop; on out-of-memory, back off (half batch, double accumulation) and go on."""
    import torch

    t = engine.trainer
    while True:
        try:
            t._fit()
            return
        except StopTraining:
            raise
        except BaseException as exc:
            if not is_oom(exc):
                raise
            handle_oom(engine, exc)
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

def handle_oom(engine, exc: BaseException) -> None:
    t = engine.trainer
    msg = str(exc).splitlines()[0][:300]
    engine.rep.error(f"CUDA out of memory at global step {t.total_steps_done} "
                     f"(batch {engine.batch_size}, accumulation {engine.grad_accum}): {msg}",
                     details=OOM_ADVICE)
    can = engine.cfg["oom_backoff"] and engine.batch_size > 1 and not engine.dist.enabled  # ranks must agree
    engine.emit("alert", kind="oom", level="error", msg=msg, advice=OOM_ADVICE, global_step=t.total_steps_done,
                batch_size=engine.batch_size, grad_accum=engine.grad_accum, backoff=can)
    if not can:
        raise OOMFailure("CUDA out of memory" + ("" if engine.cfg["oom_backoff"] else " (automatic back-off off)")
                         + (" at batch size 1" if engine.batch_size == 1 else "")) from exc
    for opt in t.optimizer:
        opt.zero_grad(set_to_none=True)
    old_b, old_a = engine.batch_size, engine.grad_accum
    engine.batch_size, engine.grad_accum = max(1, old_b // 2), old_a * 2
    done_samples = engine.epoch_step * old_b
    set_batch(t, engine.batch_size, engine.grad_accum)
    loader = t.get_train_dataloader(t.train_samples, verbose=False)
    skip = min(len(loader) - 1, done_samples // engine.batch_size)
    engine.epoch_offset = skip
    if skip > 0:
        t.train_loader = PartialLoader(loader, len(loader) - skip)
    else:
        t.train_loader = loader
    engine.rep.warn(f"Continuing with batch size {engine.batch_size} and gradient accumulation {engine.grad_accum} "
                    f"(effective batch {engine.batch_size * engine.grad_accum}, unchanged).", tag="GPU")
    engine.emit("config_change", reason="oom_backoff", batch_size=engine.batch_size, grad_accum=engine.grad_accum,
                previous={"batch_size": old_b, "grad_accum": old_a}, global_step=t.total_steps_done)

