"""`xtts-ft prep`: from a folder of recordings to a checked XTTS training set.

Each source goes through: hash → probe → decode (ffmpeg, streaming) → quality scan → VAD →
transcription (or its existing transcript) → segmentation → clips written. Then duplicates are
checked across the whole dataset, the train/eval split is made and dataset.json and the CSVs are
written. Sources are only ever read.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from engine import ioerrors, locks
from engine.atomic import atomic_path, deferred_interrupts
from engine.audio import analysis, clean, clipends, intake, segment, vad
from engine.audio.transcribe import Transcriber, WhisperLoadError
from engine.prep import content
from engine.prep import dataset as ds
from engine.prep.report import Reporter
from engine.prep.textnorm import comparable, normalize_text, repeated_loop
from engine.prep.transcripts import align_known_text, has_sidecar, metadata_texts, sidecar_text

TARGET_LUFS = -20.0
PEAK_CEILING = 10 ** (-1.0 / 20)       # -1 dBFS
LOW_CONFIDENCE = 0.5


SECOND_PASS_CONFIDENCE = 0.75    # a duplicate clip less sure than this gets a second opinion
RATE_MISFIT = 1.6                 # ... or one whose characters per second are this far from the median


def _chars_per_second(seg: dict) -> float | None:
    speech = float(seg.get("speech_seconds") or seg.get("duration") or 0.0)
    letters = sum(1 for ch in seg.get("text", "") if ch.isalnum())
    return letters / speech if speech > 0.3 and letters else None


def _median_rate(segments: list[dict]) -> float | None:
    rates = [r for r in (_chars_per_second(s) for s in segments if ds.included(s)) if r is not None]
    return float(np.median(rates)) if len(rates) >= 5 else None


def suspicious(seg: dict, median_rate: float | None) -> bool:
    """Whether a clip's transcript deserves a second opinion."""
    if seg.get("confidence", 0.0) < SECOND_PASS_CONFIDENCE:
        return True
    if {"hallucination", "repeated_text", "low_confidence"} & set(seg.get("flags", [])):
        return True
    rate = _chars_per_second(seg)
    return bool(median_rate and rate and not (1 / RATE_MISFIT <= rate / median_rate <= RATE_MISFIT))


class PrepError(Exception):
    """Nothing usable could be produced; the message is the one-line reason."""


@dataclass
class PrepOptions:
    sources: list[str]
    out: Path
    language: str = "en"
    speaker: str | None = None
    speaker_from_folders: bool = False
    whisper_model: str = "auto"
    device: str = "auto"
    min_seconds: float = 2.0
    max_seconds: float = 11.0
    eval_fraction: float = 0.15
    seed: int = 0
    normalize: bool = True
    target_lufs: float = TARGET_LUFS
    transcripts: str = "auto"        # auto | asr | files
    batch_size: int | None = None
    denoise: bool = False
    speaker_check: bool = True
    speaker_ref: str | None = None
    speaker_threshold: float | None = None
    min_confidence: float | None = None   # clips whisper was less sure of are left out (flag doubtful)
    model: str | None = None              # base model folder: token coverage of its vocab.json

    def validate(self) -> None:
        if not self.sources:
            raise PrepError("no SOURCE given: name audio files or folders")
        if not (0.5 <= self.min_seconds < self.max_seconds):
            raise PrepError(f"--min-seconds must be at least 0.5 and below --max-seconds (got {self.min_seconds} and {self.max_seconds})")
        if self.max_seconds > 30:
            raise PrepError("--max-seconds above 30 is not useful for XTTS (it trains on clips up to ~11 s)")
        if not (0.0 < self.eval_fraction <= 0.5):
            raise PrepError(f"--eval-fraction must be in (0, 0.5], got {self.eval_fraction}")
        if self.transcripts not in ("auto", "asr", "files"):
            raise PrepError("--transcripts must be auto, asr or files")
        if not (-40.0 <= self.target_lufs <= -10.0):
            raise PrepError("--target-lufs must be between -40 and -10")
        if self.speaker_threshold is not None and not (0.0 < self.speaker_threshold < 1.0):
            raise PrepError("--speaker-threshold must be between 0 and 1 (cosine similarity)")
        if self.min_confidence is not None and not (0.0 < self.min_confidence < 1.0):
            raise PrepError("--min-confidence must be between 0 and 1 (mean word probability)")
        if self.model and not (Path(self.model).expanduser() / "vocab.json").is_file():
            raise PrepError(f"--model {self.model}: no vocab.json there (a base model folder has one)")
        if self.speaker_ref and not Path(self.speaker_ref).expanduser().is_file():
            raise PrepError(f"--speaker-ref {self.speaker_ref}: no such file")


@dataclass
class PrepResult:
    ok: bool
    reason: str
    summary: dict = field(default_factory=dict)
    interrupted: bool = False     # Ctrl-C: what was finished is saved, the rest was not done


@dataclass
class _Source:
    file: intake.SourceFile
    sha: str
    entry: dict
    decoded: intake.Decoded | None = None
    stats: analysis.SignalStats | None = None
    power: np.ndarray | None = None
    regions: list = field(default_factory=list)
    known_text: str | None = None
    asr: _AsrAhead | None = None          # whisper's work started while the previous source was done


class _AsrAhead:
    """Whisper on the next source, started by the prefetch worker as soon as its VAD is done, so
    that both decoders stay busy between sources (two short recordings are decoded at once)."""

    def __init__(self):
        self.chunks: list[segment.Chunk] = []
        self.done = 0                      # chunks decoded so far (read by the main thread)
        self.future = None

    def advance(self, n: int) -> None:
        self.done += n


SILENCE_BELOW_DB = 50.0      # duplicate-audio check: quieter than this under the loudest is silence
SOUND_WITHIN_DB = 40.0       # ... and frames this close to the loudest are compared


def _fingerprint(power: np.ndarray) -> np.ndarray:
    """100 ms loudness envelope in dB: survives re-encoding, differs between recordings."""
    n = len(power) // 10 * 10
    if n == 0:
        return np.zeros(0, np.float32)
    env = power[:n].reshape(-1, 10).mean(axis=1)
    return (10 * np.log10(env + 1e-10)).astype(np.float32)


def _same_audio(fp_a: np.ndarray, fp_b: np.ndarray) -> bool:
    if len(fp_a) < 20 or len(fp_b) < 20 or abs(len(fp_a) - len(fp_b)) > max(2, 0.01 * len(fp_a)):
        return False
    n = min(len(fp_a), len(fp_b))
    # silence is floored at 50 dB under each recording's loudest 100 ms and only the frames where
    # either one sounds are compared: the same layout of pauses (digital silence, a noise gate)
    # around different words must not look alike
    a = np.maximum(fp_a[:n], float(fp_a[:n].max()) - SILENCE_BELOW_DB)
    b = np.maximum(fp_b[:n], float(fp_b[:n].max()) - SILENCE_BELOW_DB)
    sounding = (a > a.max() - SOUND_WITHIN_DB) | (b > b.max() - SOUND_WITHIN_DB)
    if sounding.sum() < 10:             # under 1 s of sound: too little to tell
        return False
    a, b = a[sounding], b[sounding]
    if a.std() < 1e-3 or b.std() < 1e-3:
        return False
    return float(np.corrcoef(a, b)[0, 1]) > 0.98 and float(np.median(np.abs(a - b - np.median(a - b)))) < 1.5


