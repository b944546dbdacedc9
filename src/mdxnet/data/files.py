"""Exact 16-bit wav writes for the data modules (atomic, through mdxnet.atomic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from mdxnet.atomic import write_atomic
from mdxnet.audio import SAMPLE_RATE


def write_pcm16_atomic(path: str | Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """16-bit wav from integer samples (2, n): exact, unlike a float -> PCM conversion by libsndfile."""
    if samples.dtype != np.int16:
        raise TypeError(f"write_pcm16_atomic needs int16 samples, got {samples.dtype}")
    write_atomic(path, lambda tmp: sf.write(tmp, samples.T, sample_rate, subtype="PCM_16", format="WAV"))
