"""`xtts-ft export R --out models/xtts/NAME`: a compact model folder from a training run.

model.pth = the base model's weights with the run's GPT weights laid over them, without the
optimizer, the DVAE or the trainer's mel modules; the other five files come from the base
model folder. The result loads with coqui-tts `Xtts.load_checkpoint` and in AllTalk unchanged.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from engine.atomic import atomic_path, write_json, write_text
from engine.model import weights
from engine.model.files import check_model
from engine.train import checkpoints as ck

DROP_PREFIXES = ("dvae.", "torch_mel_spectrogram_style_encoder.", "torch_mel_spectrogram_dvae.")


class ExportError(Exception):
    pass


def resolve_checkpoint(run: Path, which: str) -> Path:
    if which == "best" and _best_by(run) == "listen" and (run / "best_listen.pth").is_file():
        which = "best-listen"       # --best-by listen: "best" is what the listening test recommends
    if which == "best-listen":
        p = run / "best_listen.pth"
        if p.is_file():
            return p
        rec = run / "listen" / "recommended.json"
        if rec.is_file():
            try:
                w = json.loads(rec.read_text(encoding="utf-8")).get("weights")
            except ValueError:
                w = None
            if w and Path(w).is_file():
                return Path(w)
            raise ExportError(f"the listening test recommends {w}, which no longer exists (pruned?): "
                              "export it by path or keep more checkpoints")
        raise ExportError(f"{run} has no listening result (no best_listen.pth): train with --listen-every, "
                          f"or run `xtts-ft listen {run}` first")
    if which == "best":
        p = run / "best_model.pth"
        if p.is_file():
            return p
        which = "last"  # no eval yet: fall back to the last checkpoint
    if which == "last":
        found = ck.latest_loadable(run)
        if found is None:
            raise ExportError(f"no checkpoint in {run} (neither best_model.pth nor checkpoints/)")
        return found[0]
    p = Path(which)
    if not p.is_file():
        raise ExportError(f"--checkpoint: file not found: {p}")
    return p


def _best_by(run: Path) -> str:
    try:
        return json.loads((run / "run_config.json").read_text(encoding="utf-8")).get("best_by") or "loss"
    except (OSError, ValueError):
        return "loss"


def dataset_speaker(dataset: str | Path) -> str | None:
    """The dataset's speaker: the most frequent speaker_name of metadata_train.csv (prep writes one)."""
    import csv
    from collections import Counter

    p = Path(dataset) / "metadata_train.csv"
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            names = Counter(r.get("speaker_name") or "" for r in csv.DictReader(fh, delimiter="|"))
    except OSError:
        return None
    names.pop("", None)
    return names.most_common(1)[0][0] if names else None


def read_speakers(path: Path) -> dict:
    """speakers_xtts.pth: {name: {"gpt_cond_latent": tensor, "speaker_embedding": tensor}} (tensors
    only, loaded with weights_only=True)."""
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure: unreadable
        raise ExportError(f"{path}: unreadable speakers file ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path}: not a speakers file (expected a name -> latents dict)")
    return data


def named_voice(model_dir: Path, refs: list[Path]) -> dict:
    """The voice as coqui stores a speaker: the conditioning latents and speaker embedding that the
    model in `model_dir` (the finetuned export) computes from the reference clips."""
    import torch

    from engine.model.synth import load_model

    model = load_model(model_dir)
    with torch.inference_mode():
        latent, emb = model.get_conditioning_latents(audio_path=[str(p) for p in refs], gpt_cond_len=30,
                                                     max_ref_length=60)
    return {"gpt_cond_latent": latent.detach().cpu().clone(), "speaker_embedding": emb.detach().cpu().clone()}


