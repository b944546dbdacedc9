"""The GPU rehearsal: what only a GPU can show about the paper run, in one command, in a few minutes.

    .venv/bin/python bench/gpu_rehearsal.py            # or: make gpu-rehearsal
    .venv/bin/python bench/gpu_rehearsal.py --data resources/synth-rehearsal --json out.json

1. the `gpu`-marked tests (CUDA matches the CPU; fp16 and bf16 autocast training);
2. the paper rehearsal (params profile `rehearsal`) on CUDA with the authors' AMP (fp16 autocast + GradScaler,
   train.amp / train.amp_dtype): the four separators at the authors' batch sizes (16/8/8/8: the GPU has the memory
   the CPU rehearsal lacks), the two Mixers, the separation of the test songs and their BSS Eval scores, each
   through the `mdxnet` command its Snakemake rule runs (through `snakemake all` itself where Snakemake is
   installed); checks: paper-size parameter counts, estimates as long as their songs, no NaN;
3. paper-size training throughput: one training step (forward, loss, backward, RMSProp) of each separator at its
   paper batch size in fp32, bf16 autocast and fp16 autocast + GradScaler (bench_train.py's timing, the loop's
   own step); per speed lever of params train.speed (channels_last, foreach, cudnn_benchmark, torch.compile,
   CUDA graphs, all together) in fp16 with the peak memory, for --lever-sources; the DataLoader alone over the
   rehearsal's songs and augmentation cache per worker count; and the training loop's own samples/s with its
   DataLoader workers reading the dataset (what a GPU waits for);
4. paper-size separation speed on CUDA (random weights, a 240 s song, 512-frame trim chunks, batch 2 and 16).

The figures are printed, appended to bench/README.md and, with --json, written as data. Without a CUDA device it
stops at once with exit 3 and says so. Augmentation is a CPU stage (rubberband) and is not rehearsed here:
tests/test_rehearsal.py runs it (and the whole chain) on the CPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
NO_GPU = 3
PAPER_BATCH = {"vocals": 16, "drums": 8, "bass": 8, "other": 8}  # params.yaml train.batch_size (the authors')
# The Mixer's paper batch (params.yaml train.mixer.batch_size): 16 chunks, each through the four separators.
MIXER_BATCH = 16

# dvclive (the training loop's logger) pulls in DVC itself; a GPU image without it gets this stand-in, which keeps
# the logged rows in memory and writes metrics.json, so that the rehearsal can read the loop's samples/s.
DVCLIVE_STANDIN = '''
import json, os
class Live:
    def __init__(self, dir="dvclive", **kwargs):
        self.dir, self.step, self.rows = dir, 0, []
        os.makedirs(dir, exist_ok=True)
    def log_metric(self, name, value, plot=True):
        self.rows.append({"step": self.step, "name": name, "value": value})
    def make_summary(self):
        with open(os.path.join(self.dir, "metrics.json"), "w") as handle:
            json.dump(self.rows, handle)
    def end(self):
        self.make_summary()
'''


def cuda_or_exit():
    try:
        import torch
    except ImportError:
        sys.exit(f"gpu_rehearsal: PyTorch is not importable by {sys.executable}: nothing to rehearse")
    if not torch.cuda.is_available():
        print("gpu_rehearsal: no CUDA device is visible to PyTorch (torch.cuda.is_available() is False, torch "
              f"{torch.__version__}, CUDA build {torch.version.cuda}): the GPU rehearsal needs one. The CPU "
              "rehearsal is `pytest tests/test_rehearsal.py`.", file=sys.stderr)
        sys.exit(NO_GPU)
    return torch


class Runner:
    """Runs `mdxnet` commands as the workflow's rules do, in one project folder, timing each."""

    def __init__(self, project: Path, env: dict):
        self.project, self.env, self.steps = project, env, []

    def mdxnet(self, *args: str, what: str) -> subprocess.CompletedProcess:
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "mdxnet.cli", "--params", "params.yaml", *args],
                              cwd=self.project, env=self.env, capture_output=True, text=True)
        seconds = time.perf_counter() - began
        self.steps.append({"step": what, "seconds": round(seconds, 1), "rc": done.returncode})
        print(f"  {what}: {seconds:.1f} s, exit {done.returncode}", flush=True)
        if done.returncode != 0:
            raise RuntimeError(f"{what} failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        return done


def child_env(scratch: Path) -> dict:
    paths = [str(ROOT / "src")]
    try:
        import dvclive  # noqa: F401
    except ImportError:
        standin = scratch / "standins" / "dvclive"
        standin.mkdir(parents=True, exist_ok=True)
        (standin / "__init__.py").write_text(DVCLIVE_STANDIN)
        paths.append(str(standin.parent))
        print("  dvclive is not installed: its stand-in logs the training rows (bench/gpu_rehearsal.py)")
    path = os.environ.get("PATH", "")
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        # museval imports musdb, which imports stempeg, which refuses to load unless ffmpeg and ffprobe are on
        # PATH, though scoring wav files never runs them: stand-ins that fail if run let the scoring load.
        bin_dir = scratch / "standins" / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        for name in ["ffmpeg", "ffprobe"]:
            (bin_dir / name).write_text(f"#!/bin/sh\necho '{name} is a stand-in (bench/gpu_rehearsal.py)' >&2\nexit 1\n")
            (bin_dir / name).chmod(0o755)
        path = os.pathsep.join([str(bin_dir), path])
        print("  ffmpeg is not installed: stand-ins on PATH let museval load (the rehearsal scores wav files)")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]),
            "PATH": path, "PYTHONUNBUFFERED": "1"}


