"""Finding, probing and decoding source recordings.

Decoding goes through ffmpeg in one streaming pass per source: it writes a 22050 Hz mono float
working file (what clips are cut from), a 16 kHz mono 16-bit working file (VAD and ASR), and
measures integrated loudness (EBU R128) on the way. Nothing is ever held whole in memory, so an
hours-long take costs the same RAM as a short one. Sources are only read, never written.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

AUDIO_EXTENSIONS = {".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aiff", ".aif"}
TRANSCRIPT_EXTENSIONS = {".txt", ".lab"}
WORK_RATE = 22050      # what XTTS trains on
ASR_RATE = 16000       # what silero-vad and whisper take


class IntakeError(Exception):
    """A source that cannot be used; the message is shown to the user as the reason."""


class ToolMissing(RuntimeError):
    """A program prep needs (ffmpeg) is not installed."""


def require_ffmpeg() -> None:
    missing = [tool for tool in ("ffmpeg", "ffprobe") if shutil.which(tool) is None]
    if missing:
        raise ToolMissing(
            f"{' and '.join(missing)} not found: install FFmpeg (Debian/Ubuntu: sudo apt-get install ffmpeg)"
        )


@dataclass
class SourceFile:
    path: Path            # absolute path of the recording
    root: Path            # the SOURCE argument it was found under (file or folder)
    rel: str              # path relative to root's folder, for display and per-folder speakers

    @property
    def subfolder(self) -> str | None:
        parts = Path(self.rel).parts
        return parts[0] if len(parts) > 1 else None


@dataclass
class Discovery:
    files: list[SourceFile] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)   # {"path", "reason"}


def discover(sources: list[str | Path]) -> Discovery:
    """Audio files named directly or found recursively under folders (any case of extension).

    Symbolic links are followed (each real file is taken once). Whatever cannot be used is listed
    in `skipped` with its reason: a missing path, a dangling link, a link loop, a folder that
    cannot be listed or entered.
    """
    found = Discovery()
    seen: set[Path] = set()
    for item in sources:
        p = Path(item).expanduser()
        if p.is_symlink() and not p.exists():
            found.skipped.append({"path": str(p), "reason": _dangling(p)})
            continue
        try:
            exists = p.exists()
            p.stat()
        except OSError as exc:
            found.skipped.append({"path": str(p), "reason": _os_reason(exc)})
            continue
        if not exists:
            found.skipped.append({"path": str(p), "reason": "no such file or folder"})
            continue
        if p.is_dir():
            _walk(p, p, found, seen, set())
        else:
            rp = p.resolve()
            if rp in seen:
                continue
            seen.add(rp)
            # named explicitly: tried whatever its extension (ffmpeg decides; the reason says if it fails)
            found.files.append(SourceFile(rp, rp.parent, p.name))
    return found


def _walk(folder: Path, root: Path, found: Discovery, seen: set[Path], ancestors: set[tuple[int, int]]) -> None:
    try:
        st = folder.stat()
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            found.skipped.append({"path": str(folder), "reason": "symbolic link loop (a folder inside itself); not followed"})
            return
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        found.skipped.append({"path": str(folder), "reason": _os_reason(exc, "folder")})
        return
    ancestors = ancestors | {key}
    audio_stems = {Path(e.name).stem for e in entries if Path(e.name).suffix.lower() in AUDIO_EXTENSIONS}
    for e in entries:
        f = Path(e.path)
        if e.name.startswith("."):
            continue
        try:
            is_dir = e.is_dir()
            is_file = not is_dir and e.is_file()
        except OSError as exc:
            found.skipped.append({"path": str(f), "reason": _os_reason(exc)})
            continue
        if is_dir:
            _walk(f, root, found, seen, ancestors)
            continue
        if not is_file:
            if e.is_symlink() and f.suffix.lower() in AUDIO_EXTENSIONS | {""}:
                found.skipped.append({"path": str(f), "reason": _dangling(f)})
            continue
        if f.suffix.lower() not in AUDIO_EXTENSIONS:
            if not _companion(f, audio_stems):
                kind = f.suffix or "no extension"
                found.skipped.append({"path": str(f), "reason": f"not an audio file ({kind})"})
            continue
        rp = f.resolve()
        if rp not in seen:
            seen.add(rp)
            found.files.append(SourceFile(rp, root.resolve(), str(f.relative_to(root))))


# files that travel with recordings and are read, not ignored: transcripts and metadata
TRANSCRIPT_EXTENSIONS = {".txt", ".lab"}
METADATA_NAMES = {"metadata.csv", "metadata_train.csv", "metadata_eval.csv", "metadata.txt"}


def _companion(f: Path, audio_stems: set[str]) -> bool:
    """A transcript beside an audio file of the same name, or a metadata file: used, not ignored."""
    if f.name.lower() in METADATA_NAMES:
        return True
    return f.suffix.lower() in TRANSCRIPT_EXTENSIONS and f.stem in audio_stems


def _dangling(p: Path) -> str:
    try:
        target = os.readlink(p)
    except OSError:
        return "broken symbolic link"
    try:
        p.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
    return f"broken symbolic link (points to {target}, which does not exist)"


def _os_reason(exc: OSError, what: str = "file") -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied (cannot {'list or enter this folder' if what == 'folder' else 'read it'})"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENOENT:
        return "no such file or folder"
    return f"cannot be read ({exc.strerror or exc})"


def read_error(exc: OSError) -> IntakeError:
    """A source that cannot be read, as the reason shown to the user."""
    return IntakeError(_os_reason(exc))


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class ProbeInfo:
    duration: float
    sample_rate: int
    channels: int
    codec: str
    container: str


def probe(path: Path) -> ProbeInfo:
    if path.stat().st_size == 0:
        raise IntakeError("empty file (0 bytes)")
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise IntakeError(f"not readable as audio ({_ffmpeg_reason(proc.stderr)})")
    info = json.loads(proc.stdout or "{}")
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
    if not streams:
        raise IntakeError("no audio stream in file")
    s = streams[0]
    if not int(s.get("sample_rate") or 0) or not int(s.get("channels") or 0):
        raise IntakeError("not readable as audio (no sample rate or channels: damaged, or not really audio)")
    fmt = info.get("format", {})
    try:
        duration = float(s.get("duration") or fmt.get("duration") or 0.0)
    except ValueError:
        duration = 0.0
    return ProbeInfo(
        duration=duration,
        sample_rate=int(s.get("sample_rate") or 0),
        channels=int(s.get("channels") or 0),
        codec=str(s.get("codec_name", "?")),
        container=str(fmt.get("format_name", "?")),
    )


def _ffmpeg_reason(stderr: str) -> str:
    generic = ("Conversion failed!", "Error marking filters as finished", "Error while filtering")
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip() and ln.strip() not in generic]
    if not lines:
        return "ffmpeg gave no reason"
    last = lines[-1]
    # strip "path: " prefixes so the reason reads on its own
    last = re.sub(r"^.*?: (?=[A-Z])", "", last)
    return last[:200]


@dataclass
class Decoded:
    work22: Path           # float32 mono 22050 Hz wav
    work16: Path           # int16 mono 16000 Hz wav
    duration: float
    integrated_lufs: float | None
    loudness_range: float | None


def mono_mix(channels: int) -> str:
    """The ffmpeg filter that mixes `channels` channels to one: their mean.

    ffmpeg's own downmix adds the channels with gains that sum above one (stereo: 0.707 each), so a
    stereo take peaking at -1 dBFS would come out at +2 dBFS and clip; the mean never exceeds the
    loudest channel, so levels and clipping are measured on what the clips really contain.
    """
    if channels <= 1:
        return ""
    gain = 1.0 / channels
    return "pan=mono|c0=" + "+".join(f"{gain:.10g}*c{k}" for k in range(channels)) + ","


def decode(path: Path, work_dir: Path, stem: str, on_progress=None, channels: int = 1, cancel=None) -> Decoded:
    """One streaming ffmpeg pass: mono mix (the channels' mean), resample, loudness measurement,
    two working files. A full disk is raised as OSError(ENOSPC), never as a decoding problem."""
    work_dir.mkdir(parents=True, exist_ok=True)
    w22 = work_dir / f"{stem}.22k.wav"
    w16 = work_dir / f"{stem}.16k.wav"
    graph = (
        f"[0:a]aformat=sample_fmts=flt,{mono_mix(channels)}aresample={WORK_RATE}:resampler=soxr,aformat=sample_fmts=flt:channel_layouts=mono,asplit=2[a][b];"
        "[a]ebur128=framelog=verbose[a2];"
        f"[b]aresample={ASR_RATE}:resampler=soxr,aformat=sample_fmts=s16[b2]"
    )
    cmd = [
        "ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "info", "-nostats", "-progress", "pipe:1",
        "-i", str(path),
        "-vn", "-filter_complex", graph,
        "-map", "[a2]", "-c:a", "pcm_f32le", "-rf64", "auto", str(w22),
        "-map", "[b2]", "-c:a", "pcm_s16le", "-rf64", "auto", str(w16),
    ]
    import tempfile

    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True)
        done = 0.0
        for line in proc.stdout:            # "-progress" key=value lines, a few per second
            if cancel is not None and cancel.is_set():     # a threading.Event: the caller gave up
                proc.kill()
                proc.wait()
                for f in (w22, w16):
                    f.unlink(missing_ok=True)
                raise IntakeError("cancelled")
            if line.startswith("out_time_us=") and on_progress is not None:
                try:
                    t = int(line.split("=", 1)[1]) / 1e6
                except ValueError:
                    continue
                if t > done:
                    on_progress(t - done)
                    done = t
        proc.wait()
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0 or not w22.exists():
        full = "No space left on device" in stderr or "Disk quota exceeded" in stderr or _full(work_dir)
        for f in (w22, w16):
            f.unlink(missing_ok=True)
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(w22))
        if "Permission denied" in stderr and not os.access(path, os.R_OK):
            raise IntakeError(_os_reason(OSError(errno.EACCES, "")))
        for f in (w22, w16):
            f.unlink(missing_ok=True)
        raise IntakeError(f"could not be decoded ({_ffmpeg_reason(stderr)})")
    lufs = _parse_summary(stderr, r"I:\s+(-?[\d.]+|-inf) LUFS")
    lra = _parse_summary(stderr, r"LRA:\s+(-?[\d.]+) LU")
    import soundfile as sf

    info = sf.info(str(w22))
    if info.frames == 0:
        for f in (w22, w16):
            f.unlink(missing_ok=True)
        raise IntakeError("decoded to no audio (0 samples)")
    return Decoded(w22, w16, info.frames / info.samplerate, lufs, lra)


def _full(folder: Path) -> bool:
    from engine.ioerrors import nearly_full

    return nearly_full(folder)


def _parse_summary(stderr: str, pattern: str) -> float | None:
    # the Summary block comes last; take the last match
    matches = re.findall(pattern, stderr)
    if not matches:
        return None
    value = matches[-1]
    if value in ("-inf", "inf"):
        return None
    v = float(value)
    return None if v <= -70.0 else v  # ebur128 reports -70 for silence
