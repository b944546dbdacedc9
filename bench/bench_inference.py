"""Inference speed of the paper-size KUIELAB-MDX-Net (4 TFC-TDF-U-Net v2 separators + Mixer) on this CPU.

Prints, for each variant, the time of one chunk forward (STFT -> net -> iSTFT) on the inference chunk
(`separate.chunk_frames` frames), the resulting speed in seconds of audio per second for all four sources (new
samples per chunk from each source's `separate.stitch` and `separate.overlap`: mdxnet.inference.stitching.Stitching.step),
the FLOP count per second of audio (torch.utils.flop_counter.FlopCounterMode; the FFTs are not counted) and the
achieved fraction of the machine's measured matmul peak.

All four separators have the same network cost (same dim_f, channels, chunk frames); only their STFT size and
overlap differ, so variants are timed on one separator and scaled by each source's chunks per second.
Measurements are short (a few chunks) because the machine is shared: treat them as noisy.

    .venv/bin/python bench/bench_inference.py                  # every variant
    .venv/bin/python bench/bench_inference.py --only eager-b1 bf16-b1 --end-to-end 12
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from mdxnet.config import load_params
from mdxnet.inference.separation import SeparationPipeline
from mdxnet.inference.stitching import stitching_for
from mdxnet.models import build_mixer, build_separator, fuse_for_inference

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, reps: int) -> list[float]:
    fn()  # warm-up: allocator, oneDNN primitive caches, lazy init
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def timed_once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def matmul_peak(threads: int, size: int = 2048, reps: int = 5) -> float:
    """Measured fp32 GFLOP/s of a large matmul on `threads` threads: the practical compute ceiling of this
    machine (96 GFLOP/s per core of the AMD EPYC of 2026-11-26: 1 thread 96, 2 threads 188-190)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        best = min(timed(lambda: a @ b, reps))
    finally:
        torch.set_num_threads(before)
    return 2 * size**3 / best / 1e9


def count_flops(model, chunk: int, batch: int = 1) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch, 2, chunk)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def chunk_fn(model, x: torch.Tensor, variant: str):
    """A zero-argument callable running the chunks `x` the way `variant` says, plus setup seconds."""
    batch = x.shape[0]
    setup = time.perf_counter()
    if variant == "no_grad":
        def run():
            with torch.no_grad():
                return model(x)
    elif variant in ("eager", "channels_last", "fused", "fused_cl"):
        if variant in ("fused", "fused_cl"):
            model = fuse_for_inference(model)
        if variant in ("channels_last", "fused_cl"):
            model = model.to(memory_format=torch.channels_last)

        def run():
            with torch.inference_mode():
                return model(x)
    elif variant == "bf16":
        def run():
            with torch.inference_mode():
                spec = model.stft(x)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out = model.spec_forward(spec)
                return model.stft.inverse(out.float())
    elif variant == "compile":
        net = torch.compile(fuse_for_inference(model).spec_forward)

        def run():
            with torch.inference_mode():
                return model.stft.inverse(net(model.stft(x)))
        run()  # compile now, so that setup time is reported apart
    elif variant == "onnx":
        import tempfile

        from mdxnet.inference.onnx_export import export_separator
        from mdxnet.inference.onnx_runtime import onnx_session

        with tempfile.TemporaryDirectory() as tmp:  # the session keeps the graph in memory
            frames = x.shape[-1] // model.stft.hop + 1
            path = export_separator(model, Path(tmp) / "bench.onnx", frames, batch=batch)
            session = onnx_session(path, threads=torch.get_num_threads())

        def run():
            with torch.inference_mode():
                spec = model.stft(x).numpy()
                (out,) = session.run(None, {"spec": spec})
                return model.stft.inverse(torch.from_numpy(out))
    else:
        raise ValueError(variant)
    return run, time.perf_counter() - setup


def agreement_db(reference: torch.Tensor, output: torch.Tensor) -> float:
    """Signal-to-difference ratio (dB) of a variant's output against plain fp32 eager."""
    diff = (reference - output.float()).pow(2).sum().clamp_min(1e-30)
    return float(10 * torch.log10(reference.pow(2).sum() / diff))


VARIANTS = {  # name: (how, batch)
    "no_grad-b1": ("no_grad", 1),
    "eager-b1": ("eager", 1),
    "eager-b2": ("eager", 2),
    "eager-b4": ("eager", 4),
    "channels_last-b1": ("channels_last", 1),
    "fused-b1": ("fused", 1),
    "fused-b2": ("fused", 2),
    "fused_cl-b1": ("fused_cl", 1),
    "bf16-b1": ("bf16", 1),
    "bf16-b2": ("bf16", 2),
    "compile-b1": ("compile", 1),
    "onnx-b1": ("onnx", 1),
    "onnx-b2": ("onnx", 2),
    "onnx-b4": ("onnx", 4),
}


