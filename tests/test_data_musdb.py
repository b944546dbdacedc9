"""The tracks module: listing (musdb's valid list, recorded splits, data.valid_split, extra test songs), the one
naming function, reading track folders and stem files, and the reference index evaluation uses."""

from __future__ import annotations

import json
import logging
import re
import shutil

import numpy as np
import pytest

from mdxnet.audio import STEM_NAMES
from mdxnet.data.musdb import (
    DATASET_FILE,
    DatasetMissingError,
    find_track,
    list_test_songs,
    list_tracks,
    load_track,
    musdb_validation_names,
    split_tracks,
    to_musdb_pcm16,
    track_index,
    track_name,
)
from mdxnet.errors import UserError

# the non-validation tracks of the musdb_like fixture (tests/conftest.py)
MUSDB_LIKE_TRAIN = ("A Classic Education - NightOwl", "ANiMAL - Clinic A")
MUSDB_LIKE_TEST = "Al James - Schoolboy Facination"


def _names(tracks):
    return [track_name(t) for t in tracks]


def test_musdb_validation_list_comes_from_the_musdb_package():
    names = musdb_validation_names()
    assert len(names) == 14
    assert "Actions - One Minute Smile" in names


def test_list_tracks_uses_the_official_valid_split(musdb_like):
    assert _names(list_tracks(musdb_like, "train", "musdb")) == list(MUSDB_LIKE_TRAIN)
    assert _names(list_tracks(musdb_like, "valid", "musdb")) == sorted(musdb_validation_names())
    assert _names(list_tracks(musdb_like, "test", "musdb")) == [MUSDB_LIKE_TEST]
    assert all(t.parent == musdb_like / "train" for t in list_tracks(musdb_like, "valid", "musdb"))


def test_valid_split_none_keeps_every_train_track(musdb_like):
    train = _names(list_tracks(musdb_like, "train", "none"))
    assert train == sorted([*musdb_validation_names(), *MUSDB_LIKE_TRAIN])
    assert list_tracks(musdb_like, "valid", "none") == []
    assert _names(list_tracks(musdb_like, "test", "none")) == [MUSDB_LIKE_TEST]


def test_split_tracks_reads_the_split_and_root_from_params(musdb_like, params):
    p = params.replace({"data": {"root": str(musdb_like), "valid_split": "none"}})
    assert split_tracks(p, "valid") == []
    assert len(split_tracks(p, "train")) == 16
    other = params.replace({"data": {"valid_split": "musdb"}})
    assert _names(split_tracks(other, "valid", root=musdb_like)) == sorted(musdb_validation_names())


def test_unknown_valid_split_is_a_user_error(musdb_like):
    with pytest.raises(UserError, match="data.valid_split"):
        list_tracks(musdb_like, "train", "random")


def test_recorded_split_file_overrides_the_musdb_list_and_valid_split(musdb_like):
    split = {"train": ["ANiMAL - Clinic A"], "valid": ["A Classic Education - NightOwl"], "test": [MUSDB_LIKE_TEST]}
    (musdb_like / DATASET_FILE).write_text(json.dumps({"split": split}))
    for valid_split in ("musdb", "none"):
        for subset, names in split.items():
            assert _names(list_tracks(musdb_like, subset, valid_split)) == names


def test_recorded_split_without_a_subset_is_named(musdb_like):
    (musdb_like / DATASET_FILE).write_text(json.dumps({"split": {"train": ["ANiMAL - Clinic A"]}}))
    with pytest.raises(UserError, match=f"{DATASET_FILE}.*'valid'"):
        list_tracks(musdb_like, "valid", "musdb")


def test_absent_dataset_error_names_folder_and_fixes(tmp_path):
    with pytest.raises(DatasetMissingError) as err:
        list_tracks(tmp_path / "nowhere", "train", "musdb")
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message
    assert "mdxnet data synth" in message and "mdxnet data fetch" in message and "data.root" in message


def test_one_name_for_folders_stem_files_and_songs(tmp_path):
    (tmp_path / "Mr. So & So - Song").mkdir()
    for name in ("Music Delta - Rock.stem.mp4", "my.song.flac", "take 2.wav"):
        (tmp_path / name).write_bytes(b"")
    assert track_name(tmp_path / "Mr. So & So - Song") == "Mr. So & So - Song"  # a folder keeps its dots
    assert track_name(tmp_path / "Music Delta - Rock.stem.mp4") == "Music Delta - Rock"
    assert track_name(tmp_path / "my.song.flac") == "my.song"
    assert track_name(str(tmp_path / "take 2.wav")) == "take 2"


@pytest.mark.parametrize("name", ["...wav", "..wav", "...stem.mp4", "..stem.mp4", ".stem.mp4"])
def test_a_name_that_cannot_name_a_folder_is_refused_with_the_fix(tmp_path, name):
    """Names become folders (separate's OUT/<name>/, the workflow's estimates/<run>/test/<name>/): '..', '.' or
    '' would put results outside their folder."""
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(UserError, match=rf"{re.escape(name)}: its track name would be '\.{{0,2}}'.*rename the file"):
        track_name(tmp_path / name)


