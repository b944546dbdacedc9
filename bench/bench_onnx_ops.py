"""Where an exported separator spends its time inside ONNX Runtime: time per operator type for one chunk.

    .venv/bin/python bench/bench_onnx_ops.py resources/onnx_cache/vocals-<hash>-t256.onnx --reps 3

Any exported separator (`mdxnet export-onnx`, or the cache `mdxnet separate` fills) runs `--reps` times (after
one warm-up) on a random input of its own shape (batch 1 where the batch is free) with ORT's profiler on, 2
threads, spinning off as `mdxnet.inference.onnx_runtime.onnx_session`; the profile's kernel times are summed per operator
type. The profiler's JSON is written to the working folder (onnxruntime_profile_*.json) and removed after.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.intra_op_num_threads = args.threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    shape = [dim if isinstance(dim, int) else 1 for dim in feed.shape]
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    session.run(None, {feed.name: x})
    start = time.perf_counter()
    for _ in range(args.reps):
        session.run(None, {feed.name: x})
    print(f"{(time.perf_counter() - start) / args.reps:.3f} s per run, input {shape}, {args.threads} threads")
    profile = session.end_profiling()
    spent, count = collections.Counter(), collections.Counter()
    with open(profile) as handle:
        for event in json.load(handle):
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                spent[event["args"]["op_name"]] += event["dur"]
                count[event["args"]["op_name"]] += 1
    os.remove(profile)
    total = sum(spent.values())
    runs = args.reps + 1
    for op, micros in spent.most_common(12):
        print(f"{op:26s} {micros / 1e3 / runs:8.1f} ms per run {100 * micros / total:5.1f} %  {count[op] // runs} nodes")


if __name__ == "__main__":
    main()
