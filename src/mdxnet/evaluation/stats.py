"""How much of a difference in median SDR is noise from the choice of songs.

Two tools, both over songs (the per-song value is the SiSEC2018 median over 1 s frames, `aggregate.track_medians`):

- `bootstrap_median_ci`: a percentile-bootstrap confidence interval of the median over songs. The songs are
  resampled with replacement and the median recomputed, `resamples` times; the interval runs between the
  (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of those medians. It says how far the median could move
  with another draw of songs of the same kind, nothing about training randomness or the scoring itself.
- `paired_wilcoxon`: the two-sided Wilcoxon signed-rank test (scipy.stats.wilcoxon) of two runs over the
  per-song values of the songs both scored. Pairing removes what the songs share (an easy song is easy for both
  runs), so it detects much smaller differences than two overlapping intervals would.

Both are deterministic: the bootstrap draws from numpy's PCG64 generator seeded with `seed`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

# Bootstrap medians are computed this many values (resamples x songs) at a time: bounded memory for any song
# count (the result does not depend on it: the index draws form one stream).
_CHUNK_VALUES = 4_000_000


@dataclass(frozen=True)
class MedianInterval:
    """The median over songs and its bootstrap interval (low/high None when fewer than 2 songs give none)."""

    median: float | None
    low: float | None
    high: float | None
    level: float
    resamples: int
    seed: int
    songs: int

    def contains(self, value: float | None) -> bool | None:
        """Whether `value` lies inside the interval (ends included); None when there is no interval or value."""
        if value is None or self.low is None or self.high is None or np.isnan(value):
            return None
        return bool(self.low <= value <= self.high)

    def to_dict(self) -> dict:
        return asdict(self)


def _finite(values: Iterable[float]) -> np.ndarray:
    """The values as float64 with NaN dropped (a song whose every frame is NaN has no score, as in summarize)."""
    array = np.asarray(list(values), dtype=np.float64)
    return array[~np.isnan(array)]


def bootstrap_medians(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """`resamples` medians of the values resampled with replacement (same size), vectorised in chunks."""
    rng = np.random.default_rng(seed)
    n = values.size
    rows = max(1, _CHUNK_VALUES // n)
    medians = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, rows):
        count = min(rows, resamples - start)
        picks = rng.integers(0, n, size=(count, n))
        medians[start : start + count] = np.median(values[picks], axis=1)
    return medians


def bootstrap_median_ci(values: Iterable[float], resamples: int, confidence: float, seed: int) -> MedianInterval:
    """Percentile-bootstrap `confidence` interval of the median of `values` (one per song; NaN ignored).

    No interval from fewer than 2 songs: every resample of one song is that song, and an interval of zero width
    would claim certainty where there is none.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, not {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, not {resamples}")
    finite = _finite(values)
    median = float(np.median(finite)) if finite.size else None
    low = high = None
    if finite.size >= 2:
        tail = (1.0 - confidence) / 2.0
        low, high = (float(q) for q in np.quantile(bootstrap_medians(finite, resamples, seed), [tail, 1.0 - tail]))
    return MedianInterval(median, low, high, float(confidence), int(resamples), int(seed), int(finite.size))


def median_ci(values: Iterable[float], bootstrap) -> MedianInterval:
    """`bootstrap_median_ci` with the settings of params `evaluate.bootstrap`."""
    return bootstrap_median_ci(values, bootstrap.resamples, bootstrap.confidence, bootstrap.seed)


@dataclass(frozen=True)
class PairedTest:
    """Wilcoxon signed-rank test of run A against run B over the songs both scored (difference = A - B)."""

    songs: int  # songs with a score in both runs
    differing: int  # of which A and B differ (the test ranks only these)
    median_difference: float | None  # median over songs of A - B, dB
    statistic: float | None
    p_value: float | None  # two-sided; None without a song to compare, 1.0 when no song differs
    smallest_p: float | None  # the smallest two-sided p the exact test can give with `differing` songs: 2 / 2**n

    def to_dict(self) -> dict:
        return asdict(self)


def paired_wilcoxon(a: Mapping[str, float], b: Mapping[str, float]) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test of {song: value} A against B over the songs both scored (NaN skipped).

    Songs where A equals B carry no sign and are left out of the ranks (scipy's zero_method "wilcox"); when no
    song differs the p-value is 1.0 (no evidence of a difference). scipy picks the exact null distribution for
    up to 50 songs without ties, else the normal approximation.
    """
    from scipy.stats import wilcoxon

    shared = [s for s in a if s in b and not (np.isnan(a[s]) or np.isnan(b[s]))]
    differences = np.array([a[s] - b[s] for s in shared], dtype=np.float64)
    if differences.size == 0:
        return PairedTest(0, 0, None, None, None, None)
    differing = int(np.count_nonzero(differences))
    median_difference = float(np.median(differences))
    if differing == 0:
        return PairedTest(len(shared), 0, median_difference, 0.0, 1.0, 1.0)
    result = wilcoxon(differences)
    return PairedTest(len(shared), differing, median_difference, float(result.statistic), float(result.pvalue),
                      min(1.0, 2.0 ** (1 - differing)))
