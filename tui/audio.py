"""Listening from the studio wherever it runs (issue 13).

- In a browser (`xtts-ft serve`, textual-serve): the file is delivered to the browser with
  Textual's `deliver_binary(open_method="browser")`; the browser opens it in a new tab and plays it.
- In a local terminal: a local player (paplay, aplay, ffplay, afplay; `XTTS_FT_PLAYER` overrides).
- In a plain remote terminal (SSH): a player there would sound on the server, so the play key says
  how to listen instead: `xtts-ft serve` + an SSH tunnel, or the path to copy.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import threading
from pathlib import Path

MIME = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".flac": "audio/flac", ".ogg": "audio/ogg", ".m4a": "audio/mp4",
        ".opus": "audio/ogg", ".aac": "audio/aac"}
PLAYERS = (["paplay"], ["aplay", "-q"], ["ffplay", "-nodisp", "-autoexit", "-loglevel", "quiet"], ["afplay"])


def local_player() -> list[str] | None:
    """The command that plays a file here: $XTTS_FT_PLAYER, else the first player found."""
    forced = os.environ.get("XTTS_FT_PLAYER", "").strip()
    if forced:
        return shlex.split(forced)
    for cmd in PLAYERS:
        if shutil.which(cmd[0]):
            return cmd
    return None


def remote_terminal() -> bool:
    """The terminal is an SSH session: sound played here would come out of the server."""
    return any(os.environ.get(k) for k in ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY"))


def how_to_listen(path: Path) -> str:
    host = socket.gethostname()
    return (f"Sound would play on {host}, not here (SSH). In your browser: `xtts-ft serve` on {host}, "
            f"`ssh -L 8000:localhost:8000 {host}`, http://localhost:8000. Or copy it: "
            f"scp {host}:{shlex.quote(str(path))} .")


def in_browser(app) -> bool:
    """The studio is shown in a web browser (textual-serve's web driver)."""
    return bool(getattr(app, "is_web", False))


def play(app, path: str | Path, label: str | None = None) -> str:
    """Play `path` for the user of `app`; returns how: browser | player | advice | missing | failed."""
    path = Path(path)
    label = label or path.name
    if not path.is_file():
        app.notify(f"{label}: file not found: {path}", title="Play", severity="error")
        return "missing"
    if in_browser(app):
        app.deliver_binary(path, open_method="browser", mime_type=MIME.get(path.suffix.lower(), "audio/wav"),
                           save_filename=path.name, name=f"play:{path.name}")
        app.notify(f"Playing {label} in your browser (it opens in a new tab; allow pop-ups for this page)",
                   title="Play", timeout=4)
        return "browser"
    cmd = local_player()
    if remote_terminal() and not os.environ.get("XTTS_FT_PLAYER"):
        app.notify(how_to_listen(path), title="Play", severity="warning", timeout=15)
        return "advice"
    if cmd is None:
        app.notify(f"No audio player on this machine (paplay, aplay, ffplay): listen to {path} elsewhere, "
                   "or open the studio in a browser with `xtts-ft serve`.", title="Play", severity="warning",
                   timeout=10)
        return "advice"
    try:
        proc = subprocess.Popen([*cmd, str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        # reaped when it ends: each play would otherwise leave a zombie until the studio quits
        threading.Thread(target=proc.wait, name="player-reaper", daemon=True).start()
    except OSError as exc:
        app.notify(f"could not start the player {cmd[0]}: {exc}", title="Play", severity="error")
        return "failed"
    app.notify(f"Playing {label}", timeout=3)
    return "player"
