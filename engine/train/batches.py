"""The train loader's batch size and partial epochs (after a resume or an OOM back-off)."""

from __future__ import annotations

from itertools import islice


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


def set_batch(trainer, batch: int, accum: int) -> None:
    """A new batch size / accumulation for the Trainer: its loaders are rebuilt on next use."""
    trainer.config.batch_size = batch
    trainer.config.eval_batch_size = batch
    trainer.grad_accum_steps = accum
    trainer.train_loader = None
    trainer.eval_loader = None
