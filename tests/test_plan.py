"""`mdxnet plan` (mdxnet.plan): jobs, disk and time per stage of `snakemake all` from the params and the songs
found, planned or assumed; and the augmentation cache's room check (mdxnet.data.diskspace), which shares the
plan's size estimate and stops `mdxnet augment` before it writes anything."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from mdxnet.cli import main
from mdxnet.config import load_params
from mdxnet.data import diskspace
from mdxnet.data.augment import MANIFEST, expected_manifest, pending_bytes
from mdxnet.data.musdb import DATASET_FILE
from mdxnet.plan import (
    ASSUMED_MUSDB,
    COST_MODEL,
    ON_DISK,
    PLANNED_SYNTH,
    forward_flop,
    make_plan,
    read_songs,
    render_table,
    separation_flop_per_audio_s,
)

SR = 44100
REPO = Path(__file__).resolve().parents[1]
# a 3 x 3 product grid: 8 variants, the rates of each (the unchanged pair left out)
GRID = {"pitch_semitones": [-1, 0, 1], "tempo_rates": [0.9, 1.0, 1.1], "grid": "product"}
GRID_RATES = [0.9, 1.0, 1.1] * 2 + [0.9, 1.1]
SONGS = {"train": {"t0": 1.0, "t1": 1.5, "t2": 2.0}, "valid": {"v0": 1.0}, "test": {"s0": 1.2, "s1": 0.8}}
Usage = namedtuple("Usage", "total used free")


def write_dataset(root: Path) -> Path:
    """A generated-layout dataset with its split file: five 16-bit wavs per song, lengths of SONGS."""
    rng = np.random.default_rng(0)
    for subset, songs in SONGS.items():
        for name, seconds in songs.items():
            folder = root / ("test" if subset == "test" else "train") / name
            folder.mkdir(parents=True)
            stems = {s: 0.1 * rng.standard_normal((round(seconds * SR), 2)) for s in ("drums", "bass", "other",
                                                                                       "vocals")}
            for stem, audio in {**stems, "mixture": sum(stems.values())}.items():
                sf.write(folder / f"{stem}.wav", audio, SR, subtype="PCM_16")
    (root / DATASET_FILE).write_text(json.dumps({"split": {k: sorted(v) for k, v in SONGS.items()}}))
    return root


@pytest.fixture
def dataset(tmp_path) -> Path:
    return write_dataset(tmp_path / "data")


@pytest.fixture
def tiny(params, dataset, tmp_path):
    """Embedded params over the test's dataset (synth origin, no extra test songs) and a cache in tmp_path."""
    return params.replace({"data": {"root": str(dataset), "origin": "synth", "extra_test": []},
                           "augment": {**GRID, "root": str(tmp_path / "cache")}})


def write_params(params, path: Path) -> Path:
    path.write_text(yaml.safe_dump(params.standalone()))
    return path


def stage(plan, name):
    return next(s for s in plan.stages if s.name == name)


# ---- songs -------------------------------------------------------------------------------------------------------
def test_song_lengths_are_read_from_the_dataset_on_disk(tiny):
    songs = read_songs(tiny.data)
    assert songs.source == ON_DISK
    assert songs.train == pytest.approx(tuple(SONGS["train"].values()))
    assert songs.valid == pytest.approx((1.0,)) and songs.test == pytest.approx((1.2, 0.8)) and songs.extra == ()


def test_extra_test_songs_are_read_too(tiny, real_clip):
    songs = read_songs(tiny.replace({"data": {"extra_test": [str(real_clip)]}}).data)
    assert songs.extra == pytest.approx((12.9,), abs=0.1) and len(songs.scored) == 3


def test_a_synth_dataset_not_generated_yet_is_planned_from_data_synth(params, tmp_path):
    data = params.replace({"data": {"root": str(tmp_path / "absent"), "origin": "synth", "extra_test": [],
                                    "synth": {"tracks": 7, "valid_tracks": 1, "test_tracks": 2, "seconds": 3}}}).data
    songs = read_songs(data)
    assert songs.source == PLANNED_SYNTH
    assert (songs.train, songs.valid, songs.test) == ((3,) * 4, (3,), (3, 3))


