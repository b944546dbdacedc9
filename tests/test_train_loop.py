"""The training loop with tiny stand-in tasks (no audio, no real model): resume, NaN guard, logging, DDP."""

from __future__ import annotations

import json
import math
import socket

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from mdxnet.errors import UserError
from mdxnet.training.ddp import DistContext
from mdxnet.training.loop import LoopConfig, StepBatches, Trainer, TrainingDiverged, step_indices
from mdxnet.training.state import capture_rng, restore_rng, resume_key, seed_everything
from mdxnet.training.validation import global_sdr

LENGTH = 64


class ToyDataset(Dataset):
    """Item i is a pure function of (seed, i), like the real sampler; the target is source 0."""

    def __init__(self, seed: int, nan_from: int | None = None, crash_from: int | None = None):
        self.seed, self.nan_from, self.crash_from = seed, nan_from, crash_from

    def __len__(self):
        return 10**6

    def __getitem__(self, index):
        if self.crash_from is not None and index >= self.crash_from:
            raise RuntimeError("simulated crash")
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        sources = torch.randn(4, 2, LENGTH, generator=gen) * torch.tensor([1.0, 0.5, 0.3, 0.2]).view(4, 1, 1)
        mixture = sources.sum(0)
        if self.nan_from is not None and index >= self.nan_from:
            mixture = mixture * float("nan")
        return mixture, sources


class ToyTask:
    kind, source = "separator", "vocals"

    def __init__(self, seed: int = 0, batchnorm: bool = True, nan_from: int | None = None,
                 crash_from: int | None = None):
        norm = nn.BatchNorm1d(8) if batchnorm else nn.Identity()
        self.model = nn.Sequential(nn.Conv1d(2, 8, 3, padding=1), norm, nn.ReLU(), nn.Conv1d(8, 2, 3, padding=1))
        self.model_kwargs = {"toy": True}
        self.params = {"toy": seed}
        self.dataset = ToyDataset(seed, nan_from, crash_from)
        self.valid = [ToyDataset(seed + 1)[i] for i in range(2)]

    def prepare(self, batch, device):
        mixture, targets = batch
        return (mixture.to(device),), targets[:, 0].to(device)

    def validate(self, model, device):
        sdrs = [global_sdr(t[0].numpy(), model(m[None])[0].numpy()) for m, t in self.valid]
        return {"valid_sdr": float(torch.tensor(sdrs).median())}


def config(tmp_path, steps=12, **overrides) -> LoopConfig:
    values = dict(name="toy", steps=steps, batch_size=4, lr=3e-3, loss="l1", valid_every=5, checkpoint_every=3,
                  log_every=2, amp=False, amp_dtype="bfloat16", seed=0, num_workers=0,
                  last_path=tmp_path / "ckpt" / "last.pt", best_path=tmp_path / "out.pt",
                  live_dir=tmp_path / "live", resume_key="k")
    values.update(overrides)
    return LoopConfig(**values)


SINGLE = DistContext()


def train(tmp_path, steps=12, task_kwargs=None, dist=SINGLE, **overrides):
    seed_everything(0)
    task = ToyTask(**(task_kwargs or {}))
    return Trainer(task, config(tmp_path, steps, **overrides), dist, torch.device("cpu")).run(), task


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_step_batches_are_disjoint_shards_of_each_step():
    ranks = [list(StepBatches(3, 6, 8, DistContext(r, 2))) for r in range(2)]
    for step, (first, second) in enumerate(zip(*ranks, strict=True), start=3):
        assert len(first) == len(second) == 4
        assert sorted(first + second) == step_indices(step, 8)


def test_rng_state_round_trip():
    seed_everything(5)
    state = capture_rng()
    first = (torch.rand(3), __import__("numpy").random.rand(3), __import__("random").random())
    restore_rng(state)
    second = (torch.rand(3), __import__("numpy").random.rand(3), __import__("random").random())
    assert torch.equal(first[0], second[0]) and (first[1] == second[1]).all() and first[2] == second[2]


