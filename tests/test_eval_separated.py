"""One separation per evaluated track (mdxnet.evaluation.separated), the museval cross-check of the fast backend,
and the blend row (mdxnet.evaluation.blend): stored estimates reproduce the in-memory pipeline exactly, bad
estimates are refused by name before scoring, the blend weights exactly, a cross-check beyond its tolerance stops
aggregation and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mdxnet.checkpoint import init_models
from mdxnet.cli import main
from mdxnet.errors import UserError

SOURCES = ["vocals", "drums", "bass", "other"]
SR = 44100


@pytest.fixture
def track(tmp_path) -> Path:
    """A 1.5 s MUSDB18-HQ track folder of noise-like stems and their exact sum."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "musdb" / "test" / "Song"
    folder.mkdir(parents=True)
    stems = {s: (0.1 * rng.standard_normal((2, 66150))).astype(np.float32) for s in SOURCES}
    for name, audio in {"mixture": sum(stems.values()), **stems}.items():
        sf.write(folder / f"{name}.wav", audio.T, SR, subtype="FLOAT")
    return folder


@pytest.fixture
def torch_params(params):
    return params.replace({"separate": {"backend": "torch", "device": "cpu"}})


def test_one_separation_feeds_both_runs_exactly(torch_params, track, tmp_path):
    """The stored separator estimates and the Mixer over them equal `mdxnet separate` without and with the
    Mixer, sample for sample; the separators ran once (their chunks counted), the Mixer step runs none."""
    from mdxnet.data.musdb import load_track
    from mdxnet.evaluation.separated import mix_folder, separate_to_folder
    from mdxnet.inference.separation import SeparationPipeline

    params = torch_params
    init_models(tmp_path / "models", params, seed=1)
    done = separate_to_folder(track, params, tmp_path / "models", tmp_path / "est/no-mixer")
    mixture = load_track(track)["mixture"]
    alone = SeparationPipeline.from_dir(tmp_path / "models", params, device="cpu", use_mixer=False)
    assert done["chunks"] == alone.chunk_count(mixture.shape[-1]) > 0
    mix_folder(track, tmp_path / "est/no-mixer", params, tmp_path / "models/mixer.pt", "linear",
               tmp_path / "est/mixer")
    with_mixer = SeparationPipeline.from_dir(tmp_path / "models", params, device="cpu").separate(mixture, False)
    without = alone.separate(mixture, False)
    for source in SOURCES:
        stored, _ = sf.read(tmp_path / "est/no-mixer" / f"{source}.wav", dtype="float32")
        mixed, _ = sf.read(tmp_path / "est/mixer" / f"{source}.wav", dtype="float32")
        assert np.array_equal(stored.T, without[source]), source
        assert np.array_equal(mixed.T, with_mixer[source]), source


def test_a_conv_mixer_is_checked_against_its_kind(torch_params, track, tmp_path):
    from mdxnet.checkpoint import save_checkpoint
    from mdxnet.evaluation.separated import mix_folder, write_estimates
    from mdxnet.models import Mixer, mixer_kwargs, with_mixer_kind

    conv = with_mixer_kind(torch_params, "conv")
    kwargs = mixer_kwargs(conv.mixer, conv.sources)
    save_checkpoint(tmp_path / "mixer-conv.pt", Mixer(**kwargs), kind="mixer", source=None, model_kwargs=kwargs,
                    params=conv, step=0)
    write_estimates(tmp_path / "sep", {s: np.zeros((2, 66150), np.float32) + 0.01 for s in SOURCES}, SR)
    mix_folder(track, tmp_path / "sep", torch_params, tmp_path / "mixer-conv.pt", "conv", tmp_path / "out")
    assert all((tmp_path / "out" / f"{s}.wav").is_file() for s in SOURCES)
    with pytest.raises(UserError, match="another model config"):
        mix_folder(track, tmp_path / "sep", torch_params, tmp_path / "mixer-conv.pt", "linear", tmp_path / "x")


@pytest.mark.parametrize("fault", ["missing", "rate", "length", "nan"])
def test_bad_estimates_are_named_before_scoring(fault, fast_eval_params_file, track, tmp_path):
    folder = tmp_path / "estimates"
    folder.mkdir()
    for source in SOURCES:
        audio = np.full((66150, 2), 0.01, np.float32)
        rate = SR
        if source == "bass" and fault == "rate":
            rate = 22050
        if source == "bass" and fault == "length":
            audio = audio[:-5]
        if source == "bass" and fault == "nan":
            audio[100] = np.nan
        if not (source == "bass" and fault == "missing"):
            sf.write(folder / f"{source}.wav", audio, rate, subtype="FLOAT")
    out = tmp_path / "scores.json"
    argv = ["--params", str(fast_eval_params_file), "evaluate", "track", str(track), "--estimates", str(folder),
            "-o", str(out)]
    assert main(argv) == 2
    assert not out.exists()
    from mdxnet.evaluation.separated import read_checked_estimates

    expected = {"missing": "bass.wav is missing", "rate": "22050 Hz", "length": "66145 samples",
                "nan": "bass.wav holds 2 NaN/inf"}[fault]
    with pytest.raises(UserError, match=expected):
        read_checked_estimates(folder, SOURCES, SR, 66150, "the estimates")