def gpu_tests(env: dict) -> dict:
    """The gpu-marked tests, selected (the project's pytest options deselect them)."""
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-o", "addopts=", "-p",
                           "no:cacheprovider", "tests/test_train_resume.py", "tests/test_separation.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    summary = (done.stdout.strip().splitlines() or ["no output"])[-1]
    print(f"  gpu tests: {summary} ({time.perf_counter() - began:.0f} s)")
    if done.returncode != 0:
        print(done.stdout[-4000:], done.stderr[-2000:])
    return {"summary": summary, "rc": done.returncode}


def rehearsal_params(project: Path, data: Path | None, extra_test: bool, device: str) -> dict:
    import yaml

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["profile"] = "rehearsal"
    overlay = raw["profiles"]["rehearsal"]
    overlay["train"]["device"] = device
    if device == "cuda":  # the authors' batch sizes: the GPU has the memory the CPU rehearsal lacks
        overlay["train"]["batch_size"] = dict(PAPER_BATCH)
        overlay["train"]["mixer"]["batch_size"] = MIXER_BATCH
    if data is not None:
        overlay["data"].update(origin="existing", root=str(data.resolve()))
    if not extra_test:  # .stem.mp4 files are read through ffmpeg
        overlay["data"]["extra_test"] = []
    else:  # a device machine gets the working tree alone: the real clips beside it may be absent there
        found = [(ROOT / p).resolve() for p in overlay["data"]["extra_test"]]
        for missing in [p for p in found if not p.exists()]:
            print(f"  data.extra_test: {missing} is not on this machine: the chain runs without it")
        overlay["data"]["extra_test"] = [str(p) for p in found if p.exists()]
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return raw


