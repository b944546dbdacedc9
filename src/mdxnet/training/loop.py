"""The training loop shared by the separators and the Mixer.

What it does is set by the recipe params.yaml names (`mdxnet params --deviations` lists how it departs from the
authors' code and the paper): RMSProp without momentum (the paper's "Configurations and Training") at a constant
learning rate (neither reference schedules it), the loss `train.loss`, mixed precision on CUDA when `train.amp` is
set. A task object supplies the model, the dataset, how a batch becomes (model inputs, target) and the validation
score (`train.valid_sdr` reduced over the validation tracks by `train.valid_reduce`; higher is better).

Exact resumption: step s always trains on dataset items [s*B, (s+1)*B) (sharded over DDP ranks), and items are a
pure function of (seed, index), so the data never depends on how the run was interrupted. `last.pt` holds model,
optimizer, grad-scaler, RNG streams and the best-so-far state; a restarted run continues from it bit for bit.

Files: while a run trains, everything it writes stays in its checkpoint folder (models/checkpoints/<name>/):
`last.pt` (resumable state) and `best.pt` (the best model so far, a loadable checkpoint). The output
(`best_path`, models/<source>.pt or models/mixer.pt) is written once, atomically, when the run has finished
all its steps, so a killed or diverged run never leaves a model under the name `mdxnet separate` and the
workflow take as done.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from mdxnet.checkpoint import load_checkpoint, save_checkpoint
from mdxnet.config import Params
from mdxnet.errors import UserError
from mdxnet.training import ddp, health, speed
from mdxnet.training.ddp import DistContext
from mdxnet.training.monitor import Monitor
from mdxnet.training.speed import StepSpeed
from mdxnet.training.state import capture_rng, restore_rng
from mdxnet.training.stopping import EarlyStopping

log = logging.getLogger(__name__)

# Test hook: the process SIGKILLs itself right after finishing this step (used to test exact resumption).
KILL_ENV = "MDXNET_TRAIN_KILL_AFTER_STEP"
AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
LOSSES = {"l1": nn.functional.l1_loss, "mse": nn.functional.mse_loss}


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN/inf; the last good checkpoint is left in place."""


class TrainingTask(Protocol):
    kind: str  # 'separator' | 'mixer' (checkpoint kind)
    source: str | None
    model: nn.Module
    model_kwargs: dict
    params: Params  # recorded in every checkpoint; train.health read at the end
    dataset: Dataset

    def prepare(self, batch: Any, device: torch.device) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """A collated dataset batch -> (model inputs, target) on `device`."""

    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float] | None:
        """Validation metrics with `model` in eval mode: 'valid_sdr' (dB as train.valid_sdr/valid_reduce choose it,
        higher is better; picks the best checkpoint) and any extra ones to log. None when the dataset has no validation tracks."""


@dataclass
class LoopConfig:
    name: str
    steps: int
    batch_size: int
    lr: float
    loss: str
    valid_every: int
    checkpoint_every: int
    log_every: int
    amp: bool
    amp_dtype: str
    seed: int
    num_workers: int
    last_path: Path  # resumable state, in the run's checkpoint folder
    best_path: Path  # the output: the best model, written when the run finishes (models/<source>.pt)
    live_dir: Path
    resume_key: str
    patience: int | None = None  # train.early_stopping (mdxnet.training.stopping); None: the step budget only
    min_delta: float = 0.0
    deterministic: bool = False  # train.deterministic: cuDNN's deterministic algorithms on CUDA
    speed: StepSpeed = field(default_factory=StepSpeed)  # train.speed: how a step is computed (same mathematics)

    def __post_init__(self):
        self.speed.check(self.deterministic)
        if self.loss not in LOSSES:
            raise UserError(f"unknown train.loss {self.loss!r} in params.yaml: use one of {sorted(LOSSES)}")
        if self.amp_dtype not in AMP_DTYPES:
            raise UserError(f"unknown train.amp_dtype {self.amp_dtype!r} in params.yaml: use {sorted(AMP_DTYPES)}")
        for key in ("steps", "batch_size", "valid_every", "checkpoint_every", "log_every"):
            if getattr(self, key) < 1:
                raise UserError(f"{key} must be >= 1 (got {getattr(self, key)}): fix it in params.yaml")

    @property
    def best_so_far_path(self) -> Path:
        """The best model of an unfinished run: beside last.pt, never under the output's name."""
        return self.last_path.with_name("best.pt")


