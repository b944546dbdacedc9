"""Augmentation cache throughput and size: seconds of audio rendered per second of wall time, bytes on disk.

Usage: .venv/bin/python bench/bench_augment.py [--root DATASET] [--tracks N] [--out CACHE] [--params params.yaml]

Augments the first N training tracks of DATASET (default: data.root) into a fresh cache folder (default: a
temporary one, deleted afterwards) with the params' augment grid, and prints:
- stem throughput: seconds of stem audio written (variants x stems x duration) per wall-clock second;
- track throughput: seconds of augmented track audio (variants x duration) per wall-clock second;
- cache size on disk, per track and per second of source audio.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import soundfile as sf

from mdxnet.config import load_params
from mdxnet.data.augment import augment_track, variants
from mdxnet.data.musdb import list_tracks


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--root", help="dataset folder (default: data.root)")
    parser.add_argument("--tracks", type=int, default=2, help="training tracks to augment (default: 2)")
    parser.add_argument("--out", help="cache folder (default: a temporary folder, removed afterwards)")
    args = parser.parse_args()

    params = load_params(args.params)
    tracks = list_tracks(args.root or params["data"]["root"], "train")[: args.tracks]
    grid = variants(params)
    with tempfile.TemporaryDirectory(prefix="bench-augment-") as tmp:
        out = Path(args.out or tmp)
        source_seconds = 0.0
        start = time.perf_counter()
        for track in tracks:
            augment_track(track, params, out_root=out, progress=False)
            source_seconds += sf.info(track / "mixture.wav").duration
        wall = time.perf_counter() - start
        size = folder_bytes(out)
    track_seconds = source_seconds * len(grid)
    stem_seconds = track_seconds * 4
    print(f"augmented {len(tracks)} track(s), {source_seconds:.1f} s of source audio, {len(grid)} variants "
          f"({', '.join(grid)}), in {wall:.1f} s wall")
    print(f"stem throughput:  {stem_seconds / wall:.1f} s of stem audio per s")
    print(f"track throughput: {track_seconds / wall:.1f} s of augmented track audio per s")
    print(f"cache size: {size / 1e6:.1f} MB ({size / 1e6 / len(tracks):.1f} MB per track, "
          f"{size / 1e6 / source_seconds:.2f} MB per source second)")
    print(f"load average (1/5/15 min): {' / '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
