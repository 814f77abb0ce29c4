"""No user file is unpickled unsafely: a checkpoint that would run code is refused, and its payload
never runs (--base-checkpoint, resume, export, synth and model folders all load through
engine/model/weights.py)."""

from __future__ import annotations

import contextlib
import pickle

import pytest
import torch

from engine.cli import main as cli_main
from engine.model import weights


class Payload:
    """Unpickling this calls exec(): it would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('the payload ran')",))


def _evil(tmp_path, legacy=False):
    marker = tmp_path / "PWNED"
    path = tmp_path / ("evil_legacy.pth" if legacy else "best_model.pth")
    data = {"model": {"xtts.gpt.w": torch.zeros(2)}, "extra": Payload(marker)}
    if legacy:
        with open(path, "wb") as fh:
            pickle.dump(data, fh)
    else:
        torch.save(data, path)
    return path, marker


@pytest.mark.parametrize("legacy", [False, True])
def test_a_pickle_that_runs_code_is_refused_and_never_runs(tmp_path, legacy):
    path, marker = _evil(tmp_path, legacy)
    with pytest.raises(weights.UnsafeCheckpoint, match="refused: it holds Python objects other than weights"):
        weights.load(path)
    with pytest.raises(weights.UnsafeCheckpoint):
        weights.load(path, mmap=True)
    assert not marker.exists()
    # the unsafe load really would have run it: the test can fail
    with contextlib.suppress(RuntimeError):  # a legacy file: torch reads the pickle, then the magic number
        torch.load(path, map_location="cpu", weights_only=False)
    assert marker.read_text() == "the payload ran"


def test_xtts_checkpoints_with_coqui_configs_still_load(tmp_path):
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.models.xtts import XttsArgs

    path = tmp_path / "model.pth"
    torch.save({"model": {"gpt.x": torch.ones(3)}, "config": XttsConfig(model_args=XttsArgs())}, path)
    data = weights.load(path)
    assert isinstance(data["config"], XttsConfig)
    assert torch.equal(weights.gpt_weights(weights.state_dict(data))["x"], torch.ones(3))


def test_malicious_base_checkpoint_is_refused_before_training(tiny_model, dataset, tmp_path, capsys):
    path, marker = _evil(tmp_path)
    run = tmp_path / "run"
    code = cli_main(["train", "--dataset", str(dataset), "--model", str(tiny_model), "--run", str(run),
                     "--base-checkpoint", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "--base-checkpoint" in err and "refused" in err and "call exec" in err, err
    assert not marker.exists() and not run.exists()
    # the worker's own load (a run configured before this check existed) refuses it the same way
    from engine.train.build import load_base_checkpoint
    from engine.train.errors import UserFacingError

    with pytest.raises(UserFacingError, match="refused"):
        load_base_checkpoint(None, str(path), rep=None)
    assert not marker.exists()


def test_export_and_synth_refuse_unsafe_weights(tmp_path):
    from engine.model import synth
    from engine.train import checkpoints as ck

    path, marker = _evil(tmp_path)
    with pytest.raises(weights.UnsafeCheckpoint):
        synth.load_run_weights(None, path)
    with pytest.raises(weights.UnsafeCheckpoint):
        ck.load(path)
    assert not marker.exists()
