"""The training sampler: exact mixtures, determinism per (seed, index), independent draws per source, the
(track, variant) draw, per-stem transforms, silence handling, shapes."""

from __future__ import annotations

import random

import numpy as np
import pytest
import soundfile as sf
import torch
from audiomentations import Gain

from mdxnet.config import ParamsError
from mdxnet.data.musdb import list_tracks, split_tracks
from mdxnet.data.sampler import (
    RemixDataset,
    SamplerConfig,
    Variant,
    build_train_dataset,
    sampler_config,
    track_variants,
)
from mdxnet.transforms import SwapChannels, build_transforms

CHUNK = 8192
SOURCES = ["vocals", "drums", "bass", "other"]
UNIT = 0.002  # level step of the coded synthetic stems
GAIN = {"name": "Gain", "p": 1.0, "args": {"min_gain_db": -3.0, "max_gain_db": 3.0}}
SWAP = {"name": "SwapChannels", "p": 0.5, "args": {}}


def sampler_settings(**values) -> SamplerConfig:
    """Sampler settings with every random change off unless a test turns it on."""
    plain = dict(variant_draw="pairs", remix_prob=0.0, transforms=(), silence_db=-60.0, silent_redraw_prob=0.0,
                 max_redraws=4)
    return SamplerConfig(**{**plain, **values})


@pytest.fixture
def dataset(synth_dataset, params, tmp_path):
    p = params.replace({"augment": {"root": str(tmp_path / "no-cache")}})
    return build_train_dataset(p, CHUNK, seed=5, length=50, root=synth_dataset), p


def test_shapes_and_exact_mixture(dataset):
    ds, p = dataset
    assert len(ds) == 50
    for i in range(10):
        mixture, targets = ds[i]
        assert mixture.shape == (2, CHUNK) and targets.shape == (len(p.sources), 2, CHUNK)
        assert mixture.dtype == torch.float32 and targets.dtype == torch.float32
        assert torch.equal(mixture, targets.sum(dim=0))


def test_same_seed_same_items_and_indices_differ(dataset, synth_dataset, params, tmp_path):
    ds, p = dataset
    again = build_train_dataset(p, CHUNK, seed=5, length=50, root=synth_dataset)
    for i in (0, 7, 49):
        assert torch.equal(ds[i][1], again[i][1])
    assert not torch.equal(ds[0][1], ds[1][1])
    other_seed = build_train_dataset(p, CHUNK, seed=6, length=50, root=synth_dataset)
    assert not torch.equal(ds[0][1], other_seed[0][1])
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=False)
    batch = next(iter(loader))
    assert batch[0].shape == (4, 2, CHUNK) and torch.equal(batch[1][2], ds[2][1])


def test_transformed_items_are_a_pure_function_of_seed_and_index(synth_dataset, params, tmp_path):
    """audiomentations draws from the global random states: the sampler seeds them per item and restores them."""
    p = params.replace({"augment": {"root": str(tmp_path / "no-cache")}, "sampler": {"transforms": [GAIN, SWAP]}})
    ds = build_train_dataset(p, CHUNK, seed=5, length=40, root=synth_dataset)
    random.seed(1)
    np.random.seed(1)
    first = [ds[i][1] for i in range(8)]
    random.seed(2)  # whatever other code did to the global states in between
    np.random.seed(2)
    state_random, state_numpy = random.getstate(), np.random.get_state()
    again = build_train_dataset(p, CHUNK, seed=5, length=40, root=synth_dataset)
    for i in reversed(range(8)):
        assert torch.equal(again[i][1], first[i])
    assert random.getstate() == state_random  # the item's seeding left the global states as they were
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), state_numpy, strict=True))
    workers = torch.utils.data.DataLoader(again, batch_size=4, shuffle=False, num_workers=2)
    assert torch.equal(next(iter(workers))[1], torch.stack(first[:4]))
    plain = build_train_dataset(p.replace({"sampler": {"transforms": []}}), CHUNK, seed=5, length=40,
                                root=synth_dataset)
    assert not torch.equal(plain[0][1], first[0])  # the transforms did change the stems


