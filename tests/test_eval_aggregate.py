"""SiSEC2018 aggregation must agree exactly with museval's own (EvalStore / MethodStore)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mdxnet.atomic import write_json_atomic
from mdxnet.cli import main
from mdxnet.errors import UserError
from mdxnet.evaluation.aggregate import aggregate, load_track_medians, nanmedian
from mdxnet.evaluation.scoring import bss_eval_v4
from mdxnet.evaluation.track_json import METRICS, track_document

SOURCES = ["vocals", "drums", "bass", "other"]


def _random_scores(rng, frames: int, nan_fraction: float) -> dict:
    scores = {}
    for source in SOURCES:
        scores[source] = {}
        for metric in METRICS:
            values = rng.normal(5.0, 4.0, frames)
            values[rng.random(frames) < nan_fraction] = np.nan
            values[rng.random(frames) < 0.02] = np.inf  # museval stores inf as NaN
            scores[source][metric] = values
    return scores


def _scored_document(rng) -> dict:
    """One document from real BSS Eval on 2 s of noisy synthetic stems (a silent second gives NaN frames)."""
    sr = 8000
    t = np.arange(2 * sr) / sr
    refs = {s: np.stack([np.sin(2 * np.pi * (110 * (i + 1)) * t + c) for c in (0, 1)]) * (0.5 + 0.1 * i)
            for i, s in enumerate(SOURCES)}
    refs["bass"][:, :sr] = 0.0  # first second silent: museval gives NaN for every source in that frame
    ests = {s: refs[s] + 0.05 * rng.standard_normal(refs[s].shape) for s in SOURCES}
    return track_document(bss_eval_v4(refs, ests, SOURCES, sr, 0.5, 0.5, backend="fast"))


@pytest.fixture(scope="module")
def scores_dir(tmp_path_factory):
    """Per-track files of varied shapes: odd/even frame counts, NaN frames, an all-NaN target, a missing target."""
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("scores")
    for i, (frames, nan_fraction) in enumerate([(7, 0.0), (10, 0.3), (4, 0.5), (13, 0.1), (1, 0.0), (8, 0.2)]):
        document = track_document(_random_scores(rng, frames, nan_fraction))
        if i == 2:
            for frame in document["targets"][1]["frames"]:  # drums all NaN on this track
                frame["metrics"] = {m: float("nan") for m in frame["metrics"]}
        if i == 3:
            document["targets"] = document["targets"][:3]  # no 'other' on this track
        write_json_atomic(root / "test" / f"Track {i:02d}.json", document)
    write_json_atomic(root / "test" / "Scored.json", _scored_document(rng))
    return root


def test_aggregation_equals_museval_evalstore(scores_dir):
    from museval.aggregate import EvalStore, MethodStore

    ours = aggregate([scores_dir])
    assert ours["tracks"] == 7

    store = EvalStore(frames_agg="median", tracks_agg="median")
    store.add_eval_dir(str(scores_dir))
    theirs = store.agg_frames_tracks_scores()
    per_track = store.agg_frames_scores()
    methods = MethodStore()
    methods.add_eval_dir(str(scores_dir))
    theirs_method = methods.agg_frames_tracks_scores()

    compared = 0
    for source in SOURCES:
        for metric in METRICS:
            value = ours["summary"][source][metric]
            assert value == theirs[(source, metric)], (source, metric, value, theirs[(source, metric)])
            assert value == theirs_method[(scores_dir.stem, source, metric)]
            compared += 1
            for track, medians in ours["per_track"].items():
                if source in medians:
                    expected = per_track[(track, source, metric)]
                    got = medians[source][metric]
                    assert (math.isnan(got) and math.isnan(expected)) or got == expected, (track, source, metric)
    assert compared == 16
    # the constructed edge cases are really present
    assert math.isnan(ours["per_track"]["Track 02"]["drums"]["SDR"])
    assert "other" not in ours["per_track"]["Track 03"]
    scored = json.loads((scores_dir / "test" / "Scored.json").read_text())
    assert math.isnan(scored["targets"][2]["frames"][0]["metrics"]["SDR"])
    assert not math.isnan(ours["per_track"]["Scored"]["bass"]["SDR"])  # NaN frames ignored, not propagated


def test_aggregate_cli_writes_summary(scores_dir, tmp_path, repo_root, capsys):
    out = tmp_path / "summary.json"
    assert main(["--params", str(repo_root / "params.yaml"), "evaluate", "aggregate", str(scores_dir), "-o", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary == json.loads(json.dumps(aggregate([scores_dir], out)))
    assert "vocals" in capsys.readouterr().out


def test_nanmedian_ignores_nan_and_handles_all_nan():
    assert nanmedian([1.0, np.nan, 3.0, 2.0]) == 2.0
    assert nanmedian([4.0, 1.0, np.nan, 3.0, 2.0]) == 2.5
    assert math.isnan(nanmedian([np.nan, np.nan]))
    assert math.isnan(nanmedian([]))


def test_duplicate_track_across_folders_is_refused(scores_dir):
    with pytest.raises(UserError, match="scored twice"):
        aggregate([scores_dir, scores_dir])


def test_empty_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no per-track JSON"):
        aggregate([tmp_path])


def test_a_track_file_that_scores_no_source_is_refused(scores_dir, tmp_path):
    """a per-track JSON with `"targets": []` was counted as a track."""
    import shutil

    folder = tmp_path / "scores"
    shutil.copytree(scores_dir, folder)
    write_json_atomic(folder / "test" / "Empty.json", {"targets": []})
    with pytest.raises(UserError, match=r"Empty.json scores no source .*re-run `mdxnet evaluate track`"):
        aggregate([folder])


def _dataset_document(rng, root: str) -> dict:
    document = track_document(_random_scores(rng, 5, 0.0))
    document["mdxnet"] = {"dataset": {"release": "musdb18hq", "root": root}}
    return document


def test_a_summary_counts_the_files_it_is_given_and_a_report_reads_the_same(tmp_path, repo_root):
    """A run folder also holds score files of an earlier run on another dataset: the summary of this run's one file
    counts one song, and whatever reads the run's folder afterwards (the report) reads that file only."""
    rng = np.random.default_rng(3)
    run = tmp_path / "evaluation" / "mixer"
    for i in range(5):  # the earlier, embedded run's songs
        write_json_atomic(run / "test" / f"Old {i}.json", _dataset_document(rng, "resources/synth"))
    fresh = run / "test" / "New.json"
    write_json_atomic(fresh, _dataset_document(rng, "resources/synth-ci"))
    out = run / "summary.json"
    assert main(["--params", str(repo_root / "params.yaml"), "evaluate", "aggregate", str(fresh), "-o", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["tracks"] == 1 and summary["files"] == ["test/New.json"]
    assert summary["dataset"] == {"release": "musdb18hq", "root": "resources/synth-ci"}
    assert list(load_track_medians([run])) == ["New"]  # the folder's summary names its files: no glob


def test_scores_of_different_datasets_are_refused_naming_the_file(tmp_path):
    rng = np.random.default_rng(4)
    write_json_atomic(tmp_path / "test" / "A.json", _dataset_document(rng, "resources/synth-ci"))
    write_json_atomic(tmp_path / "test" / "B.json", _dataset_document(rng, "resources/synth"))
    with pytest.raises(UserError, match=r"B\.json scored another dataset than .*A\.json \(root 'resources/synth'"):
        aggregate([tmp_path])


def test_a_summary_whose_files_are_gone_is_refused(tmp_path):
    rng = np.random.default_rng(5)
    write_json_atomic(tmp_path / "test" / "A.json", _dataset_document(rng, "r"))
    write_json_atomic(tmp_path / "summary.json", aggregate([tmp_path / "test" / "A.json"], tmp_path / "summary.json"))
    (tmp_path / "test" / "A.json").unlink()
    with pytest.raises(UserError, match=r"aggregated from .*A\.json, which no longer exists"):
        load_track_medians([tmp_path])
