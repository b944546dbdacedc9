"""The training sampler: random chunks, drawn per source with cross-song remixing, then per-stem transforms.

Item i of a RemixDataset is a pure function of (seed, i) and the audio on disk, so a resumed training run that
continues from item `step * batch_size` sees exactly the batches it would have seen. Drawing an item:

1. a base (track, variant, offset), drawn as sampler.variant_draw says: `pairs` draws uniformly over every
   (track, variant) pair of the training tracks, a track's pairs being its original and its cached augmentation
   variants (`mdxnet.data.augment`), as the authors' MusdbTrainDataset draws from its metadata list
   (src/datamodules/datasets/musdb.py of kuielab/mdx-net); `per_track` (mdxnet's own) draws a track uniformly,
   then one of its variants. The offset is uniform over the variant's length (the authors' load_wav,
   src/utils/utils.py);
2. per source, with probability train.remix_prob the stem comes from its own independently drawn
   (track, variant, offset) instead of the base (cross-song remixing: the authors draw every source so, i.e.
   remix_prob 1; stems that are not remixed stay time-aligned with each other);
3. silence (mdxnet's own): a stem chunk whose RMS is below sampler.silence_db is re-drawn (as in 2) with
   probability sampler.silent_redraw_prob, at most sampler.max_redraws times; otherwise the silent target is
   kept (a separator must also learn to output silence). The authors never re-draw (probability 0);
4. sampler.transforms (mdxnet's own; the authors have none): waveform transforms applied to each stem in list
   order (`mdxnet.transforms`: audiomentations classes such as Gain, and SwapChannels), their random draws
   seeded from the item's generator;
5. the mixture is the sum of the (transformed) targets, computed after 4, so it is exact.

Audio is read lazily: each item reads its chunks from the wav files (soundfile seeks), so memory stays flat
whatever the dataset size, and DataLoader workers share nothing but paths. The OS page cache makes the small
embedded dataset effectively memory-resident anyway.

MUSDB18 (`.stem.mp4`, data.dataset: musdb18): each training stem file is decoded ONCE into 16-bit wavs under
data.decoded_root/<track>/ (`decoded_track`), and chunks are read from those. Why not decode per item: each
random chunk of an AAC stream costs an ffmpeg process (stempeg), measured 0.29 s per 261120-sample chunk of one
stream against 0.7 ms for the same chunk from the decoded wav (the 12.9 s real clip, 2 shared CPU cores), and an
item reads four stems; holding every decoded song in memory instead would take ~29 GB of float32 for the 86
training songs. The wavs hold exactly the values every other reader
takes from the stem file (`mdxnet.data.musdb.load_track`: musdb's 16-bit decoding), so training, validation and
scoring read the same audio. A stamp (the stem file's size and mtime) makes a replaced stem file decode again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from mdxnet.audio import SAMPLE_RATE
from mdxnet.config import Augment, Params, Sampler
from mdxnet.data.augment import cached_variants, stem_path, variants
from mdxnet.data.decoded import DECODED_STAMP, decoded_track  # noqa: F401 (DECODED_STAMP: re-exported)
from mdxnet.data.musdb import is_stem_file, split_tracks, track_name
from mdxnet.errors import UserError
from mdxnet.transforms import apply_transforms, build_transforms, seeded_global_random

log = logging.getLogger(__name__)

ORIGINAL = "original"


@dataclass(frozen=True)
class Variant:
    """One playable version of a track: its stems on disk and their common length."""

    track: str
    name: str
    paths: dict[str, Path]
    frames: int


VARIANT_DRAWS = ("pairs", "per_track")


@dataclass(frozen=True)
class SamplerConfig:
    variant_draw: str  # one of VARIANT_DRAWS
    remix_prob: float
    transforms: tuple  # built waveform transforms (mdxnet.transforms), applied per stem in order
    silence_db: float
    silent_redraw_prob: float
    max_redraws: int


def _variant(track: str, name: str, folder: Path, sources: list[str], cached: bool = False) -> Variant:
    """The original stems (MUSDB18-HQ wavs) of a track folder, or those of a cached augmentation variant."""
    paths = {s: stem_path(folder, s) if cached else folder / f"{s}.wav" for s in sources}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise UserError(f"training stem {missing[0]} is missing: run `mdxnet data check` (and `mdxnet augment`)")
    frames = min(sf.info(p).frames for p in paths.values())
    return Variant(track, name, paths, frames)


def track_variants(track: Path, sources: list[str], decoded_root: str | Path, augment: Augment,
                   use_augmented: bool = True) -> list[Variant]:
    """The `sources` stems of `track` (a MUSDB18-HQ folder, or a MUSDB18 stem file read from its decoded wavs
    under `decoded_root`, params data.decoded_root) plus its cached augmentation variants."""
    name, sources = track_name(track), list(sources)
    folder = decoded_track(track, decoded_root) if is_stem_file(track) else track
    found = [_variant(name, ORIGINAL, folder, sources)]
    if use_augmented:
        cached = cached_variants(augment, name)
        if not cached and variants(augment):  # a grid with variants but none cached
            log.warning("no augmentation cache for %s: run `mdxnet augment --track '%s'`", name, name)
        found += [_variant(name, v, folder, sources, cached=True) for v, folder in sorted(cached.items())]
    return found


def _read_chunk(path: Path, offset: int, length: int) -> np.ndarray:
    """(2, length) float32 from `offset`; zero-padded past the end."""
    data, rate = sf.read(path, start=offset, frames=length, dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE or data.shape[1] != 2:
        raise UserError(f"{path} is {rate} Hz, {data.shape[1]} channels; expected {SAMPLE_RATE} Hz stereo: "
                        "run `mdxnet data check`")
    chunk = np.zeros((2, length), dtype=np.float32)
    chunk[:, : data.shape[0]] = data.T
    return chunk


def _rms_db(chunk: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(chunk.astype(np.float64) ** 2) + 1e-20))


class RemixDataset(Dataset):
    """Random training chunks; item i -> (mixture (2, L), targets (S, 2, L)) float32, mixture == targets.sum(0)."""

    def __init__(self, tracks: list[list[Variant]], sources: list[str], chunk_samples: int, length: int,
                 seed: int, config: SamplerConfig):
        if not tracks:
            raise UserError("no training tracks: run `mdxnet data synth` or `mdxnet data fetch`")
        if config.variant_draw not in VARIANT_DRAWS:
            raise UserError(f"sampler.variant_draw is {config.variant_draw!r}; use one of {VARIANT_DRAWS}")
        self.tracks = tracks
        self.pairs = [variant for variants in tracks for variant in variants]
        self.sources = list(sources)
        self.chunk_samples = int(chunk_samples)
        self.length = int(length)
        self.seed = int(seed)
        self.config = config

    def __len__(self) -> int:
        return self.length

    def _draw(self, rng: np.random.Generator) -> tuple[Variant, int]:
        """A random (variant, offset): uniform over (track, variant) pairs, or a track first (per_track)."""
        if self.config.variant_draw == "pairs":
            variant = self.pairs[int(rng.integers(len(self.pairs)))]
        else:
            variants = self.tracks[int(rng.integers(len(self.tracks)))]
            variant = variants[int(rng.integers(len(variants)))]
        offset = int(rng.integers(0, max(1, variant.frames - self.chunk_samples + 1)))
        return variant, offset

    def _stem(self, rng: np.random.Generator, source: str, base: tuple[Variant, int]) -> np.ndarray:
        cfg = self.config
        variant, offset = self._draw(rng) if rng.random() < cfg.remix_prob else base
        chunk = _read_chunk(variant.paths[source], offset, self.chunk_samples)
        for _ in range(cfg.max_redraws):
            if _rms_db(chunk) >= cfg.silence_db or rng.random() >= cfg.silent_redraw_prob:
                break
            variant, offset = self._draw(rng)
            chunk = _read_chunk(variant.paths[source], offset, self.chunk_samples)
        return chunk

    def _transformed(self, rng: np.random.Generator, stems: list[np.ndarray]) -> list[np.ndarray]:
        """sampler.transforms on each stem; their global-state draws are seeded from this item's generator."""
        if not self.config.transforms:
            return stems
        with seeded_global_random(int(rng.integers(2**32))):
            return [apply_transforms(self.config.transforms, stem, SAMPLE_RATE) for stem in stems]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, int(index)])
        base = self._draw(rng)
        stems = self._transformed(rng, [self._stem(rng, s, base) for s in self.sources])
        targets = torch.from_numpy(np.stack(stems))
        return targets.sum(dim=0), targets


def sampler_config(sampler: Sampler, remix_prob: float) -> SamplerConfig:
    """The sampler section with train.remix_prob, checked and typed for RemixDataset."""
    return SamplerConfig(
        variant_draw=str(sampler.variant_draw),
        remix_prob=float(remix_prob),
        transforms=build_transforms(sampler.transforms),
        silence_db=float(sampler.silence_db),
        silent_redraw_prob=float(sampler.silent_redraw_prob),
        max_redraws=int(sampler.max_redraws),
    )


def build_train_dataset(params: Params, chunk_samples: int, seed: int, length: int,
                        root: str | Path | None = None) -> RemixDataset:
    """The RemixDataset over data.root's training tracks (+ their augmentation cache when sampler.use_augmented).

    `length` is the caller's: the items its whole training reads (steps * its own batch size, which may differ
    per source), since items are indexed by step and never reused.
    """
    values = params.sampler
    use_augmented = bool(values.use_augmented)
    train = split_tracks(params, "train", root)
    tracks = [track_variants(t, params.sources, params.data.decoded_root, params.augment, use_augmented)
              for t in train]
    return RemixDataset(tracks, params.sources, chunk_samples, int(length), seed,
                        sampler_config(values, params.train.remix_prob))
