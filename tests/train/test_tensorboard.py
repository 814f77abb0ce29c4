"""TensorBoard event files beside events.jsonl (issue 13): a real training run writes losses, eval,
LR, step time and the A/B samples as audio into R/tensorboard/, readable by TensorBoard's own reader."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from conftest import events


def _read(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "audio": 0})
    acc.Reload()
    return acc


def test_training_run_writes_tensorboard_files(main_run):
    run = main_run["run"]
    tb = run / "tensorboard"
    assert any(p.name.startswith("events.out.tfevents") for p in tb.iterdir())
    acc = _read(tb)
    tags = acc.Tags()["scalars"]
    for tag in ("train/loss", "train/loss_text_ce", "train/loss_mel_ce", "train/lr", "time/step_time",
                "eval/avg_loss", "train/epoch_loss", "ram/process_rss_mb"):
        assert tag in tags, (tag, tags)
    evs = main_run["events"]
    steps = [e for e in evs if e["type"] == "step"]
    loss = acc.Scalars("train/loss")
    assert [s.step for s in loss] == [e["global_step"] for e in steps]
    assert np.allclose([s.value for s in loss], [e["loss"] for e in steps], rtol=1e-6)
    evals = [e for e in evs if e["type"] == "eval"]
    assert np.allclose([s.value for s in acc.Scalars("eval/avg_loss")], [e["avg_loss"] for e in evals], rtol=1e-6)
    # the A/B samples as audio
    samples = [e for e in evs if e["type"] == "sample"]
    assert samples and len(acc.Tags()["audio"]) == len(samples)
    assert any("finetuned" in t for t in acc.Tags()["audio"]) and any("base" in t for t in acc.Tags()["audio"])


def test_sink_mirrors_events_and_survives_bad_input(tmp_path):
    from engine.events import EventWriter
    from engine.train.tensorboard import TensorBoardEvents

    wav = tmp_path / "s.wav"
    sf.write(str(wav), (0.1 * np.sin(np.arange(24000) / 10)).astype(np.float32), 24000)
    ev = TensorBoardEvents(EventWriter(tmp_path / "events.jsonl"), tmp_path)
    ev.emit("step", global_step=1, loss=2.5, loss_text_ce=0.02, loss_mel_ce=2.48, lr=1e-5, grad_norm=None,
            step_time=0.1, loader_time=0.01)
    ev.emit("step", global_step=2, loss=float("nan"), lr="oops")  # nothing usable: skipped, no crash
    ev.emit("resources", gpu={"available": True, "used_mb": 1000.0, "util_percent": 50}, ram=None)
    ev.emit("sample", variant="finetuned", path=str(wav), tag="final")
    ev.emit("sample", variant="base", path=str(tmp_path / "missing.wav"), tag="final")
    ev.close()
    lines = events(tmp_path)
    assert [e["type"] for e in lines] == ["step", "step", "resources", "sample", "sample"]  # jsonl unchanged
    acc = _read(tmp_path / "tensorboard")
    assert [s.value for s in acc.Scalars("train/loss")] == [2.5]
    assert [s.step for s in acc.Scalars("gpu/used_mb")] == [2]
    assert acc.Tags()["audio"] == ["samples/final/finetuned_1"]
