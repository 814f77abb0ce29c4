"""The listening test inside training (`--listen-every`): the model being trained, already in memory,
is switched to eval mode for the test and back (no second copy in VRAM; every RNG restored, so the
run continues exactly as without the test).

- `auto` (the default) listens on a GPU only; on a CPU a test costs minutes, so it is off there unless
  `--listen-every N` asks for it.
- Before the first step (not on resume if it was done): the base row (the starting weights).
- At the end of an epoch: a test when `listen_every` says so. `auto`: whenever the time spent
  listening stays at most BUDGET (10%) of the run's time including the next test (estimated from the
  last one), and at the last epoch if no checkpoint was tested yet.
- After each test: `listen` event (scores, seconds), BEST LISTEN (R/best_listen.pth, the weights the
  rule of engine/listen/select.py recommends) and the overtraining check from listening (alert; with
  --best-by listen and early stopping on, it also stops the run).
- Whisper is released after each test, so it holds no GPU memory while training runs.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path

from engine.listen.encoders import ListenError

BUDGET = 0.10


def parse_every(value) -> int | None:
    """0 = off, N = every N epochs, None = auto."""
    v = str(value if value is not None else "auto").strip().lower()
    return None if v == "auto" else int(v)


class TrainingListener:
    def __init__(self, engine):
        self.e = engine
        cfg = engine.cfg
        self.every = parse_every(cfg.get("listen_every", "0"))
        self.enabled = self.every != 0 and engine.dist.is_main
        self.listener = None
        self.t0 = time.time()
        self.spent = 0.0
        self.last_cost: float | None = None
        self.tests_after_base = 0
        self.failed = False

    # ------------------------------------------------------------------ set-up (a bad input fails the run here)
    def start(self, xtts) -> None:
        if self.enabled and self.every is None and str(getattr(self.e, "device", "cpu")) != "cuda":
            # auto on a CPU: a test costs minutes there; listen only when asked for (--listen-every N)
            self.enabled = False
            self.e.rep.info("Listening test: off on CPU with --listen-every auto (pass --listen-every N to "
                            "listen anyway)", tag="LISTEN")
        if not self.enabled:
            return
        try:
            self._start(xtts)
        except ListenError as exc:
            if self.every is not None:
                raise        # asked for explicitly: the run fails before its first step
            self.enabled = False
            self.e.rep.warn(f"listening test off: {exc}", tag="LISTEN")

    def _start(self, xtts) -> None:
        from engine.listen import testset
        from engine.listen.run import Listener, load_results

        cfg = self.e.cfg
        ts = testset.build(self.e.run, cfg, datasets=testset.extra_datasets(cfg),
                           sentences=int(cfg.get("listen_sentences") or 0))
        device = str(next(xtts.gpt.parameters()).device)
        cap = int(cfg.get("max_new_tokens") or 0) or None
        self.listener = Listener(self.e.run, ts, xtts=xtts, device=device,
                                 whisper_model=cfg.get("listen_whisper_model") or "auto", max_new_tokens=cap)
        for note in self.listener.describe()["notes"]:
            self.e.rep.warn(f"listening: {note}", tag="LISTEN")
        n = sum(len(v["items"]) for v in ts["voices"])
        self.e.rep.info(f"Listening test: {n} sentence(s) per test, every "
                        f"{'auto (<= 10% of the run time)' if self.every is None else f'{self.every} epoch(s)'}",
                        tag="LISTEN")
        self._release()
        done = [r for r in load_results(self.e.run) if r.get("label") == "base" and r.get("testset") == ts.get("hash")]
        self.tests_after_base = len([r for r in load_results(self.e.run) if r.get("label") != "base"])
        if not done:
            self.test(label="base", info={"weights": str(cfg.get("base_checkpoint") or cfg["model"]), "step": 0})

    def _release(self) -> None:
        for sc in (self.listener.scorers.values() if self.listener else []):
            sc.ear.release()

    # ------------------------------------------------------------------ decisions
    def due(self, epoch_index: int, epochs: int) -> bool:
        if not self.enabled or self.listener is None or self.failed:
            return False
        if self.every is not None:
            return (epoch_index + 1) % self.every == 0 or epoch_index + 1 == epochs
        if epoch_index + 1 >= epochs and self.tests_after_base == 0:
            return True
        cost = self.last_cost or 0.0
        elapsed = time.time() - self.t0
        return self.spent + cost <= BUDGET * (elapsed + cost)

    def epoch_end(self, trainer, train_loss: float | None) -> None:
        if not self.due(trainer.epochs_done, int(self.e.cfg["epochs"])):
            return
        step = trainer.total_steps_done
        self.test(label=f"step{step}", info={"step": step, "epoch": trainer.epochs_done, "train_loss": train_loss,
                                             "weights": None})

    # ------------------------------------------------------------------ one test
    def test(self, label: str, info: dict) -> dict | None:
        from engine.listen.run import in_eval_mode

        e = self.e
        model = getattr(e.trainer.model, "module", e.trainer.model)     # DDP wraps the model
        t0 = time.time()
        e.rep.info(f"Listening test ({label})...", tag="LISTEN")

        def on_item(i, n, row):
            e.emit("listen_progress", label=label, done=i, total=n, item=row["id"], cer=row["cer"], flags=row["flags"])

        try:
            with in_eval_mode(model) as xtts:
                result = self.listener.test(xtts, label, info=info, on_item=on_item,
                                            should_stop=lambda: bool(e.stop_requested))
        except InterruptedError:
            e.rep.info("Listening test interrupted by the stop request", tag="LISTEN")
            return None
        except Exception as exc:  # noqa: BLE001 - listening must never kill the training run
            traceback.print_exc()
            self.failed = True
            e.rep.warn(f"listening test failed, listening is off for the rest of the run: "
                       f"{type(exc).__name__}: {exc}", tag="LISTEN")
            return None
        finally:
            self._release()
        cost = time.time() - t0
        self.spent += cost
        self.last_cost = cost
        if label != "base":
            self.tests_after_base += 1
        from engine.listen.job import _event_summary

        e.emit("listen", label=label, source="train", step=info.get("step"), epoch=info.get("epoch"),
               train_loss=info.get("train_loss"), seconds=round(cost, 2), synth_seconds=result["synth_seconds"],
               score_seconds=result["score_seconds"], share=round(self.spent / max(1e-9, time.time() - self.t0), 4),
               result=str(Path(e.run) / "listen" / label / "result.json"), **_event_summary(result))
        s = result["summary"]
        e.rep.info(f"LISTEN {label}: CER {s['cer']:.3f} | similarity {s['similarity'] or 0:.3f} | "
                   f"MOS {s['mos'] if s['mos'] is not None else 'n/a'} | flagged {s['flagged']}/{s['sentences']} "
                   f"({cost:.1f} s)", tag="LISTEN")
        if label != "base":
            self._after_test(label, info)
        return result

    def _after_test(self, label: str, info: dict) -> None:
        from engine.listen import select
        from engine.listen.run import load_results

        e = self.e
        results = load_results(e.run)
        rec = select.recommend(results)
        if rec and rec["label"] == label:
            path = save_best_listen(e, rec)
            if path is not None:
                e.emit("best_listen", path=str(path), label=label, step=info.get("step"), epoch=info.get("epoch"),
                       reason=rec["reason"], cer=rec["cer"], similarity=rec["similarity"])
                e.rep.info(f"BEST LISTEN = {path} ({rec['reason']})", tag="LISTEN")
        alert = select.overtraining(results)
        if alert and "listen_overtraining" not in getattr(e, "_listen_alerts", set()):
            e._listen_alerts = getattr(e, "_listen_alerts", set()) | {"listen_overtraining"}
            e.rep.warn(alert["msg"], tag="LISTEN", alert=alert["kind"])
            e.emit("alert", level="warning", global_step=info.get("step"), **alert)
            if e.cfg.get("best_by") == "listen" and int(e.cfg.get("early_stop_patience") or 0) > 0:
                request_early_stop(e, "early stopping: the listening test got worse (see the alert); "
                                      "BEST LISTEN is kept")


def check_before_training(cfg: dict) -> None:
    """Cheap checks of the listening options before anything heavy starts (one clear message each)."""
    every = parse_every(cfg.get("listen_every", "0"))
    if every == 0:
        return
    from engine.listen.testset import extra_datasets

    for d in extra_datasets(cfg):
        if not Path(d).is_dir():
            raise ListenError(f"--listen-datasets: folder not found: {d}")


def check_listening(engine) -> None:
    """Before the pre-flight: the listening options' cheap checks, as a one-line failure."""
    from engine.train.errors import UserFacingError

    try:
        check_before_training(engine.cfg)
    except ListenError as exc:
        raise UserFacingError(str(exc)) from None


def start_listening(engine) -> None:
    """After the model is built (and restored): load the listening models, score the base."""
    from engine.train.errors import UserFacingError

    model = getattr(engine.trainer.model, "module", engine.trainer.model)
    try:
        engine.listening.start(model.xtts)
    except ListenError as exc:   # bad listening input: one line, before the first step
        raise UserFacingError(f"listening test: {exc}") from None


def save_best_listen(engine, rec: dict) -> Path | None:
    """BEST LISTEN: the weights the listening test recommends, saved next to BEST MODEL."""
    from engine.train import checkpoints as ck

    if not engine.dist.is_main:
        return None
    data = engine.saver.payload(full=False)
    data["listen"] = rec
    path = engine.run / "best_listen.pth"
    ck.write(path, data)
    return path


def request_early_stop(engine, reason: str) -> None:
    from engine.train.errors import StopTraining

    if engine.pending_stop is None:
        engine.rep.info(reason, tag="TRAIN")
        engine.pending_stop = StopTraining("early_stop", reason)