def chain(project: Path, env: dict, data: Path | None, device: str = "cuda") -> dict:
    """The rehearsal's GPU steps as the workflow runs them (Snakemake itself where it is installed)."""
    project.mkdir(parents=True)
    raw = rehearsal_params(project, data, shutil.which("ffmpeg") is not None, device)
    batch = raw["profiles"]["rehearsal"]["train"]["batch_size"]
    mixer_batch = raw["profiles"]["rehearsal"]["train"]["mixer"]["batch_size"]
    snakemake = shutil.which("snakemake")
    if snakemake:
        for name in ["Snakefile", "workflow", "profiles", "dvc.yaml", "published"]:
            copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
            copy(ROOT / name, project / name)
        began = time.perf_counter()
        done = subprocess.run([snakemake, "--cores", str(os.cpu_count()), "--resources", "gpu=1", "all"],
                              cwd=project, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-4000:])
        steps = [{"step": "snakemake all", "seconds": round(time.perf_counter() - began, 1), "rc": 0}]
        return {"steps": steps, **check_outputs(project)}
    run = Runner(project, env)
    if data is None:
        run.mdxnet("data", "synth", what="data synth")
    run.mdxnet("data", "check", "--report", "data-check.json", what="data check")
    for source in PAPER_BATCH:
        run.mdxnet("train", "separator", "--source", source, "--live-dir", f"dvclive/{source}",
                   what=f"train {source} (batch {batch if isinstance(batch, int) else batch[source]})")
    for kind in ["linear", "conv"]:
        name = "mixer" if kind == "linear" else "mixer-conv"
        run.mdxnet("train", "mixer", "--models", "models", "--kind", kind, "--live-dir", f"dvclive/{name}",
                   "--out", f"models/{name}.pt", what=f"train {name} (batch {mixer_batch})")
    for name, song in test_songs(project).items():
        out = f"estimates/no-mixer/test/{name}"
        run.mdxnet("evaluate", "separate", song, "--models", "models", "-o", out, what=f"separate {name}")
        for mixer, kind in [("mixer", "linear"), ("mixer-conv", "conv")]:
            run.mdxnet("evaluate", "mix", song, out, "--mixer", f"models/{mixer}.pt", "--kind", kind, "-o",
                       f"estimates/{mixer}/test/{name}", what=f"{mixer} over {name}")
        for run_name in ["no-mixer", "mixer", "mixer-conv"]:
            run.mdxnet("evaluate", "track", song, "--estimates", f"estimates/{run_name}/test/{name}",
                       *(["--cross-check"] if run_name == "mixer" else []), "-o",
                       f"evaluation/{run_name}/test/{name}.json", what=f"score {run_name} {name}")
    for run_name in ["no-mixer", "mixer", "mixer-conv"]:
        run.mdxnet("evaluate", "aggregate", f"evaluation/{run_name}", "-o", f"evaluation/{run_name}.json",
                   what=f"aggregate {run_name}")
    return {"steps": run.steps, **check_outputs(project)}


def test_songs(project: Path) -> dict[str, str]:
    """{track name: path} of the test songs, as the workflow lists them (mdxnet.data.musdb.list_test_songs)."""
    from mdxnet.config import load_params
    from mdxnet.data.musdb import list_test_songs, track_name

    params = load_params(project / "params.yaml")
    return {track_name(path): str(path) for path in list_test_songs(params)}


def check_outputs(project: Path) -> dict:
    """Paper-size parameter counts of every checkpoint, estimates as long as their songs, nothing NaN."""
    import numpy as np
    import soundfile as sf
    import torch

    counts = {}
    for path in sorted((project / "models").glob("*.pt")):
        state = torch.load(path, map_location="cpu", weights_only=True)
        weights = state.get("state_dict", state)
        counts[path.stem] = sum(v.numel() for k, v in weights.items()
                                if v.is_floating_point() and "running_" not in k)
        assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point()), path
    lengths = {}
    for folder in sorted((project / "estimates").glob("*/test/*")):
        frames = {sf.info(str(wav)).frames for wav in folder.glob("*.wav")}
        assert len(frames) == 1, folder
        for wav in folder.glob("*.wav"):
            assert np.isfinite(sf.read(str(wav), dtype="float32")[0]).all(), wav
        lengths[f"{folder.parts[-3]}/{folder.name}"] = frames.pop()
    medians = {}
    for summary in sorted((project / "evaluation").glob("*.json")):
        medians[summary.stem] = json.loads(summary.read_text())
    return {"parameters": counts, "estimate_frames": lengths, "summaries": medians}


