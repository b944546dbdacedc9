"""Trim (the authors' submission) against crossfade stitching: median SDR per source per method.

Separates the held-out test songs of data.root and the data.extra_test clips with the same models once per
method (`separate.stitch`), scores every estimate with the project's BSS Eval v4 (mdxnet.evaluation.scoring,
SiSEC2018 windows) and prints, per method, the median over songs of each song's median SDR over frames (the
SiSEC2018 aggregate) and the wall time of the separations. Only `separate.stitch` changes between the methods
unless --chunk-frames / --overlap give one method its own values (e.g. the mdxnet recipe's crossfade runs 256
frames while the authors' trim runs 512: `--chunk-frames crossfade=256`).

    .venv/bin/python bench/bench_stitch.py --models models
    .venv/bin/python bench/bench_stitch.py --models models --profile paper --chunk-frames crossfade=256 \
        --json results/stitch.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mdxnet.config import load_params
from mdxnet.inference.separation import SeparationPipeline
from mdxnet.inference.stitching import STITCHES, stitching_for

ROOT = Path(__file__).resolve().parents[1]


def method_overrides(pairs: list[str], option: str) -> dict[str, int]:
    """['crossfade=256'] -> {'crossfade': 256}."""
    values = {}
    for pair in pairs:
        method, _, value = pair.partition("=")
        if method not in STITCHES or not value.lstrip("-").isdigit():
            raise SystemExit(f"{option} takes METHOD=N with METHOD one of {STITCHES}, got {pair!r}")
        values[method] = int(value)
    return values


def method_params(params, method: str, chunk_frames: dict[str, int], overlap: dict[str, int]):
    separate = {"stitch": method}
    if method in chunk_frames:
        separate["chunk_frames"] = chunk_frames[method]
    if method in overlap:
        separate["overlap"] = overlap[method]
    return params.replace({"separate": separate})


def test_songs(params, limit: int | None) -> list[Path]:
    from mdxnet.data.musdb import list_test_songs

    songs = list_test_songs(params, ROOT)
    if not songs:
        raise SystemExit(f"no test songs under {params.data.root} (test/) or in data.extra_test")
    return songs[:limit] if limit else songs


def song_medians(track: dict, estimates: dict, params) -> dict[str, float]:
    """{source: median SDR over the song's 1 s frames} (NaN frames ignored, as museval's aggregate)."""
    from mdxnet.evaluation.aggregate import nanmedian
    from mdxnet.evaluation.scoring import score_estimates

    scores = score_estimates(track, estimates, params.evaluate, params.sources, params.sample_rate)
    return {source: nanmedian(metrics["SDR"]) for source, metrics in scores.items()}


def run_method(params, models: Path, songs: list[Path], tracks: dict, args) -> dict:
    pipeline = SeparationPipeline.from_dir(models, params, device=args.device, use_mixer=not args.no_mixer,
                                           backend=args.backend)
    per_song, wall = {}, 0.0
    for song in songs:
        track = tracks[song]
        started = time.perf_counter()
        estimates = pipeline.separate(track["mixture"], progress=False)
        wall += time.perf_counter() - started
        per_song[song.name] = song_medians(track, estimates, params)
    return {"stitchings": {s: vars(st) for s, st in pipeline.stitchings.items()}, "per_song": per_song,
            "separate_seconds": round(wall, 2)}


def summary(per_song: dict[str, dict[str, float]], sources: list[str]) -> dict[str, float]:
    from mdxnet.evaluation.aggregate import nanmedian

    return {s: nanmedian([medians[s] for medians in per_song.values() if s in medians]) for s in sources}


def print_table(results: dict, sources: list[str], backend: str, songs: list[Path]) -> None:
    print(f"scoring: BSS Eval v4, {backend} backend"
          + (" (mdxnet.evaluation.fast_bsseval: museval's per-frame numbers to 1e-3 dB, tests/test_eval_fast.py)"
             if backend == "fast" else " (museval itself)"))
    print(f"songs: {len(songs)} ({', '.join(s.name for s in songs)})")
    print("median over songs of the per-song median SDR over 1 s frames (dB):")
    print(f"{'method':10s} {'chunk (samples, per source)':34s} {'overlap':26s} "
          + " ".join(f"{s:>7s}" for s in sources) + f" {'separate s':>10s}")
    for method, result in results.items():
        chunks = "/".join(str(result["stitchings"][s]["chunk"]) for s in sources)
        overlaps = "/".join(str(result["stitchings"][s]["overlap"]) for s in sources)
        medians = " ".join(f"{result['median_sdr'][s]:7.3f}" for s in sources)
        print(f"{method:10s} {chunks:34s} {overlaps:26s} {medians} {result['separate_seconds']:10.1f}")
    if len(results) == 2:
        first, second = results
        diff = " ".join(f"{results[first]['median_sdr'][s] - results[second]['median_sdr'][s]:+7.3f}"
                        for s in sources)
        print(f"{first + ' - ' + second:72s} {diff}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="models folder (<source>.pt, mixer.pt)")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--profile", default=None, help="params profile (default: the file's own)")
    parser.add_argument("--recipe", default=None, help="params recipe (default: the file's own)")
    parser.add_argument("--methods", nargs="+", choices=STITCHES, default=list(STITCHES))
    parser.add_argument("--chunk-frames", nargs="*", default=[], metavar="METHOD=N",
                        help="separate.chunk_frames for one method only (default: params' for both)")
    parser.add_argument("--overlap", nargs="*", default=[], metavar="METHOD=N",
                        help="separate.overlap (samples, every source) for one method only (default: params')")
    parser.add_argument("--scoring", choices=["fast", "museval"], default="fast",
                        help="BSS Eval backend (default fast: same numbers as museval, seconds instead of minutes)")
    parser.add_argument("--backend", choices=["onnx", "torch"], default=None,
                        help="separator engine (default: params separate.backend)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--no-mixer", action="store_true", help="the separators alone")
    parser.add_argument("--limit", type=int, default=None, help="only the first N songs (a quick look)")
    parser.add_argument("--json", type=Path, default=None, help="also write every number to this JSON file")
    args = parser.parse_args()

    params = load_params(args.params, profile=args.profile, recipe=args.recipe)
    params = params.replace({"evaluate": {"backend": args.scoring}})
    chunk_frames = method_overrides(args.chunk_frames, "--chunk-frames")
    overlap = method_overrides(args.overlap, "--overlap")
    per_method = {m: method_params(params, m, chunk_frames, overlap) for m in args.methods}
    for method_values in per_method.values():  # every setting checked before any song is read
        for source in params.sources:
            stitching_for(method_values, source)

    from mdxnet.data.musdb import load_track

    songs = test_songs(params, args.limit)
    tracks = {song: load_track(song, params.sample_rate) for song in songs}
    results = {}
    for method, method_values in per_method.items():
        result = run_method(method_values, args.models, songs, tracks, args)
        result["median_sdr"] = summary(result["per_song"], list(params.sources))
        results[method] = result
    print_table(results, list(params.sources), args.scoring, songs)
    if args.json:
        from mdxnet.atomic import write_json_atomic

        write_json_atomic(args.json, {"models": str(args.models), "params_hash": params.hash,
                                      "scoring": args.scoring, "songs": [str(s) for s in songs],
                                      "methods": results})
        print(f"written {args.json}")


if __name__ == "__main__":
    main()
