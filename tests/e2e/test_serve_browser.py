"""`xtts-ft serve` in a real browser (issue 13): Debian's headless chromium opens the served studio,
the Home screen is on the page (screenshot kept in the test's folder), and Review's play key
delivers the clip's WAV to the browser, which the test fetches back and compares byte for byte.
Also the serve command's bad input: a port in use, textual-serve missing, a non-local host."""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tui"))

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(port: int, workspace: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SSH_CONNECTION", None)
    return subprocess.Popen([sys.executable, "-m", "engine", "serve", "--port", str(port), "--workspace",
                             str(workspace)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"xtts-ft serve exited with {proc.returncode}:\n{proc.stdout.read()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise AssertionError("xtts-ft serve did not start listening")


def stop(proc: subprocess.Popen) -> str:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.stdout.read() if proc.stdout else ""


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium + chromium-driver are installed by ./run-tests")
def test_served_studio_in_headless_chromium(tmp_path):
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from helpers import make_dataset

    ws = tmp_path / "ws"
    ds = make_dataset(ws / "datasets" / "voice")
    port = free_port()
    proc = start_serve(port, ws)
    driver = None
    try:
        wait_listening(port, proc)
        opts = Options()
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,800",
                  "--disable-gpu"):
            opts.add_argument(a)
        opts.binary_location = CHROMIUM
        driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
        driver.get(f"http://127.0.0.1:{port}")
        t0 = time.time()
        while "-first-byte" not in driver.execute_script("return document.body.className"):
            assert time.time() - t0 < 120, "the page never received the studio's output"
            time.sleep(0.5)
        time.sleep(4)  # the first frames: Home's table
        shot = tmp_path / "home.png"
        driver.save_screenshot(str(shot))
        img = Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")
        top = img.crop((0, 0, img.width, 120))
        assert len(top.getcolors(maxcolors=1 << 20)) > 20, f"the page looks blank (see {shot})"
        # play: Enter opens the dataset in Review, p delivers the highlighted clip to the browser
        driver.execute_script("window.__opened = []; window.open = (u) => { window.__opened.push(u); return null; };")
        keys = driver.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea")
        keys.send_keys(Keys.ENTER)
        time.sleep(4)
        keys.send_keys("p")
        t0 = time.time()
        while not driver.execute_script("return window.__opened.length"):
            assert time.time() - t0 < 60, "the play key delivered nothing to the browser"
            time.sleep(0.3)
        url = driver.execute_script("return window.__opened[0]")
        got = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0]).then(async r => { const b = new Uint8Array(await r.arrayBuffer()); let s = '';"
            " for (const x of b) s += String.fromCharCode(x);"
            " done({status: r.status, type: r.headers.get('content-type'), b64: btoa(s)}); })"
            ".catch(e => done({error: String(e)}));", url)
        assert got.get("status") == 200, got
        assert got["type"].startswith("audio/wav")
        data = base64.b64decode(got["b64"])
        assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
        first = sorted((ds / "wavs").glob("alpha_*_000.wav"))[0]
        assert data == first.read_bytes()
    finally:
        if driver is not None:
            driver.quit()
        out = stop(proc)
    assert "localhost only" in out or "for this machine only" in out


def test_serve_refuses_a_port_in_use(tmp_path, capsys):
    from engine.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", "--port", str(port), "--workspace", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"port {port}" in err[0] and "already in use" in err[0] and "--port" in err[0]


def test_serve_without_textual_serve(tmp_path, capsys, monkeypatch):
    from engine.cli import main

    monkeypatch.setitem(sys.modules, "textual_serve.server", None)  # as if the package were not installed
    assert main(["serve", "--workspace", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs textual-serve" in err[0] and "pip install textual-serve" in err[0]


def test_serve_warns_for_a_public_host_and_binds_localhost_by_default(tmp_path, capsys, monkeypatch):
    import textual_serve.server

    from engine.cli import main

    seen = []

    class FakeServer:
        def __init__(self, command, host, port, title, public_url):
            seen.append((command, host, port, public_url))

        def serve(self):
            return None

    monkeypatch.setattr(textual_serve.server, "Server", FakeServer)
    port = free_port()
    assert main(["serve", "--port", str(port), "--workspace", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert seen[-1][1] == "127.0.0.1" and "WARNING" not in out.err
    assert f"ssh -L {port}:localhost:{port}" in out.out and "tui.launch" in seen[-1][0]
    assert main(["serve", "--host", "0.0.0.0", "--port", str(port), "--workspace", str(tmp_path),
                 "--public-url", "https://studio.example"]) == 0
    out = capsys.readouterr()
    assert seen[-1][1] == "0.0.0.0" and seen[-1][3] == "https://studio.example"
    assert "WARNING" in out.err and "without a password" in out.err and "firewall" in out.err
