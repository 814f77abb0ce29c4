#!/usr/bin/env bash
# Sets up everything xtts-ft needs, once: system packages (apt, when root), a virtual
# environment in .venv with the pinned Python packages, and the project itself.
# Usage: scripts/bootstrap.sh [main|test]     (sourced by ./xtts-ft and ./run-tests)
set -euo pipefail
profile="${1:-main}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${XTTS_FT_VENV:-$root/.venv}"
stamp="$venv/.xtts-ft-$profile"

die() { echo "xtts-ft setup: $*" >&2; exit 1; }

# --- system packages -------------------------------------------------------------
apt_pkgs=()
need_cmd() { command -v "$1" >/dev/null 2>&1 || apt_pkgs+=("$2"); }
need_cmd ffmpeg ffmpeg                   # decoding every audio format; torchcodec needs its libraries
opt_pkgs=()                              # installed when we can; without them a feature says "not available"
want_cmd() { command -v "$1" >/dev/null 2>&1 || opt_pkgs+=("$2"); }
if [ "$profile" = test ]; then
  need_cmd espeak-ng espeak-ng           # speech for the tests (and the phoneme coverage below)
  need_cmd sox sox
  need_cmd tmux tmux                     # the end-to-end terminal test
  need_cmd chromium chromium             # the served studio in a real (headless) browser
  need_cmd chromedriver chromium-driver
else
  want_cmd espeak-ng espeak-ng           # phoneme coverage in prep's content report (phonemizer's backend)
fi
if [ ${#opt_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt_pkgs+=("${opt_pkgs[@]}")
  else
    echo "xtts-ft setup: optional system packages missing: ${opt_pkgs[*]} (prep's phoneme coverage will say" \
      "'not available'; install them with: sudo apt-get install ${opt_pkgs[*]})" >&2
  fi
fi
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "xtts-ft setup: installing system packages: ${apt_pkgs[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >&2
  else
    die "missing system packages: ${apt_pkgs[*]}. Install them first, e.g.: sudo apt-get install ${apt_pkgs[*]}"
  fi
fi

# --- python environment ----------------------------------------------------------
lock="$root/requirements.lock"
[ "$profile" = test ] && lock="$root/requirements-test.lock"
want="$(cat "$lock" "$root/pyproject.toml" | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/xtts-ft" ]; then
  exit 0
fi
py=""
# 3.11+: the pinned numpy/scipy/networkx need it, and --config reads TOML with tomllib
for c in python3.11 python3.12 python3; do
  if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(not ((3,11) <= sys.version_info[:2] < (3,13)))'; then
    py="$c"; break
  fi
done
[ -n "$py" ] || die "Python 3.11 or 3.12 is needed; none was found on PATH (Debian/Ubuntu: apt-get install python3.11 python3.11-venv)"
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv" 2>/dev/null || {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2 && "$py" -m venv "$venv"
    else
      die "could not create a virtual environment: install python3-venv"
    fi
  }
fi
echo "xtts-ft setup: installing Python packages into $venv (first run only; ~6 GB with CUDA libraries)" >&2
"$venv/bin/python" -m pip install -q --disable-pip-version-check "uv==0.13.8" >&2
# --compile-bytecode: import the stack from .pyc even where PYTHONDONTWRITEBYTECODE is set (each engine
# process imports torch + coqui; from source that costs ~7 s of CPU per process)
"$venv/bin/uv" pip install -q --compile-bytecode --python "$venv/bin/python" -r "$lock" >&2
"$venv/bin/uv" pip install -q --python "$venv/bin/python" --no-deps -e "$root" >&2
echo "$want" > "$stamp"
