"""Run checkpoints: atomic, without frozen weights, at most K kept.

Layout in the run folder R:
  R/checkpoints/checkpoint_<global step>.pth   resumable: GPT weights, optimizer, scheduler, scaler,
                                               step, epoch, epoch step, monitor state
  R/best_model.pth                              weights only (for export), replaced atomically

Frozen parts (the DVAE, the HiFiGAN decoder / speaker encoder) are not stored: they never change
during GPT training and are restored from the model folder (or base checkpoint) named in the
run's configuration. Each file is written to a temporary name, fsynced and renamed, so a crash
or SIGKILL leaves either the old set of files or the new one, never a torn file under a final name.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import torch

from engine.atomic import atomic_path

FROZEN_PREFIXES = ("dvae.", "xtts.hifigan_decoder.", "torch_mel_spectrogram_style_encoder.",
                   "torch_mel_spectrogram_dvae.")
FORMAT = "xtts-ft-checkpoint/1"
_CKPT_RE = re.compile(r"^checkpoint_(\d+)\.pth$")


def strip_frozen(state: dict) -> dict:
    return {k: v for k, v in state.items() if not k.startswith(FROZEN_PREFIXES)}


def write(path: Path, payload: dict) -> Path:
    """torch.save into a temporary file, then rename."""
    with atomic_path(path, suffix=".partial") as tmp:
        torch.save(payload, tmp)
    return path


def checkpoint_dir(run: Path) -> Path:
    return Path(run) / "checkpoints"


def list_checkpoints(run: Path) -> list[tuple[int, Path]]:
    """(step, path) sorted by step; temporary and foreign files are ignored."""
    d = checkpoint_dir(run)
    out = []
    if d.is_dir():
        for p in d.iterdir():
            m = _CKPT_RE.match(p.name)
            if m and p.is_file():
                out.append((int(m.group(1)), p))
    return sorted(out)


def clean_partials(run: Path) -> list[Path]:
    """Remove temporaries left by a process killed mid-write."""
    removed = []
    for folder in (checkpoint_dir(run), Path(run)):
        if folder.is_dir():
            for p in folder.glob(".*.partial"):
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed.append(p)
    return removed


def prune(run: Path, keep: int) -> list[Path]:
    ckpts = list_checkpoints(run)
    removed = []
    for _, p in ckpts[: max(0, len(ckpts) - keep)]:
        with contextlib.suppress(OSError):
            p.unlink()
            removed.append(p)
    return removed


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def latest_loadable(run: Path) -> tuple[Path, dict] | None:
    """The newest checkpoint that loads; a damaged one is skipped (and reported by the caller)."""
    for _, p in reversed(list_checkpoints(run)):
        try:
            data = load(p)
        except Exception:  # noqa: BLE001 - any failure: try the previous one
            continue
        if isinstance(data, dict) and data.get("format") == FORMAT:
            return p, data
    return None