def test_resume_key_ignores_steps_but_not_lr():
    params = {"train": {"steps": 10, "lr": 1e-3, "mixer": {"steps": 5}}}
    longer = {"train": {"steps": 99, "lr": 1e-3, "mixer": {"steps": 7}}}
    other_lr = {"train": {"steps": 10, "lr": 2e-3, "mixer": {"steps": 5}}}
    assert resume_key(params, "a") == resume_key(longer, "a")
    assert resume_key(params, "a") != resume_key(other_lr, "a")
    assert resume_key(params, "a") != resume_key(params, "b")


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    full, _ = train(tmp_path / "full", steps=12)
    # a run that crashes while loading step 9's data (items 32..): checkpoints at 3, 5, 6, logged up to 8
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tmp_path / "cut", steps=12, task_kwargs={"crash_from": 32})
    assert torch.load(tmp_path / "cut" / "ckpt" / "last.pt", weights_only=True)["step"] == 6
    # the unfinished run's best model (step 5) stays in the checkpoint folder: no output yet
    assert not (tmp_path / "cut" / "out.pt").exists()
    assert torch.load(tmp_path / "cut" / "ckpt" / "best.pt", weights_only=True)["step"] == 5
    resumed, _ = train(tmp_path / "cut", steps=12)
    assert resumed.best_step == full.best_step and resumed.best_score == full.best_score
    assert_same(weights(tmp_path / "full" / "ckpt" / "last.pt"), weights(tmp_path / "cut" / "ckpt" / "last.pt"))
    full_out, cut_out = (torch.load(tmp_path / run / "out.pt", weights_only=True) for run in ("full", "cut"))
    assert_same(full_out["state_dict"], cut_out["state_dict"])
    assert full_out["step"] == cut_out["step"] == full.best_step and full_out["extra"] == cut_out["extra"]
    assert_same(weights(tmp_path / "cut" / "ckpt" / "best.pt"), cut_out["state_dict"])
    # the resumed run continued the dvclive history instead of restarting it
    rows = (tmp_path / "cut" / "live" / "plots" / "metrics" / "loss.tsv").read_text().split()[2::2]
    assert [int(s) for s in rows] == [2, 4, 6, 8, 10, 12]  # row 8 of the crashed run was replaced


def test_other_params_start_afresh(tmp_path):
    train(tmp_path, steps=6)
    result, _ = train(tmp_path, steps=6, resume_key="changed-lr")
    assert result.steps == 6
    steps = (tmp_path / "live" / "plots" / "metrics" / "loss.tsv").read_text().split()[2::2]
    assert [int(s) for s in steps] == [2, 4, 6]  # logs restarted too


def test_dvclive_metrics_and_plots(tmp_path):
    result, _ = train(tmp_path, steps=10)
    metrics = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert metrics["step"] == 10
    for key in ("loss", "lr", "valid_sdr", "best_valid_sdr"):
        assert math.isfinite(metrics[key]), key
    # throughput changes on every run: a log beside the metrics, so that the same training logs the same metrics
    assert "step_time" not in metrics and "samples_per_s" not in metrics
    assert not (tmp_path / "live" / "plots" / "metrics" / "step_time.tsv").exists()
    timing = (tmp_path / "live" / "timing.tsv").read_text().splitlines()
    assert timing[0].split("\t") == ["step", "step_time", "samples_per_s"] and len(timing) == 1 + 10 // 2
    assert metrics["best_valid_sdr"] == pytest.approx(result.best_score)
    valid = (tmp_path / "live" / "plots" / "metrics" / "valid_sdr.tsv").read_text().split()
    assert valid[:2] == ["step", "valid_sdr"] and [int(s) for s in valid[2::2]] == [5, 10]
    assert not (tmp_path / "dvc.yaml").exists() and not (tmp_path / "live" / "dvc.yaml").exists()


def test_training_lowers_the_loss(tmp_path):
    train(tmp_path, steps=40, valid_every=40, log_every=10, lr=1e-2)
    loss = [float(v) for v in (tmp_path / "live" / "plots" / "metrics" / "loss.tsv").read_text().split()[3::2]]
    assert loss[-1] < 0.8 * loss[0]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    # items from index 4*7 on are NaN: step 8 (items 28..31) is the first bad one
    with pytest.raises(TrainingDiverged, match=r"step 8: the loss is nan.*last good checkpoint"):
        train(tmp_path, steps=12, task_kwargs={"nan_from": 28})
    last = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert last["step"] == 6
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())
    assert (tmp_path / "ckpt" / "best.pt").is_file() and not (tmp_path / "out.pt").exists()


