"""Learning-rate schedules, all counted in optimizer steps, as one LambdaLR.

Every schedule is `lr = base_lr * warmup(s) * shape(s) * plateau_scale`, where s is the number of
optimizer updates done. Periods derive from the planned total, so short runs never produce a
zero period (the "cosine warm restarts with fewer than 4 epochs" crash). `plateau` halves the
scale when the eval loss has not improved for `patience` evaluations (floor: base/100).
"""

from __future__ import annotations

import math

import torch


def describe(name: str, total_steps: int, steps_per_epoch: int, epochs: int, lr: float, warmup: int) -> dict:
    """The parameters a schedule will use (shown in the guide's `[INFO] Learning Scheduler` line)."""
    total = max(1, total_steps)
    eta_min = lr / 5
    if name == "cosine-warm-restarts":
        t0 = max(1, steps_per_epoch * max(1, epochs // 4))
        return {"T_0": t0, "T_mult": 1, "eta_min": eta_min, "warmup_steps": warmup, "unit": "optimizer steps"}
    if name == "cosine":
        return {"T_max": max(1, total - warmup), "eta_min": eta_min, "warmup_steps": warmup}
    if name == "step":
        return {"step_size": max(1, total // 3), "gamma": 0.5, "warmup_steps": warmup}
    if name == "exponential":
        return {"gamma": 0.1 ** (1.0 / total), "final_factor": 0.1, "warmup_steps": warmup}
    if name == "plateau":
        return {"factor": 0.5, "patience_evals": 1, "min_lr": lr / 100, "warmup_steps": warmup}
    return {"warmup_steps": warmup}


class EngineLR(torch.optim.lr_scheduler.LambdaLR):
    def __init__(self, optimizer, name: str, params: dict, lr: float):
        self.name = name
        self.params = dict(params)
        self.base = lr
        self.plateau_scale = 1.0
        self.plateau_best = math.inf
        self.plateau_bad = 0
        warm = int(params.get("warmup_steps", 0))

        def factor(step: int) -> float:
            w = min(1.0, (step + 1) / warm) if warm > 0 else 1.0
            s = max(0, step - warm)
            p = self.params
            if name == "cosine-warm-restarts":
                t = s % p["T_0"]
                f = p["eta_min"] / lr + (1 - p["eta_min"] / lr) * (1 + math.cos(math.pi * t / p["T_0"])) / 2
            elif name == "cosine":
                t = min(s, p["T_max"])
                f = p["eta_min"] / lr + (1 - p["eta_min"] / lr) * (1 + math.cos(math.pi * t / p["T_max"])) / 2
            elif name == "step":
                f = p["gamma"] ** (s // p["step_size"])
            elif name == "exponential":
                f = p["gamma"] ** s
            else:
                f = 1.0
            return w * f * self.plateau_scale

        super().__init__(optimizer, lr_lambda=factor)

    def on_eval(self, loss: float) -> bool:
        """Plateau logic; returns True when the learning rate was reduced."""
        if self.name != "plateau":
            return False
        if loss < self.plateau_best - 1e-4 * abs(self.plateau_best if math.isfinite(self.plateau_best) else 0):
            self.plateau_best = loss
            self.plateau_bad = 0
            return False
        self.plateau_bad += 1
        if self.plateau_bad > int(self.params.get("patience_evals", 1)):
            new = max(self.plateau_scale * self.params.get("factor", 0.5), 0.01)
            changed = new < self.plateau_scale
            self.plateau_scale = new
            self.plateau_bad = 0
            for group, lam in zip(self.optimizer.param_groups, self.lr_lambdas):
                group["lr"] = self.base * lam(self.last_epoch)
            return changed
        return False

    def state_dict(self) -> dict:
        return {
            "last_epoch": self.last_epoch, "name": self.name, "plateau_scale": self.plateau_scale,
            "plateau_best": self.plateau_best, "plateau_bad": self.plateau_bad,
            "_last_lr": getattr(self, "_last_lr", None),
        }

    def load_state_dict(self, state: dict) -> None:
        self.last_epoch = int(state["last_epoch"])
        self.plateau_scale = float(state.get("plateau_scale", 1.0))
        self.plateau_best = float(state.get("plateau_best", math.inf))
        self.plateau_bad = int(state.get("plateau_bad", 0))
        for group, lam in zip(self.optimizer.param_groups, self.lr_lambdas):
            group["lr"] = self.base * lam(self.last_epoch)
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]
