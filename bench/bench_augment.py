"""Augmentation cache cost per grid: wall time, CPU time and bytes on disk per track, and the ratios between grids.

Usage: .venv/bin/python bench/bench_augment.py [--root DATASET] [--tracks N] [--profiles embedded paper ...]
                                               [--params params.yaml]

For each named profile, takes only its augment grid (pitch_semitones x tempo_rates, grid, speech_sources) and
augments the first N training tracks of DATASET (default: data.root) into a fresh temporary cache, one track after
the other in this process (as one Snakemake job per track does). The default profiles are `embedded` (3 x 3 grid,
8 variants) and `paper` (the base values = the authors' 5 x 5 grid, 24 variants). Prints per grid the absolute
numbers, then each grid's ratio to the first one (same run, same load), then an extrapolation to MUSDB18-HQ:
the tracks we augment (train/ minus the 14 musdb validation tracks: 86) and the tracks the authors augment
(their data_augmentation.py renders all 100 tracks of train/ and their dataset skips the validation ones when
reading). The MUSDB18-HQ durations are estimates (see MUSDB_SECONDS); wall time also depends on the load.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import tempfile
import time
from pathlib import Path

import soundfile as sf

from mdxnet.config import load_params
from mdxnet.data.augment import augment_track, variants
from mdxnet.data.musdb import list_tracks

# MUSDB18-HQ: 150 tracks, ~10 h in all (sigsep.github.io/datasets/musdb.html); train/ holds 100 of them. Assuming
# the same mean length in every split, train/ is ~2/3 of 10 h. An estimate: no per-split total is published there.
MUSDB_SECONDS = {"86 train tracks (ours: train/ minus valid)": 10 * 3600 * 86 / 150,
                 "100 tracks of train/ (the authors')": 10 * 3600 * 100 / 150}


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the rubberband calls)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(params, tracks: list[Path]) -> dict:
    """Augment `tracks` into a fresh temporary cache with `params`' grid; wall, CPU and bytes."""
    with tempfile.TemporaryDirectory(prefix="bench-augment-") as tmp:
        wall, cpu = time.perf_counter(), cpu_seconds()
        for track in tracks:
            augment_track(track, params.augment, out_root=tmp, progress=False)
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        size = folder_bytes(Path(tmp))
    return {"wall": wall, "cpu": cpu, "bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--root", help="dataset folder (default: data.root)")
    parser.add_argument("--tracks", type=int, default=2, help="training tracks to augment (default: 2)")
    parser.add_argument("--profiles", nargs="+", default=["embedded", "paper"],
                        help="profiles whose augment grid to measure (default: embedded paper)")
    args = parser.parse_args()

    params = load_params(args.params)
    tracks = list_tracks(args.root or params.data.root, "train", params.data.valid_split)[: args.tracks]
    source_seconds = sum(sf.info(track / "mixture.wav").duration for track in tracks)
    print(f"{len(tracks)} track(s), {source_seconds:.1f} s of source audio; load average before: "
          f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    rows = []
    for profile in args.profiles:
        grid = dataclasses.asdict(load_params(args.params, profile=profile).augment)
        grid.pop("root")
        p = params.replace({"augment": grid})
        result = measure(p, tracks)
        n = len(tracks)
        rows.append({"profile": profile, "variants": len(variants(p.augment)), **result})
        print(f"[{profile}] {len(variants(p.augment))} variants ({grid['grid']}: pitch {grid['pitch_semitones']} x "
              f"tempo {grid['tempo_rates']}): {result['wall'] / n:.1f} s wall and {result['cpu'] / n:.1f} CPU-s "
              f"per track, {result['bytes'] / 1e6 / n:.1f} MB per track; per source second: "
              f"{result['wall'] / source_seconds:.2f} s wall, {result['cpu'] / source_seconds:.2f} CPU-s, "
              f"{result['bytes'] / 1e6 / source_seconds:.2f} MB")
    base = rows[0]
    for row in rows[1:]:
        print(f"ratio {row['profile']} / {base['profile']}: variants {row['variants'] / base['variants']:.2f}, "
              f"wall {row['wall'] / base['wall']:.2f}, CPU {row['cpu'] / base['cpu']:.2f}, "
              f"size {row['bytes'] / base['bytes']:.2f}")
    print(f"load average after: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for row in rows:
        for what, seconds in MUSDB_SECONDS.items():
            scale = seconds / source_seconds
            print(f"MUSDB18-HQ, {what}, ~{seconds / 3600:.1f} h, [{row['profile']}] grid: "
                  f"{row['bytes'] * scale / 1e9:.0f} GB, {row['cpu'] * scale / 3600:.1f} CPU-h, "
                  f"{row['wall'] * scale / 3600:.1f} h wall in one process")


if __name__ == "__main__":
    main()
