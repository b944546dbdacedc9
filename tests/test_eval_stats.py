"""Bootstrap intervals of the median over songs and the paired Wilcoxon test (mdxnet.evaluation.stats)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mdxnet.evaluation import stats
from mdxnet.evaluation.stats import bootstrap_median_ci, median_ci, paired_wilcoxon


def test_interval_covers_the_true_median_about_as_often_as_its_level():
    """Per-song values drawn from N(5, 2), whose median is 5: the 90 % interval from 40 songs covers 5 in roughly
    90 % of 300 independent draws (the percentile bootstrap of a median runs a little under its level)."""
    rng = np.random.default_rng(7)
    covered = [bootstrap_median_ci(rng.normal(5.0, 2.0, 40), 1000, 0.90, seed=i).contains(5.0) for i in range(300)]
    assert 0.82 <= np.mean(covered) <= 0.97


def test_interval_narrows_with_more_songs_and_widens_with_the_level():
    rng = np.random.default_rng(3)
    widths = {}
    for songs in (10, 50, 500):
        draws = [bootstrap_median_ci(rng.normal(0.0, 1.0, songs), 2000, 0.95, seed=0) for _ in range(20)]
        widths[songs] = np.mean([d.high - d.low for d in draws])
    assert widths[10] > 1.5 * widths[50] > 1.5 * 1.5 * widths[500]
    values = rng.normal(0.0, 1.0, 50)
    narrow, wide = (bootstrap_median_ci(values, 2000, level, seed=0) for level in (0.5, 0.99))
    assert wide.low < narrow.low < narrow.high < wide.high


def test_interval_is_reproducible_with_its_seed_and_holds_the_median():
    values = np.random.default_rng(11).normal(6.0, 1.5, 50)
    first = bootstrap_median_ci(values, 10000, 0.95, seed=0)
    assert first == bootstrap_median_ci(values, 10000, 0.95, seed=0)  # exactly, not approximately
    assert first != bootstrap_median_ci(values, 10000, 0.95, seed=1)
    assert first.median == float(np.median(values))
    assert first.low < first.median < first.high
    assert (first.songs, first.resamples, first.level, first.seed) == (50, 10000, 0.95, 0)


def test_interval_does_not_depend_on_the_chunking(monkeypatch):
    values = np.random.default_rng(5).normal(0.0, 1.0, 50)
    whole = bootstrap_median_ci(values, 3000, 0.95, seed=4)
    monkeypatch.setattr(stats, "_CHUNK_VALUES", 777)  # many small chunks of resamples
    assert bootstrap_median_ci(values, 3000, 0.95, seed=4) == whole


def test_ten_thousand_resamples_of_fifty_songs_take_well_under_a_second():
    values = np.random.default_rng(0).normal(0.0, 1.0, 50)
    started = time.perf_counter()
    bootstrap_median_ci(values, 10000, 0.95, seed=0)
    assert time.perf_counter() - started < 0.5


def test_interval_ignores_nan_songs_and_gives_none_from_one_song():
    values = [1.0, float("nan"), 3.0, 2.0]
    interval = bootstrap_median_ci(values, 500, 0.95, seed=0)
    assert interval.songs == 3 and interval.median == 2.0 and 1.0 <= interval.low <= interval.high <= 3.0
    single = bootstrap_median_ci([4.2, float("nan")], 500, 0.95, seed=0)
    assert (single.median, single.low, single.high, single.songs) == (4.2, None, None, 1)
    assert single.contains(4.2) is None  # no interval: neither inside nor outside
    empty = bootstrap_median_ci([], 500, 0.95, seed=0)
    assert (empty.median, empty.low, empty.songs) == (None, None, 0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_median_ci([1.0, 2.0], 500, 1.0, seed=0)


def test_median_ci_reads_the_params(params):
    values = np.random.default_rng(2).normal(0.0, 1.0, 20)
    settings = params.evaluate.bootstrap
    interval = median_ci(values, settings)
    assert interval == bootstrap_median_ci(values, settings.resamples, settings.confidence, settings.seed)
    assert interval.resamples == settings.resamples and interval.level == settings.confidence


def test_paired_test_finds_a_constant_shift_on_twenty_songs():
    songs = {f"Song {i}": v for i, v in enumerate(np.random.default_rng(1).normal(5.0, 2.0, 20))}
    better = {song: value + 1.0 for song, value in songs.items()}
    result = paired_wilcoxon(better, songs)
    assert result.p_value < 0.001
    assert result.songs == 20 and result.median_difference == pytest.approx(1.0)
    assert paired_wilcoxon(songs, better).median_difference == pytest.approx(-1.0)  # A - B, signed


def test_paired_test_on_pure_noise_gives_large_p_in_most_draws():
    rng = np.random.default_rng(9)
    p_values = []
    for _ in range(40):
        a = dict(enumerate(rng.normal(5.0, 2.0, 20)))
        b = {song: value + rng.normal(0.0, 0.5) for song, value in a.items()}
        p_values.append(paired_wilcoxon(a, b).p_value)
    assert np.median(p_values) > 0.2
    assert np.mean(np.array(p_values) < 0.05) <= 0.15  # about 5 % false alarms expected


def test_paired_test_uses_only_songs_both_runs_scored():
    a = {"x": 1.0, "y": 2.0, "z": 3.0, "only a": 9.0, "nan": float("nan")}
    b = {"x": 0.5, "y": 1.0, "z": 1.0, "only b": -9.0, "nan": 1.0}
    result = paired_wilcoxon(a, b)
    assert result.songs == 3 and result.differing == 3 and result.median_difference == pytest.approx(1.0)
    assert result.smallest_p == pytest.approx(0.25)  # 3 songs can never give p < 0.25
    assert result.p_value >= result.smallest_p
    same = paired_wilcoxon({"x": 1.0, "y": 2.0}, {"x": 1.0, "y": 2.0})
    assert (same.p_value, same.differing, same.median_difference) == (1.0, 0, 0.0)
    nothing = paired_wilcoxon({"x": 1.0}, {"y": 1.0})
    assert (nothing.songs, nothing.p_value) == (0, None)