def audio_rate(per_chunk: float, params) -> float:
    """Seconds of audio per second for all sources, given seconds per chunk of one separator."""
    sr = params.sample_rate
    busy = sum(per_chunk * sr / stitching_for(params, s).step for s in params.sources)
    return 1.0 / busy


def end_to_end(params, seconds: float, batch: int) -> None:
    """The real `SeparationPipeline` on the shared clip's mixture (or noise): wall time for `seconds` of audio."""
    import numpy as np

    clip = ROOT.parent / "shared" / "data" / "real-clips" / "Music Delta - Rock.stem.mp4"
    n = int(seconds * params.sample_rate)
    if clip.is_file():
        from mdxnet.audio import read_audio

        mixture = read_audio(clip)[:, :n]
    else:
        mixture = np.random.default_rng(0).standard_normal((2, n)).astype(np.float32) * 0.1
    models = {s: build_separator(params, s) for s in params.sources}
    stitchings = {s: stitching_for(params, s) for s in params.sources}
    pipeline = SeparationPipeline(models, stitchings, mixer=build_mixer(params.mixer, params.sources), batch=batch, device="cpu")
    start = time.perf_counter()
    pipeline.separate(mixture, progress=False)
    wall = time.perf_counter() - start
    audio = mixture.shape[-1] / params.sample_rate
    print(f"end-to-end SeparationPipeline (batch {batch}, stitch {params.separate.stitch}): {audio:.1f} s of audio "
          f"in {wall:.1f} s = {audio / wall:.3f} s audio/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--profile", default="paper", help="params profile to size the models (default: paper)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=2, help="timed repetitions per variant (after 1 warm-up)")
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS), help="variants to run (default: all)")
    parser.add_argument("--end-to-end", type=float, default=0.0, metavar="SECONDS",
                        help="also time the SeparationPipeline on this many seconds of the real clip")
    parser.add_argument("--batch", type=int, default=None, help="batch for --end-to-end (default: params)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    params = load_params(args.params, profile=args.profile)
    model = build_separator(params, "vocals").eval()
    chunk, sr = stitching_for(params, "vocals").chunk, params.sample_rate

    peak = matmul_peak(args.threads)
    flops_chunk = count_flops(model, chunk)
    flops_per_audio_s = sum(flops_chunk * sr / stitching_for(params, s).step for s in params.sources)
    print(f"threads {args.threads}; chunk {chunk} samples = {chunk / sr:.2f} s; matmul peak {peak:.0f} GFLOP/s")
    print(f"one separator forward: {flops_chunk / 1e9:.1f} GFLOP per chunk; 4 sources with overlap: "
          f"{flops_per_audio_s / 1e9:.1f} GFLOP per second of audio "
          f"-> compute-bound limit {peak * 1e9 / flops_per_audio_s:.2f} s audio/s at the matmul peak")
    mixer_flops = count_mixer_flops(params)
    print(f"Mixer ({params.mixer.kind}): {mixer_flops / 1e6:.2f} MFLOP per second of audio (negligible)")
    # The CPU is shared, so each variant is timed alternately with the eager-b1 baseline and the ratio of the
    # two (measured under the same load) is the number to trust; absolute times drift with other jobs.
    print(f"{'variant':18s} {'setup s':>8s} {'s/chunk':>8s} {'base s':>8s} {'speed-up':>8s} {'audio s/s':>9s} "
          f"{'GFLOP/s':>8s} {'of peak':>7s} {'vs fp32 dB':>10s}")
    baseline, _ = chunk_fn(model, torch.randn(1, 2, chunk), "eager")
    baseline()
    inputs = torch.randn(max(b for _, b in VARIANTS.values()), 2, chunk)
    with torch.inference_mode():
        references = model(inputs)
    for name in args.only or list(VARIANTS):
        how, batch = VARIANTS[name]
        fresh = build_separator(params, "vocals").eval()
        fresh.load_state_dict(model.state_dict())
        run, setup = chunk_fn(fresh, inputs[:batch], how)
        db = agreement_db(references[:batch], run())
        pairs = [(timed_once(baseline), timed_once(run) / batch) for _ in range(args.reps)]
        base = min(b for b, _ in pairs)
        best = min(v for _, v in pairs)
        achieved = flops_chunk / best / 1e9
        print(f"{name:18s} {setup:8.1f} {best:8.2f} {base:8.2f} {base / best:8.2f} "
              f"{audio_rate(best, params):9.3f} {achieved:8.1f} {achieved / peak:7.0%} {db:10.1f}")
    print(f"matmul peak after the runs: {matmul_peak(args.threads):.0f} GFLOP/s (load drift check)")
    if args.end_to_end:
        end_to_end(params, args.end_to_end, args.batch or params.separate.batch)


def count_mixer_flops(params: dict) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    mixer = build_mixer(params.mixer, params.sources).eval()
    sr = params.sample_rate
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        mixer(torch.zeros(1, 4, 2, sr), torch.zeros(1, 2, sr))
    return counter.get_total_flops()


if __name__ == "__main__":
    main()
