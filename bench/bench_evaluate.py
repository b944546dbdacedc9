"""Benchmark: museval vs mdxnet's fast BSS Eval v4 on one real track (default: the shared 12.9 s MUSDB clip).

Each backend runs in its own process so that peak memory (ru_maxrss) is measured separately. Prints seconds,
peak RSS, the speed ratio and the largest per-frame difference (dB). No assertion: numbers only.

    .venv/bin/python bench/bench_evaluate.py [TRACK] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SOURCES = ["vocals", "drums", "bass", "other"]
DEFAULT_TRACK = Path(__file__).resolve().parents[1].parent / "shared/data/real-clips/Music Delta - Rock.stem.mp4"


def run_backend(track: str, seconds: float | None, backend: str, out: str) -> None:
    from mdxnet.data.musdb import load_track
    from mdxnet.evaluation.scoring import bss_eval_v4

    audio = load_track(track)
    if seconds:
        audio = {k: v[:, : int(seconds * 44100)] for k, v in audio.items()}
    rng = np.random.default_rng(0)
    ests = {s: audio[s] + 0.05 * audio[s].std() * rng.standard_normal(audio[s].shape) for s in SOURCES}
    start = time.perf_counter()
    scores = bss_eval_v4(audio, ests, SOURCES, 44100, backend=backend)
    elapsed = time.perf_counter() - start
    result = {"seconds": elapsed, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "audio_seconds": audio["mixture"].shape[-1] / 44100,
              "scores": {s: {m: v.tolist() for m, v in ms.items()} for s, ms in scores.items()}}
    Path(out).write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("track", nargs="?", default=str(DEFAULT_TRACK))
    parser.add_argument("--seconds", type=float, help="crop the track to its first S seconds")
    parser.add_argument("--_backend", help=argparse.SUPPRESS)
    parser.add_argument("--_out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._backend:
        return run_backend(args.track, args.seconds, args._backend, args._out)
    results = {}
    for backend in ("museval", "fast"):
        out = f"/tmp/bench_evaluate_{backend}.json"
        cmd = [sys.executable, __file__, args.track, "--_backend", backend, "--_out", out]
        if args.seconds:
            cmd += ["--seconds", str(args.seconds)]
        subprocess.run(cmd, check=True)
        results[backend] = json.loads(Path(out).read_text())
        print(f"{backend:8s} {results[backend]['seconds']:7.2f} s  peak RSS {results[backend]['maxrss_mb']:7.0f} MB  "
              f"({results[backend]['audio_seconds']:.1f} s of audio)")
    diff = max(
        np.nanmax(np.abs(np.array(results["museval"]["scores"][s][m]) - np.array(results["fast"]["scores"][s][m])))
        for s in SOURCES for m in results["fast"]["scores"][s]
    )
    print(f"speed-up museval/fast: {results['museval']['seconds'] / results['fast']['seconds']:.2f}x; "
          f"largest per-frame difference {diff:.2e} dB")


if __name__ == "__main__":
    main()