@pytest.mark.parametrize("valid_split, n_train, n_valid", [("musdb", 86, 14), ("none", 100, 0)])
def test_an_absent_musdb_dataset_is_assumed_at_its_nominal_size(params, tmp_path, valid_split, n_train, n_valid):
    data = params.replace({"data": {"root": str(tmp_path / "absent"), "origin": "fetch", "extra_test": [],
                                    "valid_split": valid_split}}).data
    songs = read_songs(data)
    assert songs.source == ASSUMED_MUSDB and (len(songs.train), len(songs.valid), len(songs.test)) == (
        n_train, n_valid, 50)
    assert sum(songs.train) + sum(songs.valid) == pytest.approx(20_520 + 3_340) and sum(songs.test) == 12_600


# ---- jobs and disk -----------------------------------------------------------------------------------------------
def test_job_counts_are_the_workflows(tiny):
    plan = make_plan(tiny)
    jobs = {s.name: s.jobs for s in plan.stages}
    # on disk: nothing to make; one augmentation job per training song; 4 separators, the 2 Mixers of
    # common.smk's MIXER_RUNS; one separation per test song, each Mixer over it; 7 scored runs (RUNS: the stand-in
    # second system blended with and without the Mixer)
    assert jobs == {"dataset": 0, "data check": 1, "augmentation": 3, "train separators": 4, "train Mixers": 2,
                    "separate test songs": 2, "Mixers over estimates": 4, "scoring": 14, "aggregate + report": 8}


def test_imported_models_skip_augmentation_and_training(tiny):
    plan = make_plan(tiny.replace({"models": {"origin": "import", "published": {"files": {"mixer": None}}}}))
    jobs = {s.name: s.jobs for s in plan.stages}
    assert jobs["augmentation"] == jobs["train separators"] == jobs["train Mixers"] == 0
    assert jobs["Mixers over estimates"] == 0 and jobs["scoring"] == 3 * 2  # no-mixer and the two baselines


def test_augmentation_cache_bytes_are_the_exact_arithmetic(tiny):
    seconds = sum(SONGS["train"].values())
    # seconds x sum(1/rate) x 4 stems x 2 channels x 2 bytes, at the named FLAC ratio (an upper bound: 0.5)
    expected = seconds * SR * sum(1 / r for r in GRID_RATES) * 4 * 2 * 2 * diskspace.FLAC_RATIO
    assert diskspace.FLAC_RATIO == 0.5
    assert stage(make_plan(tiny), "augmentation").disk_bytes == pytest.approx(expected, abs=3)  # rounded per song


def test_the_refusal_and_the_plan_share_one_estimate(tiny, dataset):
    tracks = [dataset / "train" / name for name in SONGS["train"]]
    needed, pending = pending_bytes(tracks, tiny.augment)
    assert pending == 3 and needed == stage(make_plan(tiny), "augmentation").disk_bytes
    folder = Path(tiny.augment.root) / "t2"  # a finished, matching cache no longer counts
    folder.mkdir(parents=True)
    (folder / MANIFEST).write_text(json.dumps(expected_manifest(tracks[2], tiny.augment)))
    assert pending_bytes(tracks, tiny.augment) == (diskspace.cache_bytes(2.5, GRID_RATES), 2)


def test_estimates_and_scores_grow_with_the_scored_audio(tiny):
    plan = make_plan(tiny)
    estimates = 2.0 * SR * 2 * 4 * 4  # 2 s of test audio, float32 stereo, 4 sources
    weights = stage(plan, "train separators").disk_bytes / COST_MODEL.checkpoint_weight_copies  # fp32, 4 nets
    assert stage(plan, "separate test songs").disk_bytes == pytest.approx(estimates + weights, abs=1)  # + ONNX
    assert stage(plan, "Mixers over estimates").disk_bytes == pytest.approx(2 * estimates, abs=2)
    assert stage(plan, "scoring").disk_bytes == pytest.approx(7 * 2.0 * COST_MODEL.score_bytes_per_audio_s, abs=1)  # 7 runs


# ---- the paper run -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def paper_plan(tmp_path_factory):
    # bench/README.md's cost model was written for 300,000 steps per source (train.unit steps); the authors'
    # epochs are planned in test_train_length.py
    params = load_params(REPO / "params.yaml", profile="paper")
    absent = tmp_path_factory.mktemp("absent") / "musdb18hq"
    return make_plan(params.replace({"data": {"root": str(absent)}, "train": {"unit": "steps"}}))


