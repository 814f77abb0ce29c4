"""End to end in a real terminal: the demo in the studio under tmux at 80x24, the tmux session
killed mid-training (as an SSH drop would), a new studio re-attaching to the still-running run
from Home, and the run seen to the end."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is installed by ./run-tests")


def tmux(*args, check=True):
    return subprocess.run(["tmux", "-L", SOCKET, *args], capture_output=True, text=True, check=check)


SOCKET = f"xtts-ft-e2e-{os.getpid()}"


def screen(session):
    return tmux("capture-pane", "-p", "-t", session, check=False).stdout


def wait_screen(session, pred, timeout, what):
    t0 = time.time()
    last = ""
    while time.time() - t0 < timeout:
        last = screen(session)
        if pred(last):
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; screen:\n{last}")


def status(run):
    proc = subprocess.run([sys.executable, "-m", "engine", "status", str(run), "--json"], capture_output=True,
                          text=True, cwd=ROOT)
    return json.loads(proc.stdout)


def test_demo_in_tmux_survives_the_terminal_and_is_reattached(tmp_path):
    ws = tmp_path / "ws"
    run = ws / "runs" / "demo"
    env = f"cd {ROOT} && TERM=xterm-256color"
    cmd = f"{env} {sys.executable} -m tui.launch demo --tui --epochs 15 --workspace {ws}; sleep 300"
    tmux("new-session", "-d", "-s", "one", "-x", "80", "-y", "24", cmd)
    try:
        # prep and the tiny model print in the terminal, then the studio opens on the run
        page = wait_screen("one", lambda s: "Epoch" in s and "loss" in s.lower() and "GPU" in s, 240,
                           "the training screen")
        assert "no GPU" in page                    # the gauges say so on a CPU machine
        wait_screen("one", lambda s: status(run).get("state") == "training", 60, "training to be under way")
    finally:
        tmux("kill-session", "-t", "one", check=False)       # the terminal goes away mid-training
    time.sleep(2)
    st = status(run)
    assert st["state"] == "training" and st.get("alive"), st

    tmux("new-session", "-d", "-s", "two", "-x", "80", "-y", "24",
         f"{env} {sys.executable} -m tui.launch --workspace {ws}; sleep 300")
    try:
        wait_screen("two", lambda s: "demo" in s and "running" in s.lower(), 60, "Home listing the running run")
        for _ in range(8):                            # move to the run's row and attach
            tmux("send-keys", "-t", "two", "a")
            time.sleep(1.0)
            if "Epoch" in screen("two"):
                break
            tmux("send-keys", "-t", "two", "Down")
        wait_screen("two", lambda s: "Epoch" in s, 30, "the re-attached training screen")
        done = wait_screen("two", lambda s: "finished" in s.lower(), 600, "the run to finish on screen")
        assert "15/15" in done or "finished" in done.lower()
    finally:
        tmux("kill-server", check=False)
    assert status(run)["state"] == "finished"
