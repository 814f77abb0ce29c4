"""whisper windows that hold speech with long pauses shortened, decoded by parallel workers:
times come back in the recording's time and the text does not depend on the split."""

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

import speechgen
from engine.audio import segment, vad
from engine.audio.transcribe import Transcriber, _split


@pytest.fixture(scope="module")
def long_pauses(tmp_path_factory):
    """Six sentences with 3-5 s pauses between them, at 16 kHz."""
    sents = speechgen.SENTENCES[:6]
    audio, _ = speechgen.compose(sents, pauses=[3.0, 4.5, 3.5, 5.0, 4.0], lead=1.0)
    audio16 = resample_poly(audio, 16000, speechgen.RATE).astype(np.float32)
    path = tmp_path_factory.mktemp("windows") / "work16.wav"
    sf.write(str(path), audio16, 16000, subtype="FLOAT")
    regions, _ = vad.speech_regions(path)
    return path, sents, regions, len(audio16) / 16000


def _power(path):
    audio, rate = sf.read(str(path), dtype="float32")
    from engine.audio.clean import frame_power

    return frame_power(audio, rate)


def test_split_shares_items_in_order():
    assert _split(list(range(5)), 2) == [[0, 1, 2], [3, 4]]
    assert _split([1], 4) == [[1]]
    assert _split(list(range(4)), 1) == [[0, 1, 2, 3]]


def test_words_land_in_the_speech_and_parallel_decoders_hear_the_same(long_pauses, whisper_model):
    path, sents, regions, duration = long_pauses
    power = _power(path)
    # small windows so that there are several, each with shortened pauses inside
    chunks = segment.transcription_chunks(regions, power, duration, max_chunk_s=9.0)
    assert len(chunks) >= 3
    assert sum(c.length for c in chunks) < duration - 8.0            # the long pauses are not sent whole
    one = Transcriber(whisper_model, "cpu", "en", cpu_threads=2)        # one decoder
    two = Transcriber(whisper_model, "cpu", "en", parallel=True)        # shared between decoders
    assert one.workers == 1 and two.workers >= 2
    a = one.transcribe_chunks(path, chunks)
    b = two.transcribe_chunks(path, chunks)
    assert [s.text for s in a] == [s.text for s in b]
    assert [(round(w.start, 2), round(w.end, 2)) for s in a for w in s.words] == \
           [(round(w.start, 2), round(w.end, 2)) for s in b for w in s.words]
    words = [w for s in b for w in s.words]
    assert len(words) >= 40
    # every word lies in (or within 0.35 s of) a VAD speech region of the recording: none was
    # placed in a pause, as it would be if the shortened pauses were not mapped back
    for w in words:
        mid = 0.5 * (w.start + w.end)
        assert any(r0 - 0.35 <= mid <= r1 + 0.35 for r0, r1 in regions), (w, regions)
        assert w.end - w.start < 2.0
    # the text is the text
    import jiwer

    from engine.prep.textnorm import comparable

    assert jiwer.wer(comparable(" ".join(sents)), comparable(" ".join(s.text for s in b))) < 0.25
