"""The code's own rules, run as tests: ruff (pyproject's [tool.ruff.lint]) and the import contract
(pyproject's [tool.importlinter]: the engine never imports the studio or Textual)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_ruff_is_clean():
    proc = _run(str(BIN / "ruff"), "check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_the_engine_never_imports_the_studio():
    proc = _run(str(BIN / "lint-imports"), "--no-cache")
    assert proc.returncode == 0 and "1 kept, 0 broken" in proc.stdout, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_the_engine_runs_with_textual_missing():
    """The CLI and the job machinery import and answer with textual made unimportable."""
    code = ("import sys, importlib.abc\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] in ('textual', 'tui'):\n"
            "            raise ImportError('blocked: ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import engine.cli, engine.jobs, engine.jobs.schema, engine.train.process, engine.train.runner\n"
            "import engine.prep.builder, engine.model.export, engine.model.synth\n"
            "sys.exit(engine.cli.main(['runs', sys.argv[1]]))\n")
    proc = _run(sys.executable, "-c", code, str(ROOT / "no-such-runs"))
    assert proc.returncode == 0 and "blocked" not in proc.stderr, proc.stdout[-2000:] + proc.stderr[-4000:]
