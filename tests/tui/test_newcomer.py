"""Issue 14: the studio as a newcomer meets it (resize, form state, readable messages, help)."""

from __future__ import annotations

import time

from conftest import install_run
from helpers import sync

from tui.app import TooSmall, make_app


async def until(pilot, pred, timeout=30.0, what="condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            await pilot.pause(0.2)
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@sync
async def test_resize_small_and_back_on_home_and_training(workspace):
    """80x24 -> 60x20 -> 80x24: the notice shows at once when too small, goes at once when the
    terminal is big enough again, and the keys work afterwards (on Home and on Training)."""
    install_run("stopped_run", workspace / "runs" / "r1")
    app = make_app(root=workspace, query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        for mode in ("home", "train"):
            await pilot.press("1" if mode == "home" else "5")
            await until(pilot, lambda: app.current_mode == mode, what=mode)
            await pilot.resize_terminal(60, 20)
            await pilot.pause(0.3)
            assert isinstance(app.screen, TooSmall), f"{mode}: no notice at 60x20"
            assert "60x20" in str(app.screen.query_one("#msg").render())
            await pilot.resize_terminal(80, 24)
            await pilot.pause(0.3)
            assert not isinstance(app.screen, TooSmall), f"{mode}: notice stays at 80x24"
            assert app.current_mode == mode
        await pilot.press("2")  # keys work again
        await until(pilot, lambda: app.current_mode == "prep", what="prep after resize")
        # a small step (79 columns) and back again
        await pilot.resize_terminal(79, 24)
        await pilot.pause(0.2)
        assert isinstance(app.screen, TooSmall)
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.2)
        assert not isinstance(app.screen, TooSmall)


def _model_folder(folder, exported_from=None):
    import json

    folder.mkdir(parents=True)
    cfg = {"model": "xtts"}
    if exported_from:
        cfg["xtts_ft"] = {"exported_from": exported_from}
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "model.pth").write_bytes(b"x")
    return folder


@sync
async def test_new_project_after_a_finished_one_starts_empty(workspace):
    """Home's n after a finished project: Prep has no sources, no speaker and a new dataset folder
    in this workspace; Params offers a base model (not an exported finetune) and a new run folder."""
    import json

    from helpers import make_dataset

    ds = make_dataset(workspace / "datasets" / "voice")
    run = install_run("stopped_run", workspace / "runs" / "voice-run", dataset=str(ds))
    _model_folder(workspace / "models" / "xtts" / "a-finetune", exported_from=str(run))  # sorts first
    base = _model_folder(workspace / "models" / "xtts" / "base")
    (workspace / ".xtts-ft").mkdir()
    (workspace / ".xtts-ft" / "studio.json").write_text(json.dumps({
        "dataset": str(ds), "run": str(run),
        "prep_form": {"out": str(ds), "sources": [str(workspace)], "speaker": "old", "whisper": "tiny"},
        "params_form": {"_run": str(run), "epochs": "3"}}))
    app = make_app(root=workspace, query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: len(app.screen.rows) >= 2, what="home rows")
        await pilot.press("n")
        await until(pilot, lambda: app.current_mode == "prep", what="prep")
        scr = app.screen
        assert scr.sources == []
        out = scr.query_one("#opt-out").value
        assert out == "datasets/my_voice" and not (workspace / out).exists()
        assert scr.query_one("#opt-speaker").value == ""
        assert scr.query_one("#opt-whisper").value == "tiny"  # a machine setting stays
        assert "out" not in scr.errors
        assert app.studio.dataset is None and app.run_model.run is None
        # adding to an existing dataset is an explicit choice
        scr.query_one("#opt-out").value = "datasets/voice"
        await pilot.pause(0.2)
        assert "holds a dataset" in scr.errors["out"]
        scr.query_one("#opt-add_existing").value = True
        await pilot.pause(0.2)
        assert "out" not in scr.errors
        # Params: a base model, a run folder no run has used
        app.set_project(dataset=ds, follow=False)
        await pilot.press("4")
        await until(pilot, lambda: app.current_mode == "params", what="params")
        p = app.screen
        assert app.studio.path(p.query_one("#p-_model").value) == base
        r = p.query_one("#p-_run").value
        assert r.startswith("runs/voice-") and not (workspace / r).exists()
        assert "_run" not in p.errors
    saved = json.loads((workspace / ".xtts-ft" / "studio.json").read_text())
    assert saved["prep_form"]["sources"] == [] and saved["prep_form"]["out"] == "datasets/voice"