def test_output_is_written_only_when_the_run_finishes(tmp_path):
    out = tmp_path / "out.pt"
    with pytest.raises(RuntimeError, match="simulated crash"):  # dies during step 11, after two validations
        train(tmp_path, steps=12, task_kwargs={"crash_from": 40})
    assert not out.exists() and (tmp_path / "ckpt" / "best.pt").is_file()
    result, _ = train(tmp_path, steps=12)
    written = torch.load(out, weights_only=True)
    assert written["step"] == result.best_step and written["extra"]["valid_sdr"] == result.best_score
    assert_same(written["state_dict"], weights(tmp_path / "ckpt" / "best.pt"))
    assert not [p.name for p in tmp_path.rglob("*.tmp")]
    # a rerun of the finished run rewrites nothing; a deleted output is restored from last.pt
    mtime = out.stat().st_mtime_ns
    train(tmp_path, steps=12)
    assert out.stat().st_mtime_ns == mtime
    out.unlink()
    train(tmp_path, steps=12)
    assert_same(torch.load(out, weights_only=True)["state_dict"], written["state_dict"])


def test_output_of_another_run_is_kept_until_this_one_finishes(tmp_path):
    train(tmp_path, steps=6)
    before = weights(tmp_path / "out.pt")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tmp_path, steps=12, resume_key="changed-lr", task_kwargs={"crash_from": 32})
    assert_same(weights(tmp_path / "out.pt"), before)  # the finished model, not the new run's partial best
    result, _ = train(tmp_path, steps=12, resume_key="changed-lr")
    replaced = torch.load(tmp_path / "out.pt", weights_only=True)
    assert replaced["extra"]["resume_key"] == "changed-lr" and replaced["step"] == result.best_step


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, root, batch_size: int) -> None:
    import torch.distributed as tdist

    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        train(root, steps=6, task_kwargs={"batchnorm": False}, dist=DistContext(rank, world), batch_size=batch_size)
    finally:
        tdist.destroy_process_group()


@pytest.mark.parametrize("batch_size", [4, 3])
def test_ddp_two_gloo_processes_match_one_process(tmp_path, batch_size):
    """Each rank trains on its share of every batch (3 splits 2+1, each rank's loss weighted by its share);
    averaged gradients give the single-process update on the whole batch, and the logged loss is its loss."""
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), tmp_path / "ddp", batch_size), nprocs=2)
    train(tmp_path / "single", steps=6, task_kwargs={"batchnorm": False}, batch_size=batch_size)
    ddp_weights, single = weights(tmp_path / "ddp" / "ckpt" / "last.pt"), weights(tmp_path / "single" / "ckpt" / "last.pt")
    for key in single:
        torch.testing.assert_close(ddp_weights[key], single[key], rtol=1e-5, atol=1e-6)
    logged = [(tmp_path / run / "live" / "plots" / "metrics" / "loss.tsv").read_text().split()[2:]
              for run in ("ddp", "single")]
    assert [int(s) for s in logged[0][::2]] == [2, 4, 6]  # rank 0 alone logged
    torch.testing.assert_close(torch.tensor([float(v) for v in logged[0][1::2]]),
                               torch.tensor([float(v) for v in logged[1][1::2]]), rtol=1e-5, atol=0)


def test_uneven_shards_cover_the_batch_and_weight_the_loss_by_share():
    for world, batch in [(3, 8), (2, 3), (4, 16), (3, 3)]:
        ranks = [DistContext(rank, world) for rank in range(world)]
        shards = [r.shard(list(range(batch))) for r in ranks]
        assert sum(shards, []) == list(range(batch))  # contiguous, disjoint, complete
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
        assert math.isclose(sum(r.loss_weight(batch) for r in ranks) / world, 1.0)
    assert [len(DistContext(r, 3).shard(list(range(8)))) for r in range(3)] == [3, 3, 2]  # as DataParallel
    assert DistContext(0, 2).loss_weight(4) == 1.0
    with pytest.raises(UserError, match="smaller than the 4 torchrun processes"):
        DistContext(0, 4).check_batch(3)
