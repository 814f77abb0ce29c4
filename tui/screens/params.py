from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from tui.screens.base import StudioScreen


class ParamsScreen(StudioScreen):
    MODE = "params"

    def compose_body(self) -> ComposeResult:
        yield Static("todo")
