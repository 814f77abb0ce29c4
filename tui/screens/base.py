"""The frame every studio screen shares: the step bar on top, the footer below."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from tui.widgets.common import StepBar


class StudioScreen(Screen):
    MODE = "home"

    def compose(self) -> ComposeResult:
        yield StepBar(self.MODE, id="stepbar")
        yield from self.compose_body()
        yield Footer(compact=True)  # compact: the keys fit 80 columns

    def compose_body(self) -> ComposeResult:
        yield from ()

    def watch_focused(self, focused) -> None:
        # keys 1-6 type into text fields: the step bar then shows F1-F6, which always work
        from tui.app import text_focus

        bars = self.query(StepBar)
        if bars:
            bars.first().set_fkeys(text_focus(self))

    @property
    def studio(self):
        return self.app.studio

    def set_context(self, text: str) -> None:
        self.query_one(StepBar).set_context(text)

    def error(self, title: str, msg: str, advice: list[str] | None = None) -> None:
        """An engine problem as a message with the guide's advice (never a traceback)."""
        text = msg + ("".join(f"\n• {a}" for a in advice) if advice else "")
        self.notify(text, title=title, severity="error", timeout=12)
