"""Pilot tests of every screen and the main flows at 80x24."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import install_run, wait_for, xtts_ft
from helpers import make_dataset, sync, until

from tui.app import TooSmall, make_app


@sync
async def test_every_screen_opens_on_an_empty_workspace(workspace):
    app = make_app(root=workspace, query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        for key, mode in zip("123456", ("home", "prep", "review", "params", "train", "results")):
            await pilot.press(key)
            await pilot.pause(0.2)
            assert app.current_mode == mode
        await pilot.press("1")
        await pilot.pause(0.3)
        assert "Nothing here yet" in str(app.screen.query_one("#home-detail").render())


@sync
async def test_too_small_terminal_says_so(workspace):
    app = make_app(root=workspace, query_gpu=False)
    async with app.run_test(size=(70, 20)) as pilot:
        await pilot.pause(0.3)
        assert isinstance(app.screen, TooSmall)
        assert "70x20" in str(app.screen.query_one("#msg").render())


@sync
async def test_home_lists_projects_and_runs_and_opens_a_run(workspace):
    ds = make_dataset(workspace / "datasets" / "voice")
    install_run("stopped_run", workspace / "runs" / "r1", dataset=str(ds))
    app = make_app(root=workspace, query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: len(app.screen.rows) == 2, what="home rows")
        assert app.screen.rows[0]["kind"] == "dataset" and app.screen.rows[1]["kind"] == "run"
        assert app.screen.rows[1]["summary"]["state"] == "stopped"
        await pilot.press("down", "enter")
        await until(pilot, lambda: app.current_mode == "train" and app.run_model.state == "stopped")
        assert app.studio.run.name == "r1"
    # the choice is remembered for the next session
    assert json.loads((workspace / ".xtts-ft" / "studio.json").read_text())["run"].endswith("r1")


@sync
async def test_review_edits_are_persisted_and_undone(workspace):
    ds = make_dataset(workspace / "datasets" / "voice")
    app = make_app(root=workspace, dataset=ds, start="review", query_gpu=False)
    seg = lambda i: json.loads((ds / "dataset.json").read_text())["segments"][i]  # noqa: E731
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "review" and len(app.screen.rows) == 6)
        await pilot.press("d")
        await until(pilot, lambda: seg(0)["excluded"], what="drop saved")
        await pilot.press("e")
        await pilot.pause(0.2)
        await pilot.press("ctrl+u", *"hello world", "enter")
        await until(pilot, lambda: seg(0)["text"] == "hello world", what="edit saved")
        assert "hello world" not in (ds / "metadata_train.csv").read_text()  # dropped: not in the CSV
        await pilot.press("u")
        await until(pilot, lambda: seg(0)["text"] != "hello world", what="undo edit")
        await pilot.press("u")
        await until(pilot, lambda: not seg(0)["excluded"], what="undo drop")
        await pilot.press("m")
        await until(pilot, lambda: "merged_from" in seg(0), what="merge saved")
        await pilot.press("f")
        await pilot.pause(0.2)
        await pilot.press("down", "enter")  # "flagged"
        await until(pilot, lambda: app.screen.filter == "flagged")
        assert all(r["flags"] for r in app.screen.rows)


@sync
async def test_params_validate_as_you_type(workspace, tiny_model):
    ds = make_dataset(workspace / "datasets" / "voice")
    app = make_app(root=workspace, dataset=ds, start="params", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "params")
        scr = app.screen
        scr.query_one("#p-_model").value = str(tiny_model)
        scr.query_one("#p-epochs").value = "0"
        scr.query_one("#p-lr").value = "abc"
        await pilot.pause(0.3)
        assert "epochs" in scr.errors and "lr" in scr.errors
        assert "below the minimum" in scr.errors["epochs"]
        await pilot.press("ctrl+r")
        await pilot.pause(0.3)
        assert not list((workspace / "runs").glob("*/run_config.json"))
        scr.query_one("#p-preset").value = "stylized"
        await pilot.pause(0.3)
        assert scr.query_one("#p-epochs").value == "25" and scr.query_one("#p-lr").value == "2e-06"
        assert "epochs" not in scr.errors and "lr" not in scr.errors
        scr.query_one("#p-batch_size").value = "3"
        await pilot.pause(0.2)
        assert "3 x 2 = 6" in str(scr.query_one("#params-info").render())
        await pilot.press("ctrl+k")
        await until(pilot, lambda: scr.model_check is not None and scr.model_check.get("ok"), what="model check")
        assert "six files found" in str(scr.query_one("#params-info").render())


@sync
async def test_params_memory_estimate_and_several_gpus(workspace):
    """The engine's estimator (engine.train.memory) decides the verdict and the largest batch; a GPU
    size can be picked without a GPU; --gpus makes the batch per GPU (effective batch, LR advice)."""
    from engine.train import memory as tm

    ds = make_dataset(workspace / "datasets" / "voice")
    app = make_app(root=workspace, dataset=ds, start="params", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "params")
        scr = app.screen
        info = lambda: str(scr.query_one("#params-info").render())  # noqa: E731
        # no GPU: the estimate is for the guide's 12 GB until a size is picked
        assert "none found" in info() and "no GPU found here: the estimate is for 12 GB" in str(scr.query_one("#m-_vram").render())
        # the guide's configuration: batch 8, 11 s clips, defaults (bf16, checkpointing auto) fit 12 GiB
        scr.query_one("#p-batch_size").value = "8"
        await pilot.pause(0.2)
        fit = tm.largest_batch(12 * tm.GiB, 11.0, precision="bf16", grad_checkpointing=True)
        assert "✓ fits" in info() and "grad ckpt on (auto)" in info() and f"max batch {fit}" in info()
        # checkpointing off at batch 16 does not fit 12 GiB; the largest batch then is the engine's
        scr.query_one("#p-grad_checkpointing").value = "off"
        scr.query_one("#p-batch_size").value = "16"
        await pilot.pause(0.2)
        e = tm.estimate(16, 11.0, precision="bf16", grad_checkpointing=False)
        lb = tm.largest_batch(12 * tm.GiB, 11.0, precision="bf16", grad_checkpointing=False)
        assert e["gpu_bytes"] > 12 * tm.GiB and 0 < lb < 16
        assert "✗ does not fit" in info() and f"peak ~{e['gpu_bytes'] / tm.GiB:.1f} of 12 GiB" in info()
        assert f"max batch {lb}" in info()
        # a bigger card picked by hand: fits, and the memory options change the estimate (fp32, no fused AdamW)
        scr.query_one("#p-_vram").value = "48"
        await pilot.pause(0.2)
        assert "✓ fits" in info() and "of 48 GiB" in info()
        scr.query_one("#p-precision").value = "fp32"
        scr.query_one("#p-fused_adamw").value = False
        await pilot.pause(0.2)
        e = tm.estimate(16, 11.0, precision="fp32", grad_checkpointing=False, optimizer="adamw-foreach")
        assert f"peak ~{e['gpu_bytes'] / tm.GiB:.1f} of 48 GiB" in info()
        # every memory option of the engine is in the form
        for name in ("precision", "grad_checkpointing", "tanh_gelu", "fused_adamw", "frozen_off_gpu", "adamw_8bit",
                     "gpus"):
            assert scr.query_one(f"#p-{name}") is not None
        # two GPUs (as the GPU query reports them): batch per GPU, effective batch and the LR advice
        app.gpu = {"gpu": {"available": True, "name": "RTX A5000", "total_mb": 24564.0, "count": 2}}
        scr.query_one("#p-_vram").value = "auto"
        scr.query_one("#p-batch_size").value = "4"
        scr.query_one("#p-grad_accum").value = "2"
        scr.query_one("#p-gpus").value = "0,1"
        await pilot.pause(0.2)
        assert "4 per GPU x 2 GPUs x 2 = 16" in info() and "LR: try 1e-05" in info()
        assert "Memory per GPU ✓ fits" in info() and "of 24 GiB" in info()
        scr.query_one("#p-gpus").value = "0,2"
        await pilot.pause(0.2)
        assert "only 2 GPU(s) visible" in scr.errors["gpus"]


@pytest.mark.slow
@sync
async def test_prep_on_a_small_generated_set(workspace, tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
    from speech import speak

    from tui.screens.prep import local_whisper

    if local_whisper() is None:
        pytest.skip("no local faster-whisper model installed")
    src = tmp_path / "rec"
    src.mkdir()
    speak("The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with one step.",
          src / "a.wav")
    speak("She sells sea shells by the sea shore. Rain fell softly on the quiet harbour town.", src / "b.wav")
    app = make_app(root=workspace, start="prep", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "prep")
        scr = app.screen
        scr._add(str(src))
        scr.query_one("#opt-out").value = str(workspace / "datasets" / "gen")
        scr.query_one("#opt-whisper").value = local_whisper()
        await pilot.pause(0.2)
        await pilot.press("ctrl+r")
        await until(pilot, lambda: app.prep_model.state in ("finished", "failed"), timeout=120, what="prep")
        assert app.prep_model.state == "finished", app.prep_model.reason
        await pilot.pause(0.5)
        assert app.prep_model.stages and any("[DATA]" in f"[{t}]" for _, t, _ in app.prep_model.log)
        assert "Speech in clips" in str(scr.query_one("#report-text").render())
        assert app.studio.dataset == (workspace / "datasets" / "gen").resolve()
    assert (workspace / "datasets" / "gen" / "metadata_train.csv").is_file()


@sync
async def test_prep_into_a_dataset_another_job_holds_says_who_holds_it(workspace, tmp_path):
    from engine import locks

    src = tmp_path / "rec"
    src.mkdir()
    (src / "a.wav").write_bytes(b"")
    out = workspace / "datasets" / "busy"
    out.mkdir(parents=True)
    app = make_app(root=workspace, start="prep", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "prep")
        scr = app.screen
        scr._add(str(src))
        scr.query_one("#opt-out").value = str(out)
        await pilot.pause(0.2)
        with locks.hold(out, "xtts-ft prep"):
            await pilot.press("ctrl+r")
            await until(pilot, lambda: app.prep_model.state == "failed", timeout=20, what="refusal")
        assert f"in use by xtts-ft prep (pid {os.getpid()}" in app.prep_model.reason
        assert app.prep_proc is None
        await pilot.pause(0.3)
        assert "in use by xtts-ft prep" in " ".join(str(w.render()) for w in scr.query("Static"))


@pytest.mark.slow
@sync
async def test_attach_stop_resume_follow_to_the_end(workspace, tiny_model, dataset, monkeypatch):
    """A run started from the CLI is attached to, stopped safely, resumed and followed to the end."""
    run = workspace / "runs" / "cli"
    monkeypatch.setenv("XTTS_FT_FAULT", "sleep@0.3")
    xtts_ft("train", "--dataset", dataset, "--model", tiny_model, "--run", run, "--epochs", "2",
            "--batch-size", "2", "--workers", "0", "--threads", "2", "--ab-samples", "0", "--detach",
            env={"XTTS_FT_FAULT": "sleep@0.3"})
    app = make_app(root=workspace, query_gpu=False, poll=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: any(r["kind"] == "run" and r["summary"]["alive"] for r in app.screen.rows),
                    timeout=30, what="running run listed")
        i = next(i for i, r in enumerate(app.screen.rows) if r["kind"] == "run")
        app.screen.query_one("#home-table").move_cursor(row=i)
        await pilot.press("a")
        m = app.run_model
        await until(pilot, lambda: app.current_mode == "train" and m.global_step >= 2, timeout=120,
                    what="steps")
        await until(pilot, lambda: app.screen.check_action("stop", ()) is True, what="stop enabled")
        await pilot.press("s")
        await pilot.pause(0.3)
        await pilot.press("y")
        await until(pilot, lambda: m.state == "stopped", timeout=60, what="stopped")
        stopped_at = m.global_step
        await until(pilot, lambda: m.alive is False, timeout=30, what="process gone")
        await until(pilot, lambda: app.screen.check_action("resume", ()) is True, what="resume enabled")
        monkeypatch.delenv("XTTS_FT_FAULT")
        await pilot.press("r")
        await until(pilot, lambda: m.state == "finished", timeout=180, what="finished")
        assert m.resumes and m.resumes[-1]["global_step"] == stopped_at
        assert m.global_step == 14 and len(m.eval_loss) >= 2
        await pilot.press("6")
        await until(pilot, lambda: len(app.screen.rows) >= 2, what="results")
    wait_for(lambda: not (run / "process.json").exists() or True, timeout=1)


@sync
async def test_review_cleaning_flags_and_restoring_another_speaker(workspace):
    """Issue 8: the cleaning flags are filters, similarity/SNR are shown, an other_speaker clip can be
    restored (it then reaches the CSVs) and the parameters screen warns that it is in training."""
    from helpers import add_cleaning

    from tui.screens.review import FILTERS

    ds = add_cleaning(make_dataset(workspace / "datasets" / "voice"))
    seg = lambda sid: next(s for s in json.loads((ds / "dataset.json").read_text())["segments"]  # noqa: E731
                           if s["id"] == sid)
    assert "good voices" not in (ds / "metadata_train.csv").read_text() + (ds / "metadata_eval.csv").read_text()
    app = make_app(root=workspace, dataset=ds, start="review", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "review" and len(app.screen.rows) == 6)
        scr = app.screen
        for flag in ("other_speaker", "noisy", "music", "reverb"):
            assert flag in FILTERS
        await pilot.press("f")
        await pilot.pause(0.2)
        opts = [str(o.prompt) for o in app.screen.query_one("#choose-list").options]
        assert "other speaker (1)" in opts and "noisy (1)" in opts and "music (1)" in opts and "reverb (0)" in opts
        await pilot.press(*["down"] * FILTERS.index("other_speaker"), "enter")
        await until(pilot, lambda: scr.filter == "other_speaker" and len(scr.rows) == 1)
        detail = str(scr.query_one("#clip-detail").render())
        assert "0.61" in detail and "left out: other_speaker" in detail
        await pilot.press("d")  # restore
        await until(pilot, lambda: not seg("beta_bbbb02_002")["excluded"], what="restore saved")
        assert "other_speaker" in seg("beta_bbbb02_002")["flags"]
        csvs = (ds / "metadata_train.csv").read_text() + (ds / "metadata_eval.csv").read_text()
        assert "good voices need clean recordings" in csvs
        await pilot.press("f4")
        await until(pilot, lambda: app.current_mode == "params")
        info = str(app.screen.query_one("#params-info").render())
        assert "Flagged clips still in training" in info
        assert "1 restored other speaker" in info and "1 noisy" in info and "1 music" in info


@sync
async def test_params_accept_a_language_added_by_vocab_extend(workspace):
    """Issue 6: a code that is not an XTTS language is accepted when the model declares it, with
    its text cleaning stated; refused (with the way out) otherwise."""
    from helpers import extended_model

    ds = make_dataset(workspace / "datasets" / "voice")
    model = extended_model(workspace / "models" / "xtts" / "tiny-tlh", code="tlh", cleaner="none")
    app = make_app(root=workspace, dataset=ds, start="params", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "params")
        scr = app.screen
        scr.query_one("#p-_model").value = str(model)
        scr.query_one("#p-language").value = "tlh"
        await pilot.pause(0.3)
        assert "language" not in scr.errors
        info = str(scr.query_one("#params-info").render())
        assert "Language tlh" in info and "no cleaning" in info
        scr.query_one("#p-language").value = "qya"
        await pilot.pause(0.3)
        assert "vocab extend --language qya" in scr.errors["language"]
        scr.query_one("#p-language").value = ""
        await pilot.pause(0.3)
        assert "language" not in scr.errors  # the dataset's (en): built in
        assert "coqui's cleaning" in str(scr.query_one("#params-info").render())


@sync
async def test_keys_in_text_fields(workspace):
    """1-6 and q type into a text field; there F1-F6 switch screens, ctrl+q quits, and the footer
    and step bar say so."""
    from textual.widgets import Input

    app = make_app(root=workspace, start="params", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "params")
        scr = app.screen
        field = scr.query_one("#p-epochs", Input)
        field.focus()
        await pilot.pause(0.2)
        await pilot.press("end", "2", "q")
        assert app.current_mode == "params" and field.value.endswith("2q")
        keys = {b.key for b in (x.binding for x in scr.active_bindings.values()) if b.show
                and scr.app.check_action(b.action, ()) is not False}
        assert "ctrl+q" in keys and "q" not in keys
        assert "F2 Prep" in str(scr.query_one("#stepbar").render())
        await pilot.press("f2")
        await until(pilot, lambda: app.current_mode == "prep")
        await pilot.press("f1")
        await until(pilot, lambda: app.current_mode == "home")
        assert "1 Home" in str(app.screen.query_one("#stepbar").render())
        await pilot.press("4")  # no text field here: digits switch
        await until(pilot, lambda: app.current_mode == "params")
