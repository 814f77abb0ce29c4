#!/usr/bin/env bash
# Run HERE (not on the GPU machine) before bench/gpu_check.sh: downloads into .whl/ the wheels the
# bare GPU image lacks (Python 3.12, x86-64; it has torch 2.11 + CUDA, numpy, scipy, rich, psutil,
# nvidia-ml-py, tokenizers, huggingface-hub, tensorboard...). ~22 MB: fits the 64 MiB the device tool
# carries with the working tree. faster-whisper is not among them: ctranslate2 (43 MB) and a whisper
# model (tiny.en, 75 MB) do not fit, so the prep part says "skipped" there (bench/README.md).
set -e
cd "$(dirname "$0")/.."
grep -qx '/.whl/' "$(git rev-parse --git-path info/exclude)" 2>/dev/null || echo '/.whl/' >> "$(git rev-parse --git-path info/exclude)"
PLAT="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64"
grep -v '^#' bench/gpu_wheels.txt | grep . | xargs python3 -m pip download -q --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp $PLAT -d .whl
du -sh .whl
