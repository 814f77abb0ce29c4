"""Record a replay fixture for the studio's tests from a real run of the current engine.

    .venv/bin/python scripts/record_fixture.py [NAME]     (default: resumed_run)

A tiny random model and the tests' espeak-ng dataset, 2 epochs, stopped (`xtts-ft stop`) after the
third step, resumed to the end with A/B samples: every training event type, recorded. The events go
to tests/tui/fixtures/NAME/events.jsonl with the temporary folder written as WORK.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "train"))
sys.path.insert(0, str(ROOT / "tests"))  # speechgen


def xtts_ft(*args) -> None:
    from engine.jobs import engine_cmd, engine_env

    subprocess.run(engine_cmd(*map(str, args)), cwd=ROOT, env=engine_env(), check=True, stdout=subprocess.DEVNULL)


def steps(run: Path) -> int:
    from engine.events import read_events

    return sum(e["type"] == "step" for e in read_events(run / "events.jsonl")[0])


def main(name: str = "resumed_run") -> int:
    from speech import make_dataset

    from engine.train import process

    with tempfile.TemporaryDirectory(prefix="xtts-ft-fixture-") as tmp:
        work = Path(tmp)
        xtts_ft("tiny-model", work / "tiny")
        dataset = make_dataset(work / "dataset")
        run = work / "run"
        fast = ["--batch-size", "2", "--workers", "0", "--threads", "2", "--print-step", "1"]
        xtts_ft("train", "--dataset", dataset, "--model", work / "tiny", "--run", run, "--epochs", "2", *fast,
                "--save-every-steps", "4", "--ab-samples", "1", "--detach")
        while steps(run) < 3:
            time.sleep(0.2)
        xtts_ft("stop", run, "--wait")
        xtts_ft("resume", run)
        assert process.summarize(run)["state"] == "finished"
        text = (run / "events.jsonl").read_text(encoding="utf-8").replace(str(work), "WORK")
        out = ROOT / "tests" / "tui" / "fixtures" / name
        out.mkdir(parents=True, exist_ok=True)
        (out / "events.jsonl").write_text(text, encoding="utf-8")
        types = sorted({json.loads(x)["type"] for x in text.splitlines() if x.strip()})
        print(f"{out / 'events.jsonl'}: {len(text.splitlines())} events, types {', '.join(types)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