def training_throughput(torch) -> list[dict]:
    """Seconds per paper-size training step at each source's paper batch, fp32 / bf16 / fp16 + GradScaler."""
    from bench_train import paper_params, time_lever

    from mdxnet.training.speed import StepSpeed

    params, device, rows = paper_params(), torch.device("cuda"), []
    for source, batch in PAPER_BATCH.items():
        seconds = params_chunk(params, source) / params.sample_rate
        for mode, amp_dtype in [("fp32", None), ("bf16 autocast", "bfloat16"),
                                ("fp16 autocast + GradScaler", "float16")]:
            step, peak = time_lever(params, source, batch, StepSpeed(), amp_dtype, device, steps=5, warmup=2)
            rows.append({"source": source, "batch": batch, "mode": mode, "s_per_step": step,
                         "samples_per_s": batch / step, "audio_s_per_s": batch * seconds / step,
                         "peak_gb": peak * 2**30 / 1e9})
            print(f"  train {source} batch {batch} {mode}: {step:.3f} s/step, {batch / step:.1f} samples/s")
    return rows


def params_chunk(params, source: str) -> int:
    from mdxnet.models import build_separator

    return build_separator(params, source).chunk_samples


# The speed levers timed per source (params train.speed, bench_train.LEVERS): max-autotune is left out (its
# autotuning takes many minutes at this size); `all` is every lever together.
REHEARSED_LEVERS = ("eager", "channels_last", "foreach", "cudnn_benchmark", "compile", "compile_cudagraphs", "all")


def lever_throughput(torch, sources: list[str]) -> list[dict]:
    """Chunks/s of the training loop's own step per speed lever, fp16 autocast + GradScaler (the recipe's), at
    each source's paper batch, with the peak memory; ratios against the eager step of the same run."""
    from bench_train import LEVERS, lever_speed, paper_params, time_lever

    params, device, rows = paper_params(), torch.device("cuda"), []
    for source in sources:
        batch, eager = PAPER_BATCH[source], None
        for name in REHEARSED_LEVERS:
            speed = lever_speed(name, device)
            try:
                step, peak = time_lever(params, source, batch, speed, "float16", device, steps=10, warmup=3)
            except Exception as err:  # a lever that fails here is a finding, not the end of the phase
                rows.append({"source": source, "batch": batch, "lever": name, "error": f"{type(err).__name__}: "
                             f"{str(err)[:300]}"})
                print(f"  lever {source} {name}: FAILED {rows[-1]['error']}", flush=True)
                continue
            eager = eager or step
            rows.append({"source": source, "batch": batch, "lever": name, "speed": LEVERS.get(name, "all"),
                         "s_per_step": step, "samples_per_s": batch / step, "x_vs_eager": eager / step,
                         "peak_gb": peak * 2**30 / 1e9})
            print(f"  lever {source} batch {batch} {name}: {step:.3f} s/step, {batch / step:.1f} chunks/s, "
                  f"x{eager / step:.2f}", flush=True)
    return rows


def loader_throughput(torch, project: Path) -> list[dict]:
    """Chunks/s of the training DataLoader alone over the rehearsal's songs and augmentation cache (paper-size
    chunks, batches copied to the GPU from pinned memory), per worker count: what the step must not outrun."""
    from bench_train import loader_rate

    from mdxnet.config import load_params

    here, rows = Path.cwd(), []
    os.chdir(project)  # the params' data and cache paths are the project's
    try:
        params = load_params(Path("params.yaml"), profile="rehearsal")
        for workers in sorted({0, 4, min(16, os.cpu_count() or 1)}):
            rate = loader_rate(params, "drums", 8, workers, chunks=128, device=torch.device("cuda"))
            rows.append({"workers": workers, "batch": 8, "chunks_per_s": rate})
            print(f"  loader drums batch 8, {workers} workers: {rate:.1f} chunks/s", flush=True)
    finally:
        os.chdir(here)
    return rows


def loop_throughput(project: Path, env: dict) -> dict:
    """The training loop's own samples/s (DataLoader workers reading the rehearsal songs, fp16 AMP), drums at
    batch 8 for 30 steps, from the rows the loop logs every 10 steps (the first window includes start-up)."""
    import yaml

    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["profiles"]["rehearsal"]["train"].update(steps=30, log_every=10, valid_every=30)
    (project / "params-loop.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mdxnet.cli", "--params", "params-loop.yaml", "train", "separator",
                           "--source", "drums", "--live-dir", "dvclive/loop", "--out", "loop/drums.pt"],
                          cwd=project, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-4000:])
    rows = read_timing(project / "dvclive" / "loop", "samples_per_s")
    print(f"  loop: samples/s per 10-step window {rows} ({time.perf_counter() - began:.0f} s)")
    return {"windows_samples_per_s": rows, "workers": raw["train"]["num_workers"]}


