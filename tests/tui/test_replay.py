"""Replay recorded events.jsonl files into the training screen: no training, no GPU."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import install_run
from helpers import EventLog, sync, write_config

from tui.app import make_app
from tui.runmodel import RunModel, Series


async def settle(app, pilot, pred, timeout=10.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            await pilot.pause(0.8)  # let the timer-driven redraw happen
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out waiting for the replay")


def screen_text(app) -> str:
    from textual.widgets import Static

    return "\n".join(str(w.render()) for w in app.screen.query(Static))


@sync
async def test_replay_real_tiny_run(workspace):
    run = install_run("tiny_run", workspace / "runs" / "tiny")
    app = make_app(root=workspace, run=run, start="train", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        m = app.run_model
        await settle(app, pilot, lambda: m.state == "finished" and not m.replaying)
        assert m.global_step == 28 and m.epochs == 4 and len(m.train_loss) == 28
        assert len(m.eval_loss) == 4 and m.best and m.best["global_step"] == 28
        assert len(m.samples) == 2
        text = screen_text(app)
        assert "FINISHED" in text and "no GPU" in text and "best" in text
        # a finished run can be resumed (r) but not stopped (s) or detached
        assert app.screen.check_action("stop", ()) is False
        assert app.screen.check_action("detach", ()) is False


@sync
async def test_replay_alerts_banner_and_advice(workspace):
    run = install_run("alerts_run", workspace / "runs" / "alerts")
    app = make_app(root=workspace, run=run, start="train", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        m = app.run_model
        await settle(app, pilot, lambda: m.state == "finished" and not m.replaying)
        kinds = [a["kind"] for a in m.alerts]
        assert kinds.count("oom") == 1 and "overtraining" in kinds and "low_vram" in kinds
        assert m.config_changes and m.config_changes[0]["grad_accum"] == 2
        banner = app.screen.query_one("#banner")
        assert banner.has_class("shown")
        assert "OVERTRAINING" in str(banner.render())
        assert "learning rate" in str(banner.render()).lower()  # the guide's advice
        assert "VRAM" in screen_text(app) and "GB" in screen_text(app)
        await pilot.press("x")
        await pilot.pause(0.1)
        assert not banner.has_class("shown")


@sync
async def test_replay_failed_run_shows_reason_and_oom_advice(workspace):
    run = install_run("failed_run", workspace / "runs" / "failed")
    app = make_app(root=workspace, run=run, start="train", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        m = app.run_model
        await settle(app, pilot, lambda: m.state == "failed" and not m.replaying)
        banner = str(app.screen.query_one("#banner").render())
        assert "RUN FAILED" in banner and "out of memory" in banner.lower()
        assert "batch size" in banner.lower()
        assert "FAILED" in screen_text(app)


@sync
async def test_live_alert_notifies(workspace):
    """An alert that arrives while following (not during the replay) raises a notification."""
    run = workspace / "runs" / "live"
    log = EventLog(run, t0=time.time())
    write_config(run)
    log.emit("state", state="training")
    log.fh.flush()
    app = make_app(root=workspace, run=run, start="train", query_gpu=False, poll=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        m = app.run_model
        await settle(app, pilot, lambda: not m.replaying and m.state == "training")
        log.emit("alert", kind="overtraining", level="warning", msg="eval loss stale", global_step=5)
        log.fh.flush()
        await settle(app, pilot, lambda: len(m.alerts) == 1 and not m.pending_alerts)
        assert any("Overtraining" in (n.title or "") for n in app._notifications)
    log.close()


def test_long_run_memory_is_bounded(tmp_path):
    """200k steps generated in the test: the curves stay under their cap, the last points exact."""
    run = tmp_path / "long"
    log = EventLog(run)
    n = 200_000
    for gs in range(1, n + 1):
        log.emit("step", dt=0.1, epoch=gs // 1000, epochs=200, step=gs % 1000 or 1000, steps_per_epoch=1000,
                 global_step=gs, opt_step=gs, loss_text_ce=0.05, loss_mel_ce=5.0 - gs / n, loss=5.05 - gs / n,
                 lr=5e-6, grad_norm=None, step_time=0.1, loader_time=0.0, batch_size=4, grad_accum=1)
        if gs % 1000 == 0:
            log.emit("eval", epoch=gs // 1000, global_step=gs, avg_loss_text_ce=0.05, avg_loss_mel_ce=5.0,
                     avg_loss=5.05 - gs / n)
    log.close()
    from tui.runmodel import EventTail

    m = RunModel(run)
    tail = EventTail(run / "events.jsonl")
    while True:
        evs = tail.poll(max_bytes=1 << 20)
        if not evs:
            break
        m.absorb_all(evs)
    assert m.events == n + n // 1000 and m.global_step == n
    assert len(m.train_loss) < m.cap and m.train_loss.count == n
    assert m.train_loss.xs[-1] == n and abs(m.train_loss.ys[-1] - 4.05) < 1e-9
    assert m.train_loss.xs == sorted(m.train_loss.xs)
    assert len(m.eval_loss) == 200


def test_series_downsampling_keeps_shape():
    s = Series(cap=100)
    for i in range(10_000):
        s.add(i, float(i))
    assert len(s) < 100 and s.count == 10_000
    assert all(abs(x - y) < 1e-9 for x, y in zip(s.xs, s.ys))  # a line stays a line
    s.add(1, None)
    s.add(2, float("nan"))
    assert s.count == 10_000


def test_torn_last_line_is_left_for_later(tmp_path):
    from tui.runmodel import EventTail

    p = tmp_path / "events.jsonl"
    p.write_text('{"v":1,"ts":1,"type":"state","state":"training"}\n{"v":1,"ts":2,"type":"st')
    t = EventTail(p)
    assert [e["type"] for e in t.poll()] == ["state"]
    with open(p, "a") as fh:
        fh.write('ep","global_step":1}\n')
    assert [e["type"] for e in t.poll()] == ["step"]


@sync
async def test_replay_two_gpus_one_gauge_each(workspace):
    """A distributed run (hand-made from docs/events.md: --gpus 0,1, batch 4 per GPU, accumulation 2):
    one VRAM gauge per GPU from the `gpus` list of `resources`, the effective batch in the losses line."""
    from tui.widgets.common import Gauge

    run = install_run("multi_gpu_run", workspace / "runs" / "duo")
    app = make_app(root=workspace, run=run, start="train", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        m = app.run_model
        await settle(app, pilot, lambda: m.state == "finished" and not m.replaying)
        assert m.world_size == 2 and len(m.gpus) == 2
        gauges = [g for g in app.screen.query(Gauge) if g.id != "ram"]
        texts = [str(g.render()) for g in gauges]
        assert len(gauges) == 2, texts
        assert texts[0].startswith("GPU0") and texts[1].startswith("GPU1")
        assert "17.0/24.0 GB" in texts[0] and "16.6/24.0 GB" in texts[1] and "96%" in texts[0]
        assert "RAM" in str(app.screen.query_one("#ram").render())
        assert "batch 4 x 2 GPUs x 2 = 16" in screen_text(app)


@sync
async def test_a_failed_run_without_checkpoint_offers_start_again(workspace, monkeypatch):
    """A run that ended before its first checkpoint: r asks to start it again, then runs `resume --restart`."""
    run = install_run("failed_run", workspace / "runs" / "failed")
    app = make_app(root=workspace, run=run, start="train", query_gpu=False)
    calls = []
    monkeypatch.setattr(app.studio, "run_engine", lambda args, timeout=60: calls.append(args) or (0, "started"))
    async with app.run_test(size=(80, 24)) as pilot:
        m = app.run_model
        await settle(app, pilot, lambda: m.state == "failed" and not m.replaying)
        if app.current_mode != "train":
            await pilot.press("5")
            await pilot.pause(0.5)
        banner = app.screen.query_one("#banner")
        await settle(app, pilot, lambda: m.state == "failed" and not m.replaying and banner.shown_key)
        assert banner.shown_key[4].startswith("r start again"), banner.shown_key
        await pilot.press("r")
        await pilot.pause(0.5)
        assert "Start the run again?" in screen_text(app)
        await pilot.press("enter")
        t0 = time.monotonic()
        while not calls and time.monotonic() - t0 < 10:
            await pilot.pause(0.1)
    assert calls == [["resume", str(run), "--detach", "--restart"]]
