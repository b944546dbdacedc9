"""Listing and loading tracks: MUSDB18-HQ layout with musdb's valid list, recorded splits, extra test songs."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import soundfile as sf

from mdxnet.audio import STEM_NAMES
from mdxnet.data.musdb import (
    DATASET_FILE,
    DatasetMissingError,
    find_track,
    list_test_songs,
    list_tracks,
    load_track,
    musdb_validation_names,
    track_name,
)


def _write_track(folder, frames=441, value=0.1):
    folder.mkdir(parents=True)
    for i, name in enumerate(STEM_NAMES):
        sf.write(folder / f"{name}.wav", np.full((frames, 2), value * (i + 1) / 10), 44100, subtype="FLOAT")


@pytest.fixture
def musdb_like(tmp_path):
    """A MUSDB18-HQ-shaped folder: two official validation tracks, two training tracks, one test track."""
    valid = musdb_validation_names()
    for name in (valid[0], valid[5], "A Classic Education - NightOwl", "ANiMAL - Clinic A"):
        _write_track(tmp_path / "train" / name)
    _write_track(tmp_path / "test" / "Al James - Schoolboy Facination")
    return tmp_path


def test_musdb_validation_list_comes_from_the_musdb_package():
    names = musdb_validation_names()
    assert len(names) == 14
    assert "Actions - One Minute Smile" in names


def test_list_tracks_uses_the_official_valid_split(musdb_like):
    train = [track_name(t) for t in list_tracks(musdb_like, "train")]
    valid = [track_name(t) for t in list_tracks(musdb_like, "valid")]
    test = [track_name(t) for t in list_tracks(musdb_like, "test")]
    assert train == ["A Classic Education - NightOwl", "ANiMAL - Clinic A"]
    assert set(valid) == {musdb_validation_names()[0], musdb_validation_names()[5]}
    assert test == ["Al James - Schoolboy Facination"]
    assert all((musdb_like / "train" / v).is_dir() for v in valid)


def test_recorded_split_file_overrides_the_musdb_list(musdb_like):
    split = {"train": ["ANiMAL - Clinic A"], "valid": ["A Classic Education - NightOwl"],
             "test": ["Al James - Schoolboy Facination"]}
    (musdb_like / DATASET_FILE).write_text(json.dumps({"split": split}))
    for subset, names in split.items():
        assert [track_name(t) for t in list_tracks(musdb_like, subset)] == names


def test_absent_dataset_error_names_folder_and_fixes(tmp_path):
    with pytest.raises(DatasetMissingError) as err:
        list_tracks(tmp_path / "nowhere", "train")
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message
    assert "mdxnet data synth" in message and "mdxnet data fetch" in message and "data.root" in message


def test_load_track_returns_five_stereo_float32_stems(musdb_like):
    track = find_track(musdb_like, "ANiMAL - Clinic A")
    stems = load_track(track)
    assert set(stems) == set(STEM_NAMES)
    for audio in stems.values():
        assert audio.shape == (2, 441) and audio.dtype == np.float32
    assert np.allclose(stems["vocals"], 0.05)


def test_load_track_reads_a_stem_file(real_clip):
    stems = load_track(real_clip)
    assert set(stems) == set(STEM_NAMES)
    assert stems["mixture"].shape[0] == 2 and stems["mixture"].shape[1] > 44100 * 12


def test_list_test_songs_adds_extra_stem_files_and_skips_missing(musdb_like, real_clip, caplog, params):
    params = params.replace({"data": {"root": str(musdb_like),
                                      "extra_test": [str(real_clip.parent), str(musdb_like / "missing.stem.mp4")]}})
    with caplog.at_level(logging.WARNING):
        songs = list_test_songs(params)
    names = [track_name(s) for s in songs]
    assert names[0] == "Al James - Schoolboy Facination"
    assert "Music Delta - Rock" in names
    assert "missing.stem.mp4" in caplog.text


def test_list_test_songs_resolves_extra_entries_against_the_project_root(musdb_like, real_clip, repo_root, params):
    params = params.replace({"data": {"root": str(musdb_like), "extra_test": ["../shared/data/real-clips"]}})
    songs = list_test_songs(params, project_root=repo_root)
    assert real_clip.resolve() in [s.resolve() for s in songs]


def test_valid_split_none_keeps_every_train_track(musdb_like):
    assert len(list_tracks(musdb_like, "train", valid_split="none")) == 4
    assert list_tracks(musdb_like, "valid", valid_split="none") == []