@dataclass
class Progress:
    """What survives a restart besides model/optimizer: the step and the best model so far."""

    step: int = 0
    best_score: float | None = None
    best_step: int | None = None
    best_state: dict | None = field(default=None, repr=False)
    best_metrics: dict | None = None  # the best model's validation metrics (its health is judged on them)


@dataclass
class TrainResult:
    steps: int
    best_score: float | None
    best_step: int | None
    best_path: Path


def step_indices(step: int, batch_size: int) -> list[int]:
    """Dataset items of one training step: a pure function of the step, so resumption is exact."""
    return list(range(step * batch_size, (step + 1) * batch_size))


class StepBatches(Sampler):
    """This rank's share of the batch indices of steps [start, steps)."""

    def __init__(self, start: int, steps: int, batch_size: int, dist: DistContext):
        self.start, self.steps, self.batch_size, self.dist = start, steps, batch_size, dist

    def __iter__(self):
        for step in range(self.start, self.steps):
            yield self.dist.shard(step_indices(step, self.batch_size))

    def __len__(self) -> int:
        return max(0, self.steps - self.start)


class Amp:
    """Autocast + GradScaler settings: only on CUDA, GradScaler only for float16."""

    def __init__(self, enabled: bool, dtype_name: str, device: torch.device):
        self.enabled = enabled and device.type == "cuda"
        self.dtype = AMP_DTYPES[dtype_name]
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.enabled and self.dtype == torch.float16)

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.enabled)


class Window:
    """Loss and timing averaged over the steps since the last log row."""

    def __init__(self):
        self.losses, self.seconds = [], []

    def add(self, loss: float, seconds: float) -> None:
        self.losses.append(loss)
        self.seconds.append(seconds)

    def metrics(self, lr: float, batch_size: int) -> tuple[dict[str, float], dict[str, float]]:
        """(the logged metrics, the throughput of the window: a log of its own, see mdxnet.training.monitor)."""
        step_time = sum(self.seconds) / len(self.seconds)
        row = {"loss": sum(self.losses) / len(self.losses), "lr": lr}
        timing = {"step_time": step_time, "samples_per_s": batch_size / step_time}
        self.losses, self.seconds = [], []
        return row, timing


def all_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


