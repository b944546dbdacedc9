"""End-to-end `mdxnet separate` speed and peak memory at the paper size, ONNX Runtime levers against eager PyTorch.

    .venv/bin/python bench/bench_separate.py --seconds 240 --variants eager-b1 onnx-b4-f512 onnx-b4-f1024
    .venv/bin/python bench/bench_separate.py --profile embedded --seconds 240 960 3600 --variants onnx-b2-f128

Random-weight models of the profile (`mdxnet models init`, seed 0) separate a generated song (the real clip's
mixture tiled to --seconds, or noise without it) through the command's own path: `separate_song` reads,
separates (four separators + the Mixer) and writes it block by block. Each variant runs in its own process, so
that its peak RSS (VmHWM) is its own; the first variant is the reference the others' stems are compared with
(signal-to-difference ratio in dB, all stems together); for ONNX variants, "in nets" is the share of the wall
time spent inside the four ORT sessions. Variants (all with `separate.stitch: trim`):

- eager-bB: the checkpoints' nets in eager PyTorch, BatchNorm unfused, batch B (the issue's baseline);
- torch-bB-fF: PyTorch with BatchNorm folded (`separate.backend: torch`), chunks of F frames;
- onnx-bB-fF[-spin0][-tN][-pP]: ONNX Runtime (`separate.backend: onnx`), chunks of F frames, batch B; -spin0
  turns ORT's spin-waiting thread pool off (session.intra_op.allow_spinning 0: idle threads yield the core
  instead of busy-waiting, which matters on shared cores), -tN uses N intra-op threads per session, -pP runs P
  separators at once (`separate.parallel`; then N defaults to --threads / P). With P > 1, "in nets" is the
  networks' summed time over P x the wall time.

Exports are cached in --onnx-cache (the first run of a frame count pays for four exports, not timed). The
machine is shared: compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "real-clips" / "Music Delta - Rock.stem.mp4"


def parse_variant(name: str) -> dict:
    parts = name.split("-")
    spec = {"name": name, "kind": parts[0], "batch": 1, "frames": None, "spin": True, "threads": None,
            "parallel": 1}
    for part in parts[1:]:
        if part.startswith("b"):
            spec["batch"] = int(part[1:])
        elif part.startswith("f"):
            spec["frames"] = int(part[1:])
        elif part.startswith("t"):
            spec["threads"] = int(part[1:])
        elif part.startswith("p"):
            spec["parallel"] = int(part[1:])
        elif part == "spin0":
            spec["spin"] = False
        else:
            raise ValueError(f"unknown variant part {part!r} in {name}")
    if spec["kind"] not in ("eager", "torch", "onnx"):
        raise ValueError(f"unknown variant {name}")
    return spec


def variant_params(params, spec: dict):
    overlay = {"stitch": "trim", "batch": spec["batch"], "device": "cpu", "parallel": spec["parallel"],
               "backend": "onnx" if spec["kind"] == "onnx" else "torch"}
    if spec["frames"]:
        overlay["chunk_frames"] = spec["frames"]
    return params.replace({"separate": overlay})


def build_pipeline(params, models: Path, spec: dict):
    from mdxnet.checkpoint import load_mixer, load_separator, mixer_path, separator_path
    from mdxnet.config import separator_kwargs
    from mdxnet.inference.separation import SeparationPipeline, session_threads
    from mdxnet.inference.stitching import stitching_for
    from mdxnet.models import mixer_kwargs

    if spec["kind"] != "eager":
        pipeline = SeparationPipeline.from_dir(models, params, device="cpu", backend=params.separate.backend)
        if spec["kind"] == "onnx":
            threads = spec["threads"] or session_threads(spec["parallel"])  # of the worker's --threads
            for model in pipeline.separators.values():
                model.session = ort_session(model.session, threads, spec["spin"])
        return pipeline
    separators = {s: load_separator(separator_path(models, s), s, separator_kwargs(params, s)) for s in params.sources}
    stitchings = {s: stitching_for(params, s) for s in params.sources}
    mixer = load_mixer(mixer_path(models), mixer_kwargs(params.mixer, params.sources))
    return SeparationPipeline(separators, stitchings, mixer, batch=spec["batch"], device="cpu",
                              parallel=spec["parallel"])


def ort_session(session, threads: int, spin: bool):
    """The same model in a new session with the variant's thread-pool options (arena off, as onnx_session)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(session._model_path, options, providers=["CPUExecutionProvider"])


