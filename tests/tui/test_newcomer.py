"""Issue 14: the studio as a newcomer meets it (resize, form state, readable messages, help)."""

from __future__ import annotations

import time

from conftest import install_run
from helpers import sync, until

from tui.app import TooSmall, make_app


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
        await until(pilot, lambda: scr.form_ready, what="form ready")
        preset.value = "standard"
        await until(pilot, lambda: scr.query_one("#p-epochs").value == "12", what="preset applied")
        assert preset.value == "standard"
        scr.query_one("#p-epochs").value = "14"
        await until(pilot, lambda: preset.value == Select.NULL, what="custom")
        assert "(custom)" in str(preset.query_one("SelectCurrent #label").render())
    # a saved form whose values match its preset keeps it; one that does not says custom
    app = make_app(root=workspace, start="params", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "params" and app.screen.form_ready)
        await pilot.pause(0.3)
        assert app.screen.query_one("#p-preset", Select).value == Select.NULL
        assert app.screen.query_one("#p-epochs").value == "14"


@sync
async def test_help_screen_from_the_key_and_the_palette(workspace):
    """? opens the studio's help (what the screen is for, its keys); Escape and ? close it; the
    palette finds it by "help" and no longer offers Textual's generic key panel."""
    from tui.widgets.help import HelpScreen

    app = make_app(root=workspace, start="train", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "train")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        text = str(app.screen.query_one("#help-text").render())
        assert "Follow a run" in text and "Stop now" in text and "F1-F6" in text
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), what="escape closes")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("question_mark")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), what="? closes")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Help" in titles and "Keys" not in titles
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"help")
        await pilot.pause(0.8)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help from the palette")
        assert "Follow a run" in str(app.screen.query_one("#help-text").render())


def _footer_keys(screen):
    """(key, description, fits) of every key the footer shows: fits when the whole label lies
    left of the palette hint, inside 80 columns."""
    from textual.widgets._footer import FooterKey

    keys = list(screen.query(FooterKey))
    limit = min(screen.size.width, *(k.region.x for k in keys if k.description == "palette")) \
        if any(k.description == "palette" for k in keys) else screen.size.width
    return [(k.key, k.description, k.region.width > 0 and k.region.right <= limit) for k in keys
            if k.description != "palette"]


@sync
async def test_every_footer_key_is_visible_at_80x24(workspace):
    """The busiest state of each screen (a running run with an alert; a dataset; samples): no
    footer key is cut off or pushed out, Training's Stop now included."""
    from helpers import make_dataset, record_run

    ds = make_dataset(workspace / "datasets" / "voice")
    live = record_run(workspace / "runs" / "live", alerts=True, final=None)
    (live / "run_config.json").write_text(__import__("json").dumps({"dataset": str(ds), "epochs": 3}))
    _alive(live)
    app = make_app(root=workspace, run=live, dataset=ds, query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.run_model.alive and app.run_model.final is False or app.run_model.alive,
                    what="run followed")
        seen = {}
        for key, mode in zip("123456", ("home", "prep", "review", "params", "train", "results")):
            await pilot.press(key)
            await until(pilot, lambda: app.current_mode == mode, what=mode)
            if mode == "home":
                await until(pilot, lambda: len(app.screen.rows) == 2, what="home rows")
                app.screen.query_one("#home-table").move_cursor(row=1)
            if mode == "prep":
                app.screen.query_one("#tree").focus()
            if mode == "train":
                await until(pilot, lambda: app.screen.query_one("#banner").has_class("shown"), what="banner")
            await pilot.pause(0.5)
            keys = _footer_keys(app.screen)
            seen[mode] = {d for _k, d, _f in keys}
            cut = [(k, d) for k, d, fits in keys if not fits]
            assert not cut, f"{mode}: footer keys cut at 80 columns: {cut}"
        assert {"Stop", "Stop now", "Detach", "Dismiss", "Help"} <= seen["train"]
        assert {"Attach", "New project", "Help"} <= seen["home"]
        assert {"Edit", "Drop", "Undo", "Play", "Quit"} <= seen["review"] or {"Edit", "Drop", "Play"} <= seen["review"]


