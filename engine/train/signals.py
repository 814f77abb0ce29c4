"""SIGINT / SIGTERM in the training process: the first asks for a stop after the current optimizer
step (a checkpoint is written, the run can be resumed); a second one ends the process at once."""

from __future__ import annotations

import os
import signal


def install_stop_signals(engine) -> None:
    def handler(signum, frame):
        engine.signals += 1
        name = signal.Signals(signum).name
        if engine.signals == 1 and not engine.dist.is_main:  # rank 0 speaks for the run
            engine.stop_requested = True
        elif engine.signals == 1:
            engine.stop_requested = True
            engine.state("stopping", signal=name,
                         msg="finishing the current step, then writing a checkpoint; signal again to stop at once")
            engine.rep.info(f"{name}: stopping after the current step (send it again to stop at once)",
                            tag="TRAIN")
        else:
            engine.state("stopped", reason=f"forced by a second {name}: no checkpoint written", forced=True)
            engine.events.close()
            os._exit(130)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