def read_timing(live_dir: Path, name: str) -> list[float]:
    """One throughput column of the loop's timing.tsv (mdxnet.training.monitor)."""
    lines = [line.split("\t") for line in (live_dir / "timing.tsv").read_text().splitlines()]
    column = lines[0].index(name)
    return [round(float(line[column]), 2) for line in lines[1:]]


def separation_speed(torch, scratch: Path, seconds: float = 240.0) -> list[dict]:
    """Paper-size separation (4 separators + the linear Mixer) of a `seconds`-long song on CUDA, fp32."""
    import numpy as np

    from mdxnet.checkpoint import init_models
    from mdxnet.config import load_params
    from mdxnet.inference.separation import SeparationPipeline

    params = load_params(ROOT / "params.yaml", profile="paper")
    models = scratch / "random-models"
    init_models(models, params, seed=0)
    rng = np.random.default_rng(0)
    song = (0.1 * rng.standard_normal((2, int(seconds * 44100)))).astype(np.float32)
    rows = []
    for batch in [2, 16]:
        pipeline = SeparationPipeline.from_dir(models, params, device="cuda", batch=batch, backend="torch")
        pipeline.separate(song[:, : 30 * 44100], progress=False)  # warm-up: cuDNN picks its kernels
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        began = time.perf_counter()
        out = pipeline.separate(song, progress=False)
        torch.cuda.synchronize()
        wall = time.perf_counter() - began
        assert all(np.isfinite(v).all() and v.shape == song.shape for v in out.values())
        rows.append({"batch": batch, "wall_s": wall, "audio_s_per_s": seconds / wall,
                     "peak_gb": torch.cuda.max_memory_allocated() / 1e9})
        print(f"  separate {seconds:.0f} s, batch {batch}: {wall:.1f} s, {seconds / wall:.1f} s of audio/s")
        del pipeline
    return rows


