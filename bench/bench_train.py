"""Training throughput of the TFC-TDF-U-Net separator per speed lever (chunks/s = training chunks per second), and
of the data loader alone.

One training step is the training loop's own (mdxnet.training.loop.Trainer._train_step: forward, loss, backward,
RMSProp update, the loss read back for the divergence check) on a fixed batch in memory, so only the step is
timed. Precision: fp32 on the CPU; on CUDA the recipe's fp16 autocast + GradScaler (train.amp, train.amp_dtype),
plus an fp32 row for reference. Each lever of params train.speed (mdxnet.training.speed) is timed alone, then all
that apply together; every ratio is against the eager row of the same precision in the same run (the machine may
be shared: compare ratios, not absolute rates across runs). On CUDA each row also gives the peak memory.

`--loader` times the DataLoader alone as training builds it (mdxnet.data.sampler over the dataset and
augmentation cache params names, train.num_workers workers, pin_memory on CUDA) at several worker counts, for
the loader against the step. Appends the results and the command to bench/README.md.

    .venv/bin/python bench/bench_train.py [--profile paper] [--source vocals] [--batch 2] [--steps 3]
        [--levers eager,channels_last,...] [--device auto] [--loader --workers 0,2,4 --loader-chunks 32]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from mdxnet.config import Params, load_params, per_source
from mdxnet.models import build_separator
from mdxnet.training.ddp import DistContext
from mdxnet.training.loop import LoopConfig, Trainer
from mdxnet.training.speed import StepSpeed

ROOT = Path(__file__).resolve().parents[1]
# Each lever alone (over train.speed's defaults), and `all`: every lever that applies on the device together.
LEVERS: dict[str, dict] = {
    "eager": {},
    "channels_last": {"channels_last": True},
    "foreach": {"optimizer_impl": "foreach"},
    "for_loop": {"optimizer_impl": "for_loop"},
    "cudnn_benchmark": {"cudnn_benchmark": True},
    "compile": {"compile": "default"},
    "compile_cudagraphs": {"compile": "reduce-overhead"},
    "compile_max_autotune": {"compile": "max-autotune"},
}
CUDA_ONLY = {"cudnn_benchmark", "compile_cudagraphs", "compile_max_autotune"}
BEST = {"channels_last": True, "optimizer_impl": "foreach", "compile": "default"}
# cuDNN autotuning runs with train.deterministic off (the two are refused together); max-autotune stays out of
# `all`: its autotuning takes many minutes at the paper size
BEST_CUDA = {**BEST, "cudnn_benchmark": True}


def paper_params() -> Params:
    """The typed params of profile `paper` (the full-size networks)."""
    return load_params(ROOT / "params.yaml", profile="paper")


class BenchTask:
    """What the Trainer needs of a task to run steps on a batch already in memory."""

    kind, source = "separator", None

    def __init__(self, model, params):
        self.model, self.model_kwargs, self.params, self.dataset = model, {}, params, None

    def prepare(self, batch, device):
        mixture, target = batch
        return (mixture.to(device, non_blocking=True),), target.to(device, non_blocking=True)


def trainer(params: Params, source: str, batch: int, speed: StepSpeed, amp_dtype: str | None, device,
            folder: Path) -> Trainer:
    """The training loop on the paper-size separator of `source`; amp_dtype None: fp32."""
    torch.manual_seed(0)
    model = build_separator(params, source)
    cfg = LoopConfig(name=source, steps=1, batch_size=batch, lr=float(per_source(params.train.lr, source)),
                     loss=params.train.loss, valid_every=1, checkpoint_every=1, log_every=1, amp=amp_dtype is not None,
                     amp_dtype=amp_dtype or "float16", seed=0, num_workers=0, last_path=folder / "last.pt",
                     best_path=folder / "out.pt", live_dir=folder / "live", resume_key="bench",
                     deterministic=params.train.deterministic and not speed.cudnn_benchmark, speed=speed)
    return Trainer(BenchTask(model, params), cfg, DistContext(), device)


def time_lever(params, source, batch, speed, amp_dtype, device, steps, warmup) -> tuple[float, float | None]:
    """(seconds per step after `warmup` untimed ones, peak CUDA memory in GiB or None)."""
    with tempfile.TemporaryDirectory() as folder:
        run = trainer(params, source, batch, speed, amp_dtype, device, Path(folder))
        gen = torch.Generator().manual_seed(0)
        mixture = torch.randn(batch, 2, run.model.chunk_samples, generator=gen).mul_(0.1)
        data = (mixture, mixture * 0.5)
        if device.type == "cuda":
            data = tuple(t.pin_memory() for t in data)
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for index in range(warmup + steps):
            began = time.perf_counter()
            run._train_step(data, index)  # reads the loss back: the step has finished on the device
            if index >= warmup:
                times.append(time.perf_counter() - began)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        del run
        if device.type == "cuda":
            torch.cuda.empty_cache()
        torch._dynamo.reset()
    return sum(times) / len(times), peak


def lever_speed(name: str, device) -> StepSpeed:
    """train.speed with lever `name` on (`all`: every lever that applies on `device`)."""
    if name == "all":
        return dataclasses.replace(StepSpeed(), **(BEST_CUDA if device.type == "cuda" else BEST))
    return dataclasses.replace(StepSpeed(), **LEVERS[name])


def lever_rows(args, params, device) -> list[str]:
    names = [n for n in args.levers.split(",") if n] or list(LEVERS)
    unknown = sorted(set(names) - set(LEVERS) - {"all"})
    if unknown:
        raise SystemExit(f"unknown lever(s) {unknown}: use {sorted(LEVERS)} or all")
    if device.type != "cuda":
        names = [n for n in names if n not in CUDA_ONLY]
    precisions = [("fp32", None)]
    if device.type == "cuda":  # the recipe's precision; fp32 as well when asked for (it doubles the run)
        precisions = [(f"{params.train.amp_dtype} autocast", params.train.amp_dtype)] + precisions * args.fp32
    lines = []
    for precision, amp_dtype in precisions:
        baseline = None
        for name in ["eager", *[n for n in names if n != "eager"]]:
            try:
                step, peak = time_lever(params, args.source, args.batch, lever_speed(name, device), amp_dtype,
                                        device, args.steps, args.warmup)
            except Exception as err:  # a lever this torch/device cannot run is a result too
                lines.append(f"| {precision} | {name} | failed: {type(err).__name__}: {str(err)[:120]} | | | |")
                continue
            baseline = baseline or step
            memory = f"{peak:.2f}" if peak is not None else "-"
            lines.append(f"| {precision} | {name} | {step:.3f} | {args.batch / step:.2f} | x{baseline / step:.2f} "
                         f"| {memory} |")
            print(lines[-1], file=sys.stderr, flush=True)  # as it comes: a run cut short keeps its rows
    return ["| precision | lever | s/step | chunks/s | vs eager | peak GiB |", "|---|---|---|---|---|---|", *lines]


def loader_rate(params: Params, source: str, batch: int, workers: int, chunks: int, device) -> float:
    """Chunks/s of the training DataLoader alone (the dataset and cache params names, seen from the current
    folder), batches copied to `device`; the first batch, which pays the workers' start, is not timed."""
    from torch.utils.data import DataLoader

    from mdxnet.data.sampler import build_train_dataset
    from mdxnet.training.speed import loader_options

    chunk = build_separator(params, source).chunk_samples
    dataset = build_train_dataset(params, chunk, 0, length=chunks + 2 * batch)
    options = loader_options(device, workers, StepSpeed.from_params(params.train.speed))
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, **options,
                        generator=torch.Generator().manual_seed(0))
    seen, began = 0, time.perf_counter()
    for index, (mixture, _) in enumerate(loader):
        mixture.to(device, non_blocking=True)
        if index == 0:
            began = time.perf_counter()
            continue
        seen += mixture.shape[0]
        if seen >= chunks:
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return seen / (time.perf_counter() - began)


