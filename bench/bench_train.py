"""Training throughput of the paper-size TFC-TDF-U-Net separator (samples/s = training chunks per second).

One training step = forward + L1 loss + backward + RMSProp update on random chunks, exactly as the training loop
runs it (same autocast/GradScaler settings). CPU: fp32 only. CUDA: fp32, bf16 autocast and fp16 autocast +
GradScaler, with the speed-up over fp32. Appends the results and the command to bench/README.md.

    .venv/bin/python bench/bench_train.py [--source vocals] [--batch 2] [--steps 2] [--device auto]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import torch

from mdxnet.config import Params, load_params
from mdxnet.models import build_separator
from mdxnet.training.loop import LOSSES, Amp

ROOT = Path(__file__).resolve().parents[1]


def paper_params() -> Params:
    """The typed params of profile `paper` (build_separator reads its sections)."""
    return load_params(ROOT / "params.yaml", profile="paper")


def time_steps(model, device, batch: int, steps: int, warmup: int, amp: Amp) -> float:
    """Seconds per training step, averaged over `steps` after `warmup` untimed ones."""
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-4, momentum=0.0)
    gen = torch.Generator().manual_seed(0)
    mixture = torch.randn(batch, 2, model.chunk_samples, generator=gen).mul_(0.1).to(device)
    target = mixture * 0.5
    times = []
    for index in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        with amp.autocast():
            output = model(mixture)
        loss = LOSSES["l1"](output.float(), target)
        optimizer.zero_grad(set_to_none=True)
        amp.scaler.scale(loss).backward()
        amp.scaler.step(optimizer)
        amp.scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if index >= warmup:
            times.append(time.perf_counter() - began)
    return sum(times) / len(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="vocals")
    parser.add_argument("--batch", type=int, default=2, help="chunks per step (paper: 8; small on CPU)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--no-readme", action="store_true", help="do not append to bench/README.md")
    args = parser.parse_args()

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    params = paper_params()
    torch.manual_seed(0)
    model = build_separator(params, args.source).to(device).train()
    seconds = model.chunk_samples / params.sample_rate
    modes = [("fp32", False, "bfloat16")]
    if device.type == "cuda":
        modes += [("bf16 autocast", True, "bfloat16"), ("fp16 autocast + GradScaler", True, "float16")]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    lines = [f"paper-size {args.source} separator ({sum(p.numel() for p in model.parameters()):,} params, "
             f"chunk {model.chunk_samples} samples = {seconds:.2f} s), batch {args.batch}, {args.steps} timed "
             f"steps after {args.warmup} warm-up, on {where}:"]
    baseline = None
    for name, enabled, dtype in modes:
        step = time_steps(model, device, args.batch, args.steps, args.warmup, Amp(enabled, dtype, device))
        baseline = baseline or step
        lines.append(f"- {name}: {step:.3f} s/step, {args.batch / step:.3f} samples/s "
                     f"({args.batch * seconds / step:.2f} s of audio/s), x{baseline / step:.2f} vs fp32")
    print("\n".join(lines))
    if not args.no_readme:
        append_readme(lines, " ".join(sys.argv[1:]))
    return 0


def append_readme(lines: list[str], argv: str) -> None:
    readme = ROOT / "bench" / "README.md"
    header = "" if readme.is_file() else "# Benchmarks\n"
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    block = [f"\n## Training throughput ({stamp})", "",
             f"Command: `.venv/bin/python bench/bench_train.py {argv}`".replace(" `", " `"), "", *lines, "",
             f"Load average (1/5/15 min) when done: {load} on {os.cpu_count()} cores: the machine was shared, so "
             "CPU numbers are a lower bound.", ""]
    with readme.open("a") as handle:
        handle.write(header + "\n".join(block) + "\n")


if __name__ == "__main__":
    sys.exit(main())