def worker(args) -> None:
    import torch

    from mdxnet.commands.separate import separate_song
    from mdxnet.config import load_params

    torch.set_num_threads(args.threads)
    spec = parse_variant(args.worker)
    params = variant_params(load_params(args.params, profile=args.profile).replace(
        {"separate": {"onnx_cache": str(args.onnx_cache)}}), spec)
    pipeline = build_pipeline(params, args.models, spec)
    if args.export_only:
        return
    in_networks = time_networks(pipeline) if spec["kind"] == "onnx" else None
    start = time.perf_counter()
    seconds = separate_song(pipeline, args.song, args.out, params.sample_rate)
    wall = time.perf_counter() - start
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(json.dumps({"wall": wall, "seconds": seconds, "peak_mb": hwm / 1024,
                      "networks": in_networks[0] / spec["parallel"] if in_networks else None}))


def time_networks(pipeline) -> list[float]:
    """Wrap every ORT session's `run` so that the seconds spent in the four networks add up in the returned
    one-item list (the rest of the wall time is STFT/iSTFT, stitching, the Mixer and I/O)."""
    spent, lock = [0.0], threading.Lock()
    for model in pipeline.separators.values():
        run = model.session.run

        def timed(*args, _run=run, **kwargs):
            start = time.perf_counter()
            try:
                return _run(*args, **kwargs)
            finally:
                with lock:  # sessions may run in several threads (-pP)
                    spent[0] += time.perf_counter() - start

        model.session.run = timed
    return spent


def make_song(path: Path, seconds: float, rate: int = 44100) -> None:
    """The real clip's mixture tiled to `seconds` (noise if the clip is absent), written block by block."""
    import soundfile as sf

    if CLIP.is_file():
        from mdxnet.audio import read_audio

        tile = read_audio(CLIP).T
    else:
        tile = (0.1 * np.random.default_rng(0).standard_normal((30 * rate, 2))).astype(np.float32)
    total = int(seconds * rate)
    with sf.SoundFile(path, "w", rate, 2, "FLOAT") as out:
        for start in range(0, total, len(tile)):
            out.write(tile[: min(len(tile), total - start)])


def agreement_db(reference: Path, other: Path) -> float:
    import soundfile as sf

    signal = noise = 0.0
    for stem in sorted(reference.glob("*.wav")):
        a = sf.read(stem, dtype="float64")[0]
        b = sf.read(other / stem.name, dtype="float64")[0]
        signal += float((a**2).sum())
        noise += float(((a - b) ** 2).sum())
    return float(10 * np.log10(signal / max(noise, 1e-300)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--seconds", type=float, nargs="+", default=[240.0], help="song lengths to run")
    parser.add_argument("--variants", nargs="+", default=["eager-b1", "onnx-b4-f512"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--onnx-cache", type=Path, default=Path(tempfile.gettempdir()) / "mdxnet-bench-onnx")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--models", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--song", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--export-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    from mdxnet.checkpoint import init_models
    from mdxnet.config import load_params

    params = load_params(args.params, profile=args.profile)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        init_models(tmp / "models", params, seed=0)
        print(f"profile {args.profile}, {args.threads} threads, load {os.getloadavg()[0]:.1f}")
        print(f"{'seconds':>7s} {'variant':22s} {'wall s':>8s} {'audio s/s':>9s} {'vs first':>8s} "
              f"{'peak MB':>8s} {'vs first dB':>11s} {'in nets':>7s}")
        for seconds in args.seconds:
            song = tmp / f"song{seconds:g}.wav"
            make_song(song, seconds)
            first = None
            for variant in args.variants:
                out = tmp / f"out{seconds:g}-{variant}"
                cmd = [sys.executable, __file__, "--worker", variant, "--params", str(args.params), "--profile",
                       args.profile, "--threads", str(args.threads), "--onnx-cache", str(args.onnx_cache),
                       "--models", str(tmp / "models"), "--song", str(song), "--out", str(out)]
                if parse_variant(variant)["kind"] == "onnx":  # the exports, untimed, before the timed run
                    subprocess.run([*cmd, "--export-only"], check=True, capture_output=True)
                run = subprocess.run(cmd, check=True, capture_output=True, text=True)
                result = json.loads(run.stdout.strip().splitlines()[-1])
                rate = result["seconds"] / result["wall"]
                first = first or (rate, out)
                db = agreement_db(first[1], out) if out != first[1] else float("inf")
                nets = f"{100 * result['networks'] / result['wall']:6.1f}%" if result["networks"] else "      -"
                print(f"{seconds:7.0f} {variant:22s} {result['wall']:8.1f} {rate:9.3f} {rate / first[0]:8.2f} "
                      f"{result['peak_mb']:8.0f} {db:11.1f} {nets}", flush=True)
            print(f"load after {seconds:g} s: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