def test_paper_profile_on_assumed_musdb_reproduces_the_cost_model(paper_plan):
    assert paper_plan.songs.source == ASSUMED_MUSDB
    cache = stage(paper_plan, "augmentation")
    assert 100e9 <= cache.disk_bytes < 1000e9  # hundreds of GB: 20,520 s x 24.52 song lengths of FLAC
    assert cache.disk_bytes == pytest.approx(20_520 * 24.52 * SR * 16 * 0.5, rel=1e-3)
    assert cache.jobs == 86 and cache.cpu_s / 3600 == pytest.approx(13, abs=0.5)  # bench: "~13 h"
    years = stage(paper_plan, "train separators").cpu_s / 3600 / 24 / 365
    assert 6 < years < 9  # bench: "~7.6-8.7 years for the four separators" (plus validation)
    assert stage(paper_plan, "train Mixers").cpu_s / 86400 == pytest.approx(6.5, abs=0.3)  # "~6.5 days for both"
    assert stage(paper_plan, "separate test songs").cpu_s / 3600 == pytest.approx(4.0, abs=0.2)  # "4.0 h idle"
    assert 245e9 < paper_plan.disk_bytes < 300e9  # "~245-300 GB for the paper/authors recipes"
    # bench/README.md "GPU rehearsal on an H200": 41.7 chunks/s at batch 8, 43.6 at 16 (fp16 AMP), separation
    # 135.2 s of audio/s: 3 x 2.4M / 41.7 + 4.8M / 43.6 s = 78.5 h of training steps, validation on top
    hours = stage(paper_plan, "train separators").gpu_s / 3600
    assert (3 * 2.4e6 / 41.7 + 4.8e6 / 43.6) / 3600 < hours < 81
    assert paper_plan.gpu_s / 3600 == pytest.approx(hours + 0.78 + 0.07, abs=0.1)  # + Mixers + separation


def test_the_rate_table_matches_the_model_code():
    """The FLOPs the measured rates are tied to are the paper-size networks' as this code builds them."""
    params = load_params(REPO / "params.yaml", profile="paper")
    assert forward_flop(params, "vocals") == pytest.approx(COST_MODEL.paper_forward_flop, rel=1e-3)
    assert separation_flop_per_audio_s(params) == pytest.approx(COST_MODEL.paper_separate_flop_per_audio_s,
                                                                rel=1e-3)


def test_gpu_figures_fill_the_gpu_column(tmp_path):
    params = load_params(REPO / "params.yaml", profile="paper").replace(
        {"data": {"root": str(tmp_path / "absent")}, "train": {"unit": "steps", "valid_every": 300000}})
    only_batch_8 = dataclasses.replace(COST_MODEL, gpu_train_chunks_per_s={8: 100.0})
    plan = make_plan(params, cost=only_batch_8)
    assert stage(plan, "train separators").gpu_s is None  # vocals train at batch 16: no figure for it
    assert "no GPU figure for batch 16" in render_table(plan)
    cost = dataclasses.replace(only_batch_8, gpu_train_chunks_per_s={8: 100.0, 16: 50.0},
                               gpu_separate_audio_s_per_s=20.0)
    plan = make_plan(params, cost=cost)
    valid = 3_340 * forward_flop(params, "vocals") / (255 * 1024 / SR) * 4 / (20.0 * 154.2e9)  # one validation
    assert stage(plan, "train separators").gpu_s == pytest.approx(3 * 300_000 * 8 / 100 + 300_000 * 16 / 50 + valid,
                                                                  rel=1e-3)
    assert stage(plan, "separate test songs").gpu_s == pytest.approx(
        12_600 / 20.0 * separation_flop_per_audio_s(params) / 154.2e9 + 50 * 3.0, rel=1e-6)
    assert plan.gpu_s == pytest.approx(sum(s.gpu_s for s in plan.stages if s.gpu))
    assert "no GPU figure" not in render_table(plan)


def data_gpu_hours(json_file) -> str:
    """The JSON's GPU total as the table prints it (3 significant digits)."""
    return f"{json.loads(json_file.read_text())['total']['gpu_hours']:.3g}"


