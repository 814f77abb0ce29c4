"""The `resources` events: GPU and RAM sampled every few seconds on a background thread."""

from __future__ import annotations

import threading


class ResourceSampler:
    def __init__(self, engine):
        self.engine = engine
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="resources", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        from engine.gpu import gpu_sample, ram_sample

        e = self.engine
        period = float(e.cfg["gpu_sample_seconds"])
        while not self._stop.is_set():
            try:
                gpu = gpu_sample() if e.device == "cuda" else {"available": False, "reason": "no GPU"
                                                               if e.device == "cpu" else "not used"}
                if e.dist.enabled:  # one entry per rank (per GPU), gathered at step ends
                    if gpu.get("available"):
                        gpu["index"] = e.dist.gpu
                    e.emit("resources", gpu=gpu, ram=ram_sample(), gpus=e.dist_gpus, world_size=e.dist.world)
                else:
                    e.emit("resources", gpu=gpu, ram=ram_sample())
            except Exception as exc:  # never let monitoring kill the run
                e.emit("resources", gpu={"available": False, "reason": f"sample failed: {exc}"}, ram=None)
            self._stop.wait(period)
