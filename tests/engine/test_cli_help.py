"""Every command's --help renders as readable text (issue 13): no argparse internals, no
'(default: None)', literal '%' kept, each default named once."""

import argparse
import re

import pytest

from engine.cli import build_parser, main


def _all_parsers(parser: argparse.ArgumentParser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, path + (name,))


PARSERS = list(_all_parsers(build_parser()))


def test_every_command_is_covered():
    names = {" ".join(p) for p, _ in PARSERS}
    for cmd in ("prep", "train", "export", "synth", "check-model", "tiny-model", "vocab extend", "demo"):
        assert cmd in names, f"{cmd} has no parser"


@pytest.mark.parametrize("path,parser", PARSERS, ids=[" ".join(p) or "xtts-ft" for p, _ in PARSERS])
def test_help_renders(path, parser):
    text = parser.format_help()
    assert text.startswith("usage: xtts-ft"), text[:80]
    assert "option_strings" not in text and "{'" not in text, "argparse dumped an action dict"
    assert "(default: None)" not in text
    flat = re.sub(r"\s+", " ", text)
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        helptext = re.sub(r"\s+", " ", action.help or "")
        assert helptext, f"{' '.join(path)} {action.option_strings[0]} has no help"
        # the help of each option appears once, with at most one default
        idx = flat.find(helptext.replace("%%", "%")[:40])
        assert idx >= 0, f"help of {action.option_strings[0]} missing from the rendered text"
    assert not re.search(r"\(default[^)]*\)\s*\(default", flat), "an option names its default twice"


def test_train_help_keeps_percent_and_defaults(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    out = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert "~30% slower steps" in out
    assert "--batch-size N" in out and "(default: 4)" in out
    assert "--precision {auto,fp32,fp16,bf16}" in out
    assert "(default: on)" in out  # a boolean default as a user says it


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("prep", "train", "export"):
        assert re.search(rf"^\s+{cmd}\s", out, re.M), cmd
