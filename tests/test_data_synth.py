"""The generated dataset: MUSDB18-HQ layout, exact mixtures, recorded split, determinism and idempotence."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from mdxnet.audio import STEM_NAMES
from mdxnet.data.musdb import DATASET_FILE, list_tracks, track_name
from mdxnet.data.synth import TRACK_MARKER, generate_dataset, synth_config

pytestmark = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth is not installed")


def _hashes(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_split_and_exact_mixture(synth_dataset):
    info = json.loads((synth_dataset / DATASET_FILE).read_text())
    assert {k: len(v) for k, v in info["split"].items()} == {"train": 2, "valid": 1, "test": 1}
    assert [track_name(t) for t in list_tracks(synth_dataset, "valid", "musdb")] == info["split"]["valid"]
    assert list_tracks(synth_dataset, "test", "musdb")[0].parent.name == "test"
    for subset in ("train", "valid", "test"):
        for track in list_tracks(synth_dataset, subset, "musdb"):
            audio = {n: sf.read(track / f"{n}.wav", dtype="int16")[0].astype(np.int32) for n in STEM_NAMES}
            info_ = sf.info(track / "mixture.wav")
            assert (info_.samplerate, info_.channels, info_.frames) == (44100, 2, 3 * 44100)
            assert np.array_equal(audio["mixture"], sum(audio[n] for n in STEM_NAMES[1:]))
            for name in STEM_NAMES:  # every stem carries sound
                assert np.sqrt(np.mean((audio[name] / 32768.0) ** 2)) > 1e-3, (track, name)


def test_songs_differ(synth_dataset):
    tracks = json.loads((synth_dataset / DATASET_FILE).read_text())["tracks"]
    assert len({(t["tempo"], t["key"]) for t in tracks.values()}) == len(tracks)
    mixes = [sf.read(t / "mixture.wav")[0][:44100, 0]
             for s in ("train", "test") for t in list_tracks(synth_dataset, s, "musdb")]
    corr = np.corrcoef(np.stack(mixes))
    assert np.max(np.abs(corr - np.eye(len(mixes)))) < 0.5


def test_deterministic_idempotent_and_resplit(tmp_path, params, synth_dataset):
    # same (seed, index, seconds) as the session dataset's synth000 -> byte-identical files
    config = synth_config(params.data.synth, tracks=2, valid_tracks=0, test_tracks=1, seconds=3, seed=123, jobs=2)
    root = tmp_path / "ds"
    generate_dataset(root, config, progress=False)
    assert _hashes(root / "train" / "synth000") == _hashes(synth_dataset / "train" / "synth000")
    marker = root / "train" / "synth000" / TRACK_MARKER
    mtime = marker.stat().st_mtime_ns
    first = _hashes(root)
    generate_dataset(root, config, progress=False)  # rerun: finished tracks are skipped, files unchanged
    assert marker.stat().st_mtime_ns == mtime
    assert _hashes(root) == first
    # a new split moves synth001 from test/ to train/: the stale copy goes, synth000 is left alone
    generate_dataset(root, synth_config(params.data.synth, tracks=2, valid_tracks=0, test_tracks=0, seconds=3, seed=123),
                     progress=False)
    assert not (root / "test" / "synth001").exists()
    assert _hashes(root / "train" / "synth001") == first_for(first, "test/synth001", "train/synth001")
    assert marker.stat().st_mtime_ns == mtime


def first_for(hashes: dict, old: str, new: str) -> dict:
    """Hashes of the files under `old`, keyed as `_hashes` of the folder `new` would key them."""
    return {k[len(old) + 1:]: v for k, v in hashes.items() if k.startswith(old + "/")}


def test_bad_split_is_refused(params):
    from mdxnet.errors import UserError

    with pytest.raises(UserError, match="valid_tracks"):
        synth_config(params.data.synth, tracks=3, valid_tracks=1, test_tracks=2)


def test_planned_names_match_the_generated_split(synth_dataset, params, capsys):

    from mdxnet.cli import main
    from mdxnet.data.synth import planned_track_names

    p = params.replace({"data": {"origin": "synth", "root": str(synth_dataset),
                                 "synth": {"tracks": 4, "valid_tracks": 1, "test_tracks": 1, "seconds": 3, "seed": 123}}})
    for subset in ("train", "valid", "test"):
        assert planned_track_names(p.data, subset) == [track_name(t) for t in list_tracks(synth_dataset, subset, "musdb")]
    assert main(["data", "list", "--subset", "valid", "--root", str(synth_dataset)]) == 0
    assert capsys.readouterr().out.split() == [track_name(t) for t in list_tracks(synth_dataset, "valid", "musdb")]


def test_musdb18_layout_writes_stem_files_once(tmp_path, params, synth_dataset):
    """data.dataset: musdb18: <root>/{train,test}/<name>.stem.mp4 with five streams, the wav
    tracks kept aside in the hidden staging folder (here the session dataset, so nothing is rendered again), wav
    track folders of an earlier generation at the same root removed, and a rerun encodes nothing."""
    from mdxnet.data.musdb import read_dataset_file
    from mdxnet.data.synth import WAV_STAGING

    root = tmp_path / "ds"
    shutil.copytree(synth_dataset, root / WAV_STAGING)
    shutil.copytree(synth_dataset / "train" / "synth000", root / "train" / "synth000")  # an earlier wav layout
    config = synth_config(params.data.synth, tracks=4, valid_tracks=1, test_tracks=1, seconds=3, seed=123, jobs=2)
    info = generate_dataset(root, config, progress=False, layout="musdb18")
    assert info["layout"] == "musdb18" and read_dataset_file(root)["split"] == info["split"]
    assert sorted(p.name for p in (root / "train").iterdir()) == [f"synth00{i}.stem.mp4" for i in range(3)]
    assert [track_name(t) for t in list_tracks(root, "valid", "none")] == info["split"]["valid"]
    [test] = list_tracks(root, "test", "none")
    assert test.name == "synth003.stem.mp4"
    import stempeg

    assert stempeg.Info(str(test)).nb_audio_streams == len(STEM_NAMES)
    stamp = test.stat().st_mtime_ns
    generate_dataset(root, config, progress=False, layout="musdb18")
    assert test.stat().st_mtime_ns == stamp


def test_musdb18_layout_removes_only_its_own_stem_files(tmp_path, params, synth_dataset):
    """Generated stem files are recognised by the generator's record of what it wrote (name and content), never by
    their name: a user's file named like a generated one survives, a generated song the config drops goes."""
    from mdxnet.data.synth import WAV_STAGING

    root = tmp_path / "ds"
    shutil.copytree(synth_dataset, root / WAV_STAGING)
    config = synth_config(params.data.synth, tracks=4, valid_tracks=1, test_tracks=1, seconds=3, seed=123, jobs=2)
    generate_dataset(root, config, progress=False, layout="musdb18")
    mine = [root / "train" / "synthwave - My Song.stem.mp4", root / "test" / "synth-pop.stem.mp4"]
    for path in mine:
        shutil.copyfile(root / "test" / "synth003.stem.mp4", path)
    generate_dataset(root, config, progress=False, layout="musdb18")
    assert all(path.is_file() for path in mine)
    fewer = synth_config(params.data.synth, tracks=3, valid_tracks=1, test_tracks=0, seconds=3, seed=123, jobs=2)
    generate_dataset(root, fewer, progress=False, layout="musdb18")  # synth003 is no longer made
    assert not (root / "test" / "synth003.stem.mp4").exists()
    assert all(path.is_file() for path in mine)
    for subset in ("train", "test"):  # back to the wav layout at the same root, its tracks already rendered
        shutil.copytree(root / WAV_STAGING / subset, root / subset, dirs_exist_ok=True)
    generate_dataset(root, fewer, progress=False)
    assert not list((root / "train").glob("synth00*.stem.mp4")) and all(path.is_file() for path in mine)