def export_run(run: str | Path, out: str | Path, checkpoint: str = "best", force: bool = False,
               n_refs: int = 3, speaker_name: str | None = None, add_speaker: bool = True) -> dict:
    """speaker_name: the name of the finetuned voice in the export's speakers_xtts.pth (default: the
    dataset's speaker); a name the base model already has is refused unless `force`."""
    import torch

    run, out = Path(run), Path(out)
    cfg_path = run / "run_config.json"
    if not cfg_path.is_file():
        raise ExportError(f"{run} is not a training run (no run_config.json)")
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    if out.exists() and any(out.iterdir()) and not force:
        raise ExportError(f"{out} already exists and is not empty: use --force to overwrite")
    base = check_model(cfg["model"])
    speakers = read_speakers(base.path("speakers_xtts.pth")) if add_speaker else {}
    if add_speaker:
        speaker_name = (speaker_name if speaker_name is not None else dataset_speaker(cfg["dataset"])) or out.name
        speaker_name = speaker_name.strip()
        if not speaker_name:
            raise ExportError("--speaker-name: empty name")
        if speaker_name in speakers and not force:
            raise ExportError(f"--speaker-name {speaker_name!r} is already a speaker of the base model "
                              f"({len(speakers)} in its speakers_xtts.pth): choose another name, or --force to "
                              "replace that speaker in the export")
    src = resolve_checkpoint(run, checkpoint)
    try:
        data = weights.load(src)
        run_state = weights.state_dict(data)
        state = dict(weights.state_dict(weights.load(base.path("model.pth"))))
    except weights.UnsafeCheckpoint as exc:
        raise ExportError(str(exc)) from None
    # normalise the base's keys (a coqui Trainer checkpoint has "xtts." prefixes)
    state = {(k[5:] if k.startswith("xtts.") else k): v for k, v in state.items()
             if not k.startswith(DROP_PREFIXES)}
    replaced = 0
    for k, v in run_state.items():
        if k.startswith(DROP_PREFIXES):
            continue
        key = k[5:] if k.startswith("xtts.") else k
        if key.startswith("gpt.") or key in state:
            state[key] = v
            replaced += 1
    if replaced == 0:
        raise ExportError(f"{src}: no model weights inside")
    state = {k: v for k, v in state.items() if not k.startswith(("gpt.gpt_inference.", "gpt.gpt.wte."))}

    tmp_dir = out.parent / f".{out.name}.export-tmp"
    if tmp_dir.exists():
        shutil.rmtree(tmp_dir)
    tmp_dir.mkdir(parents=True)
    try:
        base_cfg = json.loads(base.path("config.json").read_text(encoding="utf-8"))
        base_cfg.setdefault("model_args", {})["tokenizer_file"] = ""
        base_cfg["xtts_ft"] = {**base_cfg.get("xtts_ft", {}), "exported_from": str(run.resolve()),
                               "checkpoint": str(src), "step": data.get("step"), "epoch": data.get("epoch"),
                               "exported": time.strftime("%Y-%m-%d %H:%M:%S")}
        write_json(tmp_dir / "config.json", base_cfg)
        with atomic_path(tmp_dir / "model.pth") as tmp:
            torch.save({"model": state, "config": base_cfg}, tmp)
        for name in ("mel_stats.pth", "speakers_xtts.pth", "vocab.json", "dvae.pth"):
            shutil.copyfile(base.path(name), tmp_dir / name)
        from engine.model.synth import pick_references

        refs = []
        ref_dir = tmp_dir / "reference"
        for i, p in enumerate(pick_references(cfg["dataset"], n=n_refs), 1):
            ref_dir.mkdir(exist_ok=True)
            dst = ref_dir / f"reference_{i}{p.suffix}"
            shutil.copyfile(p, dst)
            refs.append(dst.name)
        voice = None
        if add_speaker and refs:
            speakers[speaker_name] = named_voice(tmp_dir, [ref_dir / r for r in refs])
            with atomic_path(tmp_dir / "speakers_xtts.pth") as tmp:
                torch.save(speakers, tmp)
            voice = speaker_name
        write_text(tmp_dir / "README.md", _readme(out.name, cfg, run, src, data, refs, voice))
        for p in tmp_dir.rglob("*"):
            if p.is_file():
                p.chmod(0o644)
        if out.exists():
            old = out.parent / f".{out.name}.old-{int(time.time())}"
            out.rename(old)
            tmp_dir.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp_dir.rename(out)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    info = check_model(out)
    return {"out": str(out), "checkpoint": str(src), "step": data.get("step"), "references": refs,
            "size_bytes": info.size_bytes, "model_pth_bytes": info.files["model.pth"], "speaker": voice,
            "speakers": len(speakers) if voice else None}


def files(run: str | Path):
    """The export job's files in the run folder: R/export_events.jsonl, R/export_process.json, R/export.log."""
    from engine.jobs import JobFiles

    return JobFiles("export", Path(run))


def _fold(s: dict, e: dict) -> None:
    """summarize fold: the export's start (out, checkpoint) and its final state (the result)."""
    if e.get("type") == "state":
        s["result"] = {**(s.get("result") or {}), **{k: v for k, v in e.items() if k not in ("v", "ts", "type")}}


