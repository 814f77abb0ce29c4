"""The Python versions pyproject accepts are the ones the bootstrap looks for (issue 13: 3.10 was
accepted but `--config` needs tomllib and the pinned numpy/scipy need 3.11)."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_and_bootstrap_agree():
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    lo = re.search(r">=\s*3\.(\d+)", spec).group(1)
    hi = re.search(r"<\s*3\.(\d+)", spec).group(1)
    boot = (ROOT / "scripts" / "bootstrap.sh").read_text()
    check = re.search(r"\(3,(\d+)\) <= sys.version_info\[:2\] < \(3,(\d+)\)", boot)
    assert check, "bootstrap.sh no longer checks the Python version"
    assert (check.group(1), check.group(2)) == (lo, hi)
    tried = re.search(r"for c in ([^;]+); do", boot).group(1).split()
    for c in tried:
        m = re.match(r"python3\.(\d+)$", c)
        if m:
            assert int(lo) <= int(m.group(1)) < int(hi), f"bootstrap tries {c}, which pyproject refuses"


def test_lock_pins_need_no_older_python():
    # numpy 2.3+ dropped 3.10: if the lock pins such a numpy, 3.10 cannot be accepted
    lock = (ROOT / "requirements.lock").read_text()
    numpy = tuple(int(x) for x in re.search(r"^numpy==(\d+)\.(\d+)", lock, re.M).groups())
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    lo = int(re.search(r">=\s*3\.(\d+)", spec).group(1))
    if numpy >= (2, 3):
        assert lo >= 11