class Trainer:
    """One training run of one task; `run()` trains from scratch or from `last.pt` up to `cfg.steps`."""

    def __init__(self, task: TrainingTask, cfg: LoopConfig, dist: DistContext, device: torch.device):
        dist.check_batch(cfg.batch_size)
        self.task, self.cfg, self.dist, self.device = task, cfg, dist, device
        self.model = speed.prepare_model(task.model.to(device), cfg.speed)
        self.optimizer = speed.optimizer(self.model.parameters(), cfg.lr, cfg.speed)
        self.amp = Amp(cfg.amp, cfg.amp_dtype, device)
        self.loss_fn = LOSSES[cfg.loss]
        self.progress = Progress()
        self.stopping = EarlyStopping(cfg.patience, cfg.min_delta)
        speed.set_backends(device, cfg.deterministic, cfg.speed)
        self._resume()
        self.ddp_model = ddp.wrap_model(self.model, dist, device)
        self.forward_loss = speed.compiled(self._forward_loss, cfg.speed)
        self.loss_weight = dist.loss_weight(cfg.batch_size)  # 1 unless the batch splits unevenly over the ranks

    # ---- checkpoints -------------------------------------------------------------------------------------

    def _resume(self) -> None:
        path = self.cfg.last_path
        if not path.is_file():
            return
        try:
            ckpt = load_checkpoint(path, kind=self.task.kind, source=self.task.source)
        except UserError as err:
            log.warning("not resuming: %s", err)
            return
        extra = ckpt.get("extra", {})
        if extra.get("resume_key") != self.cfg.resume_key:
            log.warning("not resuming from %s: it was trained with other params or inputs; starting afresh", path)
            return
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(extra["optimizer"])
        self.amp.scaler.load_state_dict(extra["scaler"])
        restore_rng(extra["rng"])
        self.progress = Progress(ckpt["step"], extra["best_score"], extra["best_step"], extra["best_state"],
                                 extra.get("best_metrics"))
        self.stopping.load(extra.get("early_stopping"))
        log.info("resuming %s from %s at step %d", self.cfg.name, path, ckpt["step"])

    def _save(self, path: Path, step: int, extra: dict) -> None:
        save_checkpoint(path, self.model, kind=self.task.kind, source=self.task.source,
                        model_kwargs=self.task.model_kwargs, params=self.task.params, step=step, extra=extra)

    def _save_state(self, path: Path, state: dict, step: int, extra: dict) -> None:
        """Save `state` (a model state dict) as a checkpoint of this task, leaving the live model as it was."""
        current = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(state)
        try:
            self._save(path, step, extra)
        finally:
            self.model.load_state_dict(current)

    def _save_last(self, step: int) -> None:
        if not all_finite(self.model):
            self._diverged(step, "the weights contain NaN/inf")
        if not self.dist.is_main:
            return
        p = self.progress
        self._save(self.cfg.last_path, step, {
            "resume_key": self.cfg.resume_key, "optimizer": self.optimizer.state_dict(),
            "scaler": self.amp.scaler.state_dict(), "rng": capture_rng(),
            "best_score": p.best_score, "best_step": p.best_step, "best_state": p.best_state,
            "best_metrics": p.best_metrics, "early_stopping": self.stopping.state(),
        })

    def _best_extra(self) -> dict:
        extra = {"valid_sdr": self.progress.best_score, "resume_key": self.cfg.resume_key}
        if self._judges_health:
            extra["health"] = health.verdict(self.progress.best_metrics, self.task.params.train.health)
        return extra

    @property
    def _judges_health(self) -> bool:
        return hasattr(self.task, "health_warnings")

    def _health_warnings(self, metrics: dict | None) -> list[str]:
        return self.task.health_warnings(metrics) if self._judges_health else []

    def _save_best_so_far(self) -> None:
        """The best model so far, into the checkpoint folder (the output is only written by `_publish`)."""
        p = self.progress
        if self.dist.is_main and p.best_state is not None:
            self._save_state(self.cfg.best_so_far_path, p.best_state, p.best_step, self._best_extra())

    def _published(self) -> bool:
        """Whether the output already holds this run's best model (a rerun of a finished run rewrites nothing)."""
        path = self.cfg.best_path
        if not path.is_file():
            return False
        try:
            found = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError):  # unreadable: replaced
            return False
        return (isinstance(found, dict) and found.get("extra", {}).get("resume_key") == self.cfg.resume_key
                and found.get("step") == self.progress.best_step)

    def _publish(self) -> None:
        """The finished run's best model under the output's name, atomically."""
        p = self.progress
        if not self.dist.is_main or self._published():
            return
        if p.best_state is None:  # only when resumed past --steps from a checkpoint taken before any validation
            raise UserError(f"{self.cfg.last_path} is at step {p.step}, past the {self.cfg.steps} steps asked for, "
                            f"and holds no validated model to write: rerun with --steps {p.step} or more")
        self._save_state(self.cfg.best_path, p.best_state, p.best_step, self._best_extra())
        health.announce(self.cfg.name, self._health_warnings(p.best_metrics))

    def _diverged(self, step: int, what: str) -> None:
        last = self.cfg.last_path
        kept = f"the last good checkpoint {last} is kept" if last.is_file() else "no checkpoint was written yet"
        raise TrainingDiverged(
            f"training {self.cfg.name} diverged at step {step}: {what}. Stopped; {kept}. Lower the learning rate "
            f"(train.lr / train.lr_scale in params.yaml) or set train.amp: false, then rerun")

    # ---- validation --------------------------------------------------------------------------------------

    def _validate(self, step: int, monitor: Monitor) -> None:
        if self.dist.is_main:
            self.model.eval()
            with torch.inference_mode():
                metrics = self.task.validate(self.model, self.device)
            self.model.train()
            score = None if metrics is None else metrics["valid_sdr"]
            p = self.progress
            if score is None or p.best_score is None or score > p.best_score:
                p.best_score, p.best_step, p.best_metrics = score, step, metrics
                p.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
                self._save_best_so_far()
            if score is not None:
                summary = {"best_valid_sdr": p.best_score, "best_step": p.best_step}
                warnings = self._health_warnings(p.best_metrics)
                if self._judges_health:  # 1 = the best model so far looks collapsed (mdxnet.training.health)
                    summary["collapsed"] = float(bool(warnings))
                monitor.log(step, metrics, summary=summary)
                monitor.note(f"step {step}: validation SDR {score:.3f} dB (best {p.best_score:.3f} dB "
                             f"at step {p.best_step})" + ("; NOT HEALTHY: " + "; ".join(warnings) if warnings else ""))
                if self.stopping.update(score):
                    monitor.note(f"step {step}: {self.stopping.describe()}")
        ddp.barrier(self.dist)
        self._share_stop()

    def _share_stop(self) -> None:
        """Only the main rank validates: every rank learns whether it stopped, so that all leave the loop."""
        if self.dist.world > 1:
            flag = torch.tensor(float(self.stopping.stopped), device=self.device)
            self.stopping.stopped = bool(ddp.mean_across_ranks(flag, self.dist) > 0)

    # ---- training ----------------------------------------------------------------------------------------

    def _loader(self, start: int) -> DataLoader:
        sampler = StepBatches(start, self.cfg.steps, self.cfg.batch_size, self.dist)
        # A private generator: the loader must not draw from the global RNG (it would shift resumed runs).
        generator = torch.Generator().manual_seed(self.cfg.seed)
        return DataLoader(self.task.dataset, batch_sampler=sampler, num_workers=self.cfg.num_workers,
                          generator=generator, **speed.loader_options(self.device, self.cfg.num_workers,
                                                                      self.cfg.speed))

    def _forward_loss(self, inputs: tuple[torch.Tensor, ...], target: torch.Tensor) -> torch.Tensor:
        """One step's model and loss (what train.speed.compile compiles)."""
        with self.amp.autocast():
            output = self.ddp_model(*inputs)
        return self.loss_fn(output.float(), target.float())

    def _train_step(self, batch: Any, step: int) -> float:
        inputs, target = self.task.prepare(batch, self.device)
        loss = self.forward_loss(inputs, target)
        if self.loss_weight != 1:  # this rank's share of an uneven split (mdxnet.training.ddp)
            loss = loss * self.loss_weight
        value = float(ddp.mean_across_ranks(loss.detach(), self.dist))
        if not math.isfinite(value):
            self._diverged(step + 1, f"the loss is {value}")
        self.optimizer.zero_grad(set_to_none=True)
        self.amp.scaler.scale(loss).backward()
        self.amp.scaler.step(self.optimizer)
        self.amp.scaler.update()
        return value

    def run(self) -> TrainResult:
        cfg, start = self.cfg, self.progress.step
        monitor = Monitor(cfg.live_dir, cfg.name, start, cfg.steps, enabled=self.dist.is_main)
        kill_after = int(os.environ.get(KILL_ENV, "0"))
        window = Window()
        global_batch = cfg.batch_size
        if self.dist.is_main and start < cfg.steps and cfg.best_path.is_file():
            log.info("%s is left as it is until this run finishes (its best model so far: %s)", cfg.best_path,
                     cfg.best_so_far_path)
        try:
            self.model.train()
            tick = time.perf_counter()  # step time includes waiting for data, excludes validation/saving
            # a run that stopped early stays stopped: rerun, it trains no further
            steps, batches = (range(0), []) if self.stopping.stopped else (range(start, cfg.steps),
                                                                           self._loader(start))
            for step, batch in zip(steps, batches, strict=True):
                loss = self._train_step(batch, step)
                done = step + 1
                window.add(loss, time.perf_counter() - tick)
                monitor.step(loss)
                if done % cfg.log_every == 0 or done == cfg.steps:
                    metrics, timing = window.metrics(cfg.lr, global_batch)
                    monitor.log(done, metrics)
                    monitor.timing(done, timing)
                validate = done % cfg.valid_every == 0 or done == cfg.steps
                if validate:
                    self._validate(done, monitor)
                if validate or done % cfg.checkpoint_every == 0 or self.stopping.stopped:
                    self._save_last(done)
                self.progress.step = done
                if done == kill_after and self.dist.is_main:
                    os.kill(os.getpid(), signal.SIGKILL)
                if self.stopping.stopped:
                    break
                tick = time.perf_counter()
        finally:
            monitor.close()
        # every step done (now, or by the run that last.pt comes from: then a deleted output is restored)
        self._publish()
        ddp.barrier(self.dist)
        p = self.progress
        return TrainResult(p.step, p.best_score, p.best_step, cfg.best_path)