def markdown(report: dict) -> list[str]:
    env = report["environment"]
    lines = [f"\n## GPU rehearsal ({report['stamp']}, {env['gpu']})", "",
             f"Command: `{report['command']}` (torch {env['torch']}, CUDA {env['cuda']}; {env['cpus']} CPU cores). "
             "Written by bench/gpu_rehearsal.py.", ""]
    if "gpu_tests" in report:
        lines += [f"- `gpu`-marked tests: {report['gpu_tests']['summary']}"]
    if "chain" in report:
        chain = report["chain"]
        lines += ["- rehearsal chain on CUDA (profile `rehearsal`, paper batch sizes, fp16 AMP + GradScaler): "
                  + "; ".join(f"{s['step']} {s['seconds']} s" for s in chain["steps"]),
                  f"- parameters per checkpoint: {chain['parameters']}",
                  f"- estimate lengths (samples): {chain['estimate_frames']}; no NaN"]
    for key in ["chain_error", "throughput_error", "levers_error", "loader_error", "loop_error", "separation_error",
                "gpu_tests_error"]:
        if key in report:
            lines += [f"- {key.replace('_error', '')} FAILED: {report[key].splitlines()[0][:300]}"]
    if "throughput" in report:
        lines += ["", "| source | batch | mode | s/step | samples/s | s of audio/s | peak GPU GB |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['source']} | {r['batch']} | {r['mode']} | {r['s_per_step']:.3f} | {r['samples_per_s']:.1f} "
                  f"| {r['audio_s_per_s']:.1f} | {r['peak_gb']:.1f} |" for r in report["throughput"]]
    if "levers" in report:
        lines += ["", "| source | batch | speed lever (fp16 autocast + GradScaler) | s/step | chunks/s | vs eager "
                  "| peak GPU GB |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['source']} | {r['batch']} | {r['lever']} | "
                  + (f"failed: {r['error'][:150]} | | | |" if "error" in r else
                     f"{r['s_per_step']:.3f} | {r['samples_per_s']:.1f} | x{r['x_vs_eager']:.2f} | {r['peak_gb']:.1f} |")
                  for r in report["levers"]]
    if "loader" in report:
        lines += ["", "DataLoader alone (drums, batch 8, the rehearsal's songs and augmentation cache, pinned copies "
                  "to the GPU): " + "; ".join(f"{r['workers']} workers {r['chunks_per_s']:.1f} chunks/s"
                                               for r in report["loader"])]
    if "loop" in report:
        lines += ["", f"Training loop (drums, batch 8, fp16 AMP, {report['loop']['workers']} DataLoader workers "
                  f"reading the rehearsal's wav songs): samples/s per 10-step window "
                  f"{report['loop']['windows_samples_per_s']} (the first includes start-up)."]
    if "separation" in report:
        lines += ["", "| separation, 240 s song, fp32, PyTorch on CUDA | wall s | s of audio/s | peak GPU GB |",
                  "|---|---|---|---|"]
        lines += [f"| batch {r['batch']} | {r['wall_s']:.1f} | {r['audio_s_per_s']:.1f} | {r['peak_gb']:.1f} |"
                  for r in report["separation"]]
    return lines + [""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a generated rehearsal dataset (default: `mdxnet data synth`)")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    parser.add_argument("--skip", nargs="*", default=[], choices=["tests", "chain", "throughput", "levers", "loop",
                                                                  "loader", "separation"])
    parser.add_argument("--lever-sources", default="drums,vocals",
                        help="separators whose step is timed per speed lever (each compiles: ~minutes)")
    parser.add_argument("--no-readme", action="store_true", help="do not append to bench/README.md")
    # a check of this script on a machine without a GPU: the chain alone, on the CPU, at the rehearsal's batch 1
    parser.add_argument("--cpu-check", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cpu_check:
        import torch

        env = child_env(Path(tempfile.mkdtemp(prefix="mdxnet-gpu-rehearsal-")))
        print(json.dumps(chain(Path(tempfile.mkdtemp()) / "project", env, args.data, "cpu"), indent=1))
        return 0
    torch = cuda_or_exit()
    sys.path.insert(0, str(ROOT / "src"))
    report = {"stamp": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
              "command": "python " + " ".join(["bench/gpu_rehearsal.py", *sys.argv[1:]]),
              "environment": {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
                              "cuda": torch.version.cuda, "cpus": os.cpu_count()}}
    scratch = Path(tempfile.mkdtemp(prefix="mdxnet-gpu-rehearsal-"))
    env = child_env(scratch)
    project = scratch / "project"
    # the cost model's figures first: a run cut short (a lease running out) still leaves them
    phases = [("gpu_tests", "tests", lambda: gpu_tests(env)),
              ("throughput", "throughput", lambda: training_throughput(torch)),
              ("levers", "levers", lambda: lever_throughput(torch, args.lever_sources.split(","))),
              ("separation", "separation", lambda: separation_speed(torch, scratch)),
              ("chain", "chain", lambda: chain(project, env, args.data)),
              ("loader", "loader", lambda: loader_throughput(torch, project)),
              ("loop", "loop", lambda: loop_throughput(project, env))]
    for key, name, phase in phases:
        if name in args.skip or (name in ("loop", "loader") and "chain" not in report):
            continue
        print(f"{name}:", flush=True)
        try:
            report[key] = phase()
        except Exception as err:  # one failing phase must not hide the others' figures
            report[f"{key}_error"] = f"{type(err).__name__}: {err}"
            print(f"  FAILED: {report[f'{key}_error'][:3000]}", flush=True)
        if args.json:  # after every phase: a run cut short keeps what it measured
            args.json.write_text(json.dumps(report, indent=1, default=str))
    lines = markdown(report)
    print("\n".join(lines))
    if not args.no_readme:
        with (ROOT / "bench" / "README.md").open("a") as handle:
            handle.write("\n".join(lines) + "\n")
    failed = [key for key in report if key.endswith("_error")]
    if report.get("gpu_tests", {}).get("rc"):
        failed.append("gpu_tests")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
