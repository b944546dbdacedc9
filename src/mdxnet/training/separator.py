"""Training one TFC-TDF-U-Net separator: `mdxnet train separator --source S`."""

from __future__ import annotations

from pathlib import Path

import torch

from mdxnet.config import Params, Train, per_source, separator_kwargs
from mdxnet.data.sampler import build_train_dataset
from mdxnet.inference.stitching import stitching_for
from mdxnet.models import build_separator
from mdxnet.training import ddp
from mdxnet.training.health import level_db, warnings_for
from mdxnet.training.length import (
    Length,
    describe_length,
    separator_chunk,
    separator_length,
    training_samples,
)
from mdxnet.training.loop import Amp, LoopConfig, Trainer
from mdxnet.training.speed import StepSpeed
from mdxnet.training.state import resume_key, seed_everything
from mdxnet.training.validation import (
    ValidTrack,
    load_valid_tracks,
    run_training_chunks,
    separate_track,
    source_score,
)


class SeparatorTask:
    """Mixture chunk in, one source's waveform out; scored on whole validation tracks."""

    kind = "separator"

    def __init__(self, params: Params, source: str, seed: int, items: int):
        self.params, self.source = params, source
        self.stitching = stitching_for(params, source)  # validation stitches tracks as `mdxnet separate` does
        self.model_kwargs = separator_kwargs(params, source)
        self.model = build_separator(params, source)
        # the authors' validation chunks (train.valid_chunks training): the training chunk, n_fft/2 cut at each edge
        self.valid_chunk, self.valid_trim = self.model.chunk_samples, self.model.stft.n_fft // 2
        self.dataset = build_train_dataset(params, self.model.chunk_samples, seed, length=items)
        self.index = params.sources.index(source)
        self.batch = int(params.separate.batch)
        self._valid: list[ValidTrack] | None = None

    def prepare(self, batch, device: torch.device):
        mixture, targets = batch
        return (mixture.to(device, non_blocking=True),), targets[:, self.index].to(device, non_blocking=True)

    def validate(self, model, device: torch.device) -> dict[str, float] | None:
        if self._valid is None:
            self._valid = load_valid_tracks(self.params, [self.source])
        if not self._valid:
            return None
        with Amp(self.params.train.amp, self.params.train.amp_dtype, device).autocast():
            estimates = [self._separate(model, t.mixture, device).numpy() for t in self._valid]
        return {"valid_sdr": source_score(self.params.train, self._valid, self.source, estimates),
                "valid_level_db": level_db([t.sources[self.source] for t in self._valid], estimates)}

    def _separate(self, model, mixture: torch.Tensor, device: torch.device) -> torch.Tensor:
        """One validation track through the separator, cut as train.valid_chunks says: `training`, the authors'
        chunks of the training size with n_fft/2 trimmed at both edges (their datamodule `overlap`, n_fft/2 in
        configs/experiment/multigpu_*.yaml), their training batch at a time; `inference`, as `mdxnet separate`."""
        if self.params.train.valid_chunks == "inference":
            return separate_track(model, mixture, self.stitching, self.batch, device)
        batch = int(per_source(self.params.train.batch_size, self.source))
        return run_training_chunks(model, mixture, self.valid_chunk, self.valid_trim, batch, device)

    def health_warnings(self, metrics: dict | None) -> list[str]:
        """Why this separator's validation `metrics` look collapsed (params train.health); empty = healthy."""
        return warnings_for(metrics, self.params.train.health)


def separator_config(train: Train, source: str, out: Path, live_dir: Path | None, steps: int | None, resume_key: str,
                     length: Length):
    """`length`: the budget and validation interval in steps (mdxnet.training.length); `steps` overrides the
    budget (`mdxnet train --steps`)."""
    return LoopConfig(
        name=source,
        steps=int(steps if steps is not None else length.steps),
        batch_size=int(per_source(train.batch_size, source)),
        lr=float(per_source(train.lr, source)) * float(train.lr_scale),
        valid_every=length.valid_every,
        checkpoint_every=int(train.checkpoint_every),
        loss=train.loss,
        **shared_loop_settings(train),
        last_path=checkpoint_dir(out, source) / "last.pt",
        best_path=Path(out),
        live_dir=Path(live_dir) if live_dir is not None else Path("dvclive") / source,
        resume_key=resume_key,
    )


def shared_loop_settings(train: Train) -> dict:
    """The `train` values that the separators and the Mixer share (logging, precision, seed, loader)."""
    return dict(
        log_every=int(train.log_every),
        amp=bool(train.amp),
        amp_dtype=train.amp_dtype,
        seed=int(train.seed),
        num_workers=int(train.num_workers),
        patience=train.early_stopping.patience,
        min_delta=float(train.early_stopping.min_delta),
        deterministic=bool(train.deterministic),
        speed=StepSpeed.from_params(train.speed),
    )


def checkpoint_dir(out: Path, name: str) -> Path:
    """Resumable state lives beside the output: <models>/checkpoints/<name>/."""
    return Path(out).parent / "checkpoints" / name


def train_separator(params: Params, source: str, out: Path, *, device: str = "auto", steps: int | None = None,
                    live_dir: Path | None = None):
    dist, torch_device = ddp.init_distributed(device)
    try:
        ddp.check_processes(dist, int(per_source(params.train.gpus, source)), f"train.gpus.{source}")
        songs = training_samples(params) if params.train.unit == "epochs" else None
        length = separator_length(params, source, separator_chunk(params, source), songs)
        cfg = separator_config(params.train, source, out, live_dir, steps,
                               resume_key(params, f"separator/{source}"), length)
        describe_length(source, length)
        seed_everything(cfg.seed)  # before the model is built: its initial weights come from this seed
        task = SeparatorTask(params, source, cfg.seed, items=cfg.steps * cfg.batch_size)
        return Trainer(task, cfg, dist, torch_device).run()
    finally:
        ddp.shutdown(dist)

