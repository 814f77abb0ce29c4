"""`xtts-ft vocab extend`: new BPE tokens for a dataset's text, appended to an XTTS model's
vocabulary, with the GPT's text embedding and text head resized to match, in a new model folder.

- Existing tokens keep their ids; new tokens (and their merges) are appended, so every text the
  base model could encode encodes the same way, and the base weights stay where they were.
- New embedding / head rows start as the mean of the rows of the pieces the base vocabulary split
  the new token into (a good guess of "what these characters meant"); for characters the base
  model had never seen, the mean of all rows. Old rows are copied unchanged.
- A language the base model lacks gets its `[xx]` token, and config.json records it with its
  text cleaner (engine/model/languages.py), so training, export and synthesis accept the code.
- The base model folder is never modified.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from engine.atomic import atomic_path, write_json
from engine.model.languages import clean, is_builtin

MAX_TEXT_TOKENS = 402      # XTTS's gpt_max_text_tokens: a text must encode to fewer tokens
MODEL_FILES = ("config.json", "model.pth", "dvae.pth", "mel_stats.pth", "vocab.json", "speakers_xtts.pth")
EMBEDDING_KEYS = ("gpt.text_embedding.weight", "gpt.text_head.weight", "gpt.text_head.bias")


class VocabError(Exception):
    pass


@dataclass
class Coverage:
    texts: int
    tokens: int
    unk: int
    single_char: int      # tokens that are one character (the text was split letter by letter)

    @property
    def unk_share(self) -> float:
        return self.unk / max(1, self.tokens)

    @property
    def single_share(self) -> float:
        return self.single_char / max(1, self.tokens)


@dataclass
class ExtendReport:
    base_size: int
    new_size: int
    added: list[str] = field(default_factory=list)
    language_added: str | None = None
    before: Coverage | None = None
    after: Coverage | None = None
    too_long: int = 0
    out: str = ""

    def lines(self) -> list[str]:
        b, a = self.before, self.after
        out = [
            f"Vocabulary: {self.base_size} -> {self.new_size} tokens ({len(self.added)} added"
            + (f", language token [{self.language_added}]" if self.language_added else "") + ")",
            f"[UNK] share of the dataset's tokens: {b.unk_share:.1%} before, {a.unk_share:.1%} after",
            f"single-character tokens: {b.single_share:.1%} before, {a.single_share:.1%} after "
            f"({b.tokens} -> {a.tokens} tokens for {a.texts} texts)",
        ]
        if self.added:
            out.append("new tokens (first 20): " + " ".join(self.added[:20]))
        return out


def dataset_texts(dataset: Path) -> list[str]:
    texts = []
    for name in ("metadata_train.csv", "metadata_eval.csv"):
        p = Path(dataset) / name
        if not p.exists():
            continue
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines()):
            parts = line.split("|")
            if i == 0 and parts[0] == "audio_file":
                continue
            if len(parts) >= 2 and parts[1].strip():
                texts.append(parts[1].strip())
    if not texts:
        raise VocabError(f"{dataset}: no transcripts found in metadata_train.csv / metadata_eval.csv")
    return texts


def _prepared(texts: list[str], language: str, cleaner: str, tokenizer_path: Path) -> list[str]:
    """The text as the tokenizer sees it (coqui's cleaning for built-in languages)."""
    if is_builtin(language):
        from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer

        tok = VoiceBpeTokenizer(str(tokenizer_path))
        base = language.split("-")[0]
        return [tok.preprocess_text(t, base) for t in texts]
    return [clean(t, cleaner) for t in texts]


def coverage(tokenizer, texts: list[str], language_token: str | None) -> Coverage:
    unk_id = tokenizer.token_to_id("[UNK]")
    total = unk = single = 0
    for t in texts:
        ids = tokenizer.encode(((language_token or "") + t).replace(" ", "[SPACE]")).ids
        for i in ids:
            piece = tokenizer.id_to_token(i)
            if piece is None or (piece.startswith("[") and piece.endswith("]")):
                if i == unk_id:
                    unk += 1
                    total += 1
                continue
            total += 1
            if len(piece) == 1:
                single += 1
    return Coverage(len(texts), total, unk, single)


def _merge_list(model: dict) -> list[tuple[str, str]]:
    out = []
    for m in model.get("merges", []):
        out.append(tuple(m.split(" ", 1)) if isinstance(m, str) else (m[0], m[1]))
    return out


def extend(dataset: Path, model: Path, out: Path, vocab_size: int = 0, min_frequency: int = 2,
           language: str = "en", cleaner: str = "basic", force: bool = False) -> ExtendReport:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    model, out, dataset = Path(model), Path(out), Path(dataset)
    missing = [f for f in MODEL_FILES if not (model / f).is_file()]
    if missing:
        raise VocabError(f"{model} is not a complete XTTS model folder: missing {', '.join(missing)}")
    if out.resolve() == model.resolve():
        raise VocabError("--out must be a new folder: the base model is never modified")
    if out.exists() and any(out.iterdir()) and not force:
        raise VocabError(f"{out} already exists and is not empty (use --force to replace it)")
    if min_frequency < 1:
        raise VocabError("--min-frequency must be at least 1")

    base_json = json.loads((model / "vocab.json").read_text(encoding="utf-8"))
    if base_json.get("model", {}).get("type") != "BPE":
        raise VocabError(f"{model}/vocab.json is not a BPE tokenizer")
    base = Tokenizer.from_file(str(model / "vocab.json"))
    base_vocab: dict[str, int] = dict(base_json["model"]["vocab"])
    base_size = max(max(base_vocab.values()), max((t["id"] for t in base_json["added_tokens"]), default=0)) + 1

    texts = dataset_texts(dataset)
    prepared = _prepared(texts, language, cleaner, model / "vocab.json")
    code = "zh-cn" if language in ("zh", "zh-cn") else language
    lang_token = f"[{code}]"
    has_lang = base.token_to_id(lang_token) is not None
    before = coverage(base, prepared, lang_token if has_lang else None)

    # learn subwords from the dataset's words
    words = Counter(w for t in prepared for w in pre_tokenizers.Whitespace().pre_tokenize_str(t) for w in [w[0]])
    alphabet = sorted({ch for w in words for ch in w})
    target = vocab_size or (len(base_vocab) + max(64, len(alphabet) * 4))
    learner = Tokenizer(models.BPE(unk_token="[UNK]"))
    learner.pre_tokenizer = pre_tokenizers.Whitespace()
    learned_size = max(len(alphabet) + 1, target - len(base_vocab) + len(alphabet))
    trainer = trainers.BpeTrainer(vocab_size=learned_size, min_frequency=min_frequency,
                                  initial_alphabet=alphabet, special_tokens=["[UNK]"], show_progress=False)
    learner.train_from_iterator(prepared * 2, trainer=trainer)
    learned = json.loads(learner.to_str())["model"]

    new_json = copy.deepcopy(base_json)
    vocab = new_json["model"]["vocab"]
    next_id = base_size
    added: list[str] = []
    for tok, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        if tok == "[UNK]" or tok in vocab:
            continue
        if vocab_size and len(vocab) >= vocab_size:
            break
        vocab[tok] = next_id
        added.append(tok)
        next_id += 1
    merges = _merge_list(new_json["model"])
    have = set(merges)
    for a, b in _merge_list(learned):
        if (a, b) not in have and a in vocab and b in vocab and (a + b) in vocab:
            merges.append((a, b))
            have.add((a, b))
    as_str = base_json["model"].get("merges") and isinstance(base_json["model"]["merges"][0], str)
    new_json["model"]["merges"] = [f"{a} {b}" if as_str else [a, b] for a, b in merges]
    language_added = None
    if not has_lang:
        new_json["added_tokens"].append({"id": next_id, "content": lang_token, "single_word": False,
                                         "lstrip": False, "rstrip": False, "normalized": False, "special": True})
        vocab[lang_token] = next_id
        next_id += 1
        language_added = code
    if not added and language_added is None:
        raise VocabError("nothing to add: the model's vocabulary already covers this dataset's text "
                         f"([UNK] {before.unk_share:.1%}, single characters {before.single_share:.1%}); "
                         f"train with {model} as it is")
    new_size = next_id
    extended = Tokenizer.from_str(json.dumps(new_json))
    after = coverage(extended, prepared, lang_token)
    too_long = sum(1 for t in prepared if len(extended.encode((lang_token + t).replace(" ", "[SPACE]")).ids)
                   >= MAX_TEXT_TOKENS)

    # the new model folder
    tmp_out = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp_out, ignore_errors=True)
    tmp_out.mkdir(parents=True)
    for name in ("dvae.pth", "mel_stats.pth", "speakers_xtts.pth"):
        try:
            os.link(model / name, tmp_out / name)     # unchanged files: hard links save GBs
        except OSError:
            shutil.copy2(model / name, tmp_out / name)
    with atomic_path(tmp_out / "vocab.json") as tmp:
        tmp.write_text(json.dumps(new_json, ensure_ascii=False), encoding="utf-8")

    from engine.model import weights

    try:
        ckpt = weights.load(model / "model.pth")
    except weights.UnsafeCheckpoint as exc:
        raise VocabError(str(exc)) from None
    state = ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt
    for key in EMBEDDING_KEYS:
        if key not in state:
            raise VocabError(f"{model}/model.pth has no {key}: not an XTTS v2 checkpoint")
    old_rows = state[EMBEDDING_KEYS[0]].shape[0]
    pieces = {}
    for tok, i in vocab.items():
        if i >= old_rows:
            ids = [j for j in base.encode(tok.replace(" ", "[SPACE]")).ids if j < old_rows and j != base.token_to_id("[UNK]")]
            pieces[i] = ids
    for key in EMBEDDING_KEYS:
        w = state[key]
        grown = torch.empty((new_size, *w.shape[1:]), dtype=w.dtype)
        grown[:old_rows] = w
        mean_all = w.mean(dim=0)
        for i in range(old_rows, new_size):
            ids = pieces.get(i) or []
            grown[i] = w[ids].mean(dim=0) if ids else mean_all
        state[key] = grown

    cfg = json.loads((model / "config.json").read_text(encoding="utf-8"))
    cfg.setdefault("model_args", {})["gpt_number_text_tokens"] = new_size
    langs = cfg.get("languages") or []
    if code not in langs:
        cfg["languages"] = langs + [code]
    meta = cfg.setdefault("xtts_ft", {})
    if not is_builtin(code):
        meta.setdefault("extra_languages", {})[code] = cleaner
    meta.setdefault("vocab_extensions", []).append({
        "base": str(model.resolve()), "dataset": str(dataset.resolve()), "added_tokens": len(added),
        "language": code, "language_token_added": bool(language_added), "vocab_size": new_size,
    })
    if isinstance(ckpt, dict) and "config" in ckpt:
        ckpt["config"] = cfg
    with atomic_path(tmp_out / "model.pth") as tmp:
        torch.save(ckpt, tmp)
    write_json(tmp_out / "config.json", cfg)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp_out, out)
    return ExtendReport(base_size, new_size, added, language_added, before, after, too_long, str(out))
