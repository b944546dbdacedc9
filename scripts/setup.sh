#!/usr/bin/env bash
# Installs everything mdxnet needs on a fresh Debian machine: system packages, then a virtual environment
# at .venv with the pinned requirements and the package itself (editable). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# slurm-wlm and munge: the one-node cluster of scripts/local-slurm.sh, so that tests/test_slurm.py runs in CI
# gcc and python3-dev: diffq (Demucs' dependency, requirements-demucs.txt) is built from source
APT_PACKAGES=(ffmpeg rubberband-cli fluidsynth fluid-soundfont-gm espeak-ng slurm-wlm munge gcc python3-dev)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
# Demucs v2 without its declared torchaudio (see requirements-demucs.txt)
.venv/bin/python -m pip install -q --no-deps -r requirements-demucs.txt
.venv/bin/python -c "import demucs.model, demucs.utils"
.venv/bin/python -m pip install -q --no-deps -e .
touch .venv/.installed
