"""Parameters: the guide's presets, every engine option (engine.train.config.OPTIONS) with its help,
validated as you type; effective batch (per-GPU batch x GPUs x accumulation, with the learning-rate
advice of engine.train.distributed), the base-model check (the six files), the GPU found, and the
engine's memory estimate (engine.train.memory): will the chosen batch, clip length, precision and
memory options fit the GPU (or a GPU size picked here), the estimated peak and the largest batch that fits. ctrl+r starts `xtts-ft train ... --detach` and opens the Training screen."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Label, Select, Static, Switch

from engine.model import languages as text_lang
from engine.train import config as tc
from engine.train import distributed as td
from engine.train import memory as tm
from tui.messages import GpuInfo, JobFinished, ProjectChanged
from tui.screens.base import StudioScreen
from tui.widgets.common import field_state

PRESETS = {
    "standard": ("Standard voice: 10-15 epochs", {"epochs": 12, "lr": 5e-6, "scheduler": "cosine-warm-restarts"}),
    "accent": ("Accent / dialect: 15-20 epochs", {"epochs": 18, "lr": 5e-6, "scheduler": "cosine-warm-restarts"}),
    "stylized": ("Stylized / cartoon: 20-30 epochs, lower LR", {"epochs": 25, "lr": 2e-6, "grad_accum": 2,
                                                               "scheduler": "cosine-warm-restarts"}),
    "language": ("New language: 100+ epochs", {"epochs": 100, "lr": 5e-6, "scheduler": "cosine-warm-restarts",
                                               "early_stop_patience": 5}),
}
# the guide's words, beside the engine's own help
GUIDE = {
    "epochs": "Guide: standard voices 10-15, accents 15-20, stylized 20-30, new languages 100+. "
              "Continue while the eval loss still falls.",
    "batch_size": "Guide: small (4-8) fits limited VRAM and adds helpful noise; medium (10-20) suits most setups.",
    "grad_accum": "Guide: simulates a larger batch without more VRAM (batch 8 x 4 = effective 32).",
    "lr": "Guide: 1e-6..5e-6 stable and precise; 1e-5 balanced; 1e-3+ fast but unstable.",
    "scheduler": "Guide: cosine warm restarts explore minima on long runs; step / exponential decay stabilise.",
    "workers": "Guide: 2-4 data-loader workers; too many cause memory spikes.",
    "max_audio_seconds": "Guide: shorter clips use less memory and load faster.",
    "precision": "Guide: float16 speeds up training on supported GPUs without a significant quality loss.",
    "early_stop_patience": "Guide: stop when the model stops improving for a few evaluations (best model kept).",
    "grad_clip": "Guide: limits gradient size to avoid erratic updates near a minimum.",
    "gpus": "Batch size is per GPU: effective batch = per-GPU batch x GPUs x accumulation. The guide's learning "
            "rates were found with single-GPU batches (~4): above 8, scale --lr by the square root of the "
            "batch ratio (with warm-up steps) or train more epochs.",
    "grad_checkpointing": "The memory line above says whether auto turns it on for the GPU (size) chosen; its max "
                          "batch counts on auto turning it on when a batch needs it.",
    "listen_every": "Listening test: the model says a fixed test (eval clips' texts + 4 unseen sentences) and is "
                    "scored for intelligibility (whisper CER), speaker similarity, DNSMOS and babble/loop/cut-off "
                    "flags; curves on Training (l), table on Results. Cost per test: sentences x (synthesis + "
                    "scoring), about 1-2 s per sentence on a GPU, far more on a CPU (bench/results/listen.txt). "
                    "auto keeps it at most 10% of the run's time on a GPU and is off on a CPU; N tests every N epochs.",
    "listen_sentences": "Fewer sentences make each listening test cheaper and noisier (0 = eval clips, up to 3, "
                        "+ the 4 fixed sentences: about 7).",
    "best_by": "listen: export and samples use BEST LISTEN, the checkpoint the listening test recommends "
               "(CER no worse than the base + 0.05, then the highest speaker similarity; docs/listening.md).",
    "listen_datasets": "Sequential multi-voice training (the guide): the datasets of voices trained earlier, so "
                       "forgetting them shows as a curve.",
    "language": "Built-in XTTS languages use coqui's text cleaning; a code added to the model by `xtts-ft vocab "
                "extend --language CODE` uses the cleaner stored in its config.json (basic or none).",
}


GPU_SIZES = (8, 10, 12, 16, 20, 24, 32, 40, 48, 80)  # GiB choices when there is no GPU (or to plan for another)
NO_GPU_SIZE = 12  # the guide's minimum: what the estimate is for until a size is picked
GUIDE["_vram"] = ("The card the memory estimate is for: the GPU found, or a size you pick (no GPU here, or "
                  "another machine). For the chosen model's size (XTTS v2 when none is chosen), per GPU, with "
                  "~1.1x + 0.8 GiB of CUDA overhead. `xtts-ft estimate` prints the same figures.")


def _gb(n: int) -> str:
    return f"{n / tm.GiB:.1f}".removesuffix(".0")


def default_base_model(models_dir: Path) -> Path | None:
    """The first model folder under models/xtts/ that is a base model, not a finetune exported by
    `xtts-ft export` (its config.json names the run it came from)."""
    if not models_dir.is_dir():
        return None
    for p in sorted(models_dir.iterdir()):
        if not ((p / "config.json").is_file() and (p / "model.pth").is_file()):
            continue
        try:
            cfg = json.loads((p / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(cfg, dict) and not (cfg.get("xtts_ft") or {}).get("exported_from"):
            return p
    return None


def memory_fit(vals: dict, total_bytes: int, dims: tm.ModelDims | None = None, bf16: bool = True) -> dict | None:
    """The engine's resolution and estimate (`engine.train.lean.resolve_options`, the one the training
    preflight and `xtts-ft estimate` use) for the form's values, on a GPU of `total_bytes` and a
    model of `dims` (default XTTS v2): {fits, gpu_bytes, largest (the largest batch that fits, 0 =
    none), checkpointing (on for this estimate), auto, summary}. None while a value it needs is invalid."""
    from engine.train import lean

    need = ("batch_size", "max_audio_seconds", "precision", "grad_checkpointing", "tanh_gelu", "fused_adamw",
            "adamw_8bit", "frozen_off_gpu", "optimizer")
    if any(vals.get(k) is None for k in need):
        return None
    cfg = dict(vals)
    gpu = {"available": True, "bf16": bf16, "total_mb": total_bytes / 2**20}
    out = lean.resolve_options(cfg, "cuda", gpu, dims=dims, planning=True)
    e = out["estimate"]
    return {"fits": bool(out["fits"]), "gpu_bytes": e["gpu_bytes"], "largest": out["largest_batch"] or 0,
            "checkpointing": cfg["grad_checkpointing"] == "on", "auto": vals["grad_checkpointing"] == "auto",
            "summary": e["summary"]}


class ParamsScreen(StudioScreen):
    MODE = "params"
    BINDINGS = [
        Binding("ctrl+r", "start", "Start training", id="params.start", priority=True),
        Binding("ctrl+k", "check_model", "Check model", id="params.check", priority=True),
        Binding("ctrl+o", "defaults", "Defaults", id="params.defaults", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[str, str] = {}
        self.model_check: dict | None = None
        self.form_ready = False

    def compose_body(self) -> ComposeResult:
        saved = self.app.studio.get("params_form", {})
        with Vertical(id="params-body"):
            yield Static(id="params-info")
            with VerticalScroll(id="params-scroll"):
                with Horizontal(classes="frow"):
                    yield Label("Preset", classes="flabel")
                    yield Select([(v[0], k) for k, v in PRESETS.items()], prompt="(custom)", id="p-preset",
                                 compact=True, value=saved.get("_preset") if saved.get("_preset") in PRESETS else Select.NULL)
                with Horizontal(classes="frow"):
                    yield Label("Base model folder", classes="flabel")
                    yield Input(saved.get("_model", ""), id="p-_model", compact=True,
                                placeholder="models/xtts/xttsv2_2.0.3")
                    yield Static("", id="e-_model", classes="ferr")
                yield Static("", id="m-_model", classes="fmsg")
                with Horizontal(classes="frow"):
                    yield Label("Run folder", classes="flabel")
                    yield Input(saved.get("_run", ""), id="p-_run", compact=True, placeholder="runs/<name>")
                    yield Static("", id="e-_run", classes="ferr")
                yield Static("", id="m-_run", classes="fmsg")
                for opt in tc.OPTIONS:
                    if opt.name == "precision":  # the memory options follow: the card they are for first
                        with Horizontal(classes="frow"):
                            yield Label("GPU size (estimate)", classes="flabel")
                            sizes = [("auto: the GPU found", "auto")] + [(f"{g} GB", str(g)) for g in GPU_SIZES]
                            v = str(saved.get("_vram", "auto"))
                            yield Select(sizes, value=v if v in [x[1] for x in sizes] else "auto",
                                         allow_blank=False, id="p-_vram", compact=True)
                            yield Static("", id="e-_vram", classes="ferr")
                        yield Static("", id="m-_vram", classes="fmsg shown note")
                    with Horizontal(classes="frow"):
                        yield Label(opt.name.replace("_", " "), classes="flabel")
                        value = saved.get(opt.name, opt.default)
                        if opt.choices:
                            yield Select([(c, c) for c in opt.choices], value=value if value in opt.choices
                                         else opt.default, allow_blank=False, id=f"p-{opt.name}", compact=True)
                        elif opt.type is bool:
                            yield Switch(value=bool(value), id=f"p-{opt.name}")
                        else:
                            yield Input(f"{value:g}" if isinstance(value, float) else str(value),
                                        id=f"p-{opt.name}", compact=True)
                        yield Static("", id=f"e-{opt.name}", classes="ferr")
                    yield Static("", id=f"m-{opt.name}", classes="fmsg")
            yield Static(id="params-help", classes="fhelp")

    def on_mount(self) -> None:
        self.auto_run: str | None = None
        self._fresh_run()
        model_in = self.query_one("#p-_model", Input)
        if not model_in.value:
            base = default_base_model(self.app.studio.models_dir)
            if base is not None:
                model_in.value = self.app.studio.show(base)
        self.validate_all()
        if model_in.value:
            self.action_check_model()
        self.call_after_refresh(self._form_ready)

    def _form_ready(self) -> None:
        self.form_ready = True
        if not self.preset_matches():
            self.query_one("#p-preset", Select).clear()

    def _fresh_run(self) -> None:
        """A new run gets a new folder: the field gets a fresh name when it is empty, still holds the
        name made for another dataset, or names a folder a run has been started in since."""
        st = self.app.studio
        run_in = self.query_one("#p-_run", Input)
        value = run_in.value.strip()
        used = bool(value) and (st.path(value) / "run_config.json").exists()
        if value and not used and value != self.auto_run:
            return  # typed by the user, still free: theirs
        name = (st.dataset.name if st.dataset else "voice") + time.strftime("-%m%d-%H%M")
        fresh = st.show(st.fresh_name(st.runs_dir, name))
        if fresh != value:
            self.auto_run = fresh
            run_in.value = fresh

    @on(ProjectChanged)
    def _project(self, message: ProjectChanged) -> None:
        self._fresh_run()
        self.validate_all()

    @on(GpuInfo)
    def _gpu(self, message: GpuInfo) -> None:
        self.validate_all()

    def on_screen_resume(self) -> None:
        self._fresh_run()
        self.validate_all()

    # ------------------------------------------------------------------ values / validation
    def raw(self) -> dict:
        out = {}
        for opt in tc.OPTIONS:
            w = self.query_one(f"#p-{opt.name}")
            # a Select that has not finished mounting reads NULL (a busy machine): its default then
            out[opt.name] = opt.default if isinstance(w, Select) and w.value == Select.NULL else w.value
        out["_model"] = self.query_one("#p-_model", Input).value.strip()
        out["_run"] = self.query_one("#p-_run", Input).value.strip()
        vram = self.query_one("#p-_vram", Select).value
        out["_vram"] = "auto" if vram == Select.NULL else vram
        pv = self.query_one("#p-preset", Select).value
        out["_preset"] = pv if pv != Select.NULL else None
        return out

    def validate_all(self) -> dict:
        raw = self.raw()
        vals, self.errors = {}, {}
        for opt in tc.OPTIONS:
            try:
                vals[opt.name] = tc.validate_value(opt, raw[opt.name])
            except tc.ConfigError as exc:
                self.errors[opt.name] = str(exc).split(": ", 1)[-1]
        st = self.app.studio
        if not raw["_model"]:
            self.errors["_model"] = "choose a model folder"
        elif not st.path(raw["_model"]).is_dir():
            self.errors["_model"] = "folder not found"
        elif self.model_check is not None and self.model_check.get("folder") == raw["_model"] \
                and not self.model_check.get("ok"):
            self.errors["_model"] = "files missing (see above)"
        self.dist_layout = None
        if "gpus" not in self.errors and "cpu_processes" not in self.errors:
            try:
                self.dist_layout = self._layout(vals)
            except td.GpuSpecError as exc:
                msg = str(exc)
                self.errors["nnodes" if "--nnodes" in msg.split(":")[0] else "gpus"] = \
                    msg.replace("--gpus ", "").split(": ", 1)[-1]
        lang_err = self._language(raw, vals)[2]
        if lang_err and "language" not in self.errors:
            self.errors["language"] = lang_err
        run = st.path(raw["_run"]) if raw["_run"] else None
        if run is None:
            self.errors["_run"] = "a run folder is needed"
        elif (run / "run_config.json").exists():
            self.errors["_run"] = "holds a run: pick a new name"
        elif run.exists() and any(run.iterdir()):
            self.errors["_run"] = "exists and is not empty"
        for key in ["_model", "_run"] + [o.name for o in tc.OPTIONS]:
            field_state(self, key, self.errors.get(key), self.query_one(f"#p-{key}"))
        total, where = self._gpu_total(raw)
        self.query_one("#e-_vram", Static).update("")
        note = {"(picked)": f"the estimate is for a {_gb(total)} GB card (picked)",
                "(found)": f"the GPU found here: {_gb(total)} GB",
                "(no GPU)": f"no GPU found here: the estimate is for {_gb(total)} GB, the guide's minimum "
                            "(pick the size of the card you will train on)",
                "(checking)": f"looking for a GPU…; meanwhile the estimate is for {_gb(total)} GB"}[where]
        self.query_one("#m-_vram", Static).update(Text(note, style="dim"))
        self._info(vals, total, where)
        self.refresh_bindings()
        return vals

    def _hw(self) -> dict | None:
        """The GPU query's answer: {available, name, total_mb, count?, ...}; None while checking."""
        return (self.app.gpu or {}).get("gpu") if isinstance(self.app.gpu, dict) else None

    def _gpu_count(self) -> int | None:
        hw = self._hw()
        if hw is None or hw.get("reason") == "not queried":
            return None  # unknown: no availability check here (the engine checks at start)
        return int(hw.get("count") or 1) if hw.get("available") else 0

    def _layout(self, vals: dict) -> dict:
        """gpus / world_size as the engine resolves them (engine.train.distributed.resolve_layout)."""
        cfg = {k: vals.get(k) for k in ("gpus", "cpu_processes", "nnodes", "rdzv_endpoint", "device",
                                        "batch_size", "grad_accum", "lr")}
        spec = (cfg.get("gpus") or "").strip().lower()
        n = self._gpu_count()
        if spec and n == 0:
            raise td.GpuSpecError("no CUDA GPU visible here")
        if spec == "all" and n is None:
            return {**cfg, "world_size": None}  # not known until the GPU query answers
        return td.resolve_layout(cfg, available=n)

    def _gpu_total(self, raw: dict) -> tuple[int, str]:
        """(bytes, where from) of the GPU the memory estimate is for."""
        pick = raw.get("_vram") or "auto"
        if pick != "auto":
            return int(pick) * tm.GiB, "(picked)"
        hw = self._hw()
        if hw and hw.get("available") and hw.get("total_mb"):
            return int(hw["total_mb"] * 2**20), "(found)"
        return NO_GPU_SIZE * tm.GiB, "(no GPU)" if hw is not None else "(checking)"

    def _dims(self) -> tuple[tm.ModelDims, str]:
        """The chosen model's dimensions (config.json + vocab.json, cached by file times) and how the
        estimate names them; XTTS v2's when no readable model folder is chosen."""
        typed = self.query_one("#p-_model", Input).value.strip()
        folder = self.app.studio.path(typed) if typed else Path("/nonexistent")
        try:
            key = (str(folder), (folder / "config.json").stat().st_mtime, (folder / "vocab.json").stat().st_mtime
                   if (folder / "vocab.json").exists() else 0)
        except OSError:
            return tm.XTTS_V2, "XTTS v2 assumed"
        if getattr(self, "_dims_cache", (None,))[0] != key:
            try:
                d = tm.dims_from_folder(folder)
                label = "XTTS v2 size" if d == tm.XTTS_V2 else f"{folder.name}: GPT {d.layers}x{d.model_dim}"
            except tm.ModelDimsError:
                d, label = tm.XTTS_V2, "XTTS v2 assumed"
            self._dims_cache = (key, d, label)
        return self._dims_cache[1], self._dims_cache[2]

    def _language(self, raw: dict, vals: dict) -> tuple[str, str, str | None]:
        """(language, how its text is cleaned, error or None) for the chosen model: a built-in XTTS
        language, or one the model declares (`xtts-ft vocab extend --language`)."""
        from tui.studio import dataset_summary

        lang = str(vals.get("language") or raw.get("language") or "").strip()
        source = ""
        if not lang:
            ds = self.app.studio.dataset
            lang = (dataset_summary(ds)["language"] if ds is not None else "") or "en"
            source = " (from the dataset)" if ds is not None else " (default)"
        model = raw.get("_model") or ""
        extra = text_lang.extra_languages(self.app.studio.path(model)) if model else {}
        mc = self.model_check if self.model_check and self.model_check.get("folder") == model else None
        langs = list((mc or {}).get("languages") or [])
        if lang in extra:
            how = {"basic": "basic cleaning (NFC, lower-case, spaces collapsed, quotes unified)",
                   "none": "no cleaning (the text exactly as transcribed)"}.get(extra[lang], extra[lang])
            return lang + source, f"added by vocab extend: {how}", None
        if text_lang.is_builtin(lang):
            if langs and lang not in langs and lang.split("-")[0] not in [x.split("-")[0] for x in langs]:
                return lang + source, "", f"not in this model ({len(langs)} languages)"
            return lang + source, "built-in: coqui's cleaning (numbers, abbreviations, symbols spelled out)", None
        return (lang + source, "", "not built-in; extend the model: xtts-ft vocab extend --language " + lang)

    def _info(self, vals: dict, total: int, where: str) -> None:
        from tui.studio import RESTORED_FLAGS, dataset_summary, flagged_in_training

        st = self.app.studio
        t = Text(no_wrap=True, overflow="ellipsis")
        ds = st.dataset
        t.append("Dataset ", style="bold")
        if ds is None:
            t.append("none: build one in 2 Prep\n", style="red")
        else:
            s = dataset_summary(ds)
            t.append(f"{ds.name}: {s['train']} train + {s['eval']} eval clips")
            if s["seconds"]:
                t.append(f", {s['seconds'] / 60:.1f} min")
                if s["seconds"] < 180:
                    t.append("  under the guide's 3 minutes", style="bold yellow")
            t.append("\n")
            flagged = flagged_in_training(ds)
            if flagged:
                parts = [f"{n} {'restored ' if f in RESTORED_FLAGS else ''}{f.replace('_', ' ')}"
                         for f, n in flagged.items()]
                t.append("⚠ Flagged clips still in training: ", style="bold yellow")
                t.append(", ".join(parts), style="yellow")
                t.append("  (3 Review, f filters)\n", style="dim")
            else:
                t.append("Flags ", style="bold")
                t.append("no flagged clip in training\n", style="green")
        b, a = vals.get("batch_size"), vals.get("grad_accum")
        lay = getattr(self, "dist_layout", None) or {}
        w = lay.get("world_size", 1)
        t.append("Effective batch ", style="bold")
        if not (b and a):
            t.append("–")
        elif w is None:
            t.append(f"{b} per GPU x all GPUs x {a}")
        elif w > 1:
            one, many = ("GPU", "GPUs") if lay.get("backend") == "nccl" else ("process", "processes")
            t.append(f"{b} per {one} x {w} {many} x {a} = {b * w * a}")
            if td.lr_advice({**lay, "batch_size": b, "grad_accum": a, "lr": vals.get("lr") or 5e-6}):
                k = b * w * a / td.LR_REFERENCE_BATCH
                lr = float(vals.get("lr") or 5e-6)
                t.append(f"  ⚠ LR: try {lr * k ** 0.5:.2g} (√ scaling) + warm-up", style="yellow")
        else:
            t.append(f"{b} x {a} = {b * a}")
        hw = self._hw()
        t.append("\nGPU ", style="bold")
        if hw is None:
            t.append("checking…", style="dim")
        elif hw.get("available"):
            gb = hw.get("total_mb", 0) / 1024
            count = hw.get("count") or 1
            t.append(f"{count} x " if count > 1 else "")
            t.append(f"{hw.get('name')} {gb:.1f} GB")
            if gb < 12:
                t.append("  below the guide's 12 GB", style="yellow")
        else:
            t.append("none found (CPU: slow for real models) · estimate for ", style="yellow")
            t.append("the GPU size below" if where != "(picked)" else f"a {_gb(total)} GB card (picked)", style="yellow")
        t.append("\nMemory ", style="bold")
        if w is None or (w > 1 and lay.get("backend") == "nccl"):
            t.append("per GPU ", style="bold")
        dims, for_model = self._dims()
        hw_bf16 = bool(hw.get("bf16", True)) if hw and hw.get("available") and where != "(picked)" else True
        fit = memory_fit(vals, total, dims, bf16=hw_bf16)
        if fit is None:
            t.append("– (fix the values marked ✗)", style="dim")
        else:
            est = fit["gpu_bytes"] / tm.GiB
            card = _gb(total)
            if fit["fits"]:
                t.append("✓ fits", style="bold green")
            else:
                t.append("✗ does not fit", style="bold red reverse")
            t.append(f": peak ~{est:.1f} of {card} GiB")
            lb = fit["largest"]
            t.append(" · ")
            if lb:
                t.append(f"max batch {lb}", style="bold yellow" if lb < (b or 0) else "")
            else:
                t.append("not even batch 1: shorter clips", style="bold red")
            # the second line says what the estimate is for, and why a smaller batch can peak higher
            t.append(f"\n  for {for_model}", style="dim")
            if fit["auto"]:
                t.append(" · grad ckpt ", style="dim")
                t.append(f"{'on' if fit['checkpointing'] else 'off'} (auto)", style="dim")
                t.append(": this batch needs it" if fit["checkpointing"] else
                         ": not needed, so it peaks higher", style="dim")
        t.append("\nModel ", style="bold")
        mc = self.model_check
        if mc is None:
            t.append("not checked (ctrl+k)", style="dim")
        elif mc.get("ok"):
            size = mc.get("total_bytes") or mc.get("size_bytes") or 0
            langs = mc.get("languages") or []
            t.append(f"✓ six files found: {mc.get('name', '')}", style="green")
            if size:
                t.append(f", {size / 1e9:.2f} GB")
            if langs:
                t.append(f", {len(langs)} languages")
            extra = text_lang.extra_languages(self.app.studio.path(mc.get("folder", "")))
            if extra:
                t.append(f" (+{', '.join(extra)} from vocab extend)")
        else:
            t.append("✗ " + "; ".join(mc.get("problems", []))[:200], style="bold red")
        lang, how, err = self._language(self.raw(), vals)
        t.append("\nLanguage ", style="bold")
        t.append(lang)
        if err:
            t.append(f"  ✗ {err}", style="bold red")
        else:
            t.append(f"  text: {how}", style="dim")
        self.query_one("#params-info", Static).update(t)

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Switch.Changed)
    def _changed(self, event) -> None:
        wid = event.control.id or ""
        if not self.form_ready:
            pass  # the widgets' first values (the saved form): no preset applied over them
        elif wid == "p-preset":
            if event.value != Select.NULL and event.value in PRESETS:
                for k, v in PRESETS[event.value][1].items():
                    w = self.query_one(f"#p-{k}")
                    w.value = f"{v:g}" if isinstance(v, float) else (v if isinstance(w, Select) else str(v))
        elif wid[2:] in tc.OPTIONS_BY_NAME and not self.preset_matches():
            self.query_one("#p-preset", Select).clear()  # edited away from the preset: "(custom)"
        if wid == "p-_model" and self.model_check is not None:
            self.model_check = None
        self.validate_all()
        self.app.studio.set("params_form", self.raw())

    def preset_matches(self) -> bool:
        """True when no preset is chosen, or every value the chosen preset sets is still as it set it."""
        pv = self.query_one("#p-preset", Select).value
        if pv == Select.NULL or pv not in PRESETS:
            return True
        for k, v in PRESETS[pv][1].items():
            try:
                if tc.validate_value(tc.OPTIONS_BY_NAME[k], self.query_one(f"#p-{k}").value) != v:
                    return False
            except tc.ConfigError:
                return False
        return True

    def on_descendant_focus(self, event) -> None:
        wid = (getattr(event.widget, "id", "") or "")[2:]
        opt = tc.OPTIONS_BY_NAME.get(wid)
        if opt is not None:
            rng = f" [{opt.lo:g}..{opt.hi:g}]" if opt.lo is not None else ""
            text = f"{opt.name}: {opt.help}{rng} (default {opt.default})"
            if wid in GUIDE:
                text += "\n" + GUIDE[wid]
        elif wid == "_model":
            text = "The base XTTS model: config.json, model.pth, mel_stats.pth, speakers_xtts.pth, vocab.json, " \
                   "dvae.pth (AllTalk layout models/xtts/<name>/). ctrl+k checks it."
        elif wid == "_run":
            text = "Where checkpoints, events and logs go; a new folder per run."
        elif wid == "_vram":
            text = GUIDE["_vram"]
        elif wid == "preset":
            text = "The guide's starting points; every value stays editable."
        else:
            return
        self.query_one("#params-help", Static).update(Text(text, style="italic"))

    # ------------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        return True

    def action_defaults(self) -> None:
        for opt in tc.OPTIONS:
            w = self.query_one(f"#p-{opt.name}")
            if isinstance(w, (Select, Switch)):
                w.value = opt.default
            else:
                w.value = f"{opt.default:g}" if isinstance(opt.default, float) else str(opt.default)
        self.query_one("#p-preset", Select).clear()
        self.query_one("#p-_vram", Select).value = "auto"

    def action_check_model(self) -> None:
        folder = self.query_one("#p-_model", Input).value.strip()
        if folder:
            self._check(folder)

    @work(thread=True, exclusive=True, group="check-model")
    def _check(self, folder: str) -> None:
        code, out = self.app.studio.run_engine(["check-model", folder, "--json"], timeout=60)
        try:
            data = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            data = {"ok": False, "problems": [out[-200:] or f"check-model exited with {code}"]}
        data["folder"] = folder
        self.post_message(JobFinished("check-model", code, out, data))

    @on(JobFinished)
    def _job(self, message: JobFinished) -> None:
        if message.kind == "check-model":
            self.model_check = message.data
            self.validate_all()
        elif message.kind == "train":
            if message.code == 0:
                run = Path(message.data["run"])
                self.app.set_project(run=run)
                self.notify("Training started in its own process: closing the studio does not stop it.",
                            title="Training")
                self.app.action_goto("train")
            else:
                lines = [x for x in message.output.splitlines() if x.strip()]
                self.error("Could not start training", lines[-1] if lines else f"exit code {message.code}",
                           ["Check the dataset (2 Prep), the model folder and the options."])

    def action_start(self) -> None:
        vals = self.validate_all()
        ds = self.app.studio.dataset
        if ds is None:
            self.error("No dataset", "Build or open a dataset first (2 Prep, 1 Home).")
            return
        if self.errors:
            self.error("Check the parameters", "; ".join(f"{k.strip('_')}: {v}" for k, v in self.errors.items()))
            return
        raw = self.raw()
        st = self.app.studio
        args = ["train", "--dataset", str(ds), "--model", str(st.path(raw["_model"])), "--run",
                str(st.path(raw["_run"])), "--detach"]
        for opt in tc.OPTIONS:
            v = vals[opt.name]
            if v == opt.default:
                continue
            if opt.type is bool:
                args.append(opt.flag if v else "--no-" + opt.flag[2:])
            else:
                args += [opt.flag, f"{v:g}" if isinstance(v, float) else str(v)]
        self._train(args, str(st.path(raw["_run"])))

    @work(thread=True, exclusive=True, group="train-start")
    def _train(self, args: list[str], run: str) -> None:
        code, out = self.app.studio.run_engine(args, timeout=120)
        self.post_message(JobFinished("train", code, out, {"run": run}))
