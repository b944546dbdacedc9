"""`mdxnet train` end to end on a tiny dataset and model: SIGKILL + restart gives the uninterrupted result
bit for bit, and the Mixer trains on frozen, eval-mode separators."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from mdxnet.config import load_params

SOURCES = ("vocals", "drums", "bass", "other")
# musdb's validation list decides the split of a plain MUSDB18-HQ-layout folder
VALID_TRACK = "Actions - One Minute Smile"


def write_track(folder: Path, rng: np.random.Generator, seconds: float = 2.0) -> None:
    """Four distinct toy stems (tone, clicks, low tone, noise) and their exact sum."""
    folder.mkdir(parents=True)
    n = int(44100 * seconds)
    t = np.arange(n) / 44100
    stems = {
        "vocals": 0.2 * np.sin(2 * np.pi * rng.uniform(300, 600) * t),
        "drums": 0.3 * (np.arange(n) % int(44100 * rng.uniform(0.2, 0.4)) < 300) * rng.standard_normal(n),
        "bass": 0.3 * np.sin(2 * np.pi * rng.uniform(50, 90) * t),
        "other": 0.05 * rng.standard_normal(n),
    }
    stereo = {k: np.stack([v, 0.8 * v], axis=1).astype(np.float32) for k, v in stems.items()}
    for name, audio in stereo.items():
        sf.write(folder / f"{name}.wav", audio, 44100, subtype="FLOAT")
    sf.write(folder / "mixture.wav", sum(stereo.values()), 44100, subtype="FLOAT")


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory, repo_root) -> Path:
    """A dataset (3 train + 1 valid + 1 test track, 2 s each) and a params file with a tiny model."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c", VALID_TRACK):
        write_track(root / "data" / "train" / name, rng)
    write_track(root / "data" / "test" / "t", rng)
    params = load_params(repo_root / "params.yaml").replace({
        "data": {"root": str(root / "data")},
        "augment": {"pitch_semitones": [], "tempo_rates": [], "root": str(root / "augmented")},
        "model": {"hop": 128, "dim_f": 64, "dim_t": 16, "num_blocks": 3, "num_convs": 1, "channels": 4, "growth": 2,
                  "bottleneck": 4, "n_fft": {s: 512 for s in SOURCES}},
        "separate": {"overlap": {s: 256 for s in SOURCES}, "batch": 2},
        "train": {"steps": 6, "batch_size": 2, "valid_every": 3, "checkpoint_every": 2, "log_every": 1,
                  "lr_scale": 1.0, "num_workers": 0, "amp": False,
                  "mixer": {"steps": 4, "batch_size": 2, "valid_every": 2, "checkpoint_every": 2,
                            "edge_trim": 256}},  # of a 1920-sample Mixer chunk
    })
    (root / "params.yaml").write_text(yaml.safe_dump(params.standalone()))
    return root


def mdxnet(project: Path, workdir: Path, *args: str, kill_after: int | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    env.pop("MDXNET_TRAIN_KILL_AFTER_STEP", None)
    if kill_after is not None:
        env["MDXNET_TRAIN_KILL_AFTER_STEP"] = str(kill_after)
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "mdxnet.cli", "--params", str(project / "params.yaml"), *args],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=300)


