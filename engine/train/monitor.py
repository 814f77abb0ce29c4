"""Best model, overtraining / plateau alerts and early stopping: pure rules, no torch.

Rules (documented in docs/training.md):
- After each evaluation, a new best is an eval `avg_loss` strictly below every earlier one.
- `stale` = evaluations since the last best.
- Overtraining alert: stale >= window (default 3) and the training loss fell by more than
  TRAIN_FALL (2%) over those same evaluations (mean training loss between evals).
- Plateau alert: stale >= window, the training loss moved by at most TRAIN_FALL either way, and
  the last window+1 eval losses lie within FLAT (2%) of each other.
- Each alert fires once until the next new best re-arms it.
- Early stopping (patience P > 0): stop when stale >= P; the best checkpoint is kept.
Without eval samples the same rules run on the epoch's mean training loss (no overtraining
alert is possible then).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

TRAIN_FALL = 0.02
FLAT = 0.02


@dataclass
class Decision:
    new_best: bool = False
    alerts: list[dict] = field(default_factory=list)
    stop: bool = False
    stop_reason: str = ""


@dataclass
class Monitor:
    window: int = 3
    patience: int = 0
    best: float = math.inf
    best_step: int | None = None
    stale: int = 0
    evals: list[float] = field(default_factory=list)
    train_means: list[float | None] = field(default_factory=list)
    fired: set = field(default_factory=set)

    def observe(self, eval_loss: float, train_mean: float | None = None, step: int | None = None) -> Decision:
        d = Decision()
        self.evals.append(float(eval_loss))
        self.train_means.append(None if train_mean is None else float(train_mean))
        if eval_loss < self.best:
            self.best = float(eval_loss)
            self.best_step = step
            self.stale = 0
            self.fired.clear()
            d.new_best = True
        else:
            self.stale += 1
        w = self.window
        if self.stale >= w and len(self.evals) >= w + 1:
            t_now, t_then = self.train_means[-1], self.train_means[-(w + 1)]
            recent = self.evals[-(w + 1):]
            if t_now is not None and t_then is not None and t_then > 0:
                fall = (t_then - t_now) / t_then
                if fall > TRAIN_FALL and "overtraining" not in self.fired:
                    self.fired.add("overtraining")
                    d.alerts.append({
                        "kind": "overtraining",
                        "msg": f"Eval loss has not improved for {self.stale} evaluations while the training loss "
                               f"fell {fall * 100:.1f}%: the model may be memorising the training clips. "
                               f"Consider stopping (the best model is kept), a lower learning rate or more data.",
                        "stale_evals": self.stale, "train_fall": round(fall, 4), "best": self.best,
                    })
                elif abs(fall) <= TRAIN_FALL and "plateau" not in self.fired:
                    lo, hi = min(recent), max(recent)
                    if lo > 0 and (hi - lo) / lo <= FLAT:
                        self.fired.add("plateau")
                        d.alerts.append({
                            "kind": "plateau",
                            "msg": f"Training and eval losses have been flat for {self.stale} evaluations: "
                                   f"further epochs are unlikely to help at this learning rate.",
                            "stale_evals": self.stale, "best": self.best,
                        })
            elif t_now is None and "plateau" not in self.fired:
                lo, hi = min(recent), max(recent)
                if lo > 0 and (hi - lo) / lo <= FLAT:
                    self.fired.add("plateau")
                    d.alerts.append({"kind": "plateau", "msg": f"Loss flat for {self.stale} evaluations.",
                                     "stale_evals": self.stale, "best": self.best})
        if self.patience > 0 and self.stale >= self.patience:
            d.stop = True
            d.stop_reason = (f"early stopping: no new best eval loss for {self.stale} evaluations "
                             f"(patience {self.patience}); best {self.best:.5f}")
        return d

    def state(self) -> dict:
        return {"window": self.window, "patience": self.patience, "best": self.best, "best_step": self.best_step,
                "stale": self.stale, "evals": self.evals, "train_means": self.train_means,
                "fired": sorted(self.fired)}

    @classmethod
    def from_state(cls, s: dict, window: int | None = None, patience: int | None = None) -> "Monitor":
        m = cls(window=window or s.get("window", 3), patience=s.get("patience", 0) if patience is None else patience)
        m.best = float(s.get("best", math.inf))
        m.best_step = s.get("best_step")
        m.stale = int(s.get("stale", 0))
        m.evals = list(s.get("evals", []))
        m.train_means = list(s.get("train_means", []))
        m.fired = set(s.get("fired", []))
        return m
