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
import os
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
    # through a file this code closes: when the write fails (disk full) the half-written temporary
    # is closed before it is removed, so its space is free again at once (for the `failed` event);
    # torch.save(payload, path) keeps the file open until garbage collection
    with atomic_path(path, suffix=".partial") as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)
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


def latest_loadable(run: Path, damaged: list[tuple[Path, str]] | None = None) -> tuple[Path, dict] | None:
    """The newest checkpoint that loads. A damaged one is skipped, renamed `*.damaged` (so it is
    neither resumed from nor counted again) and added to `damaged` as (path, reason) for the caller
    to report."""
    for _, p in reversed(list_checkpoints(run)):
        try:
            data = load(p)
            reason = None if isinstance(data, dict) and data.get("format") == FORMAT else "not an xtts-ft checkpoint"
        except Exception as exc:  # noqa: BLE001 - any failure: try the previous one
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else 'unreadable'}"
        if reason is None:
            return p, data
        aside = p.with_name(p.name + ".damaged")
        with contextlib.suppress(OSError):
            os.replace(p, aside)
        if damaged is not None:
            damaged.append((aside if aside.exists() else p, reason))
    return None
