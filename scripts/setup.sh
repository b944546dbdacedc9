#!/usr/bin/env bash
# Installs everything mdxnet needs on a fresh Debian machine: system packages, then a virtual environment
# at .venv with the pinned requirements and the package itself (editable). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# slurm-wlm and munge: the one-node cluster of scripts/local-slurm.sh, so that tests/test_slurm.py runs in CI
APT_PACKAGES=(ffmpeg rubberband-cli fluidsynth fluid-soundfont-gm espeak-ng slurm-wlm munge)
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
.venv/bin/python -m pip install -q --no-deps -e .
touch .venv/.installed
