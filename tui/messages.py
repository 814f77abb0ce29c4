"""Every custom Message of the studio, in one place (Posting's habit)."""

from __future__ import annotations

from pathlib import Path

from textual.message import Message


class ProjectChanged(Message, bubble=False):
    """The current dataset and/or run changed: screens refresh what they show."""

    def __init__(self, dataset: Path | None, run: Path | None) -> None:
        super().__init__()
        self.dataset = dataset
        self.run = run


class JobFinished(Message):
    """A short engine command started by the studio (export, stop, check-model) came back."""

    def __init__(self, kind: str, code: int, output: str, data: dict | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.code = code
        self.output = output
        self.data = data or {}


class GpuInfo(Message, bubble=False):
    """The GPU found on this machine (queried once, in a child process; the App relays it to
    every screen, so it must not bubble back up)."""

    def __init__(self, info: dict) -> None:
        super().__init__()
        self.info = info