@sync
async def test_a_started_run_gives_the_next_run_a_new_folder(workspace):
    """After a run starts from the folder in the form, coming back to Params offers a new one."""
    from helpers import make_dataset

    ds = make_dataset(workspace / "datasets" / "voice")
    app = make_app(root=workspace, dataset=ds, start="params", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "params")
        first = app.screen.query_one("#p-_run").value
        install_run("stopped_run", workspace / first, dataset=str(ds))  # a run started there
        await pilot.press("1")
        await until(pilot, lambda: app.current_mode == "home")
        await pilot.press("4")
        await until(pilot, lambda: app.current_mode == "params")
        second = app.screen.query_one("#p-_run").value
        assert second != first and not (workspace / second).exists() and "_run" not in app.screen.errors


def test_a_copied_workspace_points_at_its_own_files(tmp_path):
    """studio.json keeps paths inside the workspace relative: a copy opens its own dataset."""
    import shutil

    from tui.studio import Studio

    ws = tmp_path / "ws"
    (ws / "datasets" / "v").mkdir(parents=True)
    st = Studio(ws)
    st.set_current(dataset=ws / "datasets" / "v")
    st.save()
    shutil.copytree(ws, tmp_path / "copy")
    cp = Studio(tmp_path / "copy")
    assert cp.dataset == (tmp_path / "copy" / "datasets" / "v").resolve()
    assert cp.find_datasets() == [cp.dataset]


def _alive(run):
    """Mark a recorded run as going on: its process.json names a live process (this one)."""
    import json
    import os

    import psutil

    (run / "process.json").write_text(json.dumps({"pid": os.getpid(),
                                                  "create_time": psutil.Process().create_time()}))


@sync
async def test_attach_with_one_running_run_wherever_the_cursor_is(workspace):
    from helpers import make_dataset

    ds = make_dataset(workspace / "datasets" / "voice")
    install_run("stopped_run", workspace / "runs" / "a-old", dataset=str(ds))
    live = install_run("stopped_run", workspace / "runs" / "b-live", dataset=str(ds))
    _alive(live)
    app = make_app(root=workspace, query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: len(app.screen.rows) == 3, what="home rows")
        assert app.screen.query_one("#home-table").cursor_row == 0  # on the dataset
        await pilot.press("a")
        await until(pilot, lambda: app.current_mode == "train", what="attached")
        assert app.studio.run == live.resolve()


@sync
async def test_attach_with_several_running_runs_asks(workspace):
    from tui.widgets.dialogs import Choose

    runs = [install_run("stopped_run", workspace / "runs" / n) for n in ("r1", "r2")]
    for r in runs:
        _alive(r)
    app = make_app(root=workspace, query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: len(app.screen.rows) == 2, what="home rows")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, Choose), what="the question")
        await pilot.press("down", "enter")
        await until(pilot, lambda: app.current_mode == "train", what="attached")
        assert app.studio.run == runs[1].resolve()


@sync
async def test_preset_label_says_custom_once_a_value_changes(workspace):
    from textual.widgets import Select

    app = make_app(root=workspace, start="params", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "params")
        scr = app.screen
        preset = scr.query_one("#p-preset", Select)
        preset.value = "standard"
        await pilot.pause(0.3)
        assert scr.query_one("#p-epochs").value == "12" and preset.value == "standard"
        scr.query_one("#p-epochs").value = "14"
        await pilot.pause(0.3)
        assert preset.value == Select.NULL and "(custom)" in str(preset.query_one("SelectCurrent #label").render())
    # a saved form whose values match its preset keeps it; one that does not says custom
    app = make_app(root=workspace, start="params", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "params")
        await pilot.pause(0.3)
        assert app.screen.query_one("#p-preset", Select).value == Select.NULL
        assert app.screen.query_one("#p-epochs").value == "14"
