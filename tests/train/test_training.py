"""Real training of the tiny model on CPU: events, checkpoints, stop/resume, crashes, OOM, export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FAST, ROOT, events, final_state, read_json, wait_for, xtts_ft
from engine.train import checkpoints as ck
from engine.train import process
from engine.train.schema import validate

pytestmark = pytest.mark.slow


def steps_of(evs):
    return [e for e in evs if e["type"] == "step"]


# ---------------------------------------------------------------- the main run
def test_main_run_finishes_with_complete_valid_events(main_run):
    run, proc, evs = main_run["run"], main_run["proc"], main_run["events"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    bad = [(e["type"], p) for e in evs for p in validate(e)]
    assert bad == []
    states = [e["state"] for e in evs if e["type"] == "state"]
    assert states == ["preparing", "training", "finished"]
    steps = steps_of(evs)
    assert [s["global_step"] for s in steps] == list(range(1, 15))
    assert [(s["epoch"], s["step"]) for s in steps[:8]] == [(0, i) for i in range(1, 8)] + [(1, 1)]
    assert all(s["steps_per_epoch"] == 7 and s["epochs"] == 2 for s in steps)
    for s in steps:
        assert s["loss"] == pytest.approx(s["loss_text_ce"] + s["loss_mel_ce"], rel=1e-6)
        assert 0 < s["lr"] <= 5e-6 and s["step_time"] > 0 and s["loader_time"] >= 0
    evals = [e for e in evs if e["type"] == "eval"]
    assert len(evals) == 2 and all(e["avg_loss"] > 0 and e["avg_loss_mel_ce"] > 0 for e in evals)
    best = [e for e in evs if e["type"] == "best_model"]
    assert best and best[0]["loss"] == evals[0]["avg_loss"]
    assert Path(best[-1]["path"]).is_file()
    res = [e for e in evs if e["type"] == "resources"]
    assert res and res[0]["gpu"] == {"available": False, "reason": "no GPU"} and res[0]["ram"]["process_rss_mb"] > 0
    logs = [e for e in evs if e["type"] == "log"]
    msgs = [e["msg"] for e in logs]
    assert "✓ All required files found for model: tiny" in msgs
    assert any(e["tag"] == "DATA" and e["level"] == "warning" and e["msg"] == "Very small training dataset"
               for e in logs)
    assert any("training runs on the CPU" in m for m in msgs)
    assert any(m.startswith("BEST MODEL = ") for m in msgs)
    # the follower printed the guide's lines and the outcome
    assert "[MODEL] ✓ All required files found for model: tiny" in proc.stdout
    assert "[WARNING] [DATA] Very small training dataset" in proc.stdout
    assert "Effective Batch Size: 2" in proc.stdout and "run finished" in proc.stdout


def test_main_run_checkpoints_are_compact_atomic_and_pruned(main_run):
    run, evs = main_run["run"], main_run["events"]
    saved = [e for e in evs if e["type"] == "checkpoint"]
    assert [e["global_step"] for e in saved] == [4, 8, 12, 14]
    assert [s for s, _ in ck.list_checkpoints(run)] == [12, 14]  # keep 2
    assert not list((run / "checkpoints").glob(".*"))  # no temporaries left
    data = ck.load(run / "checkpoints" / "checkpoint_14.pth")
    assert not [k for k in data["model"] if k.startswith(("dvae.", "xtts.hifigan_decoder."))]
    assert any(k.startswith("xtts.gpt.") for k in data["model"])
    assert data["step"] == 14 and data["next_epoch"] == 2 and data["optimizer"]["state"]
    assert (run / "checkpoints" / "checkpoint_14.pth").stat().st_size < 20e6  # the DVAE alone is 211 MB
    cfg = read_json(run / "run_config.json")
    assert cfg["epochs"] == 2 and cfg["effective_batch"] == 2 and cfg["steps_per_epoch"] == 7


def test_main_run_ab_samples_status_and_runs(main_run):
    run, evs = main_run["run"], main_run["events"]
    samples = [e for e in evs if e["type"] == "sample"]
    assert {s["variant"] for s in samples} == {"base", "finetuned"}
    for s in samples:
        assert Path(s["path"]).is_file() and Path(s["path"]).stat().st_size > 1000
    st = json.loads(xtts_ft("status", run, "--json").stdout)
    assert st["state"] == "finished" and st["alive"] is False and st["global_step"] == 14
    out = xtts_ft("runs", run.parent).stdout
    assert "main" in out and "finished" in out


def test_export_loads_in_coqui_and_carries_the_trained_weights(main_run, tmp_path):
    run = main_run["run"]
    out = tmp_path / "models" / "xtts" / "myvoice"
    xtts_ft("export", run, "--out", out)
    names = sorted(p.name for p in out.iterdir())
    for f in ("config.json", "model.pth", "mel_stats.pth", "speakers_xtts.pth", "vocab.json", "dvae.pth",
              "README.md", "reference"):
        assert f in names
    refs = sorted((out / "reference").iterdir())
    import soundfile as sf

    assert refs and all(6.0 <= sf.info(str(r)).duration <= 10.0 for r in refs)
    again = xtts_ft("export", run, "--out", out, check=False)
    assert again.returncode == 2 and "--force" in again.stderr
    state = torch.load(out / "model.pth", map_location="cpu", weights_only=True)
    assert set(state) == {"model", "config"}
    assert not [k for k in state["model"] if k.startswith(("dvae.", "xtts.", "torch_mel"))]
    best = ck.load(run / "best_model.pth")["model"]
    key = "gpt.text_head.weight"
    assert torch.equal(state["model"][key], best["xtts." + key])
    # coqui-tts loads it the documented way and speaks
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.models.xtts import Xtts

    config = XttsConfig()
    config.load_json(str(out / "config.json"))
    model = Xtts(config)
    model.load_checkpoint(config, checkpoint_dir=str(out), eval=True)
    assert torch.equal(model.gpt.text_head.weight.detach(), best["xtts." + key])
    wav_out = tmp_path / "hello.wav"
    proc = xtts_ft("synth", out, "--text", "Hello from the export.", "--speaker-wav", refs[0], "--out", wav_out)
    assert wav_out.is_file() and "wrote" in proc.stdout
    # the named voice (issue 13): the dataset's speaker is added to speakers_xtts.pth beside the base's
    # speakers, and coqui-tts' own API speaks by that name without a reference WAV
    name = "tester"
    base = torch.load(Path(read_json(run / "run_config.json")["model"]) / "speakers_xtts.pth", weights_only=True)
    spk = torch.load(out / "speakers_xtts.pth", weights_only=True)
    assert set(spk) == set(base) | {name} and name not in base
    for k in base:
        assert torch.equal(spk[k]["gpt_cond_latent"], base[k]["gpt_cond_latent"])
    voice = spk[name]
    assert list(voice) == ["gpt_cond_latent", "speaker_embedding"]  # coqui unpacks .values() in this order
    assert voice["gpt_cond_latent"].shape == (1, 32, 64) and voice["speaker_embedding"].shape == (1, 512, 1)
    assert name in model.speaker_manager.speaker_names
    settings = {k: config[k] for k in ("temperature", "length_penalty", "repetition_penalty", "top_k", "top_p")}
    torch.manual_seed(3)
    by_name = model.synthesize("Hello there.", speaker=name, language="en", max_new_tokens=30)["wav"]
    torch.manual_seed(3)
    direct = model.inference("Hello there.", "en", voice["gpt_cond_latent"], voice["speaker_embedding"],
                             max_new_tokens=30, **settings)["wav"]
    assert len(by_name) > 0 and np.array_equal(np.asarray(by_name), np.asarray(direct))
    # the latents were computed by the finetuned model from the references (not copied from a base voice)
    latent, emb = model.get_conditioning_latents(audio_path=[str(r) for r in refs], gpt_cond_len=30,
                                                 max_ref_length=60)
    assert torch.allclose(latent, voice["gpt_cond_latent"], atol=1e-5)
    assert "Named voice" in (out / "README.md").read_text() and f"speaker={name!r}" in (out / "README.md").read_text()
    # a name the base already has is refused (one line), unless --force
    clash = xtts_ft("export", run, "--out", tmp_path / "other", "--speaker-name", next(iter(base)), check=False)
    assert clash.returncode == 2 and "already a speaker of the base model" in clash.stderr
    assert len(clash.stderr.strip().splitlines()) == 1 and not (tmp_path / "other").exists()


# ---------------------------------------------------------------- crash, survival, stop, resume
def test_run_survives_parent_sigkill_during_checkpoint_then_stop_and_resume(tiny_model, dataset, tmp_path, main_run):
    run = tmp_path / "r"
    env = dict(os.environ, XTTS_FT_FAULT="slow-checkpoint@4")
    # 1. a followed run whose parent (the terminal's process) is killed: the worker keeps training
    parent = subprocess.Popen(
        [sys.executable, "-m", "engine", "train", "--dataset", str(dataset), "--model", str(tiny_model),
         "--run", str(run), "--epochs", "2", *FAST, "--save-every-steps", "2", "--keep-checkpoints", "3",
         "--ab-samples", "0"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: steps_of(events(run)), what="first step")
    parent.kill()
    parent.wait()
    n = len(steps_of(events(run)))
    wait_for(lambda: len(steps_of(events(run))) > n, what="steps after the parent died")
    assert process.process_alive(run)
    # 2. SIGKILL the worker while it writes checkpoint_4: checkpoint_2 stays loadable
    marker = run / "checkpoints" / "SLOW_CHECKPOINT_WRITING"
    wait_for(marker.exists, what="checkpoint 4 being written")
    partial = Path(marker.read_text())
    assert partial.exists() and partial.stat().st_size > 0
    os.kill(process.worker_pid(run), signal.SIGKILL)
    wait_for(lambda: not process.process_alive(run), what="worker death")
    assert [s for s, _ in ck.list_checkpoints(run)] == [2]
    found = ck.latest_loadable(run)
    assert found and found[0].name == "checkpoint_2.pth" and found[1]["step"] == 2
    st = process.summarize(run)
    assert st["state"] == "failed" and st.get("died")
    # 3. resume (slow steps), stop it mid-epoch with SIGINT (what Ctrl-C sends; `xtts-ft stop` sends
    #    SIGTERM to the same handler and is tested with the studio and with several processes)
    xtts_ft("resume", run, "--detach", env={"XTTS_FT_FAULT": "sleep@0.4"})
    wait_for(lambda: [s for s in steps_of(events(run)) if s["global_step"] >= 5], what="resumed steps")
    assert not partial.exists()  # the torn temporary was cleaned
    os.kill(process.worker_pid(run), signal.SIGINT)
    wait_for(lambda: final_state(run) and not process.process_alive(run), what="the run to stop on SIGINT")
    stop = final_state(run)
    assert stop["state"] == "stopped" and "resume" in stop["reason"]
    stop_step = stop["global_step"]
    assert 5 <= stop_step < 14
    assert ck.list_checkpoints(run)[-1][0] == stop_step
    # 4. resume to the end, followed in the foreground
    proc = xtts_ft("resume", run)
    assert "run finished" in proc.stdout
    evs = events(run)
    assert [e for e in evs if e["type"] == "state"][-1]["state"] == "finished"
    resumed = [e for e in evs if e["type"] == "resumed"]
    assert [r["global_step"] for r in resumed] == [2, stop_step]
    first_resume = next(i for i, e in enumerate(evs) if e["type"] == "resumed")
    glob = [s["global_step"] for s in steps_of(evs[first_resume:])]
    # the counter continues from the checkpoint (steps 3-4 of the killed attempt are redone), through the
    # stop, to the end: never back to 0
    assert glob == list(range(3, 15))
    assert [s["global_step"] for s in steps_of(evs[:first_resume])][:3] == [1, 2, 3]
    assert [s["epoch"] for s in steps_of(evs)][-1] == 1
    bad = [(e["type"], p) for e in evs for p in validate(e)]
    assert bad == []
    # exact resume: the same settings as the main run (only checkpoint frequency differs), so after a
    # SIGKILL, a resume, a stop mid-epoch and a second resume across the epoch boundary, every step's
    # loss is the uninterrupted run's (same clips drawn, same dropout, same learning rate)
    uninterrupted = {s["global_step"]: s["loss"] for s in steps_of(main_run["events"])}
    final = {s["global_step"]: s["loss"] for s in steps_of(evs)}   # the last attempt at each step
    assert sorted(final) == sorted(uninterrupted) == list(range(1, 15))
    assert all(abs(final[k] - uninterrupted[k]) < 1e-6 for k in final), \
        [(k, final[k], uninterrupted[k]) for k in final if abs(final[k] - uninterrupted[k]) >= 1e-6]
    lrs = {s["global_step"]: s["lr"] for s in steps_of(main_run["events"])}
    assert all(abs(s["lr"] - lrs[s["global_step"]]) < 1e-12 for s in steps_of(evs))
    data = ck.load(ck.list_checkpoints(run)[-1][1])
    assert data["step"] == 14 and data["opt_steps"] == 14
    assert set(data["rng"]) >= {"python", "numpy", "torch"}
    # the resumed optimizer carried its state (AdamW step counts continue)
    st = next(iter(data["optimizer"]["state"].values()))
    assert float(st["step"]) == 14


def test_cuda_oom_backs_off_to_half_batch_double_accumulation(tiny_model, dataset, tmp_path):
    run = tmp_path / "oom"
    proc = xtts_ft("train", "--dataset", dataset, "--model", tiny_model, "--run", run, "--epochs", "1",
                   "--batch-size", "4", "--grad-accum", "1", "--workers", "0", "--ab-samples", "0",
                   "--save-every-steps", "0", env={"XTTS_FT_FAULT": "oom@2"}, check=False)
    evs = events(run)
    assert proc.returncode == 0, proc.stdout[-3000:]
    alert = [e for e in evs if e["type"] == "alert" and e["kind"] == "oom"]
    assert len(alert) == 1 and alert[0]["backoff"] is True and "Reduce the batch size" in " ".join(alert[0]["advice"])
    change = [e for e in evs if e["type"] == "config_change"]
    assert change[0]["batch_size"] == 2 and change[0]["grad_accum"] == 2
    steps = steps_of(evs)
    assert [s["batch_size"] for s in steps] == [4, 4] + [2] * (len(steps) - 2)
    assert [s["global_step"] for s in steps] == list(range(1, len(steps) + 1))
    # 14 clips: 2 batches of 4 done = 8 clips, the other 6 as 3 batches of 2; the epoch position is
    # re-expressed in the new batch size (8 clips = step 4 of 7)
    assert len(steps) == 5
    assert [(s["step"], s["steps_per_epoch"]) for s in steps[2:]] == [(5, 7), (6, 7), (7, 7)]
    assert "CUDA out of memory" in proc.stdout and "Increase gradient accumulation" in proc.stdout
    assert final_state(run)["state"] == "finished"


def test_base_checkpoint_continues_from_an_earlier_run(main_run, tiny_model, dataset, tmp_path):
    run = tmp_path / "second"
    xtts_ft("train", "--dataset", dataset, "--model", tiny_model, "--run", run, "--epochs", "1", *FAST,
            "--ab-samples", "0", "--base-checkpoint", main_run["run"])
    evs = events(run)
    assert any(e["type"] == "log" and e["msg"].startswith("GPT weights restored from base checkpoint")
               and "best_model.pth" in e["msg"] for e in evs)
    first = steps_of(evs)[0]
    fresh = steps_of(main_run["events"])[0]
    # same seed, same first batch: only the starting weights differ
    assert first["global_step"] == 1 and first["loss"] != pytest.approx(fresh["loss"], abs=1e-7)
    assert read_json(run / "run_config.json")["base_checkpoint"].endswith("best_model.pth")
