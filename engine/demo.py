"""`xtts-ft demo`: the whole product on the bundled demo voice, in minutes, on a CPU.

Every stage runs exactly as a user would run it (the same commands, the same output): prepare the
demo voice, build a tiny random-weight XTTS model, train it for a short run, export it and write
A/B samples. With --tui the training is watched in the studio. Nothing is downloaded.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_VOICE = ROOT / "datasets" / "demo"
MARKER = ".xtts-ft-demo"


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help="run the whole pipeline on the bundled demo voice with a tiny model (CPU, minutes)",
        description="Prepare the bundled demo voice, build a tiny random-weight XTTS model, train it briefly, "
        "export it and write A/B samples: every stage with the output a real run gives. The voice quality of a "
        "tiny random model is not the point.",
    )
    p.add_argument("--workspace", type=Path, default=ROOT / "demo-workspace",
                   help="where the demo writes datasets/, models/ and runs/ (default: ./demo-workspace)")
    p.add_argument("--tui", action="store_true", help="watch the training in the terminal studio")
    p.add_argument("--epochs", type=int, default=4, help="training epochs (default 4)")
    p.set_defaults(func=run)


def _stage(n: int, total: int, title: str) -> None:
    from rich.console import Console
    from rich.rule import Rule

    Console(highlight=False).print(Rule(f"[bold]{n}/{total}  {title}", align="left"))


def _engine(*args, check: bool = True) -> int:
    """A stage, run as the user would run it: `xtts-ft ARGS` in its own process, output shown."""
    proc = subprocess.run([sys.executable, "-m", "engine", *map(str, args)], cwd=ROOT, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        from engine.cli import UserError

        raise UserError(f"the demo stopped: `xtts-ft {args[0]}` exited with {proc.returncode} (see above)")
    return proc.returncode


def run(args) -> int:
    from rich.console import Console

    from engine.cli import UserError

    con = Console(highlight=False)
    ws = args.workspace.expanduser().resolve()
    if not DEMO_VOICE.is_dir():
        raise UserError(f"the bundled demo voice is missing ({DEMO_VOICE})")
    if ws.exists() and any(ws.iterdir()) and not (ws / MARKER).exists():
        raise UserError(f"{ws} exists and was not made by the demo: choose another --workspace")
    shutil.rmtree(ws, ignore_errors=True)          # a demo starts fresh
    ws.mkdir(parents=True)
    (ws / MARKER).write_text("made by xtts-ft demo\n")
    dataset, base = ws / "datasets" / "demo-voice", ws / "models" / "xtts" / "tiny-base"
    run_dir, export = ws / "runs" / "demo", ws / "models" / "xtts" / "demo-voice"
    t0 = time.monotonic()
    con.print("[bold cyan][INFO][/] xtts-ft demo: the bundled demo voice, a TINY XTTS model with RANDOM weights, "
              "a short run on the CPU.")
    con.print("[bold cyan][INFO][/] The voice quality of a tiny random model is not the point: the demo shows every "
              "stage working. A real XTTS v2 model folder (models/xtts/<name>/) makes a real voice with the same "
              "commands.")
    total = 5
    _stage(1, total, "Prepare the dataset (xtts-ft prep)")
    _engine("prep", DEMO_VOICE, "--out", dataset, "--speaker", "demo", "--whisper-model", "bundled-tiny.en")
    _stage(2, total, "Build the tiny base model (xtts-ft tiny-model)")
    _engine("tiny-model", base)
    _engine("check-model", base)
    _stage(3, total, "Train (xtts-ft train)" + (" — watching in the studio" if args.tui else ""))
    train = ["train", "--dataset", dataset, "--model", base, "--run", run_dir, "--epochs", args.epochs,
             "--batch-size", "4", "--grad-accum", "1", "--lr", "5e-5", "--workers", "0", "--save-every-steps", "10",
             "--ab-samples", "2"]
    if args.tui:
        _engine(*train, "--detach")
        subprocess.run([sys.executable, "-m", "tui.launch", "--workspace", str(ws), "--run", str(run_dir)], cwd=ROOT)
        con.print("[bold cyan][INFO][/] Studio closed; waiting for the run to end (it never stops with the studio).")
        code = _engine("status", run_dir, "--follow", check=False)
    else:
        code = _engine(*train, check=False)
    if code not in (0,):
        raise UserError(f"the training run did not finish (exit {code}); see {run_dir / 'train.log'}")
    _stage(4, total, "Export (xtts-ft export)")
    _engine("export", run_dir, "--out", export, "--force")
    _stage(5, total, "Where everything is")
    samples = sorted((run_dir / "samples").glob("*.wav"))
    minutes = (time.monotonic() - t0) / 60
    lines = [
        ("dataset", dataset, "clips in wavs/, metadata_train.csv / metadata_eval.csv, dataset.json (quality report)"),
        ("base model", base, "tiny random weights, the six files of a real XTTS v2 folder"),
        ("training run", run_dir, "events.jsonl (what the studio draws), train.log, checkpoints, best_model.pth"),
        ("A/B samples", run_dir / "samples", f"{len(samples)} wav files: base vs finetuned"),
        ("exported model", export, "loads in coqui-tts and AllTalk (models/xtts/<name>/)"),
    ]
    for name, path, what in lines:
        con.print(f"  [bold]{name:<15}[/] {path}\n  {'':<15} [dim]{what}[/]")
    con.print(f"\n[bold green]Demo finished in {minutes:.1f} minutes.[/] Open the studio on it: "
              f"[bold]xtts-ft --workspace {ws}[/]. Replace the tiny model with a real one to make a real voice.")
    return 0
