"""Fast tests: option validation, schedules, the overtraining/early-stopping rules, model-file checks."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from engine.cli import main as cli_main
from engine.model.files import REQUIRED_FILES, ModelFilesError, check_model
from engine.train import config as tc
from engine.train.monitor import Monitor
from engine.train.schedule import EngineLR, describe


# ---------------------------------------------------------------- options
def test_defaults_follow_the_guide():
    cfg = tc.resolve({"dataset": "d", "model": "m", "run": "r"})
    assert (cfg["epochs"], cfg["batch_size"], cfg["grad_accum"]) == (10, 4, 1)
    assert cfg["lr"] == 5e-6 and cfg["optimizer"] == "adamw" and cfg["scheduler"] == "cosine-warm-restarts"
    assert tc.effective_batch({"batch_size": 8, "grad_accum": 4}) == 32


@pytest.mark.parametrize("key,value,needle", [
    ("epochs", 0, "below the minimum"),
    ("epochs", "ten", "not a valid int"),
    ("lr", "abc", "not a valid float"),
    ("lr", 5.0, "above the maximum"),
    ("batch_size", 2.5, "not a valid int"),
    ("optimizer", "cosine", "not one of"),  # a scheduler name is never taken as an optimizer
    ("scheduler", "adamw", "not one of"),
    ("precision", "fp8", "not one of"),
    ("max_audio_seconds", 60, "above the maximum"),
])
def test_bad_values_are_named(key, value, needle):
    with pytest.raises(tc.ConfigError) as ei:
        tc.resolve({"dataset": "d", "model": "m", "run": "r", key: value})
    assert needle in str(ei.value) and "--" + key.replace("_", "-") in str(ei.value)


def test_toml_and_cli_precedence(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text('epochs = 3\nlr = 1e-5\n[train]\nbatch-size = 6\n')
    cfg = tc.resolve({"dataset": "d", "model": "m", "run": "r", "epochs": "5"}, str(p))
    assert cfg["epochs"] == 5 and cfg["lr"] == 1e-5 and cfg["batch_size"] == 6
    p.write_text("epocs = 3\n")
    with pytest.raises(tc.ConfigError, match="unknown key 'epocs'"):
        tc.resolve({"dataset": "d", "model": "m", "run": "r"}, str(p))


@pytest.mark.parametrize("name", list(tc.OPTIMIZERS))
def test_every_optimizer_builds_with_a_custom_lr(name):
    from trainer.trainer_utils import get_optimizer

    cls, params = tc.optimizer_spec({"optimizer": name, "weight_decay": 0.01})
    w = torch.nn.Parameter(torch.ones(3))
    opt = get_optimizer(cls, params, 3.3e-4, parameters=[w])
    assert opt.param_groups[0]["lr"] == pytest.approx(3.3e-4)


@pytest.mark.parametrize("sched", tc.SCHEDULERS)
@pytest.mark.parametrize("epochs", [1, 2, 3, 4, 9])
def test_schedules_never_crash_on_short_runs(sched, epochs):
    w = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.AdamW([w], lr=5e-6)
    spe = 3
    params = describe(sched, spe * epochs, spe, epochs, 5e-6, warmup=2)
    s = EngineLR(opt, sched, params, 5e-6)
    lrs = []
    for _ in range(spe * epochs + 5):
        opt.step()
        s.step()
        lrs.append(opt.param_groups[0]["lr"])
        s.on_eval(1.0)  # plateau: flat loss reduces the rate, others ignore it
    assert all(math.isfinite(x) and 0 < x <= 5e-6 * 1.0001 for x in lrs)
    if sched == "cosine-warm-restarts":
        assert params["T_0"] >= 1
    # state round trip
    s2 = EngineLR(opt, sched, params, 5e-6)
    s2.load_state_dict(s.state_dict())
    assert s2.last_epoch == s.last_epoch and s2.plateau_scale == s.plateau_scale


# ---------------------------------------------------------------- monitor rules
def test_overtraining_alert_and_early_stop_on_crafted_losses():
    m = Monitor(window=3, patience=4)
    # eval falls then rises while the training loss keeps falling
    seq = [(4.5, 5.0), (3.8, 4.4), (3.5, 4.0), (3.5, 3.6), (3.6, 3.2), (3.7, 2.9), (3.8, 2.6)]
    decisions = [m.observe(ev, tr, step=i) for i, (ev, tr) in enumerate(seq)]
    assert [d.new_best for d in decisions] == [True, True, True, False, False, False, False]
    kinds = [a["kind"] for d in decisions for a in d.alerts]
    assert kinds == ["overtraining"]  # fires once, at the 3rd stale eval
    assert decisions[5].alerts and not decisions[4].alerts
    assert [d.stop for d in decisions] == [False] * 6 + [True]
    assert "patience 4" in decisions[6].stop_reason and m.best == 3.5


def test_plateau_alert_and_rearm():
    m = Monitor(window=3, patience=0)
    seq = [(3.0, 3.1), (3.01, 3.1), (3.02, 3.09), (3.01, 3.1)]
    ds = [m.observe(e, t) for e, t in seq]
    assert [a["kind"] for a in ds[-1].alerts] == ["plateau"]
    assert not any(d.stop for d in ds)  # early stopping off
    assert m.observe(2.0, 2.5).new_best and m.fired == set()
    restored = Monitor.from_state(m.state())
    assert restored.best == 2.0 and restored.evals == m.evals


def test_early_stop_off_by_default():
    m = Monitor()
    assert not any(m.observe(1.0 + i).stop for i in range(20))


# ---------------------------------------------------------------- model files
def test_missing_and_damaged_model_files_are_named(tmp_path):
    with pytest.raises(ModelFilesError, match="does not exist"):
        check_model(tmp_path / "nope")
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text("{not json")
    (d / "model.pth").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelFilesError) as ei:
        check_model(d)
    msg = str(ei.value)
    assert "config.json: unreadable JSON" in msg and "model.pth: not a PyTorch file" in msg
    for name in ("mel_stats.pth", "speakers_xtts.pth", "vocab.json", "dvae.pth"):
        assert f"{name}: missing" in msg


def test_check_model_cli_on_a_broken_copy(tiny_model, tmp_path, capsys):
    assert cli_main(["check-model", str(tiny_model)]) == 0
    out = capsys.readouterr().out
    assert "✓ All required files found for model: tiny" in out and "Languages (17)" in out
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken, ignore=shutil.ignore_patterns("dvae.pth", "model.pth"))
    (broken / "model.pth").write_bytes((tiny_model / "model.pth").read_bytes()[:5000])  # truncated
    assert cli_main(["check-model", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "dvae.pth: missing" in err and "model.pth:" in err and "vocab.json" not in err.split("(a model")[0]
    assert len(REQUIRED_FILES) == 6


def test_train_rejects_bad_setups_before_starting(tiny_model, dataset, tmp_path, capsys):
    base = ["train", "--dataset", str(dataset), "--model", str(tiny_model)]
    cases = [
        (base + ["--run", str(tmp_path / "a"), "--epochs", "0"], "--epochs: 0 is below the minimum"),
        (base + ["--run", str(tmp_path / "b"), "--scheduler", "adamw"], "--scheduler: 'adamw' is not one of"),
        (base + ["--run", str(tmp_path / "c"), "--language", "xx"], "--language xx: the model supports"),
        (["train", "--dataset", str(dataset), "--model", str(tmp_path), "--run", str(tmp_path / "d")],
         "config.json: missing"),
        (["train", "--dataset", str(tmp_path), "--model", str(tiny_model), "--run", str(tmp_path / "e")],
         "metadata_train.csv is missing"),
        (["train", "--model", str(tiny_model), "--run", str(tmp_path / "f")], "--dataset is required"),
    ]
    for argv, needle in cases:
        assert cli_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert needle in err, (argv, err)
    assert not any((tmp_path / n).exists() for n in "abcdef")  # nothing was started


def test_oom_without_backoff_fails_with_advice():
    from engine.train import oom
    from engine.train.errors import OOMFailure

    class Stub:
        total_steps_done = 5
        optimizer = []

    eng = type("E", (), {})()
    eng.cfg = {"oom_backoff": False}
    eng.batch_size, eng.grad_accum, eng.epoch_step = 4, 1, 2
    eng.trainer = Stub()
    logged, emitted = [], []
    eng.rep = type("R", (), {"error": lambda self, m, **k: logged.append((m, k)), "warn": lambda *a, **k: None})()
    eng.emit = lambda t, **k: emitted.append((t, k))
    eng.dist = type("D", (), {"enabled": False})()
    with pytest.raises(OOMFailure, match="back-off off"):
        oom.handle_oom(eng, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20 MiB"))
    assert "Reduce the batch size" in " ".join(logged[0][1]["details"])
    assert emitted[0][0] == "alert" and emitted[0][1]["kind"] == "oom" and emitted[0][1]["backoff"] is False
    assert oom.is_oom(RuntimeError("CUDA error: out of memory")) and not oom.is_oom(ValueError("x"))