# ---- coded synthetic tracks: every stem tells which (track, variant) it was read from ---------------------------
def _coded_track(tmp_path, track: int, variants: int, frames: int = 2048) -> list[Variant]:
    """Track `track` with its original and `variants` cached variants: stem k of variant v is the constant
    UNIT * (1 + 10 * track + v) * (k + 1) (left) and its negative (right)."""
    found = []
    for v in range(variants + 1):
        name = "original" if v == 0 else f"variant{v}"
        folder = tmp_path / f"t{track}" / name
        folder.mkdir(parents=True)
        for k, source in enumerate(SOURCES):
            value = UNIT * (1 + 10 * track + v) * (k + 1)
            sf.write(folder / f"{source}.wav", np.tile([value, -value], (frames, 1)), 44100, subtype="FLOAT")
        found.append(Variant(f"t{track}", name, {s: folder / f"{s}.wav" for s in SOURCES}, frames))
    return found


def _drawn(targets: torch.Tensor) -> list[tuple[int, int]]:
    """(track, variant) of each source of an item's (S, 2, L) targets read from coded tracks."""
    codes = torch.round(targets[:, 0, 0] / torch.arange(1, 5) / UNIT).int() - 1
    return [(int(c) // 10, int(c) % 10) for c in codes]


def test_remixing_draws_every_source_independently(tmp_path):
    tracks = [_coded_track(tmp_path, t, variants=2) for t in range(5)]
    remix = RemixDataset(tracks, SOURCES, 256, 600, seed=1, config=sampler_settings(remix_prob=1.0))
    drawn = np.array([[track for track, _ in _drawn(remix[i][1])] for i in range(600)])  # (items, sources)
    for a, b in [(0, 1), (0, 3), (2, 3)]:
        table = np.zeros((5, 5))
        np.add.at(table, (drawn[:, a], drawn[:, b]), 1)
        expected = np.outer(table.sum(1), table.sum(0)) / table.sum()
        chi2 = float(((table - expected) ** 2 / expected).sum())
        assert chi2 < 40  # 16 degrees of freedom: independent draws give ~16; equal tracks would give ~2400
        assert 0.14 < np.mean(drawn[:, a] == drawn[:, b]) < 0.26  # 1 in 5 by chance
    plain = RemixDataset(tracks, SOURCES, 256, 50, seed=1, config=sampler_settings(remix_prob=0.0))
    assert all(len(set(_drawn(plain[i][1]))) == 1 for i in range(50))  # no remixing: one (track, variant)


def test_pairs_draw_is_uniform_over_track_variant_pairs(tmp_path):
    """Tracks with 0, 2 and 5 cached variants: 10 (track, variant) pairs, each 1 in 10 under `pairs`."""
    tracks = [_coded_track(tmp_path, t, variants=n) for t, n in enumerate([0, 2, 5])]

    def counts(draw: str) -> dict[tuple[int, int], int]:
        ds = RemixDataset(tracks, SOURCES, 256, 500, seed=2,
                          config=sampler_settings(variant_draw=draw, remix_prob=1.0))
        found: dict[tuple[int, int], int] = {}
        for i in range(500):
            for pair in _drawn(ds[i][1]):
                found[pair] = found.get(pair, 0) + 1
        return found

    pairs = counts("pairs")
    assert len(pairs) == 10 and all(150 <= n <= 250 for n in pairs.values())  # 2000 draws, 200 expected each
    for track, variants in enumerate([0, 2, 5]):
        of_track = sum(n for (t, _), n in pairs.items() if t == track)
        assert abs(pairs[(track, 0)] / of_track - 1 / (variants + 1)) < 0.05  # the original: 1 in variants + 1
    per_track = counts("per_track")  # a track first: the track without variants gets 1/3 instead of 1/10
    assert 0.28 < per_track[(0, 0)] / 2000 < 0.39 and 0.07 < pairs[(0, 0)] / 2000 < 0.13


def test_gain_transform_range_is_applied(tmp_path):
    tracks = [_coded_track(tmp_path, 0, variants=0)]
    gain = build_transforms([{"name": "Gain", "p": 1.0, "args": {"min_gain_db": -6.0, "max_gain_db": 6.0}}])
    ds = RemixDataset(tracks, SOURCES, 128, 40, seed=0, config=sampler_settings(transforms=gain))
    ratios = torch.stack([ds[i][1][:, 0, 0] / (UNIT * torch.arange(1, 5)) for i in range(40)])
    assert ratios.min() >= 10 ** (-6 / 20) - 1e-5 and ratios.max() <= 10 ** (6 / 20) + 1e-5
    assert ratios.std() > 0.1
    assert all(torch.equal(ds[i][0], ds[i][1].sum(0)) for i in range(5))  # the mixture sums transformed stems


def test_swap_channels_transform(tmp_path):
    tracks = [_coded_track(tmp_path, 0, variants=0)]
    always = RemixDataset(tracks, SOURCES, 128, 10, seed=0,
                          config=sampler_settings(transforms=build_transforms([{**SWAP, "p": 1.0}])))
    assert all(bool((always[i][1][:, 0] < 0).all()) for i in range(10))  # left (positive) went right
    half = RemixDataset(tracks, SOURCES, 128, 50, seed=0, config=sampler_settings(transforms=build_transforms([SWAP])))
    swapped = torch.stack([half[i][1][:, 0, 0] < 0 for i in range(50)])  # (items, sources): decided per stem
    assert 0.35 < swapped.float().mean() < 0.65 and swapped.any(1).sum() > swapped.all(1).sum()


def test_params_transforms_are_built_in_order(synth_dataset, params, tmp_path):
    p = params.replace({"augment": {"root": str(tmp_path / "no-cache")}, "sampler": {"transforms": [GAIN, SWAP]}})
    gain, swap = sampler_config(p.sampler, p.train.remix_prob).transforms
    assert isinstance(gain, Gain) and (gain.p, gain.min_gain_db, gain.max_gain_db) == (1.0, -3.0, 3.0)
    assert isinstance(swap, SwapChannels) and swap.p == 0.5
    assert sampler_config(params.sampler, params.train.remix_prob).transforms == ()


@pytest.mark.parametrize("entry, key", [
    ({"name": "NoSuchTransform", "p": 0.5, "args": {}}, "sampler.transforms.1.name"),
    ({"name": "Compose", "p": 0.5, "args": {}}, "sampler.transforms.1.name"),  # not a waveform transform
    ({"name": "AddShortNoises", "p": 0.5, "args": {}}, "sampler.transforms.1.name"),  # mono only
    ({"name": "Gain", "p": 0.5, "args": {"min_gain_db": 3.0, "max_gain_db": -3.0}}, "sampler.transforms.1.args"),
    ({"name": "Gain", "p": 0.5, "args": {"gain": 3.0}}, "sampler.transforms.1.args"),
    ({"name": "Gain", "p": 0.5, "args": {"p": 1.0}}, "sampler.transforms.1.args.p"),
])
def test_bad_transforms_are_refused_when_params_are_read(params, entry, key):
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        params.replace({"sampler": {"transforms": [GAIN, entry]}})


def test_transform_entries_are_closed_in_the_schema(params):
    with pytest.raises(ParamsError, match="sampler.transforms.0"):
        params.replace({"sampler": {"transforms": [{"name": "Gain", "args": {}}]}})  # no p
    with pytest.raises(ParamsError, match="sampler.transforms.0"):
        params.replace({"sampler": {"transforms": [{**GAIN, "prob": 0.5}]}})


def _synthetic_variant(tmp_path, name, level, silent=()):
    """A fake track whose stem s is a constant `level * (index + 1)` (0 for stems in `silent`)."""
    folder = tmp_path / name
    folder.mkdir()
    for k, source in enumerate(SOURCES):
        value = 0.0 if source in silent else level * (k + 1)
        sf.write(folder / f"{source}.wav", np.full((20000, 2), value), 44100, subtype="FLOAT")
    return [Variant(name, "original", {s: folder / f"{s}.wav" for s in SOURCES}, 20000)]


def test_silent_stems_are_redrawn(tmp_path):
    silent_vocals = _synthetic_variant(tmp_path, "a", 0.02, silent=("vocals",))
    sung = _synthetic_variant(tmp_path, "b", 0.02)
    keep = sampler_settings(remix_prob=0.0, silent_redraw_prob=0.0)
    redraw = sampler_settings(remix_prob=0.0, silent_redraw_prob=1.0, max_redraws=20)
    kept = RemixDataset([silent_vocals, sung], SOURCES, 128, 200, seed=3, config=keep)
    drawn = RemixDataset([silent_vocals, sung], SOURCES, 128, 200, seed=3, config=redraw)
    silent_kept = sum(float(kept[i][1][0].abs().max()) == 0 for i in range(200))
    silent_drawn = sum(float(drawn[i][1][0].abs().max()) == 0 for i in range(200))
    assert silent_kept > 60 and silent_drawn == 0


def test_uses_augmentation_variants_when_cached(synth_dataset, params, tmp_path):
    from mdxnet.data.augment import augment_track, variants

    p = params.replace({"augment": {"root": str(tmp_path / "aug"), "pitch_semitones": [1], "tempo_rates": []}})
    track = list_tracks(synth_dataset, "train", p.data.valid_split)[0]
    augment_track(track, p.augment, progress=False)
    names = [v.name for v in track_variants(track, p.sources, p.data.decoded_root, p.augment)]
    assert len(variants(p.augment)) == 1 and names == ["original", *variants(p.augment)]
    originals = track_variants(track, p.sources, p.data.decoded_root, p.augment, use_augmented=False)
    assert [v.name for v in originals] == ["original"]


def test_validation_tracks(synth_dataset, params):
    assert [t.name for t in split_tracks(params, "valid", root=synth_dataset)] == [
        t.name for t in list_tracks(synth_dataset, "valid", params.data.valid_split)]


def test_stem_files_train_from_their_decoded_wavs(synth_dataset, params, tmp_path):
    """MUSDB18 layout: a training .stem.mp4 is decoded once into data.decoded_root, the chunks
    hold exactly what load_track reads from the stem file (musdb's 16-bit values), and a later build reuses the
    decoded wavs until the stem file changes."""
    import os
    import shutil

    from mdxnet.data.musdb import load_track
    from mdxnet.data.sampler import DECODED_STAMP
    from mdxnet.data.synth import encode_stem_file

    root = tmp_path / "musdb18"
    shutil.copytree(synth_dataset, root, ignore=lambda folder, names: [n for n in names if n.startswith("synth")])
    for subset in ("train", "test"):
        for track in (synth_dataset / subset).iterdir():
            encode_stem_file(track, root / subset / f"{track.name}.stem.mp4")
    p = params.replace({"data": {"dataset": "musdb18", "root": str(root), "decoded_root": str(tmp_path / "dec")},
                        "augment": {"root": str(tmp_path / "no-cache")}})
    ds = build_train_dataset(p, CHUNK, seed=5, length=8, root=root)
    stem_files = [t for t in split_tracks(p, "train", root)]
    assert stem_files and all(t.name.endswith(".stem.mp4") for t in stem_files)
    variant = ds.tracks[0][0]
    assert variant.paths["vocals"].parent == tmp_path / "dec" / variant.track
    decoded = load_track(stem_files[0])
    data, _ = sf.read(variant.paths["vocals"], dtype="float32", always_2d=True)
    np.testing.assert_array_equal(data.T, decoded["vocals"])
    mixture, targets = ds[3]
    assert torch.equal(mixture, targets.sum(dim=0)) and targets.abs().max() > 0
    stamp = tmp_path / "dec" / variant.track / DECODED_STAMP
    first = stamp.stat().st_mtime_ns
    build_train_dataset(p, CHUNK, seed=5, length=8, root=root)
    assert stamp.stat().st_mtime_ns == first  # decoded once
    os.utime(stem_files[0], ns=(first + 10**9, first + 10**9))  # the stem file is replaced: decoded again
    build_train_dataset(p, CHUNK, seed=5, length=8, root=root)
    assert stamp.stat().st_mtime_ns != first
