"""Checkpoint files, loaded safely, and the GPT weights inside them.

Every .pth the engine reads — a model folder's model.pth, a run's checkpoints and best model, a
`--base-checkpoint`, export and synth inputs — may come from someone else. They are loaded with
`torch.load(weights_only=True)`: tensors, containers and numbers only, plus the config classes that
coqui's own XTTS checkpoints pickle (the allow-list below). A file that holds anything else (a pickle
that would import and call other code) is refused with a one-line message before any of it runs.
"""

from __future__ import annotations

import pickle
from pathlib import Path

# keys of a checkpoint's state dict that hold GPT weights, and GPT sub-modules rebuilt at load time
GPT_PREFIXES = ("xtts.gpt.", "gpt.")
GPT_DERIVED = ("gpt_inference.", "gpt.wte.")


class UnsafeCheckpoint(ValueError):
    """The file is not weights-only: refused, nothing in it was run."""


def _allowed() -> list:
    """The classes XTTS checkpoints pickle besides tensors (coqui's configs; the original XTTS v2
    release names two of them under their old module path)."""
    try:
        from TTS.config.shared_configs import BaseDatasetConfig
        from TTS.tts.configs.xtts_config import XttsConfig
        from TTS.tts.models.xtts import XttsArgs, XttsAudioConfig
    except ImportError:  # coqui not importable: plain weights still load
        return []
    return [BaseDatasetConfig, XttsConfig, XttsArgs, XttsAudioConfig,
            (XttsArgs, "TTS.tts.models.xtts.XttsArgs"), (XttsAudioConfig, "TTS.tts.models.xtts.XttsAudioConfig")]


def load(path: str | Path, mmap: bool = False):
    """torch.load(path) with weights only (+ the allow-list); raises UnsafeCheckpoint for anything else."""
    import torch

    import zipfile

    path = Path(path)
    mmap = mmap and zipfile.is_zipfile(path)  # a legacy (non-zip) file cannot be memory-mapped
    try:
        with torch.serialization.safe_globals(_allowed()):
            return torch.load(path, map_location="cpu", weights_only=True, **({"mmap": True} if mmap else {}))
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpoint(f"{path}: refused: it holds Python objects other than weights "
                               f"({_what(exc)}); only XTTS and xtts-ft checkpoints are loaded") from None


def _what(exc: Exception) -> str:
    """What the file would have loaded, from torch's refusal ("GLOBAL posix.system was not ...")."""
    import re

    m = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if m:
        return f"it would load and call {m.group(1)}"
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else type(exc).__name__


def state_dict(data) -> dict:
    """The state dict inside a loaded checkpoint (`{"model": ...}` or the bare dict)."""
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        return data["model"]
    if isinstance(data, dict):
        return data
    raise ValueError("not a checkpoint (no state dict inside)")


def gpt_weights(state: dict) -> dict:
    """The GPT's own weights, keyed as `model.gpt` / `model.xtts.gpt` expects them (prefix removed,
    the inference copies that are rebuilt at load time left out)."""
    gpt = {}
    for k, v in state.items():
        for prefix in GPT_PREFIXES:
            if k.startswith(prefix):
                gpt[k[len(prefix):]] = v
                break
    return {k: v for k, v in gpt.items() if not k.startswith(GPT_DERIVED)}


def load_gpt(module, state: dict, source: str) -> None:
    """Put `state`'s GPT weights into a GPT module; ValueError names what does not fit."""
    gpt = gpt_weights(state)
    if not gpt:
        raise ValueError(f"{source}: no GPT weights inside")
    missing, unexpected = module.load_state_dict(gpt, strict=False)
    missing = [k for k in missing if not k.startswith(GPT_DERIVED)]
    if missing or unexpected:
        raise ValueError(f"{source} does not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]})")