def state(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def test_sigkilled_run_resumes_to_the_identical_result(tiny_project):
    train = ("train", "separator", "--source", "vocals", "--device", "cpu")
    full = mdxnet(tiny_project, tiny_project / "full", *train)
    assert full.returncode == 0, full.stderr
    # checkpoints at steps 2, 3 (validation), 4; killed right after step 5, so step 5 is lost and redone
    killed = mdxnet(tiny_project, tiny_project / "cut", *train, kill_after=5)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    cut_last = tiny_project / "cut" / "models" / "checkpoints" / "vocals" / "last.pt"
    assert state(cut_last)["step"] == 4
    # the killed run left its best model (step 3) in its checkpoint folder, nothing under the final name
    assert not (tiny_project / "cut" / "models" / "vocals.pt").exists()
    assert state(cut_last.with_name("best.pt"))["step"] == 3
    assert not list((tiny_project / "cut" / "models").rglob("*.tmp"))
    resumed = mdxnet(tiny_project, tiny_project / "cut", *train)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming vocals" in resumed.stderr

    for rel in ("models/vocals.pt", "models/checkpoints/vocals/last.pt", "models/checkpoints/vocals/best.pt"):
        a, b = state(tiny_project / "full" / rel), state(tiny_project / "cut" / rel)
        assert a["step"] == b["step"] and a["extra"].get("best_score") == b["extra"].get("best_score")
        for key in a["state_dict"]:
            assert torch.equal(a["state_dict"][key], b["state_dict"][key]), (rel, key)
    for opt_a, opt_b in zip(state(tiny_project / "full" / "models/checkpoints/vocals/last.pt")["extra"]["optimizer"]
                            ["state"].values(),
                            state(cut_last)["extra"]["optimizer"]["state"].values(), strict=True):
        assert torch.equal(opt_a["square_avg"], opt_b["square_avg"])
    # the same loss curve, one row per step, with no duplicate from the killed run
    loss = "dvclive/vocals/plots/metrics/loss.tsv"
    assert (tiny_project / "full" / loss).read_text() == (tiny_project / "cut" / loss).read_text()
    assert len((tiny_project / "cut" / loss).read_text().splitlines()) == 1 + 6
    best = state(tiny_project / "full" / "models" / "vocals.pt")
    assert best["step"] in (3, 6) and best["kind"] == "separator" and best["source"] == "vocals"


def test_mixer_trains_on_frozen_eval_mode_separators_and_reruns_are_idempotent(tiny_project):
    from mdxnet.checkpoint import load_separator
    from mdxnet.config import load_params
    from mdxnet.training.mixer import MixerTask

    work = tiny_project / "mix"
    for source in SOURCES:
        done = mdxnet(tiny_project, work, "train", "separator", "--source", source, "--device", "cpu",
                      "--steps", "2")
        assert done.returncode == 0, done.stderr
    # rerunning a finished run trains nothing but restores a deleted output from last.pt
    out = work / "models" / "drums.pt"
    before = state(out)["state_dict"]
    out.unlink()
    rerun = mdxnet(tiny_project, work, "train", "separator", "--source", "drums", "--device", "cpu", "--steps", "2")
    assert rerun.returncode == 0, rerun.stderr
    assert all(torch.equal(before[k], v) for k, v in state(out)["state_dict"].items())

    params = load_params(tiny_project / "params.yaml")
    task = MixerTask(params, work / "models", seed=0, items=8)
    assert all(not m.training for m in task.separators.values())
    assert not any(p.requires_grad for m in task.separators.values() for p in m.parameters())
    mixture, targets = task.dataset[0]
    (estimates, mix), target = task.prepare((mixture[None], targets[None]), torch.device("cpu"))
    for index, source in enumerate(SOURCES):
        reference = load_separator(work / "models" / f"{source}.pt", source)(mixture[None])
        assert torch.equal(estimates[0, index], reference[0].detach()), source

    result = mdxnet(tiny_project, work, "train", "mixer", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    mixer = state(work / "models" / "mixer.pt")
    assert mixer["kind"] == "mixer" and (work / "models/checkpoints/mixer/last.pt").is_file()
    best_so_far = state(work / "models/checkpoints/mixer/best.pt")  # the finished run's output is its best
    assert best_so_far["step"] == mixer["step"]
    assert all(torch.equal(best_so_far["state_dict"][k], v) for k, v in mixer["state_dict"].items())
    metrics = yaml.safe_load((work / "dvclive" / "mixer" / "metrics.json").read_text())
    assert {"valid_sdr", "valid_sdr_separators", "valid_sdr_vocals", "loss"} <= set(metrics)


def test_missing_separators_is_a_clear_error(tiny_project):
    result = mdxnet(tiny_project, tiny_project / "nomodels", "train", "mixer", "--device", "cpu")
    assert result.returncode == 2
    assert "vocals.pt" in result.stderr and "mdxnet train separator" in result.stderr


def test_torchrun_two_cpu_processes(tiny_project):
    """The real CLI under torchrun: gloo on CPU, each rank half of every batch, rank 0 alone writes."""
    work = tiny_project / "ddp"
    work.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("MDXNET_TRAIN_KILL_AFTER_STEP", None)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "mdxnet.cli",
         "--params", str(tiny_project / "params.yaml"), "train", "separator", "--source", "bass", "--device", "cpu",
         "--steps", "3"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("bass: trained 3 steps") == 1
    last = state(work / "models" / "checkpoints" / "bass" / "last.pt")
    assert last["step"] == 3 and (work / "models" / "bass.pt").is_file()
    rows = (work / "dvclive" / "bass" / "plots" / "metrics" / "loss.tsv").read_text().splitlines()
    assert [r.split("\t")[0] for r in rows] == ["step", "1", "2", "3"]


@pytest.mark.gpu
@pytest.mark.parametrize("amp_dtype", ["bfloat16", "float16"])
def test_cuda_mixed_precision_trains(tiny_project, tmp_path, amp_dtype):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    params["train"].update(amp=True, amp_dtype=amp_dtype)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = mdxnet(tmp_path, tmp_path / "run", "train", "separator", "--source", "vocals", "--device", "cuda",
                    "--steps", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    last = state(tmp_path / "run" / "models" / "checkpoints" / "vocals" / "last.pt")
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


def test_metrics_torn_by_a_kill_do_not_stop_the_resume(tmp_path):
    """A job killed (e.g. by `scancel`) while dvclive rewrote metrics.json leaves it empty; the resumed run drops it
    and the rows after its checkpoint (a cut last row too), then logs on."""
    import json

    from mdxnet.training.monitor import Monitor

    live_dir = tmp_path / "dvclive"
    (live_dir / "plots" / "metrics").mkdir(parents=True)
    (live_dir / "metrics.json").write_text("")
    loss = live_dir / "plots" / "metrics" / "loss.tsv"
    loss.write_text("step\tloss\n2\t0.5\n4\t0.4\n6\t0.3\n8")
    monitor = Monitor(live_dir, "vocals", start_step=4, total_steps=8, enabled=True)
    monitor.log(6, {"loss": 0.25})
    monitor.close()
    assert json.loads((live_dir / "metrics.json").read_text())["step"] == 6
    assert loss.read_text().split() == ["step", "loss", "2", "0.5", "4", "0.4", "6", "0.25"]
