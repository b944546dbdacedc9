"""The lower/upper-bound estimators and `mdxnet evaluate track` on a small real MUSDB-layout track."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mdxnet.audio import read_stem_file, write_wav
from mdxnet.cli import main
from mdxnet.data.musdb import load_track
from mdxnet.errors import UserError
from mdxnet.evaluation.aggregate import track_medians
from mdxnet.evaluation.baselines import irm_estimates, mixture_estimates

SOURCES = ["vocals", "drums", "bass", "other"]
SR = 44100


@pytest.fixture(scope="module")
def track_dir(real_clip, tmp_path_factory):
    """4 s of the shared clip as a MUSDB18-HQ track folder (16-bit PCM like the real dataset)."""
    folder = tmp_path_factory.mktemp("musdb") / "test" / "Rock"
    for name, audio in read_stem_file(real_clip).items():
        write_wav(folder / f"{name}.wav", audio[:, 3 * SR : 7 * SR], SR, subtype="PCM_16")
    return folder


def test_mixture_estimates_are_the_mixture(track_dir):
    track = load_track(track_dir)
    estimates = mixture_estimates(track, SOURCES)
    assert set(estimates) == set(SOURCES)
    for audio in estimates.values():
        assert np.array_equal(audio, track["mixture"])


def test_irm_masks_sum_to_the_mixture(track_dir):
    """Ratio masks sum to 1 per bin, so the IRM estimates sum back to the mixture (up to STFT round-off)."""
    track = load_track(track_dir)
    estimates = irm_estimates(track, SOURCES, n_fft=2048, hop=1024, alpha=2)
    total = sum(estimates.values())
    assert total.shape == track["mixture"].shape
    assert np.max(np.abs(total - track["mixture"])) < 1e-4
    # and each estimate is far closer to its stem than the mixture is
    for source in SOURCES:
        assert np.linalg.norm(estimates[source] - track[source]) < 0.5 * np.linalg.norm(track["mixture"] - track[source])


def test_evaluate_track_cli_bounds(track_dir, tmp_path, fast_eval_params_file):
    """`mdxnet evaluate track` for both baselines: the IRM oracle beats the mixture on every source."""
    medians = {}
    for estimator in ("mixture", "irm"):
        out = tmp_path / estimator / "test" / "Rock.json"
        argv = ["--params", str(fast_eval_params_file), "evaluate", "track", str(track_dir),
                "--estimator", estimator, "-o", str(out)]
        assert main(argv) == 0
        document = json.loads(out.read_text())
        assert document["mdxnet"]["estimator"] == estimator and document["mdxnet"]["backend"] == "fast"
        assert len(document["targets"][0]["frames"]) == 4
        medians[estimator] = track_medians(document)
    for source in SOURCES:
        assert medians["irm"][source]["SDR"] > medians["mixture"][source]["SDR"] + 3, source


def test_model_estimator_needs_models(track_dir, params):
    from mdxnet.evaluation.baselines import estimates_for

    with pytest.raises(UserError, match="--models"):
        estimates_for("model", load_track(track_dir), params, models_dir=None)


def test_bad_track_path_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_track(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    write_wav(tmp_path / "half" / "mixture.wav", np.zeros((2, 100), np.float32), SR)
    with pytest.raises(UserError, match=r"(drums|vocals|bass|other)\.wav"):
        load_track(tmp_path / "half")


def test_silent_reference_is_skipped_and_silent_estimate_refused():
    from mdxnet.evaluation.scoring import bss_eval_v4

    rng = np.random.default_rng(0)
    sr = 8000
    refs = {s: rng.standard_normal((2, sr)).cumsum(axis=1) * 0.01 for s in SOURCES}
    refs["vocals"][:] = 0.0  # a song without vocals
    ests = {s: refs[s] + 0.01 * rng.standard_normal(refs[s].shape) for s in SOURCES}
    scores = bss_eval_v4(refs, ests, SOURCES, sr, 0.5, 0.5, backend="fast")
    assert list(scores) == ["drums", "bass", "other"]
    assert scores["drums"]["SDR"].shape == (2,)
    ests["bass"] = np.zeros_like(ests["bass"])
    with pytest.raises(UserError, match="estimated bass is all zeros"):
        bss_eval_v4(refs, ests, SOURCES, sr, 0.5, 0.5, backend="fast")
