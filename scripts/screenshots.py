"""Regenerates the README's screenshots (docs/screenshots/*.svg) from the real app.

    .venv/bin/python scripts/screenshots.py [--workspace DIR]

It runs `xtts-ft demo` into a workspace (unless one is given that already holds it), then opens
the studio headless on each screen with Textual's pilot and saves an SVG screenshot.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCREENS = ["home", "prep", "review", "params", "train", "results"]
NAMES = {"train": "training"}
KEYS = {"prep": ["ctrl+t", "ctrl+t", "ctrl+t"]}     # prep: show the quality report tab


async def shoot(ws: Path, out: Path, size=(100, 30)) -> None:
    from tui.app import make_app

    run = ws / "runs" / "demo"
    dataset = ws / "datasets" / "demo-voice"
    for screen in SCREENS:
        app = make_app(root=ws, start=screen, run=run, dataset=dataset, query_gpu=False)
        async with app.run_test(size=size) as pilot:
            for _ in range(300):  # a busy machine composes a screen slowly: wait for it, not a fixed time
                if app.current_mode == screen and app.screen.is_mounted:
                    break
                await pilot.pause(0.1)
            await pilot.pause(2.0)
            for key in KEYS.get(screen, []):
                await pilot.press(key)
                await pilot.pause(0.5)
            name = NAMES.get(screen, screen)
            app.save_screenshot(filename=f"{name}.svg", path=str(out))
            print(f"wrote {out / (name + '.svg')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, default=Path("/tmp/xtts-ft-screens"))
    args = ap.parse_args()
    ws = args.workspace.resolve()
    if not (ws / "runs" / "demo" / "events.jsonl").exists():
        subprocess.run([sys.executable, "-m", "engine", "demo", "--workspace", str(ws)], cwd=ROOT, check=True)
    out = ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    asyncio.run(shoot(ws, out))


if __name__ == "__main__":
    main()
