#!/usr/bin/env bash
# The one prepared GPU command (bench/README.md, "GPU check"). On the device machine:
#   run(command="bash bench/gpu_check.sh", carry=[".whl"], timeout_s=480)
# installs the wheels bench/gpu_wheels.sh put in .whl/ (what the bare GPU image lacks), then runs
# bench/gpu_check.py with its results in $OUT/gpu (results.json, summary.txt, runs.tar.gz, log.txt).
# Extra arguments go to gpu_check.py (e.g. --parts oom,ddp for a second try of two parts).
set -o pipefail
cd "$(dirname "$0")/.." || exit 1
OUTDIR="${OUT:-bench/results}/gpu"
PY="${PYTHON:-python3}"
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
mkdir -p "$OUTDIR"
PYTHONUNBUFFERED=1 "$PY" bench/gpu_check.py --out "$OUTDIR" "$@" 2>&1 | tee "$OUTDIR/log.txt"
