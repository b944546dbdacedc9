"""Augmentation cache file format: 16-bit WAV against 16-bit FLAC, size on disk and the sampler's read speed.

Usage: .venv/bin/python bench/bench_cache_format.py [--root DATASET] [--clip STEM_MP4 ...] [--reads N]
                                                    [--profile paper]

Takes the stems of every track under DATASET (e.g. `mdxnet data synth -o /tmp/synth`) and of each --clip
(a MUSDB .stem.mp4, e.g. ../shared/data/real-clips/'Music Delta - Rock.stem.mp4': real music, which compresses
unlike synthetic audio), writes each stem once as 16-bit WAV and once as 16-bit FLAC (what the cache would hold;
the cache's variants are rubberband renders of these same stems), then for each format:
- bytes on disk and the ratio FLAC / WAV;
- encode time (what `mdxnet augment` pays per stem written);
- random chunk reads exactly as the sampler does them (mdxnet.data.sampler._read_chunk: sf.read at a uniform
  random offset, `chunk` samples of train.chunk at the profile, all four stems of a track), warm (file in the page
  cache) and cold (each file dropped from the page cache first with posix_fadvise DONTNEED, for that file only:
  the case of a cache larger than the memory, ~100 GB for MUSDB18-HQ). Reported in seconds of audio per second
  (one stem-chunk of audio counted once per stem read).
The machine is shared: the ratios of one run are the numbers to compare.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from mdxnet.audio import SAMPLE_RATE, read_stem_file
from mdxnet.config import load_params
from mdxnet.data.sampler import _read_chunk

ROOT = Path(__file__).resolve().parents[1]
STEMS = ("drums", "bass", "other", "vocals")
FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16")}


def dataset_stems(root: Path | None, clips: list[Path]) -> dict[str, dict[str, np.ndarray]]:
    """{track: {stem: (2, n) float32}} from a dataset's track folders and from .stem.mp4 clips."""
    tracks = {}
    if root is not None:
        for folder in sorted(p.parent for p in root.rglob("vocals.wav")):
            tracks[folder.name] = {s: sf.read(folder / f"{s}.wav", dtype="float32", always_2d=True)[0].T
                                   for s in STEMS}
    for clip in clips:
        stems = read_stem_file(clip)
        tracks[clip.name.split(".")[0]] = {s: stems[s] for s in STEMS}
    return tracks


def drop_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def write_all(tracks, folder: Path, fmt: str) -> tuple[dict[str, dict[str, Path]], float]:
    container, subtype = FORMATS[fmt]
    paths, start = {}, time.perf_counter()
    for track, stems in tracks.items():
        paths[track] = {}
        for stem, audio in stems.items():
            path = folder / fmt / track / f"{stem}.{fmt}"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, audio.T, SAMPLE_RATE, subtype=subtype, format=container)
            paths[track][stem] = path
    return paths, time.perf_counter() - start


def read_rate(paths: dict[str, dict[str, Path]], chunk: int, reads: int, cold: bool, seed: int = 0) -> float:
    """Seconds of audio per second over `reads` items of four stem chunks at random offsets."""
    rng = np.random.default_rng(seed)
    tracks = sorted(paths)
    frames = {t: sf.info(paths[t]["vocals"]).frames for t in tracks}
    busy = 0.0
    for _ in range(reads):
        track = tracks[rng.integers(len(tracks))]
        offset = int(rng.integers(0, max(1, frames[track] - chunk + 1)))
        if cold:
            for path in paths[track].values():
                drop_from_page_cache(path)
        start = time.perf_counter()
        for path in paths[track].values():
            _read_chunk(path, offset, chunk)
        busy += time.perf_counter() - start
    return reads * len(STEMS) * chunk / SAMPLE_RATE / busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="dataset whose track folders to use")
    parser.add_argument("--clip", type=Path, nargs="*", default=[], help=".stem.mp4 files to use too")
    parser.add_argument("--reads", type=int, default=200, help="random items (4 stem chunks each) per case")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--profile", default="paper", help="profile whose training chunk is read (default paper)")
    args = parser.parse_args()
    params = load_params(args.params, profile=args.profile)
    chunk = params.model.hop * (params.model.dim_t - 1)
    tracks = dataset_stems(args.root, args.clip)
    seconds = sum(s["vocals"].shape[-1] for s in tracks.values()) / SAMPLE_RATE
    print(f"{len(tracks)} tracks, {seconds:.0f} s per stem in all; chunk {chunk} samples ({chunk / SAMPLE_RATE:.2f} s, "
          f"profile {args.profile}); {args.reads} reads x 4 stems per case; load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for fmt in FORMATS:
            paths, encode = write_all(tracks, Path(tmp), fmt)
            size = sum(p.stat().st_size for stems in paths.values() for p in stems.values())
            per_track = {t: sum(p.stat().st_size for p in stems.values()) for t, stems in paths.items()}
            warm = read_rate(paths, chunk, args.reads, cold=False)
            cold = read_rate(paths, chunk, args.reads, cold=True)
            results[fmt] = (size, per_track, encode, warm, cold)
        wav = results["wav"]
        print(f"{'format':6s} {'MB':>8s} {'vs wav':>7s} {'encode s':>9s} {'warm audio s/s':>15s} "
              f"{'cold audio s/s':>15s}")
        for fmt, (size, _, encode, warm, cold) in results.items():
            print(f"{fmt:6s} {size / 1e6:8.1f} {size / wav[0]:7.3f} {encode:9.2f} {warm:15.0f} {cold:15.0f}")
        print("per track, FLAC / WAV size: " + ", ".join(
            f"{t} {results['flac'][1][t] / wav[1][t]:.3f}" for t in sorted(wav[1])))
        print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
