"""`xtts-ft vocab extend` command line."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("vocab", help="customise a model's BPE vocabulary (new languages, accents)")
    vs = p.add_subparsers(dest="vocab_command", metavar="ACTION", required=True)
    e = vs.add_parser(
        "extend", help="add subword tokens learned from a dataset to a model, in a new model folder",
        description="Learn BPE subwords from the dataset's transcripts, append them to the model's vocab.json "
        "(existing ids unchanged), add the language token if new, and write a new model folder whose GPT text "
        "embedding and head are resized to match. The base model folder is not modified.",
    )
    e.add_argument("--dataset", required=True, type=Path, help="dataset folder (metadata_train.csv / metadata_eval.csv)")
    e.add_argument("--model", required=True, type=Path, help="base XTTS model folder (the six files)")
    e.add_argument("--out", required=True, type=Path, help="new model folder to write")
    e.add_argument("--vocab-size", type=int, default=0,
                   help="total vocabulary size to grow to (default: base + enough for the dataset's subwords)")
    e.add_argument("--min-frequency", type=int, default=2, help="a subword must occur this often (default 2)")
    e.add_argument("--language", default=None, help="language code of the text (default: the dataset's)")
    e.add_argument("--cleaner", choices=["basic", "none"], default="basic",
                   help="text cleaning for a language XTTS does not know (default basic: lower-case, NFC, spaces)")
    e.add_argument("--force", action="store_true", help="replace --out if it exists")
    e.set_defaults(func=run_extend)


def run_extend(args) -> int:
    import json

    from rich.console import Console

    from engine.cli import UserError
    from engine.model.vocab import VocabError, extend
    from engine.prep.report import Reporter

    language = args.language
    if language is None:
        try:
            language = json.loads((args.dataset / "dataset.json").read_text())["language"]
        except (OSError, ValueError, KeyError):
            language = "en"
    r = Reporter(console=Console(highlight=False))
    r.info(f"Learning subwords from {args.dataset} for language '{language}'", tag="MODEL")
    try:
        rep = extend(args.dataset, args.model, args.out, args.vocab_size, args.min_frequency, language,
                     args.cleaner, args.force)
    except VocabError as exc:
        raise UserError(str(exc)) from exc
    for line in rep.lines():
        r.info(line, tag="MODEL")
    if rep.too_long:
        r.warn(f"{rep.too_long} transcript(s) encode to {402} tokens or more: XTTS cannot train on them", tag="DATA",
               code="long_transcripts")
    r.info(f"Extended model written to {rep.out}", tag="MODEL")
    return 0