class VoicePrints:
    """Voice prints of each source's clips, computed in a worker thread (the LSTM releases the
    GIL and runs on one torch thread) while whisper transcribes the next source; the speaker
    check collects them. Nothing is written by the worker, so an interrupted run leaves nothing."""

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(1, thread_name_prefix="prep-voiceprints")
        self._jobs: list[tuple[list[str], object]] = []
        self._ids: set[str] = set()

    BATCH = 32        # clips per job: an interrupted run waits for one job at most

    def submit(self, ids: list[str], audios: list[np.ndarray], rate: int) -> None:
        for k in range(0, len(ids), self.BATCH):
            part = list(ids[k : k + self.BATCH])
            self._jobs.append((part, self._pool.submit(clean.speaker_embeddings, audios[k : k + self.BATCH], rate)))
            self._ids.update(part)

    def has(self, seg_id: str) -> bool:
        return seg_id in self._ids

    def pending(self) -> int:
        return sum(len(ids) for ids, _ in self._jobs)

    def collect(self, on_done: Callable[[int], None] | None = None):
        """(clip id, voice print) pairs, in submission order; a worker's exception is raised here."""
        jobs, self._jobs, self._ids = self._jobs, [], set()
        for ids, fut in jobs:
            yield from zip(ids, fut.result())
            if on_done:
                on_done(len(ids))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class Prep:
    def __init__(self, opts: PrepOptions, reporter: Reporter):
        self.o = opts
        self.r = reporter
        self.out = Path(opts.out).expanduser().resolve()
        self.work = self.out / ".work" / f"{os.getpid()}"     # one working folder per job
        self.fp_dir = self.out / ".cache" / "fingerprints"
        self.transcriber: Transcriber | None = None
        self.manifest: dict = {}
        self._pool = None             # the prefetch worker (one thread) while sources are prepared
        self._asr_pool = None         # ... and the one that starts whisper on the prefetched source
        self._cancel = threading.Event()   # set when the run ends early: the worker stops
        self._ahead = None            # (path, stem, sha, probe info, future) of the next source
        self._prints: VoicePrints | None = None   # voice prints worker while sources are prepared
        self._whisper_load = None     # (Transcriber, future) while whisper loads in a worker thread
        self.skipped: list[dict] = []
        self.counts: tuple[int, int] = (0, 0)     # train / eval rows of the last save

    # -------------------------------------------------------------------------------------------
    def run(self) -> PrepResult:
        o, r = self.o, self.r
        o.validate()
        intake.require_ffmpeg()
        self._check_out_folder()
        r.info(f"Initializing output directory: {self.out}")
        existing = ds.load_manifest(self.out)
        if existing is not None:
            if existing.get("language") != o.language:
                raise PrepError(
                    f"{self.out} holds a '{existing.get('language')}' dataset; use another --out for '{o.language}'"
                )
            self.manifest = existing
            n = sum(1 for s in existing["segments"] if ds.included(s))
            r.info(f"Adding to the existing dataset: {len(existing['sources'])} sources, {n} clips already in it")
        else:
            self.manifest = ds.empty_manifest(o.language, intake.WORK_RATE)
        self._tidy()
        self.manifest["settings"] = {
            "min_seconds": o.min_seconds, "max_seconds": o.max_seconds, "eval_fraction": o.eval_fraction,
            "seed": o.seed, "normalize": o.normalize, "target_lufs": o.target_lufs if o.normalize else None,
            "transcripts": o.transcripts, "denoise": o.denoise, "speaker_check": o.speaker_check,
            "speaker_threshold": o.speaker_threshold, "min_confidence": o.min_confidence,
        }

        found = intake.discover(o.sources)
        skipped: list[dict] = list(found.skipped)
        for s in found.skipped:
            r.warn(f"Skipping {s['path']}: {s['reason']}", tag="AUDIO", code="skipped")
        r.info(f"Found {len(found.files)} audio files to process", tag="AUDIO")
        # metadata files sit beside the recordings or one level up (LJSpeech: metadata.csv + wavs/)
        folders = {f.path.parent for f in found.files} | {f.path.parent.parent for f in found.files}
        unreadable: list[dict] = []
        known = metadata_texts(sorted(folders), unreadable)
        for s in unreadable:
            r.warn(f"Skipping {s['path']}: {s['reason']}", tag="DATA", code="skipped")
        skipped.extend(unreadable)

        new_segments: list[dict] = []
        processed: list[_Source] = []
        seen_sha = {s["sha256"]: s for s in self.manifest["sources"]}
        # clips of earlier runs whose duplicate / speaker checks were interrupted are checked now
        seg_by_id = {s["id"]: s for s in self.manifest["segments"]}
        unchecked = [seg_by_id[i] for i in self.manifest.get("unchecked", []) if i in seg_by_id]
        interrupted, failure, stage = False, None, "sources"
        self.skipped = skipped
        self._prints = VoicePrints() if o.speaker_check else None
        self._load_whisper_early(found.files, known)
        try:
            with r.progress("prep", "Preparing sources", len(found.files)) as bar, self._prefetcher():
                for k, sf_ in enumerate(found.files):
                    name = sf_.rel
                    stage = f"preparing {name}"
                    try:
                        src = self._intake(sf_, seen_sha, known)
                        if src is None:
                            continue
                        if k + 1 < len(found.files):
                            self._prefetch(found.files[k + 1], seen_sha, known)
                        segs = self._segment_and_write(src)
                        new_segments.extend(segs)
                        processed.append(src)
                        self.manifest["sources"].append(src.entry)
                        self.manifest["segments"].extend(segs)
                        # checked for duplicates and other speakers once every source is in: until
                        # then (an interrupted run) the next run checks them
                        self.manifest.setdefault("unchecked", []).extend(s["id"] for s in segs)
                        seen_sha[src.sha] = src.entry
                    except intake.IntakeError as exc:
                        skipped.append({"path": str(sf_.path), "reason": str(exc)})
                        r.warn(f"Skipping {name}: {exc}", tag="AUDIO", code="skipped")
                    finally:
                        self._clean_work()
                        bar.advance(1)
            to_check = unchecked + new_segments
            self.manifest["unchecked"] = [s["id"] for s in to_check]
            if to_check:
                stage = "the duplicate check"
                self._duplicates(to_check)
                self._confidence_filter(to_check)
                if o.speaker_check:
                    stage = "the speaker check"
                    self._speakers(to_check)
            self.manifest["unchecked"] = []
        except KeyboardInterrupt:
            # keep what is done: the finished sources are saved, a re-run adds the rest and checks them
            interrupted = True
            r.warn(f"Interrupted during {stage}: saving the {len(processed)} source(s) finished so far; "
                   "run prep again to add the rest", tag="DATA", code="interrupted")
        except OSError as exc:
            if not ioerrors.is_known(exc):
                self._save_after_crash()
                raise
            failure = self._failure(exc)
        except BaseException:
            self._save_after_crash()
            raise
        finally:
            if self._prints is not None:
                self._prints.close()
                self._prints = None
            shutil.rmtree(self.work, ignore_errors=True)

        self.manifest["skipped"] = skipped
        if self.manifest.get("unchecked"):
            r.warn(f"{len(self.manifest['unchecked'])} clip(s) are not yet checked for duplicates and other speakers; "
                   "the next prep run into this dataset checks them", tag="DATA", code="unchecked")
        usable = [s for s in self.manifest["segments"] if ds.included(s)]
        if not usable:
            reason = failure or self._nothing_usable_reason(found, skipped)
            self._write_summary_only(skipped)
            return PrepResult(False, reason, self._summary(processed, skipped, 0, 0), interrupted)
        # whatever happened, what is finished is saved: dataset.json, CSVs and wavs/ agree
        r.info("Creating train/eval split", tag="DATA")
        try:
            self._save_guarded()
        except KeyboardInterrupt:
            interrupted = True        # held back until the save was complete
        except OSError as exc:
            if not ioerrors.is_known(exc):
                raise
            failure = self._failure(exc, saved=False)
        n_train, n_eval = self.counts
        if failure is not None:
            return PrepResult(False, failure, self._summary(processed, skipped, n_train, n_eval))
        if len(usable) < 2:
            reason = "only one usable clip: a dataset needs at least two (one to train on, one to evaluate)"
            return PrepResult(False, reason, self._summary(processed, skipped, n_train, n_eval), interrupted)
        summary = self._summary(processed, skipped, n_train, n_eval)
        try:
            self._report_stats(new_segments)
            self._warnings(processed)
            self._content()
            r.info(f"Writing {n_train} training and {n_eval} eval samples", tag="DATA")
            if n_train < ds.SMALL_TRAIN_CLIPS:
                r.warn("Very small training dataset", tag="DATA", code="small_train", count=n_train)
            if n_eval < ds.SMALL_EVAL_CLIPS:
                r.warn("Very small evaluation dataset", tag="DATA", code="small_eval", count=n_eval)
            # warnings raised after the first save are stored too
            self.manifest["warnings"] = r.warnings
            self._save_guarded()
            summary = self._summary(processed, skipped, n_train, n_eval)
        except KeyboardInterrupt:
            interrupted = True       # the dataset is saved already; only the report was cut short
        except OSError as exc:
            if not ioerrors.is_known(exc):
                raise
            return PrepResult(False, self._failure(exc), summary)
        summary["interrupted"] = interrupted
        r.event("prep_summary", **summary)
        r.info(f"Dataset ready: {self.out / ds.TRAIN_CSV}", tag="DATA")
        return PrepResult(True, "", summary, interrupted)

    # -------------------------------------------------------------------------------------------
    def _save_guarded(self) -> tuple[int, int]:
        """Split and save dataset.json + CSVs with Ctrl-C held back, so they always agree."""
        with deferred_interrupts():
            ds.assign_splits(self.manifest["segments"], self.o.eval_fraction, self.o.seed)
            self.counts = ds.save(self.out, self.manifest)
        return self.counts

    def _save_after_crash(self) -> None:
        """An unexpected error: keep the finished sources before the error goes up."""
        with contextlib.suppress(Exception):
            if any(ds.included(s) for s in self.manifest.get("segments", [])):
                self.manifest["skipped"] = self.skipped
                self._save_guarded()

    def _failure(self, exc: OSError, saved: bool = True) -> str:
        reason = ioerrors.describe(exc)
        done = sum(1 for s in self.manifest["segments"] if ds.included(s))
        if not saved:
            reason += "; dataset.json was left as it was before this run"
        elif done:
            reason += f"; what was finished before it is saved ({done} clips): run prep again to add the rest"
        return reason

    def _tidy(self) -> None:
        """Remove what a killed run left behind: clips not in dataset.json (a source cut short),
        temporaries of interrupted writes, caches of clips that are gone, working files. The dataset
        lock is held, so none of it belongs to a running job."""
        from engine.prep.review import journal

        # clips the review's undo journal still needs (the parts of a merge, say) are not orphans
        kept = [s for e in journal(self.out) for s in e.get("before", []) + e.get("after", [])]
        known = {s["file"] for s in self.manifest["segments"] + kept if s.get("file")}
        ids = {s["id"] for s in self.manifest["segments"] + kept if s.get("id")}
        wavs = self.out / "wavs"
        orphans = 0
        if wavs.is_dir():
            for f in wavs.iterdir():
                if f.name.startswith(".") and f.is_file():
                    f.unlink(missing_ok=True)          # a temporary of a write that never finished
                elif f.suffix == ".wav" and f"wavs/{f.name}" not in known:
                    f.unlink(missing_ok=True)
                    orphans += 1
        cache = self.out / ".cache" / "embeddings"
        if cache.is_dir():
            for f in cache.iterdir():
                if f.stem not in ids or f.name.startswith("."):
                    f.unlink(missing_ok=True)
        for stale in (self.out / ".work", self.out / ".cache" / "fingerprints"):
            if stale.is_dir():
                for f in stale.iterdir():
                    if f.is_dir():
                        shutil.rmtree(f, ignore_errors=True)
                    elif stale.name == ".work" or f.name.startswith("."):
                        f.unlink(missing_ok=True)
        for f in self.out.glob(".*.tmp"):
            f.unlink(missing_ok=True)
        if orphans:
            self.r.info(f"Removed {orphans} clip(s) an interrupted run left outside the dataset", tag="DATA")

    def _check_out_folder(self) -> None:
        check_out_folder(self.out)

    def _clean_work(self) -> None:
        """Remove the working files of the source just done (not those of a prefetched next one)."""
        keep = self._ahead[1] if self._ahead else None
        for f in self.work.glob("*") if self.work.exists() else []:
            if keep is None or not f.name.startswith(keep + "."):
                f.unlink(missing_ok=True)

    # -------------------------------------------------------------------------------------------
    # While whisper transcribes one source, the next one is decoded, scanned and run through the
    # VAD in a worker thread (ffmpeg and silero mostly wait on other cores / release the GIL).
    @contextlib.contextmanager
    def _prefetcher(self):
        from concurrent.futures import ThreadPoolExecutor

        prefix = f"prep-prefetch-{id(self):x}"
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=prefix)
        # two: whisper on the source being finished and on the next one run at once (two short
        # recordings keep both decoders busy); never more than two sources ahead of the writing
        self._asr_pool = ThreadPoolExecutor(2, thread_name_prefix=prefix + "-asr")
        self._cancel.clear()
        try:
            yield
        except BaseException:
            # Ctrl-C, disk full: stop the decode running ahead (its ffmpeg is killed within a second)
            # and wait for it, so no working file is written after the run has cleaned up; whisper
            # running ahead stops at its next window
            self._cancel.set()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._asr_pool.shutdown(wait=True, cancel_futures=True)
            for t in threading.enumerate():     # also a worker started by a submit() the signal cut short
                if t.name.startswith(prefix) and t is not threading.current_thread():
                    t.join()
            raise
        else:
            self._pool.shutdown(wait=True)
            self._asr_pool.shutdown(wait=True)
        finally:
            self._pool, self._asr_pool, self._ahead = None, None, None

    def _prefetch(self, sf_: intake.SourceFile, seen_sha: dict, known: dict | None = None) -> None:
        if self._pool is None or sf_.path.is_relative_to(self.out):
            return
        try:
            sha = intake.file_sha256(sf_.path)
            if sha in seen_sha:
                return
            info = intake.probe(sf_.path)
        except (OSError, intake.IntakeError):
            return          # reported when its turn comes
        stem = ds.slug(sf_.path.stem) + "_" + sha[:6]
        fut = self._pool.submit(self._analyse, sf_, info, stem, False)
        asr = None
        t, loading = self.transcriber, None
        if t is None and self._whisper_load is not None:
            t, loading = self._whisper_load
        if t is not None and self._asr_pool is not None and self.o.transcripts != "files":
            asr = _AsrAhead()
            asr.future = self._asr_pool.submit(self._transcribe_ahead, t, loading, fut, sf_, known or {}, asr)
        self._ahead = (sf_.path, stem, sha, info, fut, asr)

    def _transcribe_ahead(self, t: Transcriber, loading, analysed, sf_: intake.SourceFile, known: dict,
                          asr: _AsrAhead):
        """In a prefetch worker: whisper on the next source once its VAD is done; None when it
        needs no whisper (a short recording with its own transcript) or whisper is not there (the
        main thread reports why when it needs it)."""
        if loading is not None:
            try:
                loading.result()
            except Exception:  # noqa: BLE001 - reported by _get_transcriber
                return None
        decoded, _stats, power, regions = analysed.result()
        if not regions:
            return None
        if self.o.transcripts != "asr":
            try:
                text = sidecar_text(sf_.path) or known.get(sf_.path)
            except OSError:
                return None                 # reported when its turn comes
            if text and regions[-1][1] - regions[0][0] <= self.o.max_seconds:
                return None
        asr.chunks = segment.transcription_chunks(regions, power, decoded.duration)
        return t.transcribe_chunks(decoded.work16, asr.chunks, on_chunk=asr.advance, cancel=self._check_cancel)

    def _analyse(self, sf_: intake.SourceFile, info, stem: str, show: bool = True):
        """Decode, scan and VAD one source: (decoded, stats, power, regions)."""
        r = self.r
        if show:
            with r.progress("decode", f"Decoding {sf_.rel}", round(info.duration, 1) or None) as bar:
                decoded = intake.decode(sf_.path, self.work, stem, on_progress=bar.advance, channels=info.channels)
        else:   # the prefetch worker: stops within a second when the run ends early (Ctrl-C, disk full)
            decoded = intake.decode(sf_.path, self.work, stem, channels=info.channels, cancel=self._cancel)
        stats, power = analysis.scan(decoded.work22)
        if stats.peak < 1e-4:
            raise intake.IntakeError("digital silence (no signal at all)")
        if show:
            with r.progress("vad", f"Voice activity {sf_.rel}", round(decoded.duration, 1)) as bar:
                regions, _probs = vad.speech_regions(decoded.work16, on_progress=bar.advance)
        else:
            regions, _probs = vad.speech_regions(decoded.work16, on_progress=self._check_cancel)
        return decoded, stats, power, regions

    def _check_cancel(self, *_args) -> None:
        if self._cancel.is_set():
            raise intake.IntakeError("cancelled")

    def _prefetched(self, path: Path):
        """The worker's result for `path` (its exceptions raised here), or None."""
        if not self._ahead or self._ahead[0] != path:
            return None
        _, stem, sha, info, fut, asr = self._ahead
        try:
            result = fut.result()
        finally:
            self._ahead = None
        return stem, sha, info, result, asr

    def _intake(self, sf_: intake.SourceFile, seen_sha: dict, known: dict) -> _Source | None:
        r, o = self.r, self.o
        if sf_.path.is_relative_to(self.out):
            return None   # never re-ingest our own clips
        ahead = self._prefetched(sf_.path)
        asr = None
        if ahead is not None:
            stem, sha, info, (decoded, stats, power, regions), asr = ahead
            r.info(f"{sf_.rel}: original audio duration: {decoded.duration:.2f}s; decoded and VAD done while the "
                   "previous source was transcribed", tag="AUDIO")
        else:
            try:
                sha = intake.file_sha256(sf_.path)
            except OSError as exc:
                raise intake.read_error(exc) from exc
            if sha in seen_sha:
                prev = seen_sha[sha]
                r.info(f"{sf_.rel}: already in the dataset as {prev.get('name')} (same content); skipped", tag="DUP")
                return None
            info = intake.probe(sf_.path)
            stem = ds.slug(sf_.path.stem) + "_" + sha[:6]
            r.info(f"{sf_.rel}: original audio duration: {info.duration:.2f}s; processing with VAD", tag="AUDIO")
            decoded, stats, power, regions = self._analyse(sf_, info, stem)
        if not regions:
            raise intake.IntakeError("no speech found by the voice activity detector")
        fp = _fingerprint(power)
        dup_of = self._duplicate_audio(fp)
        if dup_of:
            raise intake.IntakeError(f"same audio as {dup_of} (a re-encoded or renamed copy)")
        self.fp_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.fp_dir / f"{sha}.npy", suffix=".npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, fp)

        speaker = o.speaker or ds.slug(self.out.name, 30)
        if o.speaker_from_folders and sf_.subfolder:
            speaker = ds.slug(sf_.subfolder, 30)
        text = None
        if o.transcripts != "asr":
            try:
                text = sidecar_text(sf_.path) or known.get(sf_.path)
            except OSError as exc:
                raise intake.IntakeError(f"its transcript cannot be read ({(exc.strerror or str(exc)).lower()})") from exc
            if text is None and o.transcripts == "files":
                raise intake.IntakeError("no transcript (.txt/.lab beside it or metadata file) and --transcripts files")
        snr = analysis.estimate_snr(power, regions)
        speech_s = float(sum(b - a for a, b in regions))
        quality = {
            **stats.as_dict(), **snr, "lufs": decoded.integrated_lufs, "loudness_range": decoded.loudness_range,
            "speech_seconds": round(speech_s, 2),
        }
        entry = {
            "id": stem, "name": sf_.rel, "path": str(sf_.path), "sha256": sha, "size": sf_.path.stat().st_size,
            "duration": round(decoded.duration, 3), "sample_rate": info.sample_rate, "channels": info.channels,
            "codec": info.codec, "speaker": speaker, "transcript": "file" if text else "asr",
            "quality": quality, "added": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        lufs = "n/a" if decoded.integrated_lufs is None else f"{decoded.integrated_lufs:.1f} LUFS"
        snr_s = "n/a" if snr["snr_db"] is None else (f"{snr['snr_db']:.0f} dB" if snr["snr_db"] < analysis.SNR_CAP_DB else f">{analysis.SNR_CAP_DB:.0f} dB")
        r.info(
            f"{sf_.rel}: {decoded.duration:.2f}s, {info.sample_rate} Hz, {info.channels} ch, {info.codec}; "
            f"loudness {lufs}, peak {stats.peak_dbfs or -99:.1f} dBFS, clipping {stats.clipping_ratio * 100:.2f}%, "
            f"SNR {snr_s}, speech {speech_s:.1f}s",
            tag="AUDIO", source=stem,
        )
        r.event("source_report", source=entry)
        return _Source(sf_, sha, entry, decoded, stats, power, regions, text, asr)

    def _duplicate_audio(self, fp: np.ndarray) -> str | None:
        if not self.fp_dir.exists():
            return None
        for f in self.fp_dir.glob("*.npy"):
            try:
                other = np.load(f)
            except (OSError, ValueError):
                continue
            if _same_audio(fp, other):
                sha = f.stem
                for s in self.manifest["sources"]:
                    if s["sha256"] == sha:
                        return s["name"]
        return None

    # -------------------------------------------------------------------------------------------
    def _load_whisper_early(self, files: list[intake.SourceFile], known: dict) -> None:
        """Load whisper in a worker thread while the first source is decoded (a large model takes
        seconds to load); errors are reported when whisper is first needed, as before."""
        o = self.o
        if o.transcripts == "files" or self.transcriber is not None or self._whisper_load is not None:
            return
        if o.transcripts == "auto" and all(known.get(f.path) or has_sidecar(f.path) for f in files):
            return          # every recording has its text: whisper may not be needed at all
        try:
            t = Transcriber(o.whisper_model, o.device, o.language, o.batch_size, parallel=True)
        except WhisperLoadError:
            return
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(1, thread_name_prefix="prep-whisper-load")
        self._whisper_load = (t, pool.submit(t.load))
        pool.shutdown(wait=False)

    def _get_transcriber(self) -> Transcriber:
        if self.transcriber is None:
            o, r = self.o, self.r
            loading, self._whisper_load = self._whisper_load, None
            try:
                t = loading[0] if loading else Transcriber(o.whisper_model, o.device, o.language, o.batch_size, parallel=True)
            except WhisperLoadError as exc:
                raise PrepError(str(exc)) from exc
            r.info(f"Using device: {t.device}", tag="MODEL")
            r.info(f"Loading Whisper model: {t.model_name}", tag="MODEL")
            if t.device == "cuda":
                r.info("Using mixed precision (float16)", tag="MODEL")
                r.info("GPU Memory Status:", tag="GPU", details=_cuda_memory_lines())
            else:
                r.info("Compute type: int8 on CPU", tag="MODEL")
            try:
                loading[1].result() if loading else t.load()
            except WhisperLoadError as exc:
                raise PrepError(str(exc)) from exc
            if t.fallback_note:
                r.warn(t.fallback_note, tag="MODEL", code="whisper_fallback")
            self.transcriber = t
        return self.transcriber

    def _words(self, src: _Source) -> tuple[list[segment.Word], int]:
        t = self._get_transcriber()
        asr = self._follow_ahead(src)
        if asr is None:
            chunks = segment.transcription_chunks(src.regions, src.power, src.decoded.duration)
            with self.r.progress("transcribe", f"Transcribing {src.file.rel}", len(chunks)) as bar:
                asr = t.transcribe_chunks(src.decoded.work16, chunks, on_chunk=bar.advance)
        dropped = sum(1 for a in asr if a.dropped)
        words = [w for a in asr if not a.dropped for w in a.words]
        return words, dropped

    def _follow_ahead(self, src: _Source):
        """The result of whisper started ahead on this source (its progress shown as it goes), or
        None when none was started or it found no whisper was needed."""
        ahead = src.asr
        if ahead is None:
            return None
        from concurrent.futures import TimeoutError as Pending

        while not ahead.chunks and not ahead.future.done():     # its windows are known right after the VAD
            time.sleep(0.01)
        if not ahead.chunks:
            return ahead.future.result()
        with self.r.progress("transcribe", f"Transcribing {src.file.rel}", len(ahead.chunks)) as bar:
            shown = 0
            while True:
                try:
                    found = ahead.future.result(timeout=0.2)
                except Pending:
                    found = None
                if ahead.done > shown:
                    bar.advance(ahead.done - shown)
                    shown = ahead.done
                if found is not None or ahead.future.done():
                    return ahead.future.result()

    def _segment_and_write(self, src: _Source) -> list[dict]:
        o, r = self.o, self.r
        dur = src.decoded.duration
        speech_span = (src.regions[0][0], src.regions[-1][1])
        dropped = 0
        if src.known_text and speech_span[1] - speech_span[0] <= o.max_seconds:
            # a short recording with its own transcript: one clip, no ASR needed
            words = [segment.Word(speech_span[0], speech_span[1], " " + src.known_text)]
            segs, st = segment.plan_segments([speech_span], words, src.power, dur, o.min_seconds, o.max_seconds)
        else:
            words, dropped = self._words(src)
            if src.known_text:
                aligned, share = align_known_text(src.known_text, words)
                if share < 0.5:
                    r.warn(f"{src.file.rel}: its transcript matches only {share:.0%} of what whisper heard; "
                           "using whisper's text", tag="DATA", code="transcript_mismatch")
                else:
                    words = aligned
            segs, st = segment.plan_segments(src.regions, words, src.power, dur, o.min_seconds, o.max_seconds)
            if dropped:
                r.info(f"{src.file.rel}: dropped {dropped} whisper segment(s) judged non-speech (hallucination)", tag="SEG")
        r.info(f"Merged {st.atoms + st.splits} segments into {st.merged_into} segments with mid-range preference", tag="SEG")
        r.info(f"VAD processing: {st.vad_regions} original segments, {st.merged_into} after merging", tag="SEG")
        for before, after in st.extended:
            r.warn(f"Segment too short ({before:.2f}s), attempting to extend", tag="SEG", code="short_segment")
            r.info(f"Extended segment from {before:.2f}s to {after:.2f}s", tag="SEG")
        return self._write_clips(src, segs)

    def _write_clips(self, src: _Source, segs: list[segment.Segment]) -> list[dict]:
        """Cut, level and write the clips; on any failure (Ctrl-C, disk full) the clips of this
        source already written are removed, so wavs/ only ever holds clips dataset.json lists."""
        written: list[Path] = []
        try:
            return self._write_clips_into(src, segs, written)
        except BaseException:
            for f in written:
                f.unlink(missing_ok=True)
            raise

    def _write_clips_into(self, src: _Source, segs: list[segment.Segment], written: list[Path]) -> list[dict]:
        o = self.o
        lufs = src.decoded.integrated_lufs
        gain_db = (o.target_lufs - lufs) if (o.normalize and lufs is not None) else 0.0
        gain_db = max(-30.0, min(30.0, gain_db))
        src.entry["gain_db"] = round(gain_db, 2)
        out: list[dict] = []
        wavs = self.out / "wavs"
        wavs.mkdir(parents=True, exist_ok=True)
        limited = []
        floor = clean.noise_floor(src.power, clean.speech_mask(len(src.power), src.regions))
        self._clip_edges(src, segs, floor)
        noise_sample = self._noise_sample(src)
        src_pauses = clean.pause_measures(src.power, src.regions, None, intake.WORK_RATE)
        if noise_sample is not None:
            src_pauses.flatness = clean.spectral_flatness(noise_sample, intake.WORK_RATE)
        src.entry["quality"]["pauses"] = src_pauses.as_dict()
        floor_after = None
        if o.denoise and noise_sample is not None:
            residual = clean.denoise(noise_sample, intake.WORK_RATE, noise_sample)
            floor_after = float(np.mean(np.square(residual, dtype=np.float64)))
        snrs_before, snrs_after = [], []
        print_ids: list[str] = []
        print_audio: list[np.ndarray] = []
        with sf.SoundFile(str(src.decoded.work22)) as f, sf.SoundFile(str(src.decoded.work16)) as f16, \
                self.r.progress("clips", f"Writing clips of {src.file.rel}", len(segs)) as bar:
            rate = f.samplerate
            for k, s in enumerate(segs):
                f.seek(int(s.start * rate))
                audio = f.read(int(round(s.duration * rate)), dtype="float32", always_2d=False)
                if len(audio) == 0:
                    continue
                clipped = float((np.abs(audio) >= analysis.CLIP_LEVEL).mean())
                # noise, music and reverb measures on this clip (its own pauses, else the source's)
                i0 = int(s.start / clean.FRAME)
                cpower = src.power[i0 : i0 + int(round(s.duration / clean.FRAME))]
                regions_in = [(max(a, s.start), min(b, s.end)) for a, b in src.regions if b > s.start and a < s.end]
                cmask = clean.speech_mask(len(cpower), regions_in, offset=s.start)
                snr_before = clean.snr_db(cpower, cmask, floor)
                pauses = clean.pause_measures(cpower, regions_in, audio, rate, offset=s.start)
                if pauses.pauses == 0:
                    pauses = src_pauses
                snr = snr_before
                if o.denoise:
                    audio = clean.denoise(audio, rate, noise_sample)
                    dpower = clean.frame_power(audio, rate)
                    snr = clean.snr_db(dpower, cmask[: len(dpower)], floor_after)
                if snr_before is not None:
                    snrs_before.append(snr_before)
                if snr is not None:
                    snrs_after.append(snr)
                if o.normalize:
                    audio = audio - float(audio.mean())
                g = 10 ** (gain_db / 20)
                peak = float(np.abs(audio).max()) * g
                if peak > PEAK_CEILING:
                    g *= PEAK_CEILING / peak
                    limited.append(20 * np.log10(peak / PEAK_CEILING))
                audio = np.clip(audio * g, -1.0, 1.0)
                seg_id = f"{src.entry['id']}_{k:03d}"
                rel = f"wavs/{seg_id}.wav"
                _write_wav(self.out / rel, audio, rate)
                written.append(self.out / rel)
                text = normalize_text(s.text, o.language)
                flags = list(s.flags)
                conf = float(np.mean([w.prob for w in s.words])) if s.words else 0.0
                if not text:
                    flags.append("empty_text")
                if any(w.suspect for w in s.words):
                    flags.append("hallucination")
                if s.words and conf < LOW_CONFIDENCE:
                    flags.append("low_confidence")
                if clipped > analysis.CLIPPING_RATIO:
                    flags.append("clipped")
                if text and repeated_loop(text):
                    flags.append("repeated_text")
                if snr is not None and snr < clean.NOISY_SNR_DB:
                    flags.append("noisy")
                if pauses.music():
                    flags.append("music")
                if pauses.reverb():
                    flags.append("reverb")
                seg = {
                    "id": seg_id, "file": rel, "source": src.entry["id"], "speaker": src.entry["speaker"],
                    "start": round(s.start, 3), "end": round(s.end, 3), "duration": round(s.duration, 3),
                    "text": text, "confidence": round(conf, 3), "flags": sorted(set(flags)),
                    "split": None, "excluded": False, "text_source": src.entry["transcript"],
                }
                if s.extended_from is not None:
                    seg["extended_from"] = round(s.extended_from, 3)
                if s.edge_fixes:
                    seg["edge_fixes"] = s.edge_fixes
                seg["speech_seconds"] = round(float(cmask.sum()) * clean.FRAME, 2)
                seg["snr_db"] = None if snr is None else round(snr, 1)
                if o.denoise:
                    seg["snr_db_before"] = None if snr_before is None else round(snr_before, 1)
                seg["pauses"] = pauses.as_dict()
                self._apply_exclusion(seg)
                out.append(seg)
                if self._prints is not None:
                    # the voice print from the 16 kHz working audio while it is at hand (no re-read)
                    f16.seek(int(s.start * f16.samplerate))
                    a16 = f16.read(round(s.duration * f16.samplerate), dtype="float32", always_2d=False)
                    if len(a16):
                        print_ids.append(seg_id)
                        print_audio.append(a16)
                bar.advance(1)
            rate16 = f16.samplerate
        if print_ids:
            self._prints.submit(print_ids, print_audio, rate16)
        if o.denoise and snrs_before and snrs_after:
            b, a = float(np.median(snrs_before)), float(np.median(snrs_after))
            src.entry["quality"]["snr_db_denoised"] = round(a, 1)
            self.r.info(f"{src.file.rel}: denoised; median clip SNR {b:.0f} dB -> {a:.0f} dB", tag="AUDIO",
                        source=src.entry["id"], snr_before=round(b, 1), snr_after=round(a, 1))
        if limited and max(limited) > 2.0:
            self.r.info(f"{src.file.rel}: gain reduced on {len(limited)} clip(s), by up to {max(limited):.1f} dB, to keep "
                        "peaks under -1 dBFS (peaky recording: its clips end up a little quieter than the rest)", tag="AUDIO")
        return out

    def _clip_edges(self, src: _Source, segs: list[segment.Segment], floor: float | None) -> None:
        """Move clip edges out of words and trim noisy or long tails (engine/audio/clipends.py);
        flag what can't be fixed."""
        floor_db = None if not floor else 10 * math.log10(floor + 1e-12)
        dur = src.decoded.duration
        fixed = 0
        for k, s in enumerate(segs):
            lo = segs[k - 1].end if k > 0 else 0.0
            hi = segs[k + 1].start if k + 1 < len(segs) else dur
            e = clipends.refine(s.start, s.end, s.words, src.power, floor_db, lo, hi, min_len=self.o.min_seconds)
            s.start, s.end = e.start, e.end
            s.flags = sorted(set(s.flags) | set(e.flags))
            s.edge_fixes = e.fixes
            fixed += bool(e.fixes)
        flagged = sum(1 for s in segs if set(s.flags) & set(clipends.FLAGS))
        if fixed or flagged:
            self.r.info(f"{src.file.rel}: clip ends: {fixed} fixed (moved to a pause or tail trimmed), {flagged} "
                        "flagged (cut_end, cut_start, tail_noise, no_tail)", tag="SEG", source=src.entry["id"])

    def _noise_sample(self, src: _Source, seconds: float = 10.0) -> np.ndarray | None:
        """Up to `seconds` of the recording's pauses (frames at least 50 ms from speech)."""
        mask = clean.speech_mask(len(src.power), src.regions)
        away = ~(np.convolve(mask.astype(float), np.ones(11), mode="same") > 0)
        idx = np.flatnonzero(away)
        if len(idx) < 50:
            return None
        # runs of consecutive pause frames
        breaks = np.flatnonzero(np.diff(idx) > 1)
        starts = np.concatenate([[idx[0]], idx[breaks + 1]])
        ends = np.concatenate([idx[breaks], [idx[-1]]]) + 1
        parts, total = [], 0
        with sf.SoundFile(str(src.decoded.work22)) as f:
            rate = f.samplerate
            for a, b in zip(starts, ends):
                if b - a < 5:
                    continue
                f.seek(int(a * clean.FRAME * rate))
                x = f.read(int((b - a) * clean.FRAME * rate), dtype="float32", always_2d=False)
                parts.append(x)
                total += len(x)
                if total >= seconds * rate:
                    break
        return np.concatenate(parts) if parts else None

    def _speakers(self, new_segments: list[dict]) -> None:
        """Flag new clips far from the main voice of their speaker (resemblyzer embeddings)."""
        o, r = self.o, self.r
        cache = self.out / ".cache" / "embeddings"
        cache.mkdir(parents=True, exist_ok=True)
        new_ids = {s["id"] for s in new_segments}
        reference = None
        if o.speaker_ref:
            audio, rate = sf.read(str(Path(o.speaker_ref).expanduser()), dtype="float32", always_2d=True)
            reference = clean.speaker_embedding(audio.mean(axis=1), rate)
        by_speaker: dict[str, list[dict]] = {}
        for s in self.manifest["segments"]:
            if s["id"] in new_ids or ds.included(s) or "other_speaker" in s["flags"]:
                by_speaker.setdefault(s["speaker"], []).append(s)
        wanted = {s["id"] for group in by_speaker.values() for s in group}

        def store(seg_id: str, emb: np.ndarray) -> None:
            with atomic_path(cache / f"{seg_id}.npy", suffix=".npy") as tmp, open(tmp, "wb") as fh:
                np.save(fh, emb)

        pending = self._prints.pending() if self._prints is not None else 0
        todo = [s for group in by_speaker.values() for s in group
                if not (cache / f"{s['id']}.npy").exists() and not (self._prints and self._prints.has(s["id"]))]
        with r.progress("speakers", "Speaker check", len(todo) + pending) as bar:
            if self._prints is not None:
                # voice prints computed while whisper worked on the next source
                for seg_id, emb in self._prints.collect(on_done=bar.advance):
                    if seg_id in wanted:
                        store(seg_id, emb)
            for k in range(0, len(todo), 32):        # clips of earlier runs: read back and embedded together
                part = todo[k : k + 32]
                clips = [sf.read(str(self.out / s["file"]), dtype="float32") for s in part]
                by_rate: dict[int, list[int]] = {}
                for i, (_, rate) in enumerate(clips):
                    by_rate.setdefault(rate, []).append(i)
                for rate, idx in by_rate.items():
                    embs = clean.speaker_embeddings([clips[i][0] for i in idx], rate)
                    for i, emb in zip(idx, embs):
                        store(part[i]["id"], emb)
                bar.advance(len(part))
        for speaker, group in by_speaker.items():
            if len(group) < 3 and reference is None:
                continue
            embs = np.stack([np.load(cache / f"{s['id']}.npy") for s in group])
            sims, threshold, _ = clean.main_voice(embs, reference, o.speaker_threshold)
            far = []
            for s, sim in zip(group, sims):
                s["speaker_similarity"] = round(float(sim), 3)
                # a voice print from under ~2 s of speech is too unsure to leave a clip out on
                sure = s.get("speech_seconds", s["duration"]) >= clean.SPEAKER_MIN_SPEECH_S
                if s["id"] in new_ids and sim < threshold and sure:
                    s["flags"] = sorted(set(s["flags"]) | {"other_speaker"})
                    self._apply_exclusion(s)
                    far.append(s)
            r.info(f"Speaker check ({speaker}): similarity to the main voice {float(sims.min()):.2f}-{float(sims.max()):.2f}, "
                   f"threshold {threshold:.2f}" + (" (from --speaker-ref)" if reference is not None else ""),
                   tag="AUDIO", speaker=speaker, threshold=round(threshold, 3))
            if far:
                r.warn(f"{len(far)} clip(s) sound like another speaker (similarity under {threshold:.2f}); left out of "
                       "training, flag other_speaker (restore them in the review screen if they are the same voice)",
                       tag="AUDIO", code="other_speaker", count=len(far))

    @staticmethod
    def _apply_exclusion(seg: dict) -> None:
        bad = sorted(set(seg["flags"]) & ds.EXCLUDING_FLAGS)
        seg["excluded"] = bool(bad)
        if bad:
            seg["exclude_reason"] = ", ".join(bad)
        else:
            seg.pop("exclude_reason", None)

    # -------------------------------------------------------------------------------------------
    def _clip_audio16(self, seg: dict) -> np.ndarray:
        from scipy.signal import resample_poly

        audio, rate = sf.read(str(self.out / seg["file"]), dtype="float32")
        from math import gcd

        g = gcd(16000, rate)
        return resample_poly(audio, 16000 // g, rate // g).astype(np.float32) if rate != 16000 else audio

    def _duplicates(self, new_segments: list[dict]) -> None:
        r = self.r
        groups: dict[str, list[dict]] = {}
        for s in self.manifest["segments"]:
            key = comparable(s["text"])
            if len(key.split()) >= 2 and ds.included(s):
                groups.setdefault(key, []).append(s)
        new_ids = {s["id"] for s in new_segments}
        dup_groups = [g for g in groups.values() if len(g) > 1 and any(s["id"] in new_ids for s in g)]
        loops = [s for s in new_segments if "repeated_text" in s["flags"]]
        if not dup_groups and not loops:
            return
        if dup_groups:
            r.info(f"Found {len(dup_groups)} transcriptions shared by several clips", tag="DUP")
            for g in dup_groups:
                r.info(f"'{g[0]['text'][:60]}': {len(g)} occurrences ({', '.join(s['file'] for s in g[:4])})", tag="DUP")
        if loops:
            r.info(f"Found {len(loops)} clips whose transcription repeats itself", tag="DUP")
        if self._needs_asr_model():
            t = self._get_transcriber()
        else:
            t = None
        # the same sentence said twice is normal: only clips whose text looks doubtful get a second
        # opinion (low confidence, a duration that does not fit the text, a hallucination or loop)
        rate = _median_rate(self.manifest["segments"])
        doubtful = [s for g in dup_groups for s in g
                    if s["id"] in new_ids and s.get("text_source") != "file" and suspicious(s, rate)]
        todo = doubtful + [s for s in loops if s not in doubtful]
        if t is not None and todo:
            r.info(f"Re-transcribing duplicate files: {len(todo)} doubtful clip(s) of "
                   f"{sum(len(g) for g in dup_groups) + len(loops)} (the others' text is plausible)", tag="DUP")
            self._second_pass(todo, t)
        else:
            r.info("Re-transcribing duplicate files: none is doubtful (confident words, a duration that fits "
                   "the text)", tag="DUP")
        shared = []
        for g in dup_groups:
            still = {}
            for s in g:
                still.setdefault(comparable(s["text"]), []).append(s)
            for same in still.values():
                if len(same) > 1:
                    shared.append(same)
                    for s in same:
                        if "duplicate_text" not in s["flags"]:
                            s["flags"] = sorted(set(s["flags"]) | {"duplicate_text"})
        if shared:
            n = sum(len(same) for same in shared)
            r.warn(f"{n} clips in {len(shared)} group(s) still share their text (flagged duplicate_text: review "
                   "them; the same sentence said twice is fine)", tag="DUP", code="duplicate_text", count=n)
        for s in loops:
            if repeated_loop(s["text"]):
                r.warn(f"{s['file']}: transcription still repeats itself; left out of training (flag repeated_text)", tag="DUP",
                       code="repeated_text")
            else:
                s["flags"] = [f for f in s["flags"] if f != "repeated_text"]
                self._apply_exclusion(s)

    def _second_pass(self, segs: list[dict], t: Transcriber) -> None:
        """Whisper's second opinion on `segs`, decoded as one batch, with progress."""
        with self.r.progress("second_pass", "Re-transcribing doubtful clips", len(segs)) as bar:
            results = t.retranscribe_batch([self._clip_audio16(s) for s in segs], on_done=bar.advance)
        for seg, (text, conf) in zip(segs, results):
            self._take_second_opinion(seg, text, conf)

    def _confidence_filter(self, segs: list[dict]) -> None:
        """--min-confidence: clips whisper was unsure of, or whose two passes disagree, are left
        out of training with the flag `doubtful` (restorable in Review)."""
        floor = self.o.min_confidence
        if floor is None:
            return
        out = []
        for s in segs:
            if s.get("text_source") == "file" or not ds.included(s):
                continue
            second = s.get("second_pass")
            disagree = bool(second and second.get("text") and comparable(second["text"]) != comparable(
                s.get("text_first_pass", s["text"])))
            if s.get("confidence", 0.0) < floor or disagree:
                s["flags"] = sorted(set(s["flags"]) | {"doubtful"})
                s["doubtful_reason"] = ("the two whisper passes disagree" if disagree
                                        else f"confidence {s.get('confidence', 0.0):.2f} < {floor:g}")
                self._apply_exclusion(s)
                out.append(s)
        if out:
            self.r.warn(f"{len(out)} clip(s) left out as doubtful (confidence under {floor:g} or the two whisper "
                        "passes disagree; flag doubtful, restore them in Review)", tag="DATA", code="doubtful",
                        count=len(out))

    def _content(self) -> None:
        """The content report (engine/prep/content.py), stored in dataset.json, shown, and advice."""
        o, r = self.o, self.r
        usable = [s for s in self.manifest["segments"] if ds.included(s)]
        with r.progress("content", "Content report", None):
            rep = content.content_report(usable, self.manifest["sources"], o.language, o.min_seconds, o.max_seconds,
                                         Path(o.model).expanduser() if o.model else None)
        self.manifest["content"] = rep
        r.info("Content report:", tag="DATA", details=content.lines(rep))
        r.event("content_report", content=rep)
        for code, msg in content.advice(rep):
            r.warn(msg, tag="DATA", code=code)

    def _needs_asr_model(self) -> bool:
        return any(src.get("transcript") == "asr" for src in self.manifest["sources"])

    def _take_second_opinion(self, seg: dict, text: str, conf: float) -> None:
        text = normalize_text(text, self.o.language)
        seg["second_pass"] = {"text": text, "confidence": round(conf, 3)}
        # a second opinion replaces the first only when whisper is at least as sure of it
        if text and comparable(text) != comparable(seg["text"]) and conf >= seg.get("confidence", 0.0) - 0.02 \
                and not repeated_loop(text):
            seg["text_first_pass"] = seg["text"]
            seg["text"] = text
            seg["confidence"] = round(conf, 3)
            seg["flags"] = sorted(set(seg["flags"]) | {"retranscribed"})
            self.r.info(f"Updated transcription for {seg['file']}", tag="DUP")

    # -------------------------------------------------------------------------------------------
    def _report_stats(self, new_segments: list[dict]) -> None:
        o = self.o
        usable = [s for s in self.manifest["segments"] if ds.included(s)]
        durs = [s["duration"] for s in usable]
        under = sum(1 for d in durs if d < o.min_seconds - 1e-6)
        over = sum(1 for d in durs if d > o.max_seconds + 1e-6)
        excluded = sum(1 for s in self.manifest["segments"] if not ds.included(s))
        self.r.info("Audio Processing Statistics:", tag="AUDIO", details=[
            f"Total segments: {len(usable)}" + (f" (+{excluded} left out, see flags)" if excluded else ""),
            f"Average duration: {np.mean(durs):.2f}s",
            f"Segments under minimum: {under}",
            f"Segments over maximum: {over}",
        ])
        if under > max(2, 0.2 * len(durs)):
            self.r.warn(f"{under} of {len(durs)} segments are under {o.min_seconds:g}s: the recordings have many short, "
                        "isolated utterances", tag="SEG", code="short_segments")

    def _warnings(self, processed: list[_Source]) -> None:
        r = self.r
        sources = self.manifest["sources"]
        usable = [s for s in self.manifest["segments"] if ds.included(s)]
        speech = float(sum(s["duration"] for s in usable))
        minutes = speech / 60
        if speech < ds.MIN_SPEECH_SECONDS:
            r.warn(f"Only {minutes:.1f} minutes of speech in the dataset: under the 3 minutes XTTS finetuning needs; "
                   "add more recordings", tag="DATA", code="too_little_speech")
        elif speech < ds.GOOD_SPEECH_SECONDS:
            r.warn(f"{minutes:.1f} minutes of speech: this works, but 5+ minutes is recommended for better accuracy",
                   tag="DATA", code="little_speech")
        levels = [s["quality"].get("lufs") for s in sources if s.get("quality", {}).get("lufs") is not None]
        if len(levels) >= 2 and max(levels) - min(levels) > analysis.LOUDNESS_SPREAD_LU:
            spread = max(levels) - min(levels)
            fix = "normalisation evened it out in the clips" if self.o.normalize else "use normalisation (leave out --no-normalize)"
            r.warn(f"Inconsistent loudness across files: {min(levels):.1f} to {max(levels):.1f} LUFS "
                   f"({spread:.1f} LU spread); {fix}", tag="AUDIO", code="loudness_spread")
        for src in processed:
            q, name = src.entry["quality"], src.entry["name"]
            if q["clipping_ratio"] > analysis.CLIPPING_RATIO:
                r.warn(f"{name}: {q['clipping_ratio'] * 100:.2f}% of samples are clipped (distortion the model will "
                       "learn); re-record or lower the input gain", tag="AUDIO", code="clipping", source=src.entry["id"])
            snr = q.get("snr_db")
            if snr is not None and snr < analysis.LOW_SNR_DB:
                level = "very noisy" if snr < analysis.VERY_LOW_SNR_DB else "noisy"
                r.warn(f"{name}: {level} (estimated SNR {snr:.0f} dB); remove background noise for clearer results",
                       tag="AUDIO", code="noise", source=src.entry["id"])
            if abs(q["dc_offset"]) > analysis.DC_OFFSET:
                r.warn(f"{name}: DC offset {q['dc_offset']:+.3f}" + (" (removed in the clips)" if self.o.normalize else ""),
                       tag="AUDIO", code="dc_offset", source=src.entry["id"])
            clips = [c for c in self.manifest["segments"] if c["source"] == src.entry["id"]]
            for flag, what, advice in (
                ("music", "music or sound effects under the speech",
                 "sound that persists, tonal, after speech stops; use recordings without a music bed"),
                ("reverb", "strong reverb", "energy decaying slowly after speech stops; record in a drier room"),
                ("noisy", "still noisy", f"clip SNR under {clean.NOISY_SNR_DB:.0f} dB" +
                 ("" if self.o.denoise else "; try --denoise")),
            ):
                hit = [c for c in clips if flag in c["flags"]]
                if hit:
                    r.warn(f"{name}: {what} in {len(hit)} of {len(clips)} clip(s) (flag {flag}: {advice})",
                           tag="AUDIO", code=flag, source=src.entry["id"], count=len(hit))
            if src.entry["sample_rate"] and src.entry["sample_rate"] < analysis.LOW_SAMPLE_RATE:
                r.warn(f"{name}: recorded at {src.entry['sample_rate']} Hz (telephone band); the voice will sound "
                       "muffled. 16 kHz or more is recommended", tag="AUDIO", code="low_sample_rate", source=src.entry["id"])

    def _nothing_usable_reason(self, found: intake.Discovery, skipped: list[dict]) -> str:
        if not found.files and not skipped:
            return "no audio files found (looked for: " + ", ".join(sorted(intake.AUDIO_EXTENSIONS)) + ")"
        if not found.files:
            return f"no audio files found ({len(skipped)} path(s) skipped: {skipped[0]['reason']})"
        reasons: dict[str, int] = {}
        for s in skipped:
            reasons[s["reason"].split(" (")[0]] = reasons.get(s["reason"].split(" (")[0], 0) + 1
        detail = "; ".join(f"{n}× {k}" for k, n in reasons.items())
        return f"no usable speech in {len(found.files)} file(s)" + (f" ({detail})" if detail else " (all already in the dataset?)")

    def _write_summary_only(self, skipped: list[dict]) -> None:
        # keep a record of why nothing was produced, without touching an existing good dataset
        if (self.out / ds.MANIFEST).exists():
            return
        from engine.atomic import write_json

        write_json(self.out / "prep_failed.json", {"skipped": skipped, "time": time.strftime("%Y-%m-%dT%H:%M:%S")})

    def _summary(self, processed: list[_Source], skipped: list[dict], n_train: int, n_eval: int) -> dict:
        segs = self.manifest.get("segments", [])
        usable = [s for s in segs if ds.included(s)]
        durs = [s["duration"] for s in usable]
        o = self.o
        return {
            "dataset": str(self.out),
            "language": o.language,
            "sources_added": len(processed),
            "sources_total": len(self.manifest.get("sources", [])),
            "skipped": skipped,
            "clips": len(usable),
            "clips_excluded": len(segs) - len(usable),
            "train": n_train,
            "eval": n_eval,
            "speech_seconds": round(float(sum(durs)), 2),
            "average_seconds": round(float(np.mean(durs)), 2) if durs else 0.0,
            "under_min": sum(1 for d in durs if d < o.min_seconds - 1e-6),
            "over_max": sum(1 for d in durs if d > o.max_seconds + 1e-6),
            "warnings": [w["msg"] for w in self.r.warnings],
            "whisper_model": self.transcriber.model_name if self.transcriber else None,
            "device": self.transcriber.device if self.transcriber else None,
        }


def check_out_folder(out: Path) -> None:
    """Create the dataset folder and make sure this process can write in it (PrepError if not)."""
    out = Path(out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrepError(f"cannot create {out}: {(exc.strerror or str(exc)).lower()}") from exc
    probe = out / f".write-test-{os.getpid()}"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink()
        raise PrepError(f"cannot write to {out}: {(exc.strerror or str(exc)).lower()}") from exc


def _write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    """16-bit WAV, atomically; encoded in memory and written by Python, so a full disk is an
    OSError(ENOSPC) naming the file and not libsndfile's "System error"."""
    buf = io.BytesIO()
    sf.write(buf, audio, rate, subtype="PCM_16", format="WAV")
    with atomic_path(path, suffix=".wav") as tmp, open(tmp, "wb") as fh:
        fh.write(buf.getbuffer())


def _cuda_memory_lines() -> list[str]:
    try:
        import torch

        free, total = torch.cuda.mem_get_info()
    except Exception:  # noqa: BLE001 - memory figures are informative only
        return ["not available"]
    mb = 1024 * 1024
    return [f"Total: {total / mb:.2f} MB", f"Used:  {(total - free) / mb:.2f} MB", f"Free:  {free / mb:.2f} MB"]


def run_prep(opts: PrepOptions, reporter: Reporter, lock: bool = True) -> PrepResult:
    """The Python entry point (tests call this; the CLI wraps it).

    The dataset folder's lock is held for the whole job (`lock=False`: the caller holds it); a
    second job on the same folder is refused with a message naming the holder."""
    try:
        if not lock:
            return Prep(opts, reporter).run()
        out = Path(opts.out).expanduser()
        check_out_folder(out)
        with locks.hold(out, "xtts-ft prep"):
            return Prep(opts, reporter).run()
    except (PrepError, ds.DatasetError, intake.ToolMissing, locks.Busy) as exc:
        return PrepResult(False, str(exc))
