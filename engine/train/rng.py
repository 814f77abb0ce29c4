"""Random generator states in a checkpoint: written with each resumable checkpoint, set back on resume."""

from __future__ import annotations

import contextlib


def state() -> dict:
    """Python, numpy and torch generator states in plain types (a weights_only load accepts them)."""
    import random

    import numpy as np
    import torch

    name, keys, pos, has_gauss, cached = np.random.get_state()
    out = {"python": random.getstate(), "numpy": [name, keys.tolist(), pos, has_gauss, cached],
           "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_state(saved: dict) -> None:
    import random

    import numpy as np
    import torch

    py = saved.get("python")
    if py is not None:
        random.setstate((py[0], tuple(py[1]), py[2]))
    if saved.get("numpy") is not None:
        name, keys, pos, has_gauss, cached = saved["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if saved.get("torch") is not None:
        torch.set_rng_state(saved["torch"])
    if saved.get("cuda") is not None and torch.cuda.is_available():
        with contextlib.suppress(Exception):   # another number of GPUs: their streams start fresh
            torch.cuda.set_rng_state_all(saved["cuda"])
