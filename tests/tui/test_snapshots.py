"""Snapshots (pytest-textual-snapshot) of every screen at 80x24 and 120x40.

Deterministic by construction: fixed workspace paths (`snap_workspace`), recorded events with their
own timestamps (no clock on screen), no GPU query, saved forms instead of time-stamped defaults,
input cursors not blinking, and each screen waited for until it has drawn what it shows.
Regenerate with `pytest tests/tui/test_snapshots.py --snapshot-update`, then look at every SVG in
tests/tui/__snapshots__/ before committing.
"""

from __future__ import annotations

import json
import time

import pytest
from conftest import install_run, snap_workspace
from helpers import add_cleaning, extended_model, make_dataset

from tui.app import make_app

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


def save_state(ws, **state) -> None:
    (ws / ".xtts-ft").mkdir(parents=True, exist_ok=True)
    (ws / ".xtts-ft" / "studio.json").write_text(json.dumps(state))


async def settle(pilot, pred=lambda: True, timeout: float = 20.0) -> None:
    """Wait for `pred`, then stop every input cursor blinking and let the screen draw."""
    from textual.widgets import Input

    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("the screen never got ready for its snapshot")
        await pilot.pause(0.1)
    for w in pilot.app.screen.query(Input):
        w.cursor_blink = False
    await pilot.pause(0.4)


def cleaned_dataset(ws):
    return add_cleaning(make_dataset(ws / "datasets" / "voice"))


@pytest.mark.parametrize("size", SIZES)
def test_home(snap_compare, size):
    ws = snap_workspace("home")
    ds = cleaned_dataset(ws)
    install_run("stopped_run", ws / "runs" / "first", dataset=str(ds))
    install_run("alerts_run", ws / "runs" / "second", dataset=str(ds))
    app = make_app(root=ws, query_gpu=False)

    async def ready(pilot):
        await settle(pilot, lambda: len(getattr(app.screen, "rows", [])) == 3)

    assert snap_compare(app, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_prep_quality_report(snap_compare, size):
    ws = snap_workspace("prep")
    ds = cleaned_dataset(ws)
    save_state(ws, dataset=str(ds), prep_form={"out": str(ds), "whisper": "small", "denoise": True})
    app = make_app(root=ws, start="prep", query_gpu=False)

    async def ready(pilot):
        await settle(pilot, lambda: app.current_mode == "prep")
        app.screen.switch_tab("tab-report")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=ready)


def test_prep_options(snap_compare):
    ws = snap_workspace("prep-options")
    ds = cleaned_dataset(ws)
    save_state(ws, dataset=str(ds), prep_form={"out": str(ds), "whisper": "small", "denoise": True,
                                               "speaker_threshold": "0.8"})
    app = make_app(root=ws, start="prep", query_gpu=False)

    async def ready(pilot):
        await settle(pilot, lambda: app.current_mode == "prep")
        app.screen.switch_tab("tab-options")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_review(snap_compare, size):
    ws = snap_workspace("review")
    ds = cleaned_dataset(ws)
    app = make_app(root=ws, dataset=ds, start="review", query_gpu=False)

    async def ready(pilot):
        await settle(pilot, lambda: app.current_mode == "review" and len(app.screen.rows) == 6)
        await pilot.press("down", "down")  # the noisy clip: its measures in the detail pane

    assert snap_compare(app, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_params(snap_compare, size):
    ws = snap_workspace("params")
    ds = cleaned_dataset(ws)
    model = extended_model(ws / "models" / "xtts" / "tiny-tlh")
    save_state(ws, dataset=str(ds), params_form={"_model": str(model), "_run": str(ws / "runs" / "voice-tlh"),
                                                 "language": "tlh", "_preset": "language", "epochs": "100",
                                                 "early_stop_patience": "5"})
    app = make_app(root=ws, start="params", query_gpu=False)

    async def ready(pilot):
        await settle(pilot, lambda: app.current_mode == "params" and app.screen.model_check is not None)

    assert snap_compare(app, terminal_size=size, run_before=ready)


async def _log_at_end(pilot):
    """The tagged log scrolls to its end on a later refresh; make it be there before the picture."""
    log = pilot.app.screen.query_one("#train-log")
    log.scroll_end(animate=False, immediate=True)
    await pilot.pause(0.3)


def _followed(app):
    m = app.run_model
    scr = app.screen
    return (app.current_mode == "train" and m.final and not m.replaying and m.alive is False
            and scr.drawn_version == m.version and not scr._plot_dirty)


@pytest.mark.parametrize("size", SIZES)
def test_training_with_alert(snap_compare, size):
    ws = snap_workspace("train")
    run = install_run("alerts_run", ws / "runs" / "alerts", shift_to_now=False)
    app = make_app(root=ws, run=run, start="train", query_gpu=False, poll=0.05)

    async def ready(pilot):
        await settle(pilot, lambda: _followed(app))
        await _log_at_end(pilot)

    assert snap_compare(app, terminal_size=size, run_before=ready)


def test_training_two_gpus(snap_compare):
    """A distributed run: one VRAM gauge per GPU (docs/events.md `gpus`), effective batch per GPU x GPUs x accum."""
    ws = snap_workspace("train-duo")
    run = install_run("multi_gpu_run", ws / "runs" / "duo", shift_to_now=False)
    app = make_app(root=ws, run=run, start="train", query_gpu=False, poll=0.05)

    async def ready(pilot):
        await settle(pilot, lambda: _followed(app))
        await _log_at_end(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_results(snap_compare, size):
    ws = snap_workspace("results")
    run = install_run("tiny_run", ws / "runs" / "tiny", shift_to_now=False)
    app = make_app(root=ws, run=run, start="results", query_gpu=False, poll=0.05)

    async def ready(pilot):
        await settle(pilot, lambda: app.current_mode == "results" and app.run_model.final
                     and not app.run_model.replaying and len(app.screen.rows) > 0)

    assert snap_compare(app, terminal_size=size, run_before=ready)