def test_blend_weights_each_source_exactly():
    from mdxnet.evaluation.blend import blend

    rng = np.random.default_rng(3)
    ours = {s: rng.standard_normal((2, 50)).astype(np.float32) for s in SOURCES}
    second = {s: rng.standard_normal((2, 50)).astype(np.float32) for s in SOURCES}
    weights = {"vocals": 0.9, "drums": 0.5, "bass": 0.5, "other": 0.7}
    out = blend(ours, second, weights, SOURCES)
    for s in SOURCES:
        expected = ours[s].astype(np.float64) * weights[s] + second[s].astype(np.float64) * (1 - weights[s])
        assert np.array_equal(out[s], expected)
    assert np.array_equal(blend(ours, second, dict.fromkeys(SOURCES, 1.0), SOURCES)["bass"], ours["bass"])
    assert np.array_equal(blend(ours, second, dict.fromkeys(SOURCES, 0.0), SOURCES)["bass"], second["bass"])


def test_blend_cli_scores_the_blend_and_names_bad_second_systems(fast_eval_params_file, track, tmp_path):
    from mdxnet.evaluation.blend import missing_tracks
    from mdxnet.evaluation.separated import write_estimates

    rng = np.random.default_rng(5)
    ours, second = tmp_path / "ours", tmp_path / "second" / "test" / "Song"
    write_estimates(ours, {s: (0.1 * rng.standard_normal((2, 66150))).astype(np.float32) for s in SOURCES}, SR)
    write_estimates(second, {s: (0.1 * rng.standard_normal((2, 66150))).astype(np.float32) for s in SOURCES}, SR)
    out = tmp_path / "blend.json"
    argv = ["--params", str(fast_eval_params_file), "evaluate", "blend", str(track), "--ours", str(ours),
            "--second", str(second), "--name", "other-system", "-o", str(out)]
    assert main(argv) == 0
    blend = json.loads(out.read_text())["mdxnet"]["blend"]
    assert blend["weights"] == {"vocals": 0.9, "drums": 0.5, "bass": 0.5, "other": 0.7}
    assert "other-system" in blend["label"] and "vocals 0.9" in blend["label"]

    assert missing_tracks(tmp_path / "second", ["Song"], SOURCES) == []
    assert "no estimates for test track 'Other'" in missing_tracks(tmp_path / "second", ["Other"], SOURCES)[0]
    (second / "drums.wav").unlink()
    assert "lacks drums.wav" in missing_tracks(tmp_path / "second", ["Song"], SOURCES)[0]
    assert main(argv) == 2  # the blend job refuses it too, before scoring
    assert "does not exist" in missing_tracks(tmp_path / "nowhere", ["Song"], SOURCES)[0]


def test_cross_check_records_the_largest_difference_and_stops_beyond_tolerance(fast_eval_params_file, track,
                                                                               tmp_path, capsys):
    from mdxnet.evaluation.aggregate import aggregate
    from mdxnet.evaluation.scoring import largest_difference
    from mdxnet.evaluation.separated import write_estimates

    a = {"vocals": {m: np.array([1.0, np.nan, 3.0]) for m in ("SDR", "SIR", "ISR", "SAR")}}
    b = {"vocals": {m: np.array([1.0, np.nan, 3.0]) for m in ("SDR", "SIR", "ISR", "SAR")}}
    assert largest_difference(a, b)["max_abs_diff_db"] == 0.0
    b["vocals"]["SAR"] = np.array([1.0, np.nan, 3.5])
    assert largest_difference(a, b) == {"max_abs_diff_db": 0.5, "where": "vocals SAR frame 2"}
    assert largest_difference(a, b, ("SDR",))["max_abs_diff_db"] == 0.0  # the checked metric: SDR
    b["vocals"]["SIR"] = np.array([1.0, 2.0, 3.0])  # NaN in one backend only
    assert largest_difference(a, b)["max_abs_diff_db"] == float("inf")

    rng = np.random.default_rng(7)
    estimates = tmp_path / "est"
    write_estimates(estimates, {s: (0.1 * rng.standard_normal((2, 66150))).astype(np.float32) for s in SOURCES}, SR)
    out = tmp_path / "run" / "test" / "Song.json"
    assert main(["--params", str(fast_eval_params_file), "evaluate", "track", str(track), "--estimates",
                 str(estimates), "--cross-check", "-o", str(out)]) == 0
    document = json.loads(out.read_text())
    check = document["mdxnet"]["crosscheck"]
    assert check["against"] == "museval" and check["backend"] == "fast" and check["metric"] == "SDR"
    assert check["all_metrics_max_abs_diff_db"] >= check["max_abs_diff_db"]
    assert 0 <= check["max_abs_diff_db"] < 1e-3
    assert aggregate([tmp_path / "run"])["crosscheck"]["track"] == "Song"

    document["mdxnet"]["crosscheck"]["max_abs_diff_db"] = 0.01  # as if the fast backend had drifted
    out.write_text(json.dumps(document))
    with pytest.raises(UserError, match="differs from museval by 0.01 dB"):
        aggregate([tmp_path / "run"])
    results = tmp_path / "results"
    assert main(["--params", str(fast_eval_params_file), "report", "--runs", f"mixer={tmp_path / 'run'}",
                 "-o", str(results)]) == 2
    assert "evaluate.crosscheck_tolerance_db" in capsys.readouterr().err
    assert not (results / "table.md").exists()
