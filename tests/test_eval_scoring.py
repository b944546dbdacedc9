"""Scoring must reproduce museval (the SiSEC2018 tool chain) frame by frame, on real audio."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mdxnet.audio import read_stem_file, write_wav
from mdxnet.cli import main
from mdxnet.evaluation.track_json import METRICS, frame_values, museval_round, track_document

SOURCES = ["vocals", "drums", "bass", "other"]
SR = 44100
CROP = (2 * SR, 8 * SR)  # 6 s of the shared clip: museval's memory and time grow with length


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.fixture(scope="module")
def clip(real_clip) -> dict[str, np.ndarray]:
    stems = read_stem_file(real_clip)
    return {name: audio[:, CROP[0] : CROP[1]] for name, audio in stems.items()}


@pytest.fixture(scope="module")
def noisy(clip) -> dict[str, np.ndarray]:
    """Estimates = true stems + fixed (seeded) white noise at about -20 dB of each stem."""
    rng = np.random.default_rng(1234)
    return {
        s: (clip[s] + 0.1 * clip[s].std() * rng.standard_normal(clip[s].shape)).astype(np.float32) for s in SOURCES
    }


def write_musdb_track(root: Path, subset: str, name: str, stems: dict[str, np.ndarray], subtype="PCM_16") -> Path:
    """MUSDB18-HQ layout; references are 16-bit PCM like the real dataset (musdb reads them as s16le)."""
    folder = root / subset / name
    for part, audio in stems.items():
        write_wav(folder / f"{part}.wav", audio, SR, subtype=subtype)
    return folder


def test_per_frame_scores_equal_museval(tmp_path, clip, noisy, museval_params_file):
    """Must-show: `mdxnet evaluate estimates` writes the same per-frame numbers (and JSON) as musdb + museval."""
    import musdb
    import museval

    references = tmp_path / "musdb"
    write_musdb_track(references, "test", "Rock", clip)
    estimates = tmp_path / "estimates"
    write_musdb_track(estimates, "test", "Rock", noisy, subtype="FLOAT")
    out = tmp_path / "scores"
    argv = ["--params", str(museval_params_file), "evaluate", "estimates", str(estimates),
            "--references", str(references), "-o", str(out)]
    assert main(argv) == 0
    ours = json.loads((out / "test" / "Rock.json").read_text())

    # museval's own path: musdb reads the reference folder, museval scores and builds the TrackStore.
    track = musdb.DB(root=str(references), is_wav=True, subsets="test").tracks[0]
    store = museval.eval_mus_track(track, {s: noisy[s].T.astype(np.float64) for s in SOURCES})
    theirs = json.loads(store.json)

    assert [t["name"] for t in ours["targets"]] == [t["name"] for t in theirs["targets"]] == SOURCES
    ours_frames, theirs_frames = frame_values(ours), frame_values(theirs)
    assert len(ours_frames["vocals"]["SDR"]) == 6
    for source in SOURCES:
        for metric in METRICS:
            assert np.array_equal(ours_frames[source][metric], theirs_frames[source][metric], equal_nan=True), (
                source, metric, ours_frames[source][metric], theirs_frames[source][metric])
    # Same document structure too (times, durations, key order), apart from our provenance block.
    assert ours["mdxnet"]["track"] == "Rock"
    assert {k: v for k, v in ours.items() if k != "mdxnet"}.keys() == theirs.keys()
    assert [f["metrics"].keys() for f in ours["targets"][0]["frames"]] == [
        f["metrics"].keys() for f in theirs["targets"][0]["frames"]]
    assert [(f["time"], f["duration"]) for f in ours["targets"][2]["frames"]] == [
        (f["time"], f["duration"]) for f in theirs["targets"][2]["frames"]]
    # The noise is 20 dB down: SDR must sit near 20 dB, which shows the scores are meaningful, not just equal.
    assert 15 < np.nanmedian(ours_frames["drums"]["SDR"]) < 25


def test_museval_round_matches_trackstore():
    from museval.aggregate import TrackStore

    values = [1.234565, -0.000004, 12.3456749999, float("inf"), float("-inf"), float("nan"), 7.0]
    store = TrackStore("x")
    store.add_target("vocals", {m: values for m in METRICS})
    theirs = json.loads(store.json)["targets"][0]["frames"]
    for value, frame in zip(values, theirs, strict=True):
        assert _same(museval_round(value), frame["metrics"]["SDR"])


def test_track_document_validates_against_museval_schema():
    import jsonschema
    import museval

    scores = {s: {m: np.array([1.0, np.nan, np.inf]) for m in METRICS} for s in SOURCES}
    document = track_document(scores, 1.0, 1.0, {"track": "x"})
    schema = json.loads((Path(museval.__file__).parent / "musdb.schema.json").read_text())
    jsonschema.validate(json.loads(json.dumps(document)), schema)
    assert [f["time"] for f in document["targets"][0]["frames"]] == [0.0, 1.0, 2.0]
    assert math.isnan(document["targets"][0]["frames"][2]["metrics"]["SDR"])  # inf is stored as NaN, like museval


def test_stem_file_references_match_musdb(tmp_path, stempeg_clip):
    """A `.stem.mp4` track reads exactly as musdb reads it (16-bit PCM through ffmpeg), so scores agree too."""
    import musdb

    from mdxnet.data.musdb import load_track, track_name

    (tmp_path / "test").mkdir()
    link = tmp_path / "test" / stempeg_clip.name
    link.symlink_to(stempeg_clip)
    track = musdb.DB(root=str(tmp_path), subsets="test").tracks[0]
    ours = load_track(link)
    assert track_name(link) == track.name == "The Easton Ellises - Falcon 69"
    assert np.array_equal(ours["mixture"].T.astype(np.float64), track.audio)
    for source in SOURCES:
        assert np.array_equal(ours[source].T.astype(np.float64), track.targets[source].audio)
