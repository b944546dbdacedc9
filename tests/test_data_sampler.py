"""The training sampler: exact mixtures, determinism per (seed, index), remixing, silence handling, shapes."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from mdxnet.data.musdb import list_tracks
from mdxnet.data.sampler import (
    RemixDataset,
    SamplerConfig,
    Variant,
    build_train_dataset,
    track_variants,
    validation_tracks,
)

CHUNK = 8192


def sampler_settings(**values) -> SamplerConfig:
    """Sampler settings with every random change off unless a test turns it on."""
    plain = dict(remix_prob=0.0, gain_db=(0.0, 0.0), channel_swap_prob=0.0, silence_db=-60.0,
                 silent_redraw_prob=0.0, max_redraws=4)
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


def test_default_length_is_training_steps_times_batch(synth_dataset, params, tmp_path):
    p = params.replace({"augment": {"root": str(tmp_path / "none")}})
    ds = build_train_dataset(p, CHUNK, seed=0, root=synth_dataset)
    assert len(ds) == p.train.steps * p.train.batch_size


def _synthetic_variant(tmp_path, name, level, silent=()):
    """A fake track whose stem s is a constant `level * (index + 1)` (0 for stems in `silent`)."""
    folder = tmp_path / name
    folder.mkdir()
    for k, source in enumerate(["vocals", "drums", "bass", "other"]):
        value = 0.0 if source in silent else level * (k + 1)
        sf.write(folder / f"{source}.wav", np.full((20000, 2), value), 44100, subtype="FLOAT")
    return [Variant(name, "original", {s: folder / f"{s}.wav" for s in ["vocals", "drums", "bass", "other"]},
                    20000)]


def test_no_remix_keeps_stems_from_one_track_and_remix_mixes_tracks(tmp_path):
    tracks = [_synthetic_variant(tmp_path, f"t{i}", 0.01 * (i + 1)) for i in range(5)]
    sources = ["vocals", "drums", "bass", "other"]
    plain = sampler_settings(remix_prob=0.0, gain_db=(0.0, 0.0), channel_swap_prob=0.0)
    for i in range(20):
        targets = RemixDataset(tracks, sources, 256, 20, seed=1, config=plain)[i][1]
        levels = targets[:, 0, 0] / torch.tensor([1.0, 2.0, 3.0, 4.0])
        assert torch.allclose(levels, levels[0].expand(4))  # every stem from the same track
    remix = sampler_settings(remix_prob=1.0, gain_db=(0.0, 0.0), channel_swap_prob=0.0)
    mixed = 0
    for i in range(20):
        targets = RemixDataset(tracks, sources, 256, 20, seed=1, config=remix)[i][1]
        levels = targets[:, 0, 0] / torch.tensor([1.0, 2.0, 3.0, 4.0])
        mixed += not torch.allclose(levels, levels[0].expand(4))
    assert mixed >= 10


def test_gain_range_is_applied(tmp_path):
    tracks = [_synthetic_variant(tmp_path, "t", 0.05)]
    config = sampler_settings(remix_prob=0.0, gain_db=(-6.0, 6.0), channel_swap_prob=0.0)
    ds = RemixDataset(tracks, ["vocals", "drums", "bass", "other"], 128, 40, seed=0, config=config)
    ratios = torch.stack([ds[i][1][:, 0, 0] / torch.tensor([0.05, 0.1, 0.15, 0.2]) for i in range(40)])
    assert ratios.min() >= 10 ** (-6 / 20) - 1e-5 and ratios.max() <= 10 ** (6 / 20) + 1e-5
    assert ratios.std() > 0.1


def test_silent_stems_are_redrawn(tmp_path):
    sources = ["vocals", "drums", "bass", "other"]
    silent_vocals = _synthetic_variant(tmp_path, "a", 0.02, silent=("vocals",))
    sung = _synthetic_variant(tmp_path, "b", 0.02)
    keep = sampler_settings(remix_prob=0.0, silent_redraw_prob=0.0)
    redraw = sampler_settings(remix_prob=0.0, silent_redraw_prob=1.0, max_redraws=20)
    kept = RemixDataset([silent_vocals, sung], sources, 128, 200, seed=3, config=keep)
    drawn = RemixDataset([silent_vocals, sung], sources, 128, 200, seed=3, config=redraw)
    silent_kept = sum(float(kept[i][1][0].abs().max()) == 0 for i in range(200))
    silent_drawn = sum(float(drawn[i][1][0].abs().max()) == 0 for i in range(200))
    assert silent_kept > 60 and silent_drawn == 0


def test_uses_augmentation_variants_when_cached(synth_dataset, params, tmp_path):
    from mdxnet.data.augment import augment_track

    p = params.replace({"augment": {"root": str(tmp_path / "aug"), "pitch_semitones": [1], "tempo_rates": []}})
    track = list_tracks(synth_dataset, "train")[0]
    augment_track(track, p, progress=False)
    names = [v.name for v in track_variants(p, track)]
    assert names == ["original", "pitch+1"]
    assert [v.name for v in track_variants(p, track, use_augmented=False)] == ["original"]


def test_validation_tracks(synth_dataset, params):
    assert [t.name for t in validation_tracks(params, root=synth_dataset)] == [
        t.name for t in list_tracks(synth_dataset, "valid")]