@sync
async def test_step_bar_keeps_the_run_name_at_80_columns(workspace):
    name = "demo-voice-1204-1730"
    install_run("stopped_run", workspace / "runs" / name)
    app = make_app(root=workspace, run=workspace / "runs" / name, start="train", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "train" and app.run_model.state == "stopped")
        await pilot.pause(0.3)
        bar = app.screen.query_one("#stepbar")
        line = str(bar.render())
        assert name in line and len(line) <= 80, line
        assert "5 Train" in line and "1 Home" in line
        bar.set_fkeys(True)  # F-keys, shown while typing, are longer: still the whole name
        await pilot.pause(0.2)
        assert name in str(bar.render())
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.3)
        assert f"run {name}" in str(app.screen.query_one("#stepbar").render())


@sync
async def test_long_log_lines_scroll_sideways_and_banners_are_whole(workspace):
    """Training at 80x24: a log line longer than the screen can be scrolled to its end, and a
    live small-dataset alert shows its whole message and advice in the banner."""
    from helpers import record_run

    live = record_run(workspace / "runs" / "live", final=None)
    _alive(live)
    app = make_app(root=workspace, run=live, start="train", query_gpu=False, poll=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "train" and app.run_model.global_step == 30)
        scr = app.screen
        log = scr.query_one("#train-log")
        await until(pilot, lambda: log.virtual_size.width > log.size.width, what="a line wider than the log")
        log.focus()
        await pilot.press("end", "right", "right", "right")
        await pilot.pause(0.2)
        assert log.scroll_x > 0
        with open(live / "events.jsonl", "a") as fh:
            fh.write(__import__("json").dumps({
                "v": 2, "code": "small_dataset", "ts": time.time(), "type": "log", "tag": "DATA", "level": "warning",
                "msg": "Very small training dataset",
                "details": ["14 clips, 1.0 minutes; the guide recommends several minutes of clean speech"]}) + "\n")
        banner = scr.query_one("#banner")
        await until(pilot, lambda: banner.has_class("shown"), what="banner")
        await pilot.pause(0.3)
        assert _whole(banner)
        assert "varied sentence lengths" in str(banner.render())


def _whole(widget) -> bool:
    """The widget shows all its text: its height holds every line the text wraps to."""
    need = widget.get_content_height(widget.region, widget.region, widget.content_region.width)
    return bool(widget.display) and widget.content_region.height >= need >= 1


@sync
async def test_field_messages_are_whole_where_the_field_is(workspace):
    """The whole reason of an invalid value shows under its field at 80 columns (Params, Prep)."""
    app = make_app(root=workspace, start="params", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "params")
        scr = app.screen
        scr.query_one("#p-lr").value = "abc"
        scr.query_one("#p-epochs").value = "0"
        await pilot.pause(0.3)
        for key in ("lr", "epochs"):
            msg = scr.query_one(f"#m-{key}")
            scr.query_one("#params-scroll").scroll_to_widget(msg, animate=False)
            await pilot.pause(0.2)
            assert msg.display and scr.errors[key] in str(msg.render())
            assert msg.region.width >= 40 and msg.region.height >= 1
            assert _whole(msg), (key, str(msg.render()), msg.region)
        assert "on" in str(scr.query_one("#e-fused_adamw").render()) or "off" in str(scr.query_one(
            "#e-fused_adamw").render())  # switches say on/off in words (NO_COLOR)
    app = make_app(root=workspace, start="prep", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "prep")
        scr = app.screen
        scr.switch_tab("tab-options")
        (workspace / "datasets" / "old").mkdir(parents=True)
        (workspace / "datasets" / "old" / "dataset.json").write_text("{}")
        scr.query_one("#opt-out").value = "datasets/old"
        await pilot.pause(0.3)
        msg = scr.query_one("#m-out")
        assert msg.display and "type a new name, or switch on 'Add to existing'" in str(msg.render())
        assert _whole(msg)
        assert str(scr.query_one("#e-add_existing").render()) == "off"
        scr.query_one("#opt-add_existing").value = True
        await pilot.pause(0.3)
        assert not scr.query_one("#m-out").display and str(scr.query_one("#e-add_existing").render()) == "on"