def job_summary(run: str | Path) -> dict:
    """The run's latest export job (a dead process reads `failed`; state `new` when none was started),
    with `result`: where it writes and, once it is done, what it wrote."""
    from engine.jobs import summarize

    return summarize(files(run), latest_only=True, fold=_fold, extra={"result": None})


def stop(run: str | Path) -> int:
    """Ask the running export to stop (SIGINT): it ends `stopped` with nothing written."""
    from engine.jobs import stop_job

    return stop_job(files(run), "export job")


def format_status(run: str | Path, s: dict) -> str:
    """`xtts-ft export RUN --status`: one line (and the summary lines of a finished export)."""
    if s["state"] == "new" and not s["alive"]:
        return f"no export job for {run} (none was started; `xtts-ft export {run} --out DIR` starts one)"
    res = s.get("result") or {}
    where = f"{res.get('checkpoint', '?')} to {res.get('out', '?')}"
    if s["state"] == "finished":
        return "\n".join([f"export job: finished ({where})", *(res.get("summary") or [])])
    if s["state"] in ("stopped", "failed"):
        return f"export job: {s['state']} ({where}): {s.get('reason') or 'no reason given'}"
    return f"export job: {s['state']} (pid {s['pid']}), exporting {where}; stop it with `xtts-ft export {run} --stop`"


def summary_lines(res: dict, add_speaker: bool = True) -> list[str]:
    """What an export says when it is done (the CLI prints it; the studio shows it)."""
    lines = [f"[MODEL] exported {res['checkpoint']} (global step {res['step']}) to {res['out']}",
             f"- model.pth {res['model_pth_bytes'] / 1e6:.1f} MB; reference clips: {', '.join(res['references']) or 'none'}"]
    if res.get("speaker"):
        lines.append(f"- named voice {res['speaker']!r} added to speakers_xtts.pth ({res['speakers']} speakers): "
                     f"coqui-tts `speaker={res['speaker']!r}`, AllTalk's voice list")
    elif add_speaker:
        lines.append("- no named voice: the dataset has no clip to compute it from")
    return lines


def _readme(name: str, cfg: dict, run: Path, src: Path, data: dict, refs: list[str], voice: str | None = None) -> str:
    loss = data.get("loss")
    lines = [
        f"# {name}",
        "",
        "An XTTS v2 voice finetuned with xtts-ft. Load it like any XTTS model folder",
        "(AllTalk `models/xtts/<name>/`, or coqui-tts `Xtts.load_checkpoint(config, checkpoint_dir=...)`).",
        "",
        "## Training",
        f"- Base model: `{cfg['model']}`" + (f" + base checkpoint `{cfg['base_checkpoint']}`"
                                             if cfg.get("base_checkpoint") else ""),
        f"- Dataset: `{cfg['dataset']}` (language `{cfg['language']}`)",
        f"- Run: `{run}`; weights from `{src.name}` (global step {data.get('step')}, epoch "
        f"{(data.get('epoch') or 0) + 1})" + (f", eval loss {loss:.5f}" if isinstance(loss, float) else ""),
        f"- Epochs {cfg['epochs']}, batch {cfg['batch_size']} x accumulation {cfg['grad_accum']}, "
        f"learning rate {cfg['lr']:g}, optimizer {cfg['optimizer']}, scheduler {cfg['scheduler']}, "
        f"precision {cfg['precision']}",
        "",
        "## Reference clips",
    ]
    lines += [f"- `reference/{r}`" for r in refs] or ["- (none between 6 and 10 s in the dataset)"]
    lines += ["", "Use one of them as the speaker reference (`--speaker-wav`)."]
    if voice:
        lines += ["", "## Named voice", "",
                  f"`speakers_xtts.pth` holds this voice as `{voice}` (conditioning latents and speaker embedding "
                  "computed by this model from the reference clips) beside the base model's speakers, so no "
                  "reference WAV is needed:", "", "```python",
                  "from TTS.tts.configs.xtts_config import XttsConfig",
                  "from TTS.tts.models.xtts import Xtts", "",
                  "config = XttsConfig()", f'config.load_json("models/xtts/{name}/config.json")',
                  "model = Xtts.init_from_config(config)",
                  f'model.load_checkpoint(config, checkpoint_dir="models/xtts/{name}", eval=True)',
                  f'out = model.synthesize("Hello there.", speaker={voice!r}, language="{cfg["language"]}")',
                  "```", "", f"AllTalk lists `{voice}` among the model's voices."]
    return "\n".join(lines) + "\n"

