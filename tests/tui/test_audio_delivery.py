"""Play keys wherever the studio runs (issue 13): in a browser (textual-serve) the file is delivered
to the browser, in a local terminal a local player plays it, in a plain SSH terminal the key says
how to listen instead (serve + tunnel, or the path to copy)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import make_dataset, sync
from textual.app import App

from tui import audio
from tui.app import make_app


class FakeApp:
    def __init__(self, web: bool):
        self.is_web = web
        self.delivered: list[tuple] = []
        self.notes: list[str] = []

    def deliver_binary(self, path, **kw):
        self.delivered.append((Path(path), kw))
        return "key"

    def notify(self, message, **kw):
        self.notes.append(message)


@pytest.fixture
def wav(tmp_path) -> Path:
    p = tmp_path / "clip one.wav"
    p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    return p


def test_browser_gets_the_file(wav, monkeypatch):
    monkeypatch.setenv("SSH_CONNECTION", "1.2.3.4 5 6.7.8.9 22")  # served over a tunnel: still the browser
    app = FakeApp(web=True)
    assert audio.play(app, wav) == "browser"
    path, kw = app.delivered[0]
    assert path == wav and kw["open_method"] == "browser" and kw["mime_type"] == "audio/wav"
    assert "browser" in app.notes[0]


def test_remote_terminal_says_how_to_listen(wav, monkeypatch):
    monkeypatch.setenv("SSH_CONNECTION", "1.2.3.4 5 6.7.8.9 22")
    monkeypatch.delenv("XTTS_FT_PLAYER", raising=False)
    app = FakeApp(web=False)
    assert audio.play(app, wav) == "advice"
    note = app.notes[0]
    assert "xtts-ft serve" in note and "ssh -L 8000:localhost:8000" in note and "scp " in note
    assert "'" + str(wav) + "'" in note  # the path, quoted for the shell (it has a space)
    assert not app.delivered


def test_local_terminal_uses_the_player(wav, monkeypatch, tmp_path):
    for k in ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY"):
        monkeypatch.delenv(k, raising=False)
    out = tmp_path / "played.txt"
    script = tmp_path / "player.sh"
    script.write_text(f'#!/bin/sh\necho "$1" > "{out}"\n')
    script.chmod(0o755)
    monkeypatch.setenv("XTTS_FT_PLAYER", str(script))
    app = FakeApp(web=False)
    assert audio.play(app, wav) == "player"
    t0 = time.time()
    while not out.exists() and time.time() - t0 < 10:
        time.sleep(0.05)
    assert out.read_text().strip() == str(wav)
    assert audio.play(app, tmp_path / "missing.wav") == "missing"


@sync
async def test_prep_and_results_deliver_in_a_browser(workspace, monkeypatch):
    """The screens' play keys go through the same delivery: Prep's ctrl+l on a recording in the file
    tree, Results' p on an A/B sample."""
    monkeypatch.setattr(audio, "in_browser", lambda app: True)
    sent = []
    monkeypatch.setattr(App, "deliver_binary", lambda self, path, **kw: sent.append((Path(path), kw)) or "k")
    ds = make_dataset(workspace / "datasets" / "voice")
    rec = workspace / "take1.wav"
    rec.write_bytes((ds / "wavs" / "alpha_aaaa01_000.wav").read_bytes())
    app = make_app(root=workspace, dataset=ds, start="prep", query_gpu=False)
    async with app.run_test(size=(100, 30)) as pilot:
        t0 = time.monotonic()
        while app.current_mode != "prep" and time.monotonic() - t0 < 30:
            await pilot.pause(0.1)
        await pilot.pause(1.0)
        scr = app.screen
        tree = scr.query_one("#tree")
        tree.focus()
        await pilot.pause(0.5)
        for _ in range(40):
            node = tree.cursor_node
            if node is not None and node.data is not None and Path(node.data.path).name == "take1.wav":
                break
            await pilot.press("down")
        await pilot.press("ctrl+l")
        await pilot.pause(0.3)
        assert sent and sent[-1][0] == rec and sent[-1][1]["open_method"] == "browser"
        await pilot.press("6")
        t0 = time.monotonic()
        while app.current_mode != "results" and time.monotonic() - t0 < 30:
            await pilot.pause(0.1)
        await pilot.pause(0.5)
        res = app.screen
        res.samples = [{"path": str(rec), "label": "A/B"}]
        res.action_play()
        await pilot.pause(0.2)
        assert sent[-1][0] == rec and len(sent) == 2
