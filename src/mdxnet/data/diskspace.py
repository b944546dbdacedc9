"""Room for the augmentation cache: its size from the track lengths and the grid (the one estimate, used by
`mdxnet plan` and by `mdxnet augment`'s refusal), and the free space of the file system it goes to.

The cache holds, per track and variant, 4 stems of 16-bit stereo FLAC, each 1/rate of the track long (rate r
plays r times as fast). FLAC's size depends on the music, so the estimate takes an upper bound of its ratio to
16-bit WAV, and the refusal adds a margin on top: a job that starts is expected to finish.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from mdxnet.audio import SAMPLE_RATE
from mdxnet.errors import UserError

CACHE_STEMS = 4  # drums, bass, other, vocals: no mixture is stored (mdxnet.data.augment)
CHANNELS = 2
SAMPLE_BYTES = 2  # 16-bit PCM
# FLAC size / 16-bit WAV size, an upper bound: bench/README.md "Augmentation cache format (FLAC against WAV)"
# measured 0.380 over 5 tracks, 0.341-0.465 per synthetic track and 0.281 on the real clip, and expects
# full-band MUSDB18-HQ higher (not measured); "Cost model of the paper run" puts the cache at 0.38-0.54 of WAV.
FLAC_RATIO = 0.5
# What the refusal adds to the estimate (so it asks for 0.55 of WAV, above the cost model's ~190 GB upper end
# for the authors' grid): music that compresses worse than FLAC_RATIO, file-system blocks, manifests.
MARGIN = 0.10
GB = 1e9


def cache_bytes(seconds: float, rates: Iterable[float]) -> int:
    """Estimated bytes of the cache of `seconds` of tracks with variants at tempo `rates` (one per variant)."""
    lengths = sum(1.0 / rate for rate in rates)  # each variant lasts 1/rate of the track
    return round(seconds * SAMPLE_RATE * lengths * CACHE_STEMS * CHANNELS * SAMPLE_BYTES * FLAC_RATIO)


def gigabytes(size: int) -> str:
    """'195 GB', '0.00131 GB': three significant digits, so a small cache does not read as 0.00 GB."""
    return f"{size / GB:.3g} GB"


def with_margin(needed: int) -> int:
    return round(needed * (1 + MARGIN))


def existing_parent(path: str | Path) -> Path:
    """`path` or its nearest existing parent: where the cache folder will be created."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: str | Path) -> int:
    """Free bytes (for an unprivileged writer) on the file system that holds `path` once it is created."""
    return shutil.disk_usage(existing_parent(path)).free


def require_room(folder: str | Path, needed: int, what: str) -> None:
    """Refuse (UserError) when the file system of `folder` has less free space than `needed` bytes plus MARGIN;
    `what` says what is still to be written (e.g. '3 tracks x 24 variants')."""
    free = free_bytes(folder)
    asked = with_margin(needed)
    if free >= asked:
        return
    raise UserError(
        f"not enough free space for the augmentation cache in {folder}: {what} need ~{gigabytes(asked)} "
        f"({gigabytes(needed)} at FLAC {FLAC_RATIO:g} of 16-bit WAV, + {MARGIN:.0%} margin), but only "
        f"{gigabytes(free)} are free on the file system of {existing_parent(folder)}; nothing was written. Put the "
        f"cache on a larger disk (augment.root in params.yaml), or make the grid smaller (augment.grid: axes, or "
        f"fewer augment.pitch_semitones / augment.tempo_rates; both empty: no cache)"
    )