def test_each_play_is_reaped(tmp_path, monkeypatch):
    """A finished player leaves no zombie behind (one per play before)."""
    import psutil

    from tui import audio

    class App:
        is_web = False
        notes: list = []

        def notify(self, msg, **kw):
            self.notes.append(msg)

    for k in ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY"):
        monkeypatch.delenv(k, raising=False)
    player = tmp_path / "player.sh"
    player.write_text("#!/bin/sh\nsleep 0.5\n")  # still playing when the studio lets go of it
    player.chmod(0o755)
    monkeypatch.setenv("XTTS_FT_PLAYER", str(player))
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"RIFF")
    app = App()
    assert audio.play(app, wav) == "player"
    assert app.notes[-1].startswith("Playing")
    __import__("gc").collect()
    time.sleep(1.5)  # the player has ended by now

    def zombies():
        return [c for c in psutil.Process().children() if c.status() == psutil.STATUS_ZOMBIE]

    t0 = time.time()
    while zombies() and time.time() - t0 < 10:
        time.sleep(0.1)
    assert not zombies()


@sync
async def test_split_marks_parts_under_the_minimum_and_export_says_export(workspace):
    from helpers import make_dataset, record_run

    from tui.widgets.dialogs import Choose, Prompt

    import json

    ds = make_dataset(workspace / "datasets" / "voice")  # clips of 3-5 s with a pause at 1.5 s
    m = json.loads((ds / "dataset.json").read_text())
    m["settings"]["min_seconds"] = 1.2
    (ds / "dataset.json").write_text(json.dumps(m))
    app = make_app(root=workspace, dataset=ds, start="review", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "review" and len(app.screen.rows) == 6)
        await pilot.press("down", "down")  # a 5 s clip: its middle splits fine, its ends do not
        await pilot.pause(0.2)
        assert app.screen.current()["duration"] == 5.0
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, Choose), what="split dialog")
        opts = [str(o.prompt) for o in app.screen.query_one("#choose-list").options]
        assert opts[0].endswith("⚠") and opts[-1].endswith("⚠")  # a first or last word alone: too short
        assert all(" s" in o for o in opts) and not all(o.endswith("⚠") for o in opts)
        assert any("under the 1.2 s minimum" in str(w.render()) for w in app.screen.query("Static"))
        await pilot.press("ctrl+c")
    run = record_run(workspace / "runs" / "done")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "checkpoint_30.pth").write_bytes(b"x")
    app = make_app(root=workspace, run=run, start="results", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "results" and app.screen.rows, what="checkpoints")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, Prompt), what="export dialog")
        assert str(app.screen.query_one("#ok").label).startswith("Export")


def test_prep_lists_ignored_files_and_the_report_says_so(tmp_path):
    """A non-audio file in a source folder is listed with its reason (a transcript beside its
    recording and a metadata file are not: they are read); the report shows the list and explains
    the clip SNR column."""
    from engine.audio import intake

    from tui.screens.prep import SNR_LEGEND, quality_report

    src = tmp_path / "rec"
    src.mkdir()
    for name in ("a.wav", "a.txt", "notes.pdf", "metadata.csv"):
        (src / name).write_bytes(b"x")
    found = intake.discover([src])
    assert [f.rel for f in found.files] == ["a.wav"]
    assert found.skipped == [{"path": str(src / "notes.pdf"), "reason": "not an audio file (.pdf)"}]
    report = str(quality_report(tmp_path, {"segments": [], "sources": [], "skipped": found.skipped}))
    assert "Skipped (1)" in report and "notes.pdf: not an audio file (.pdf)" in report
    assert "–: none kept or no pause" in SNR_LEGEND
