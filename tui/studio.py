"""The studio's workspace: where datasets, runs and models live, what the user chose last time,
and the child processes it starts. No Textual here.

Layout under the workspace root (the current folder unless XTTS_FT_HOME or --workspace says
otherwise):
  datasets/<name>/       dataset folders written by `xtts-ft prep`
  runs/<name>/           training runs (`xtts-ft train --run ...`)
  models/xtts/<name>/    base models and exports (AllTalk layout)
  .xtts-ft/studio.json   the studio's saved choices (forms, current project), so a user can come back
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from engine.atomic import write_json

STATE_FILE = Path(".xtts-ft") / "studio.json"


class Studio:
    def __init__(self, root: str | Path | None = None):
        root = root or os.environ.get("XTTS_FT_HOME") or os.getcwd()
        self.root = Path(root).expanduser().resolve()
        self.state: dict = {}
        self.load()

    # ------------------------------------------------------------------ places
    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def models_dir(self) -> Path:
        return self.root / "models" / "xtts"

    @property
    def jobs_dir(self) -> Path:
        return self.root / ".xtts-ft" / "jobs"

    # ------------------------------------------------------------------ saved state
    def load(self) -> None:
        p = self.root / STATE_FILE
        try:
            self.state = json.loads(p.read_text(encoding="utf-8"))
            if not isinstance(self.state, dict):
                self.state = {}
        except (OSError, ValueError):
            self.state = {}

    def save(self) -> None:
        try:
            write_json(self.root / STATE_FILE, self.state)
        except OSError:
            pass  # a read-only workspace still works; choices are just not remembered

    def get(self, key: str, default=None):
        return self.state.get(key, default)

    def set(self, key: str, value) -> None:
        self.state[key] = value
        self.save()

    # paths in studio.json are relative to the workspace when inside it, so a copied or moved
    # workspace points at its own datasets and runs, never at the original's
    def rel(self, p: str | Path) -> str:
        """A path as stored: relative to the workspace when inside it, absolute otherwise."""
        p = self.path(p)
        try:
            return str(p.relative_to(self.root))
        except ValueError:
            return str(p)

    def path(self, p: str | Path) -> Path:
        """A stored or typed path made absolute: a relative one is inside the workspace."""
        p = Path(p).expanduser()
        return (p if p.is_absolute() else self.root / p).resolve()

    def show(self, p: str | Path) -> str:
        """A path for a form field: short (relative) when inside the workspace."""
        return self.rel(p)

    @property
    def dataset(self) -> Path | None:
        d = self.state.get("dataset")
        return self.path(d) if d else None

    @property
    def run(self) -> Path | None:
        r = self.state.get("run")
        return self.path(r) if r else None

    def set_current(self, dataset: Path | None = None, run: Path | None = None) -> None:
        if dataset is not None:
            self.state["dataset"] = self.rel(dataset)
            self.remember_dataset(self.path(dataset))
        if run is not None:
            self.state["run"] = self.rel(run)
            self.remember_run(self.path(run))

    def new_project(self) -> None:
        """Forget the current dataset and run, and the project part of the prep form (name,
        sources, speaker): a new project starts empty; machine settings (whisper model, device,
        language) stay."""
        self.state.pop("dataset", None)
        self.state.pop("run", None)
        form = dict(self.state.get("prep_form") or {})
        for key in ("out", "speaker", "speaker_ref", "speaker_threshold", "sources", "add_existing"):
            form.pop(key, None)
        self.state["prep_form"] = form
        self.save()

    def fresh_name(self, folder: Path, base: str) -> Path:
        """folder/base, or base-2, base-3... : the first that does not exist yet."""
        p, i = folder / base, 2
        while p.exists():
            p, i = folder / f"{base}-{i}", i + 1
        return p

    # ------------------------------------------------------------------ discovery
    def find_datasets(self) -> list[Path]:
        found: dict[str, Path] = {}
        if self.datasets_dir.is_dir():
            for p in sorted(self.datasets_dir.iterdir()):
                if (p / "dataset.json").is_file() or (p / "metadata_train.csv").is_file() \
                        or (p / "prep_events.jsonl").is_file():
                    found[str(p.resolve())] = p.resolve()
        for d in self.state.get("known_datasets", []):
            p = self.path(d)
            if p.is_dir():
                found.setdefault(str(p.resolve()), p.resolve())
        for r in self.find_runs():
            d = run_dataset(r)
            if d and d.is_dir():
                found.setdefault(str(d.resolve()), d.resolve())
        return list(found.values())

    def remember_dataset(self, d: Path) -> None:
        d = self.rel(d)
        known = [x for x in self.state.get("known_datasets", []) if x != d]
        self.state["known_datasets"] = [d] + known[:50]
        self.save()

    def remember_run(self, r: Path) -> None:
        r = self.rel(r)
        known = [x for x in self.state.get("known_runs", []) if x != r]
        self.state["known_runs"] = [r] + known[:100]
        self.save()

    def find_runs(self) -> list[Path]:
        from engine.train.process import find_runs

        found: dict[str, Path] = {str(p.resolve()): p.resolve() for p in find_runs(self.runs_dir)}
        for r in self.state.get("known_runs", []):
            p = self.path(r)
            if (p / "run_config.json").is_file():
                found.setdefault(str(p.resolve()), p.resolve())
        return list(found.values())

    def runs_of(self, dataset: Path) -> list[Path]:
        d = str(Path(dataset).resolve())
        return [r for r in self.find_runs() if str(run_dataset(r) or "") == d]

    # ------------------------------------------------------------------ child processes
    def spawn(self, args: list[str], log_path: Path) -> subprocess.Popen:
        """Start `python -m engine ARGS` detached (engine/jobs/process.py): it outlives the studio."""
        from engine.jobs import engine_cmd, spawn_detached

        header = f"\n$ xtts-ft {' '.join(args)}   ({time.strftime('%Y-%m-%d %H:%M:%S')})\n"
        return spawn_detached(engine_cmd(*args), log_path, cwd=self.root, header=header)

    def run_engine(self, args: list[str], timeout: float = 120) -> tuple[int, str]:
        """A short engine command (stop, check-model --json...): (exit code, output)."""
        from engine.jobs import engine_cmd, engine_env

        try:
            p = subprocess.run(engine_cmd(*args), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=timeout, cwd=str(self.root), env=engine_env())
        except subprocess.TimeoutExpired:
            return 124, f"xtts-ft {args[0]} did not answer within {timeout:.0f} s"
        return p.returncode, (p.stdout + p.stderr).strip()


def run_dataset(run: Path) -> Path | None:
    try:
        cfg = json.loads((Path(run) / "run_config.json").read_text(encoding="utf-8"))
        return Path(cfg["dataset"]) if cfg.get("dataset") else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_config(run: Path) -> dict:
    try:
        return json.loads((Path(run) / "run_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def quick_run_summary(run: Path, tail_bytes: int = 262144) -> dict:
    """The engine's run summary (state checked against the process) from the last part of
    events.jsonl (cheap on huge runs); `best` is the best loss ("?" when it lies before the tail)."""
    from engine.train import process

    s = process.summarize(Path(run), tail_bytes=tail_bytes)
    s["run"] = Path(run)
    s["reason"] = s["reason"] or ""
    best = s["best"]
    s["best"] = best.get("loss") if best else ("?" if (Path(run) / "best_model.pth").is_file() else None)
    return s


RUN_JOBS = {"listen": "listening test", "export": "export"}   # a run's own jobs besides training


def job_state(kind: str, run: Path | None) -> dict | None:
    """A run's listening or export job from its files (None when none was started there): its summary
    with `running` (process there, state not final). A studio started later finds it this way."""
    from engine.jobs import JobFiles, states
    from engine.listen import job
    from engine.model import export

    if run is None or not JobFiles(kind, Path(run)).process.is_file():
        return None
    s = job.job_summary(run) if kind == "listen" else export.job_summary(run)
    s["running"] = bool(s["alive"]) and not states.is_final(s["state"])
    return s


def job_line(kind: str, s: dict) -> str:
    """A run's listening or export job in a few words: `listening test running (12/40 sentences)`."""
    p = s.get("progress") or {}
    done = f" ({p.get('done')}/{p.get('total')} sentences)" if s["running"] and p.get("total") else ""
    return f"{RUN_JOBS[kind]} {'running' if s['running'] else s['state']}{done}"


