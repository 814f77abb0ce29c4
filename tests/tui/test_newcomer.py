"""Issue 14: the studio as a newcomer meets it (resize, form state, readable messages, help)."""

from __future__ import annotations

import time

from conftest import install_run
from helpers import sync

from tui.app import TooSmall, make_app


async def until(pilot, pred, timeout=30.0, what="condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            await pilot.pause(0.2)
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@sync
async def test_resize_small_and_back_on_home_and_training(workspace):
    """80x24 -> 60x20 -> 80x24: the notice shows at once when too small, goes at once when the
    terminal is big enough again, and the keys work afterwards (on Home and on Training)."""
    install_run("stopped_run", workspace / "runs" / "r1")
    app = make_app(root=workspace, query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        for mode in ("home", "train"):
            await pilot.press("1" if mode == "home" else "5")
            await until(pilot, lambda: app.current_mode == mode, what=mode)
            await pilot.resize_terminal(60, 20)
            await pilot.pause(0.3)
            assert isinstance(app.screen, TooSmall), f"{mode}: no notice at 60x20"
            assert "60x20" in str(app.screen.query_one("#msg").render())
            await pilot.resize_terminal(80, 24)
            await pilot.pause(0.3)
            assert not isinstance(app.screen, TooSmall), f"{mode}: notice stays at 80x24"
            assert app.current_mode == mode
        await pilot.press("2")  # keys work again
        await until(pilot, lambda: app.current_mode == "prep", what="prep after resize")
        # a small step (79 columns) and back again
        await pilot.resize_terminal(79, 24)
        await pilot.pause(0.2)
        assert isinstance(app.screen, TooSmall)
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.2)
        assert not isinstance(app.screen, TooSmall)