def loader_rows(args, params, device) -> list[str]:
    pin = StepSpeed.from_params(params.train.speed).pin_memory and device.type == "cuda"
    lines = ["| workers | pin_memory | chunks/s |", "|---|---|---|"]
    for workers in [int(w) for w in args.workers.split(",")]:
        rate = loader_rate(params, args.source, args.batch, workers, args.loader_chunks, device)
        lines.append(f"| {workers} | {pin} | {rate:.2f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--profile", default="paper", help="params profile: the network size (paper: full size)")
    parser.add_argument("--source", default="vocals")
    parser.add_argument("--batch", type=int, default=2, help="chunks per step (paper: 16 vocals, 8 others)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per lever")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation happens there)")
    parser.add_argument("--levers", default="", help=f"comma-separated, of {sorted(LEVERS)} and all (default: "
                        "every lever that applies, no `all`)")
    parser.add_argument("--fp32", action="store_true", help="on CUDA, fp32 rows as well as the recipe's precision")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--loader", action="store_true", help="time the DataLoader alone instead of the step")
    parser.add_argument("--workers", default="0,2,4", help="--loader: worker counts to time")
    parser.add_argument("--loader-chunks", type=int, default=32, help="--loader: chunks timed per worker count")
    parser.add_argument("--no-readme", action="store_true", help="do not append to bench/README.md")
    args = parser.parse_args()

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    params = load_params(args.params, profile=args.profile)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    model = build_separator(params, args.source)
    what = "DataLoader alone" if args.loader else f"{args.steps} timed steps after {args.warmup} warm-up per lever"
    lines = [f"profile {args.profile} {args.source} separator ({sum(p.numel() for p in model.parameters()):,} "
             f"params, chunk {model.chunk_samples} samples), batch {args.batch}, {what}, on {where}, torch "
             f"{torch.__version__}:", ""]
    lines += loader_rows(args, params, device) if args.loader else lever_rows(args, params, device)
    lines += ["", f"Load average (1/5/15 min) when done: {' / '.join(f'{v:.1f}' for v in os.getloadavg())} on "
              f"{os.cpu_count()} cores."]
    print("\n".join(lines))
    if not args.no_readme:
        append_readme(lines, " ".join(sys.argv[1:]))
    return 0


def append_readme(lines: list[str], argv: str) -> None:
    readme = ROOT / "bench" / "README.md"
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = [f"\n## Training throughput per lever ({stamp})", "",
             f"Command: `.venv/bin/python bench/bench_train.py {argv}`", "", *lines, ""]
    with readme.open("a") as handle:
        handle.write("\n".join(block) + "\n")


if __name__ == "__main__":
    sys.exit(main())
