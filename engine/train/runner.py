"""The training process itself (`python -m engine.train.worker RUN [--resume]`).

It runs coqui's GPTTrainer under coqui's Trainer and turns the Trainer's callbacks and
dashboard-logger calls into events in RUN/events.jsonl (schema: docs/events.md). `Engine` holds
the run's state and its life cycle (preparing -> training -> a final state); each step of the way
lives in its own module:

    preflight   model files, GPU, memory, RAM, disk, dataset size      signals    SIGINT / SIGTERM
    build       samples, coqui config, model, hooked Trainer            resources  GPU / RAM sampling
    restore     resume from the newest loadable checkpoint              oom        OOM advice + back-off
    progress    callbacks -> step/eval/epoch events, stops              saving     checkpoints, best model
    samples     A/B samples                                             coqui_hooks  the coqui subclasses

Checkpoints and the best model are written by the engine (atomically, without frozen weights),
resume is done here (coqui's --continue_path is unreliable), SIGINT/SIGTERM stop after the
current optimizer step.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import time
import traceback
from pathlib import Path

from engine import ioerrors
from engine.events import EventWriter
from engine.listen.training import check_listening, start_listening
from engine.prep.report import Reporter
from engine.train.build import build
from engine.train.errors import OOMFailure, StopTraining, UserFacingError, finite
from engine.train.monitor import Monitor
from engine.train.oom import fit_with_backoff
from engine.train.preflight import preflight
from engine.train.progress import StepEvents
from engine.train.resources import ResourceSampler
from engine.train.restore import restore
from engine.train.samples import after_training
from engine.train.saving import Saver
from engine.train.signals import install_stop_signals


class Engine:
    def __init__(self, run: Path, resume: bool = False):
        self.run = Path(run)
        self.cfg = json.loads((self.run / "run_config.json").read_text(encoding="utf-8"))
        self.resume = resume
        from engine.train import distributed as dist_mod

        self.dist = dist_mod.context(self.cfg)  # rank / world size from torchrun (one process: rank 0 of 1)
        self.dist_gpus: list | None = None  # latest per-rank GPU samples (distributed runs)
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
        self.progress = StepEvents(self)
        self.saver = Saver(self)
        self.sampler = ResourceSampler(self)
        self.batch_size = int(self.cfg["batch_size"])
        self.grad_accum = int(self.cfg["grad_accum"])
        self.device = "cpu"
        from engine.listen.training import TrainingListener

        self.listening = TrainingListener(self)    # --listen-every: engine/listen/training.py

    # ---------------------------------------------------------------- events
    def state(self, state: str, **kw) -> None:
        self.events.emit("state", state=state, **kw)

    def emit(self, type_: str, **kw) -> None:
        self.events.emit(type_, **kw)

    def draw_key(self) -> tuple[int, int, int]:
        """(seed, epoch, items already drawn this epoch): keys each item's random clip draw."""
        t = self.trainer
        done = self.epoch_offset * self.batch_size * max(1, self.dist.world)
        return int(self.cfg["seed"]), int(t.epochs_done if t is not None else 0), int(done)

    # ---------------------------------------------------------------- main
    def main(self) -> int:
        if self.dist.is_main:
            (self.run / "worker.json").write_text(json.dumps({"pid": os.getpid(), "started": time.time(),
                                                              "rank": self.dist.rank}))
        install_stop_signals(self)
        self.state("preparing", resume=self.resume, pid=os.getpid())
        code = 1
        try:
            check_listening(self)
            preflight(self)
            if self.dist.is_main:
                self.sampler.start()
            build(self)
            if self.resume:
                restore(self)
            start_listening(self)
            self.state("training", epochs=self.cfg["epochs"], global_step=self.trainer.total_steps_done)
            fit_with_backoff(self)
            self.saver.save_checkpoint("final")
            after_training(self)
            self.state("finished", reason="completed all epochs", global_step=self.trainer.total_steps_done,
                       best_loss=finite(self.monitor.best), best_model=self._best_or_none())
            code = 0
        except StopTraining as stop:
            if stop.kind == "early_stop":
                after_training(self)
                self.state("finished", reason=stop.reason, early_stopped=True,
                           global_step=self.trainer.total_steps_done, best_loss=finite(self.monitor.best),
                           best_model=self._best_or_none())
                code = 0
            else:
                self.state("stopped", reason=stop.reason, global_step=self.trainer.total_steps_done)
                code = 130
        except OOMFailure as exc:
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
            self.sampler.stop()
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
        from engine.train import checkpoints as ck

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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m engine.train.worker RUN_DIR [--resume]", file=sys.stderr)
        return 2
    engine = Engine(Path(argv[0]), resume="--resume" in argv)
    return engine.main()
