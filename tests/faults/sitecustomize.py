"""Fault injection for the tests, from outside the engine (the engine has no fault code).

Python imports `sitecustomize` at start-up from its path; tests/conftest.py puts this folder on
PYTHONPATH, so every engine process a test starts (the CLI, the detached worker, torchrun's ranks)
loads it. It does nothing unless XTTS_FT_FAULT names faults (comma-separated):

    oom@N              a CUDA out-of-memory error before the first step at global step >= N (once)
    sleep@S            every training step first sleeps S seconds (so a signal lands mid-epoch)
    slow-checkpoint@N  a checkpoint of step >= N pauses 120 s between writing its temporary file and
                       renaming it; checkpoints/SLOW_CHECKPOINT_WRITING names the temporary, so a
                       test can SIGKILL the process mid-write
    prep-sleep@S       prep sleeps S seconds before each source's segmentation (so a stop lands mid-job)
    listen-sleep@S     the listening job waits up to S seconds (until a stop arrives) before its work
    export-sleep@S     export sleeps S seconds before it starts (so a stop lands mid-job)

The faults wrap engine functions as their modules are imported (a meta-path hook).
"""

from __future__ import annotations

import os
import re
import sys
import time

FAULTS = [f for f in os.environ.get("XTTS_FT_FAULT", "").split(",") if f]
_TEMP_CHECKPOINT = re.compile(r"^\.checkpoint_(\d+)\.pth\..*\.partial$")


def _value(prefix: str):
    return next((f[len(prefix):] for f in FAULTS if f.startswith(prefix)), None)


def _patch_progress(module) -> None:
    oom_at, sleep = _value("oom@"), _value("sleep@")
    original = module.StepEvents.before_step
    fired = []

    def before_step(self, trainer, step, n_steps):
        original(self, trainer, step, n_steps)
        if oom_at is not None and not fired and trainer.total_steps_done >= int(oom_at):
            import torch

            fired.append(True)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected by XTTS_FT_FAULT)")
        if sleep is not None:
            time.sleep(float(sleep))

    module.StepEvents.before_step = before_step


def _patch_checkpoints(module) -> None:
    slow_at = _value("slow-checkpoint@")
    if slow_at is None:
        return
    torch = module.torch

    class SlowSave:  # the module's `torch`, with a save that stalls before the rename
        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def save(obj, f, *args, **kwargs):
            torch.save(obj, f, *args, **kwargs)
            path = str(getattr(f, "name", f))     # a path, or the open file checkpoints.write hands it
            m = _TEMP_CHECKPOINT.match(os.path.basename(path))
            if m and int(m.group(1)) >= int(slow_at):
                with open(os.path.join(os.path.dirname(path), "SLOW_CHECKPOINT_WRITING"), "w") as marker:
                    marker.write(path)
                time.sleep(120)

    module.torch = SlowSave()


def _patch_prep(module) -> None:
    sleep = _value("prep-sleep@")
    if sleep is None:
        return
    original = module.Prep._segment_and_write

    def segment_and_write(self, source):
        time.sleep(float(sleep))
        return original(self, source)

    module.Prep._segment_and_write = segment_and_write


def _patch_listen(module) -> None:
    sleep = _value("listen-sleep@")
    if sleep is None:
        return
    original = module.ListenJob._work

    def work(self):
        end = time.monotonic() + float(sleep)
        while time.monotonic() < end and not self.stop_requested:
            time.sleep(0.1)
        return original(self)

    module.ListenJob._work = work


def _patch_export(module) -> None:
    sleep = _value("export-sleep@")
    if sleep is None:
        return
    original = module.export_run

    def export_run(*args, **kwargs):
        time.sleep(float(sleep))
        return original(*args, **kwargs)

    module.export_run = export_run


_PATCHES = {"engine.train.progress": _patch_progress, "engine.train.checkpoints": _patch_checkpoints,
            "engine.prep.builder": _patch_prep, "engine.listen.job": _patch_listen,
            "engine.model.export": _patch_export}


class _AfterImport:
    """Finds a patched module with the other finders, then patches it once it has executed."""

    def find_spec(self, name, path, target=None):
        if name not in _PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _PATCHES[name](module)

        spec.loader.exec_module = exec_module
        return spec


if FAULTS:
    sys.meta_path.insert(0, _AfterImport())
