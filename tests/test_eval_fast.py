"""The fast BSS Eval must reproduce museval's per-frame numbers to 1e-3 dB (museval stays the reference)."""

from __future__ import annotations

import numpy as np
import pytest

from mdxnet.audio import read_stem_file
from mdxnet.data.musdb import to_musdb_pcm16
from mdxnet.evaluation import fast_bsseval
from mdxnet.evaluation.scoring import score_estimates
from mdxnet.evaluation.track_json import METRICS

SOURCES = ["vocals", "drums", "bass", "other"]
TOLERANCE_DB = 1e-3


def _assert_close(expected, got):
    for name, a, b in zip(("SDR", "ISR", "SIR", "SAR"), expected, got, strict=True):
        assert a.shape == b.shape, name
        assert np.array_equal(np.isnan(a), np.isnan(b)), name
        finite = ~np.isnan(a)
        assert np.max(np.abs(a[finite] - b[finite]), initial=0.0) < TOLERANCE_DB, (name, a, b)


def test_fast_equals_museval_on_real_music(real_clip):
    """5 s of the shared clip, estimates = mixture with a little of each stem added: realistic, band-limited stems
    (whose Gram matrix is numerically indefinite) and low SDRs."""
    import museval

    stems = read_stem_file(real_clip)
    span = slice(int(1.5 * 44100), int(6.5 * 44100))
    refs = np.stack([to_musdb_pcm16(stems[s][:, span]).T for s in SOURCES]).astype(np.float64)
    mixture = to_musdb_pcm16(stems["mixture"][:, span]).T.astype(np.float64)
    ests = np.stack([0.5 * mixture + 0.5 * ref for ref in refs])
    _assert_close(museval.evaluate(refs, ests), fast_bsseval.evaluate(refs, ests))


def test_fast_equals_museval_with_silence_overlap_and_ragged_frames():
    """Overlapping windows, a hop that leaves a remainder, and silent stretches that make frames NaN."""
    import museval

    rng = np.random.default_rng(3)
    sr = 8000
    n = int(2.3 * sr)
    refs = rng.standard_normal((3, n, 2)).cumsum(axis=1) * 0.01  # brown noise: correlated, like music
    refs[1, : int(0.7 * sr)] = 0.0  # silent start of one reference -> NaN frames
    ests = refs + 0.3 * rng.standard_normal(refs.shape) * refs.std()
    ests[2, :, 1] *= 0.5
    win, hop = int(0.6 * sr), int(0.4 * sr)
    expected = museval.evaluate(refs, ests, win=win, hop=hop)
    got = fast_bsseval.evaluate(refs, ests, win=win, hop=hop)
    assert np.isnan(expected[0][:, 0]).all() and not np.isnan(expected[0][:, -1]).any()
    _assert_close(expected, got)
    # window longer than the signal: one whole-signal frame, as museval
    _assert_close(museval.evaluate(refs[:, -3000:], ests[:, -3000:], win=sr, hop=sr),
                  fast_bsseval.evaluate(refs[:, -3000:], ests[:, -3000:], win=sr, hop=sr))


def test_frames_match_museval_framing():
    from museval.metrics import Framing

    for length, window, hop in [(1000, 300, 200), (1000, 300, 300), (900, 300, 300), (200, 300, 300)]:
        assert fast_bsseval.frames(length, window, hop) == list(Framing(window, hop, length))


def test_backend_param_selects_fast(params):
    """params evaluate.backend: fast goes through the same scoring entry point."""
    rng = np.random.default_rng(5)
    fast = params.replace({"evaluate": {"backend": "fast"}, "sample_rate": 8000})
    refs = {s: rng.standard_normal((2, 16000)).cumsum(axis=1) * 0.01 for s in SOURCES}
    track = {**refs, "mixture": sum(refs.values())}
    ests = {s: refs[s] + 0.1 * rng.standard_normal(refs[s].shape) * refs[s].std() for s in SOURCES}
    scores = score_estimates(track, ests, fast.evaluate, fast.sources, fast.sample_rate)
    assert set(scores) == set(SOURCES) and set(scores["bass"]) == set(METRICS)
    assert scores["bass"]["SDR"].shape == (2,)
    assert np.all((scores["bass"]["SDR"] > 10) & (scores["bass"]["SDR"] < 30))


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="nsrc, nsampl, nchan"):
        fast_bsseval.evaluate(np.zeros((2, 100, 2)), np.zeros((2, 90, 2)))


def test_blockwise_lagged_correlations_equal_direct_sums():
    """Several blocks (small FFT size), a ragged last block, and lags up to +-(L-1)."""
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((3, 1500)), rng.standard_normal((2, 1500))
    L = 40
    got = fast_bsseval.lagged_correlations(x, y, filters_len=L, fft_size=256)
    for a in range(3):
        for b in range(2):
            full = np.correlate(x[a], y[b], mode="full")  # full[k + n - 1] = sum_m x[m + k] y[m]
            expected = full[1500 - 1 - (L - 1) : 1500 - 1 + L]
            assert np.allclose(got[a, b], expected, rtol=0, atol=1e-9)