def test_extra_test_song_named_dots_is_refused_for_the_workflow_and_evaluation(musdb_like, real_clip, tmp_path,
                                                                                params):
    odd = tmp_path / "extra" / "...stem.mp4"
    odd.parent.mkdir()
    shutil.copyfile(real_clip, odd)
    params = params.replace({"data": {"root": str(musdb_like), "extra_test": [str(odd.parent)]}})
    with pytest.raises(UserError, match=r"extra/\.\.\.stem\.mp4: its track name would be '\.\.'"):
        list_test_songs(params)  # the workflow's test songs: it planned estimates/no-mixer/test/../vocals.wav
    with pytest.raises(UserError, match="rename the file"):
        load_track(odd)  # every `mdxnet evaluate` command reads its reference through here


def test_load_track_returns_five_stereo_float32_stems(musdb_like):
    track = find_track(musdb_like, "ANiMAL - Clinic A")
    stems = load_track(track)
    assert set(stems) == set(STEM_NAMES)
    for audio in stems.values():
        assert audio.shape == (2, 441) and audio.dtype == np.float32
    assert np.allclose(stems["vocals"], 0.05)
    assert np.allclose(stems["mixture"], sum(stems[s] for s in STEM_NAMES[1:]))


def test_load_track_reads_a_stem_file_as_musdb_does(real_clip):
    stems = load_track(real_clip)
    assert set(stems) == set(STEM_NAMES)
    assert stems["mixture"].shape[0] == 2 and stems["mixture"].shape[1] > 44100 * 12
    assert np.array_equal(stems["vocals"], to_musdb_pcm16(stems["vocals"]))  # on musdb's 16-bit grid


def test_load_track_names_missing_stems_and_bad_paths(tmp_path, write_track):
    with pytest.raises(UserError, match="does not exist"):
        load_track(tmp_path / "nope")
    write_track(tmp_path / "half")
    (tmp_path / "half" / "bass.wav").unlink()
    with pytest.raises(UserError, match=r"half lacks bass\.wav"):
        load_track(tmp_path / "half")
    (tmp_path / "song.flac").write_bytes(b"")
    with pytest.raises(UserError, match="neither a MUSDB18-HQ track folder"):
        load_track(tmp_path / "song.flac")


@pytest.mark.parametrize("target", ["vocals.wav", "/nonexistent/vocals.wav"])  # a loop, a dangling link
def test_load_track_names_a_stem_link_that_leads_nowhere(tmp_path, write_track, target):
    """Training reads through load_track: such a link read as a missing stem, the link itself unnamed."""
    write_track(tmp_path / "track")
    stem = tmp_path / "track" / "vocals.wav"
    stem.unlink()
    stem.symlink_to(target)
    with pytest.raises(UserError, match=rf"{re.escape(str(stem))}: a symlink (loop|to {target}, which does not)"):
        load_track(tmp_path / "track")


def test_track_index_maps_names_and_refuses_a_name_twice(musdb_like, tmp_path):
    assert track_index(musdb_like, "test") == {MUSDB_LIKE_TEST: musdb_like / "test" / MUSDB_LIKE_TEST}
    assert set(track_index(musdb_like / "test", "test")) == {MUSDB_LIKE_TEST}  # a folder of tracks itself
    assert len(track_index(musdb_like, "train")) == 16  # no split: every train/ track
    (musdb_like / "test" / f"{MUSDB_LIKE_TEST}.stem.mp4").write_bytes(b"")
    with pytest.raises(UserError, match="appears twice"):
        track_index(musdb_like, "test")
    with pytest.raises(UserError, match="does not exist"):
        track_index(tmp_path / "nowhere")


def test_list_test_songs_adds_extra_stem_files_and_skips_missing(musdb_like, real_clip, caplog, params):
    params = params.replace({"data": {"root": str(musdb_like),
                                      "extra_test": [str(real_clip.parent), str(musdb_like / "missing.stem.mp4")]}})
    with caplog.at_level(logging.WARNING):
        songs = list_test_songs(params)
    names = _names(songs)
    assert names[0] == MUSDB_LIKE_TEST
    assert "Music Delta - Rock" in names
    assert "missing.stem.mp4" in caplog.text


def test_list_test_songs_resolves_extra_entries_against_the_project_root(musdb_like, real_clip, repo_root, params):
    params = params.replace({"data": {"root": str(musdb_like), "extra_test": ["../shared/data/real-clips"]}})
    songs = list_test_songs(params, project_root=repo_root)
    assert real_clip.resolve() in [s.resolve() for s in songs]


def test_training_on_wav_and_writing_scores_need_no_ffmpeg():
    """The validation names and the per-track score documents load neither stempeg (which refuses to import
    without ffmpeg on PATH) nor museval: a GPU machine without ffmpeg stopped at both (bench/README.md, GPU
    rehearsal). Checked in a fresh interpreter, whose modules nothing else has imported."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from mdxnet.data.musdb import musdb_validation_names\n"
            "from mdxnet.evaluation.track_json import track_document\n"
            "names = musdb_validation_names()\n"
            "document = track_document({'vocals': {m: [1.0] for m in ('SDR', 'SIR', 'ISR', 'SAR')}})\n"
            "print(len(names), document['museval_version'], sorted({'musdb', 'stempeg', 'museval'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, version, imported = done.stdout.split(" ", 2)
    assert int(count) == 14 and version.count(".") == 2
    assert imported.strip() == "[]"