def test_cli_prints_the_table_and_writes_the_same_as_json(tmp_path, capsys):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"]["root"] = str(tmp_path / "absent")
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw))
    out = tmp_path / "plan.json"
    assert main(["--params", str(params_file), "plan", "--profile", "paper", "--recipe", "mdxnet",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "estimates" in text and "recipe mdxnet, profile paper" in text and "assumed MUSDB18-HQ" in text
    assert "total: disk" in text and f"GPU ~{data_gpu_hours(out)} h" in text
    data = json.loads(out.read_text())
    assert data["estimates"] is True and data["dataset"]["source"] == ASSUMED_MUSDB
    assert data["total"]["disk_bytes"] == sum(s["disk_bytes"] for s in data["stages"])
    cache = next(s for s in data["stages"] if s["name"] == "augmentation")
    assert cache["disk_bytes"] == pytest.approx(20_520 * 8.10 * SR * 16 * 0.5, rel=1e-3)  # mdxnet's 8-variant axes
    assert f"{cache['disk_bytes'] / 1e9:.1f} GB" in text


# ---- the room check of `mdxnet augment` -------------------------------------------------------------------------
def augment_cli(params_file: Path, dataset: Path, cache: Path, track: str = "t0") -> int:
    return main(["--params", str(params_file), "augment", "--track", track, "--root", str(dataset),
                 "--out", str(cache)])


def fake_free(monkeypatch, free: int) -> None:
    monkeypatch.setattr(diskspace.shutil, "disk_usage", lambda path: Usage(10 * free + 1, 9 * free + 1, free))


def test_augment_refuses_when_the_whole_cache_would_not_fit(tiny, dataset, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    needed = sum(diskspace.cache_bytes(s, GRID_RATES) for s in SONGS["train"].values())
    free = diskspace.cache_bytes(1.0, GRID_RATES) * 2  # room for the track of this job, not for all three
    fake_free(monkeypatch, free)
    assert augment_cli(write_params(tiny, tmp_path / "params.yaml"), dataset, cache) == 2
    err = capsys.readouterr().err
    assert f"need ~{diskspace.gigabytes(diskspace.with_margin(needed))}" in err  # the cache and the free space
    assert f"only {diskspace.gigabytes(free)} are free" in err
    assert "3 track(s) still to render x 8 variants" in err and str(cache) in err
    assert "augment.root" in err and "augment.grid" in err and "augment.pitch_semitones" in err
    assert not cache.exists()  # nothing written


@pytest.mark.skipif(shutil.which("rubberband") is None, reason="rubberband-cli is not installed")
def test_augment_proceeds_when_the_cache_fits(tiny, dataset, tmp_path, monkeypatch):
    small = tiny.replace({"augment": {"pitch_semitones": [1], "tempo_rates": []}})  # one variant: quick
    needed = sum(diskspace.cache_bytes(s, [1.0]) for s in SONGS["train"].values())
    fake_free(monkeypatch, diskspace.with_margin(needed))
    cache = tmp_path / "cache"
    assert augment_cli(write_params(small, tmp_path / "params.yaml"), dataset, cache) == 0
    assert (cache / "t0" / MANIFEST).is_file()
    fake_free(monkeypatch, 0)  # a finished cache is not checked again: nothing to write
    assert augment_cli(write_params(small, tmp_path / "params.yaml"), dataset, cache) == 0


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 1 MiB tmpfs (needs the right to mount: root); skipped where mounting is not permitted."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_augment_refuses_on_a_real_small_file_system(tiny, dataset, tmp_path, small_tmpfs, capsys):
    cache = small_tmpfs / "cache"
    free = shutil.disk_usage(small_tmpfs).free
    assert augment_cli(write_params(tiny, tmp_path / "params.yaml"), dataset, cache) == 2
    err = capsys.readouterr().err
    assert f"{diskspace.gigabytes(free)} are free on the file system of {small_tmpfs}" in err
    assert list(small_tmpfs.iterdir()) == []


# ---- bad datasets and values ------------------------------------------------------------------------------------
def test_an_empty_dataset_is_planned_with_a_warning(tiny, tmp_path, capsys):
    empty = tmp_path / "empty"
    for folder in ("train", "test"):
        (empty / folder).mkdir(parents=True)
    params = tiny.replace({"data": {"root": str(empty), "origin": "existing", "valid_split": "none"}})
    assert main(["--params", str(write_params(params, tmp_path / "params.yaml")), "plan"]) == 0
    err = capsys.readouterr().err
    assert f"data.root {empty} holds no training songs" in err and "holds no test songs" in err


def test_a_tempo_rate_near_zero_is_refused_by_key(params):
    from mdxnet.config import ParamsError

    with pytest.raises(ParamsError, match="augment.tempo_rates"):
        params.replace({"augment": {"tempo_rates": [1e-320]}})


def test_one_unreadable_training_track_is_named_by_plan_and_augment(tiny, dataset, tmp_path, capsys):
    (dataset / "train" / "t1" / "mixture.wav").write_bytes(b"not a wav file")
    params_file = write_params(tiny, tmp_path / "params.yaml")
    assert main(["--params", str(params_file), "plan"]) == 2
    assert f"track {dataset / 'train' / 't1'} cannot be read" in capsys.readouterr().err
    assert augment_cli(params_file, dataset, tmp_path / "cache", track="t0") == 2
    err = capsys.readouterr().err
    assert f"track {dataset / 'train' / 't1'} cannot be read" in err and "mdxnet data check" in err
    assert not (tmp_path / "cache").exists()


def test_noise_that_fills_the_disk_despite_the_check_leaves_no_partial_cache(tiny, tmp_path, small_tmpfs, capsys):
    """White noise does not compress: its FLAC is ~WAV's size, twice the check's estimate. The room check passes,
    the disk fills midway; the track's partial cache is removed and the error is one named line."""
    root = tmp_path / "noise"
    rng = np.random.default_rng(0)
    for subset, name in (("train", "n0"), ("test", "s0")):
        (root / subset / name).mkdir(parents=True)
        stems = {s: rng.uniform(-0.2, 0.2, (round(0.3 * SR), 2)) for s in ("drums", "bass", "other", "vocals")}
        for stem, audio in {**stems, "mixture": sum(stems.values())}.items():
            sf.write(root / subset / name / f"{stem}.wav", audio, SR, subtype="PCM_16")
    (root / DATASET_FILE).write_text(json.dumps({"split": {"train": ["n0"], "valid": [], "test": ["s0"]}}))
    params = tiny.replace({"data": {"root": str(root)}})
    needed, _ = pending_bytes([root / "train" / "n0"], params.augment, small_tmpfs / "cache")
    assert diskspace.with_margin(needed) < shutil.disk_usage(small_tmpfs).free < 2 * needed  # passes the check
    assert augment_cli(write_params(params, tmp_path / "params.yaml"), root, small_tmpfs / "cache", "n0") == 2
    err = capsys.readouterr().err
    assert "writing the augmentation cache of n0" in err and "its partial cache was removed" in err
    assert not (small_tmpfs / "cache" / "n0").exists()


@pytest.fixture
def stem_dataset(tiny, tmp_path, stempeg_clip):
    """A MUSDB18-layout dataset of one training and one test stem file."""
    root = tmp_path / "musdb18"
    for subset in ("train", "test"):
        (root / subset).mkdir(parents=True)
        shutil.copyfile(stempeg_clip, root / subset / f"{subset} song.stem.mp4")
    return root


@pytest.mark.parametrize("where", ["below a file", "full"])
def test_a_decoded_root_that_cannot_take_the_decoded_stems_is_named_before_augmenting(
        tiny, tmp_path, stem_dataset, monkeypatch, capsys, where, request):
    """The stems were decoded after the augmentation work, and a read-only or full data.decoded_root gave a
    traceback then."""
    import mdxnet.data.augment as augment

    if where == "full":
        decoded = request.getfixturevalue("small_tmpfs") / "decoded"
    else:
        (tmp_path / "a file").write_text("")
        decoded = tmp_path / "a file" / "decoded"
    params = tiny.replace({"data": {"root": str(stem_dataset), "dataset": "musdb18", "valid_split": "none",
                                    "decoded_root": str(decoded)}})
    monkeypatch.setattr(augment, "augment_track", lambda *a, **k: pytest.fail("augmented first"))
    assert augment_cli(write_params(params, tmp_path / "params.yaml"), stem_dataset, tmp_path / "cache",
                       "train song") == 2
    err = capsys.readouterr().err
    assert f"data.decoded_root {decoded}" in err and ("nothing was written" in err or "cannot be written" in err)
    assert not decoded.exists()