def dataset_summary(folder: Path) -> dict:
    """Clip counts and speech minutes from dataset.json (or the CSVs)."""
    folder = Path(folder)
    out = {"folder": folder, "clips": 0, "excluded": 0, "train": 0, "eval": 0, "seconds": 0.0, "language": "",
           "ok": False}
    try:
        m = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        m = None
    if isinstance(m, dict) and isinstance(m.get("segments"), list):
        out["ok"] = True
        out["language"] = m.get("language", "")
        for s in m["segments"]:
            if s.get("excluded"):
                out["excluded"] += 1
                continue
            out["clips"] += 1
            out["seconds"] += float(s.get("duration") or 0)
            if s.get("split") == "eval":
                out["eval"] += 1
            else:
                out["train"] += 1
        return out
    for name, key in (("metadata_train.csv", "train"), ("metadata_eval.csv", "eval")):
        try:
            rows = (folder / name).read_text(encoding="utf-8").splitlines()[1:]
            out[key] = len([r for r in rows if r.strip()])
            out["ok"] = True
        except OSError:
            pass
    out["clips"] = out["train"] + out["eval"]
    return out


# flags that deserve a second look when their clip is still in the training set (docs/prep.md)
REVIEW_FLAGS = ("noisy", "music", "reverb", "clipped", "duplicate_text", "low_confidence", "too_short", "too_long",
                "cut_end", "cut_start", "tail_noise", "no_tail",
                "other_speaker", "hallucination", "repeated_text", "empty_text", "doubtful")
# flags that leave a clip out unless the user restored it in review
RESTORED_FLAGS = ("other_speaker", "hallucination", "repeated_text", "empty_text", "doubtful")


def flagged_in_training(folder: Path) -> dict[str, int]:
    """How many clips still included in training carry each flag worth a warning
    ({flag: count}, in REVIEW_FLAGS order; empty when none or no dataset.json)."""
    try:
        m = json.loads((Path(folder) / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    counts = dict.fromkeys(REVIEW_FLAGS, 0)
    for s in (m.get("segments") or []) if isinstance(m, dict) else []:
        if s.get("excluded"):
            continue
        for f in s.get("flags") or []:
            f = "duplicate_text" if f == "duplicate" else f
            if f in counts:
                counts[f] += 1
    return {k: v for k, v in counts.items() if v}
