"""The listening test on real tiny-model runs: in training (--listen-every 1) and as its own job.

The scores are whatever a random model earns (reported as they are); what is checked is that every
epoch and the base are tested, the files and events are complete and valid, BEST LISTEN is saved,
training is not changed by the tests, and the job's CLI and bad-input messages work."""

from __future__ import annotations

import json

import pytest
from conftest import FAST, events, read_json, wait_for, xtts_ft

from engine.jobs.schema import validate

LISTEN = ["--listen-sentences", "1", "--max-new-tokens", "20"]


@pytest.fixture(scope="session")
def listen_run(tmp_path_factory, tiny_model, dataset, whisper_model):
    run = tmp_path_factory.mktemp("runs") / "listen"
    xtts_ft("train", "--dataset", dataset, "--model", tiny_model, "--run", run, "--epochs", "2", *FAST,
            "--ab-samples", "0", "--listen-every", "1", "--listen-whisper-model", whisper_model, *LISTEN,
            timeout=1800)
    return run


def test_training_listens_to_the_base_and_every_epoch(listen_run, main_run):
    run = listen_run
    evs = events(run)
    for e in evs:
        assert validate(e) == [], e
    tests = [e for e in evs if e["type"] == "listen"]
    assert [t["label"] for t in tests] == ["base", "step7", "step14"], tests
    assert all(t["source"] == "train" and t["seconds"] > 0 for t in tests)
    for t in tests:
        res = read_json(t["result"])
        rows = res["voices"][0]["rows"]
        assert len(rows) == 1 and all((run / "listen" / t["label"] / f"{res['voices'][0]['name']}_{r['id']}.wav").is_file()
                                      for r in rows)
        assert {"cer", "wer", "similarity", "similarity_xtts", "mos", "flags"} <= set(rows[0])
        assert 0.0 <= res["summary"]["cer"] and -1.0 <= res["summary"]["similarity"] <= 1.0
        assert res["summary"]["flags"]["token_limit"] == 1      # a random model never emits the stop token
    # the test that comes first in the run's order is the base, before the first step
    first_step = next(i for i, e in enumerate(evs) if e["type"] == "step")
    assert evs.index(tests[0]) < first_step
    assert (run / "listen" / "testset.json").is_file()
    best = [e for e in evs if e["type"] == "best_listen"]
    assert best and (run / "best_listen.pth").is_file()
    # listening switched the model to eval and back and restored every RNG: training is unchanged
    losses = [e["loss"] for e in evs if e["type"] == "step"]
    assert losses == [e["loss"] for e in main_run["events"] if e["type"] == "step"]
    from engine.model.export import resolve_checkpoint

    assert resolve_checkpoint(run, "best-listen") == run / "best_listen.pth"


def test_listen_job_scores_checkpoints_in_its_own_process(main_run, whisper_model, tmp_path):
    run = main_run["run"]
    proc = xtts_ft("listen", run, "--checkpoints", "last", "--sentences", "1", "--max-new-tokens", "20",
                   "--whisper-model", whisper_model)
    assert "listening job started" in proc.stdout
    from engine.jobs import JobFiles

    files = JobFiles("listen", run)
    evfile = files.events

    def final():
        from engine.events import read_events

        evs, _ = read_events(evfile)
        states = [e["state"] for e in evs if e["type"] == "state"]
        return evs if states and states[-1] in ("finished", "failed", "stopped") else None

    evs = wait_for(final, timeout=1500, poll=1.0, what="the listening job to end")
    log = files.log.read_text()[-3000:]
    assert json.loads(files.process.read_text())["kind"] == "listen"
    wait_for(lambda: not files.alive(), timeout=60, what="the listening job's process to exit")
    assert [e["state"] for e in evs if e["type"] == "state"][-1] == "finished", log
    for e in evs:
        assert validate(e, job="listen") == [], e
    labels = [e["label"] for e in evs if e["type"] == "listen"]
    assert labels[0] == "base" and len(labels) == 2 and labels[1].startswith("step")
    assert any(e["type"] == "progress" for e in evs) and any(e["type"] == "recommendation" for e in evs)
    st = json.loads(xtts_ft("listen", run, "--status", "--json").stdout)
    assert st["state"] == "finished" and [t["label"] for t in st["tests"]] == labels
    assert st["recommended"]["label"] == labels[1]
    out = xtts_ft("listen", run, "--status").stdout
    assert "recommended" in out and "base" in out


def test_listen_bad_inputs_one_line_nothing_written(tiny_model, dataset, whisper_model, tmp_path):
    # a run with no checkpoint
    run = tmp_path / "empty"
    run.mkdir()
    (run / "run_config.json").write_text(json.dumps({"dataset": str(dataset), "model": str(tiny_model),
                                                     "language": "en"}))
    p = xtts_ft("listen", run, check=False)
    assert p.returncode == 2 and "has no checkpoint to listen to" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (run / "listen").exists()
    # not a run
    p = xtts_ft("listen", tmp_path, check=False)
    assert p.returncode == 2 and "not a training run" in p.stderr
    # --stop with nothing running
    p = xtts_ft("listen", run, "--stop", check=False)
    assert p.returncode == 2 and "no listening job is running" in p.stderr
    # a model folder without the XTTS speaker encoder
    import torch

    from engine.listen.encoders import ListenError, XttsSpeakerEncoder

    bad = tmp_path / "model"
    bad.mkdir()
    torch.save({"model": {"gpt.x": torch.zeros(1)}}, bad / "model.pth")
    with pytest.raises(ListenError, match="has no XTTS speaker encoder"):
        XttsSpeakerEncoder.from_model_dir(bad)
    # a language the (English-only) whisper model cannot transcribe: in training, before the first step
    p = xtts_ft("train", "--dataset", dataset, "--model", tiny_model, "--run", tmp_path / "r", "--epochs", "1",
                *FAST, "--listen-every", "1", "--language", "es", "--listen-whisper-model", whisper_model,
                check=False)
    assert p.returncode != 0
    fin = [e for e in events(tmp_path / "r") if e["type"] == "state"][-1]
    assert fin["state"] == "failed" and "English-only and cannot transcribe 'es'" in fin["reason"], fin
    assert not any(e["type"] == "step" for e in events(tmp_path / "r"))
