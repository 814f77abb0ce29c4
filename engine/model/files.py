"""Model folders in the AllTalk layout: `models/xtts/<name>/` with the six files XTTS needs.

`check_model(dir)` never imports torch for the cheap checks (presence, size, JSON); it opens the
.pth files only with `deep=True`, to name an unreadable one before a long run starts.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED_FILES = ("config.json", "model.pth", "mel_stats.pth", "speakers_xtts.pth", "vocab.json", "dvae.pth")


class ModelFilesError(Exception):
    """The model folder is incomplete or damaged; the message names every bad file."""

    def __init__(self, folder: Path, problems: list[str]):
        self.folder = folder
        self.problems = problems
        super().__init__(
            f"model folder {folder} is not usable:\n  " + "\n  ".join(problems)
            + "\n  (a model folder needs: " + ", ".join(REQUIRED_FILES) + ")"
        )


@dataclass
class ModelInfo:
    folder: Path
    name: str
    files: dict[str, int]  # file name -> size in bytes
    languages: list[str] = field(default_factory=list)
    gpt_layers: int | None = None
    gpt_channels: int | None = None
    note: str = ""  # the model's own note (config.json xtts_ft.note), shown by check-model

    @property
    def size_bytes(self) -> int:
        return sum(self.files.values())

    def path(self, name: str) -> Path:
        return self.folder / name

    def as_dict(self) -> dict:
        return {
            "folder": str(self.folder), "name": self.name, "files": self.files, "size_bytes": self.size_bytes,
            "languages": self.languages, "gpt_layers": self.gpt_layers, "gpt_channels": self.gpt_channels,
        }


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _torch_file_problem(path: Path) -> str | None:
    """A cheap structural check: torch.save files are zip archives with a data.pkl inside."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if not any(n.endswith("data.pkl") for n in names):
                return "not a PyTorch file (no data.pkl inside)"
            bad = zf.testzip() if path.stat().st_size < 2_000_000 else None
            if bad:
                return f"damaged (CRC error in {bad})"
    except zipfile.BadZipFile:
        return "not a PyTorch file or truncated"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    return None


def check_model(folder: str | Path, deep: bool = False) -> ModelInfo:
    """Return the folder's ModelInfo or raise ModelFilesError naming every missing/unreadable file."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise ModelFilesError(folder, [f"folder does not exist: {folder}"])
    if not folder.is_dir():
        raise ModelFilesError(folder, [f"not a folder: {folder}"])
    problems: list[str] = []
    files: dict[str, int] = {}
    config: dict = {}
    for name in REQUIRED_FILES:
        p = folder / name
        if not p.is_file():
            problems.append(f"{name}: missing")
            continue
        size = p.stat().st_size
        files[name] = size
        if size == 0:
            problems.append(f"{name}: empty file")
            continue
        if name.endswith(".json"):
            try:
                data = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                problems.append(f"{name}: unreadable JSON ({exc})")
                continue
            if name == "config.json":
                if not isinstance(data, dict) or "model_args" not in data:
                    problems.append("config.json: not an XTTS config (no model_args)")
                else:
                    config = data
            elif name == "vocab.json" and not (isinstance(data, dict) and "model" in data):
                problems.append("vocab.json: not a tokenizer file (no 'model' entry)")
        else:
            bad = _torch_file_problem(p)
            if bad:
                problems.append(f"{name}: {bad}")
    if deep and not problems:
        problems += _deep_check(folder)
    if problems:
        raise ModelFilesError(folder, problems)
    args = config.get("model_args", {})
    return ModelInfo(
        folder=folder.resolve(),
        name=folder.name,
        files=files,
        languages=list(config.get("languages") or []),
        gpt_layers=args.get("gpt_layers"),
        gpt_channels=args.get("gpt_n_model_channels"),
        note=str(config.get("xtts_ft", {}).get("note") or ""),
    )


def _deep_check(folder: Path) -> list[str]:
    from engine.model import weights

    problems = []
    for name in ("model.pth", "dvae.pth", "mel_stats.pth", "speakers_xtts.pth"):
        try:
            obj = weights.load(folder / name, mmap=True)
        except weights.UnsafeCheckpoint as exc:
            problems.append(str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - any failure means "unreadable"
            problems.append(f"{name}: unreadable ({type(exc).__name__}: {str(exc)[:120]})")
            continue
        if name == "model.pth" and not (isinstance(obj, dict) and "model" in obj):
            problems.append("model.pth: no 'model' state dict inside")
        if name == "mel_stats.pth" and not (hasattr(obj, "numel") and obj.numel() == 80):
            problems.append("mel_stats.pth: expected a tensor of 80 values")
    return problems


def describe(info: ModelInfo) -> list[str]:
    langs = ", ".join(info.languages) if info.languages else "unknown"
    lines = [
        f"- Folder: {info.folder}",
        f"- Size: {human_size(info.size_bytes)} ("
        + ", ".join(f"{n} {human_size(s)}" for n, s in info.files.items()) + ")",
        f"- Languages ({len(info.languages)}): {langs}",
    ]
    if info.gpt_layers is not None:
        lines.append(f"- GPT: {info.gpt_layers} layers x {info.gpt_channels} channels"
                     + (f" ({info.note})" if info.note else ""))
    return lines
