"""Atomic writes used by the data modules: a temp file in the target folder, then os.replace."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from mdxnet.audio import SAMPLE_RATE


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; datasets are meant to be shared read-only
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, data: dict) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True, default=str)
            handle.write("\n")

    _atomic(Path(path), write)


def write_pcm16_atomic(path: str | Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """16-bit wav from integer samples (2, n): exact, unlike a float -> PCM conversion by libsndfile."""
    if samples.dtype != np.int16:
        raise TypeError(f"write_pcm16_atomic needs int16 samples, got {samples.dtype}")
    _atomic(Path(path), lambda tmp: sf.write(tmp, samples.T, sample_rate, subtype="PCM_16", format="WAV"))
