"""A tiny random-weight XTTS v2 model in the real AllTalk layout (`models/xtts/<name>/`).

Used by the tests and the demo: it is loaded by exactly the same code as a real 2 GB model
(`Xtts.load_checkpoint`, coqui's `GPTTrainer`), but its GPT has 2 layers of 64 channels so a
training step takes ~0.06 s on a CPU. Fixed-size parts keep their real size (see STACK.md):
HiFiGAN decoder + speaker encoder (~93 MB model.pth) and the DVAE (~211 MB dvae.pth).
Never commit the folder it writes.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from engine.atomic import atomic_path, write_json

XTTS_LANGUAGES = [
    "en", "es", "fr", "de", "it", "pt", "pl", "tr", "ru", "nl", "cs", "ar", "zh-cn", "hu", "ko", "ja", "hi",
]
SPECIAL_TOKENS = ["[STOP]", "[UNK]", "[SPACE]", "[START]"]  # ids 0..3, as in the real vocab

TINY_DIMS = {
    "gpt_layers": 2,
    "gpt_n_model_channels": 64,
    "gpt_n_heads": 2,
    "decoder_input_dim": 64,  # = GPT channels
    "d_vector_dim": 512,  # fixed by the speaker encoder
    "gpt_num_audio_tokens": 1026,
    "gpt_start_audio_token": 1024,
    "gpt_stop_audio_token": 1025,
    "gpt_use_masking_gt_prompt_approach": True,
    "gpt_use_perceiver_resampler": True,
    "gpt_max_audio_tokens": 605,
    "gpt_max_text_tokens": 402,
    "gpt_max_prompt_tokens": 70,
}

_CORPUS = """The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with one step.
She sells sea shells by the sea shore, and the shells she sells are surely sea shells.
How much wood would a woodchuck chuck if a woodchuck could chuck wood? Peter Piper picked a peck.
It was the best of times, it was the worst of times; it was the age of wisdom and of foolishness.
Numbers like one, two, three, four, five, six, seven, eight, nine and ten are spoken every day.
Please call Stella and ask her to bring these things with her from the store: six spoons of fresh snow peas.
The rainbow is a division of white light into many beautiful colors, they take the shape of a long round arch.
"""


def _alphabet() -> list[str]:
    latin = "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿßœğışşčďěňřšťůžąćęłńóśźżőű"
    chars = set(string.ascii_lowercase + string.digits + string.punctuation + latin)
    return sorted(chars)


def build_vocab(path: Path, vocab_size: int = 256) -> None:
    """A byte-pair vocabulary in the `tokenizers` JSON format the real XTTS vocab.json uses."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = SPECIAL_TOKENS + [f"[{lang}]" for lang in XTTS_LANGUAGES]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=_alphabet(), show_progress=False
    )
    tok.train_from_iterator([line.lower() for line in _CORPUS.splitlines()] * 4, trainer=trainer)
    for i, name in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(name) == i, f"{name} must be token {i}"
    with atomic_path(path) as tmp:
        tok.save(str(tmp))


def tiny_config_dict(vocab_path: str = "", languages: list[str] | None = None) -> dict:
    from TTS.tts.configs.xtts_config import XttsAudioConfig, XttsConfig
    from TTS.tts.models.xtts import XttsArgs

    args = XttsArgs(tokenizer_file=vocab_path, **TINY_DIMS)
    config = XttsConfig(
        model_args=args,
        audio=XttsAudioConfig(sample_rate=22050, output_sample_rate=24000),
        languages=list(languages or XTTS_LANGUAGES),
    )
    config.model_dir = None
    data = config.to_dict()
    data["model_args"]["tokenizer_file"] = ""  # resolved beside the model at load time
    # random weights never emit the stop token: the model declares a cap on generated audio tokens
    data["xtts_ft"] = {"tiny": True, "note": "random weights: for tests and demos only", "max_new_tokens": 60}
    return data


def make_tiny_model(out_dir: str | Path, seed: int = 0, speakers: tuple[str, ...] = ("Tiny Speaker",)) -> Path:
    """Write config.json, model.pth, dvae.pth, mel_stats.pth, vocab.json, speakers_xtts.pth."""
    import torch
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.layers.xtts.dvae import DiscreteVAE
    from TTS.tts.models.xtts import Xtts

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)

    vocab = out / "vocab.json"
    build_vocab(vocab)
    cfg_dict = tiny_config_dict()
    write_json(out / "config.json", cfg_dict)

    config = XttsConfig()
    config.from_dict(json.loads((out / "config.json").read_text()))
    config.model_args.tokenizer_file = str(vocab)
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer

    model = Xtts(config)
    model.tokenizer = VoiceBpeTokenizer(vocab_file=str(vocab))
    model.init_models()
    # plausible mel normalisation values (the real ones lie between ~0.1 and ~6)
    mel_stats = torch.linspace(4.0, 0.5, 80)
    model.mel_stats.copy_(mel_stats)
    with atomic_path(out / "model.pth") as tmp:
        torch.save({"model": model.state_dict(), "config": cfg_dict}, tmp)
    with atomic_path(out / "mel_stats.pth") as tmp:
        torch.save(mel_stats, tmp)

    dvae = DiscreteVAE(
        channels=80, normalization=None, positional_dims=1, num_tokens=1024, codebook_dim=512,
        hidden_dim=512, num_resnet_blocks=3, kernel_size=3, num_layers=2, use_transposed_convs=False,
    )
    with atomic_path(out / "dvae.pth") as tmp:
        torch.save(dvae.state_dict(), tmp)

    ch = TINY_DIMS["gpt_n_model_channels"]
    spk = {
        name: {
            "gpt_cond_latent": torch.randn(1, 32, ch) * 0.1,
            "speaker_embedding": torch.randn(1, TINY_DIMS["d_vector_dim"], 1) * 0.1,
        }
        for name in speakers
    }
    with atomic_path(out / "speakers_xtts.pth") as tmp:
        torch.save(spk, tmp)
    return out
