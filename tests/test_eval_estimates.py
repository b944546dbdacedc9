"""Scoring an estimates folder (musdb layout) against reference tracks: names matched, each fault named (missing
track, extra track, missing source, wrong length, NaN/inf), and `mdxnet evaluate estimates` on top of it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mdxnet.audio import write_wav
from mdxnet.cli import main
from mdxnet.evaluation.estimates import estimate_folders, match_estimates, score_matched

SOURCES = ["vocals", "drums", "bass", "other"]
SR = 44100


def _track(seed: int, seconds: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    stems = {s: (0.1 * rng.standard_normal((2, int(seconds * SR)))).astype(np.float32) for s in SOURCES}
    return {"mixture": sum(stems.values()), **stems}


def _noisy(stems: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {s: (stems[s] + 0.01 * rng.standard_normal(stems[s].shape)).astype(np.float32) for s in SOURCES}


def _write(folder, stems):
    for name, audio in stems.items():
        write_wav(folder / f"{name}.wav", audio, SR)


@pytest.fixture
def tree(tmp_path):
    """References A, B, C, D; estimates for A (good), B (vocals short by 1000 samples, one NaN in drums),
    C (no bass.wav) and Z (no such reference); none for D."""
    data, est = tmp_path / "data" / "test", tmp_path / "est" / "test"
    tracks = {name: _track(seed) for seed, name in enumerate("ABCD")}
    for name, stems in tracks.items():
        _write(data / name, stems)
    _write(est / "A", _noisy(tracks["A"], 10))
    flawed = _noisy(tracks["B"], 11)
    flawed["vocals"] = flawed["vocals"][:, :-1000]
    flawed["drums"][1, 5] = np.nan
    _write(est / "B", flawed)
    _write(est / "C", {s: a for s, a in _noisy(tracks["C"], 12).items() if s != "bass"})
    _write(est / "Z", _noisy(tracks["A"], 13))
    return tmp_path


@pytest.fixture
def fast(params):
    return params.replace({"evaluate": {"backend": "fast"}})


def _by_kind(problems):
    kinds = {}
    for p in problems:
        kinds.setdefault(p["kind"], []).append(p)
    return kinds


def test_estimate_folders_reads_both_layouts(tree):
    assert list(estimate_folders(tree / "est")) == ["A", "B", "C", "Z"]
    assert list(estimate_folders(tree / "est" / "test")) == ["A", "B", "C", "Z"]


def test_match_names_every_track_it_cannot_score(tree):
    match = match_estimates(tree / "est", tree / "data", SOURCES)
    assert sorted(match.pairs) == ["A", "B"]
    kinds = _by_kind(match.problems)
    assert [p["track"] for p in kinds["missing_track"]] == ["D"]
    assert [p["track"] for p in kinds["extra_track"]] == ["Z"]
    assert [(p["track"], p["sources"]) for p in kinds["missing_source"]] == [("C", ["bass"])]
    assert str(tree / "est" / "test" / "C") in kinds["missing_source"][0]["message"]
    assert "bass.wav" in kinds["missing_source"][0]["message"]


def test_match_only_the_requested_tracks(tree):
    match = match_estimates(tree / "est", tree / "data", SOURCES, tracks=["A", "D", "Z"])
    assert list(match.pairs) == ["A"]
    assert [(p["kind"], p["track"]) for p in match.problems] == [("missing_track", "D"), ("extra_track", "Z")]


def test_scoring_names_wrong_length_and_nan_and_still_scores(tree, fast):
    match = match_estimates(tree / "est", tree / "data", SOURCES)
    scored = {name: (document, problems) for name, document, problems in score_matched(match, fast)}
    assert sorted(scored) == ["A", "B"]
    assert scored["A"][1] == []
    kinds = _by_kind(scored["B"][1])
    assert [(p["source"], p["samples"], p["expected"]) for p in kinds["wrong_length"]] == [("vocals", SR - 1000, SR)]
    assert [(p["source"], p["samples"]) for p in kinds["nan_audio"]] == [("drums", 1)]
    document = scored["B"][0]
    assert document["mdxnet"]["problems"] == scored["B"][1]  # the per-track file records what was wrong
    sdr = {t["name"]: t["frames"][0]["metrics"]["SDR"] for t in document["targets"]}
    assert all(math.isfinite(v) and v > 10 for s, v in sdr.items() if s != "vocals"), sdr  # 20 dB noise


def test_evaluate_estimates_refuses_unscorable_input_before_scoring(tree, fast_eval_params_file, capsys):
    out = tree / "scores"
    argv = ["--params", str(fast_eval_params_file), "evaluate", "estimates", str(tree / "est"),
            "--references", str(tree / "data"), "-o", str(out)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "bass.wav" in error and "'Z'" in error
    assert not out.exists()  # refused before anything was scored or written
    assert main([*argv, "--track", "D"]) == 2
    assert "no estimates for reference track 'D'" in capsys.readouterr().err


def test_evaluate_estimates_scores_a_partial_set_with_a_warning(tree, fast_eval_params_file, caplog):
    import shutil

    shutil.rmtree(tree / "est" / "test" / "C")
    shutil.rmtree(tree / "est" / "test" / "Z")
    out = tree / "scores"
    argv = ["--params", str(fast_eval_params_file), "evaluate", "estimates", str(tree / "est"),
            "--references", str(tree / "data"), "-o", str(out)]
    assert main(argv) == 0
    assert sorted(p.name for p in (out / "test").iterdir()) == ["A.json", "B.json"]
    assert "no estimates for reference track 'C'" in caplog.text and "'D'" in caplog.text
    assert "B/vocals.wav has 43100 samples" in caplog.text and "NaN/inf" in caplog.text
    assert json.loads((out / "test" / "A.json").read_text())["mdxnet"]["track"] == "A"
