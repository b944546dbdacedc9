"""Training the Mixer on the outputs of the four frozen separators: `mdxnet train mixer`.

The separators are loaded from their checkpoints, put in eval mode (BatchNorm uses its running statistics)
and frozen (requires_grad False); their outputs for each training chunk are computed on the fly without
gradients. Only training (and validation) tracks are read, never the test set. (The authors' Mixer,
src/models/mdxnet.py in kuielab/mdx-net, discards the weights it loads and leaves the separators' BatchNorm in
training mode; neither is reproduced.)

Loss (`train.mixer.loss`, mse | l1) over the Mixer's output chunk less `train.mixer.edge_trim` samples at each
edge: the authors' Mixer computes its MSE on `output[..., overlap:-overlap]` with overlap = 8192
(configs/model/Mixer.yaml). Our reading of why: each separator sees only that chunk, so its estimate is least
reliable near the chunk's edges (the authors' Mixer validation also drops those samples from each chunk before
joining them). Learning rate and batch size come from `train.mixer` (one value for the Mixer, not per source).
Validation: `mdxnet.training.validation`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mdxnet.checkpoint import load_separator, separator_path
from mdxnet.config import Params, Train, separator_kwargs
from mdxnet.data.sampler import build_train_dataset
from mdxnet.errors import UserError
from mdxnet.inference.separation import apply_mixer
from mdxnet.inference.stitching import stitching_for
from mdxnet.models import build_mixer, mixer_kwargs
from mdxnet.training import ddp
from mdxnet.training.length import Length, describe_length, mixer_chunk, mixer_length, training_samples
from mdxnet.training.loop import LOSSES, Amp, LoopConfig, Trainer
from mdxnet.training.separator import checkpoint_dir, shared_loop_settings
from mdxnet.training.state import resume_key, seed_everything
from mdxnet.training.validation import (
    ValidTrack,
    load_valid_tracks,
    run_training_chunks,
    separate_track,
    source_score,
)


def check_edge_trim(edge_trim: int, chunk: int) -> None:
    """The trimmed edges must leave samples to train on."""
    if edge_trim < 0 or 2 * edge_trim >= chunk:
        raise UserError(f"train.mixer.edge_trim = {edge_trim} in params.yaml leaves nothing of the Mixer's "
                        f"{chunk}-sample training chunk (2 x edge_trim must be < {chunk}): lower it")


class EdgeTrimmedLoss:
    """`kind` (mse | l1) between output and target (..., T), leaving out `edge_trim` samples at each end."""

    def __init__(self, kind: str, edge_trim: int):
        if kind not in LOSSES:
            raise UserError(f"unknown train.mixer.loss {kind!r} in params.yaml: use one of {sorted(LOSSES)}")
        self.kind, self.base, self.edge_trim = kind, LOSSES[kind], edge_trim

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        length = output.shape[-1]
        check_edge_trim(self.edge_trim, length)
        kept = slice(self.edge_trim, length - self.edge_trim)  # not [t:-t], which is empty for t = 0
        return self.base(output[..., kept], target[..., kept])


class MixerTrainer(Trainer):
    """The shared training loop with the Mixer's edge-trimmed loss in place of the plain one."""

    def __init__(self, task, cfg, dist, device, edge_trim: int):
        super().__init__(task, cfg, dist, device)
        self.loss_fn = EdgeTrimmedLoss(cfg.loss, edge_trim)


def load_frozen_separators(params: Params, models_dir: Path) -> dict:

    separators = {}
    for source in params.sources:
        model = load_separator(separator_path(models_dir, source), source, separator_kwargs(params, source),
                               params.sample_rate)
        model.eval().requires_grad_(False)
        separators[source] = model
    return separators


class MixerTask:
    """(four separator estimates, mixture) in, the four refined sources out."""

    kind = "mixer"
    source = None

    def __init__(self, params: Params, models_dir: Path, seed: int, items: int):
        self.params = params
        self.stitchings = {s: stitching_for(params, s) for s in params.sources}  # as `mdxnet separate`
        self.separators = load_frozen_separators(params, Path(models_dir))
        self.model_kwargs = mixer_kwargs(params.mixer, params.sources)
        self.model = build_mixer(params.mixer, params.sources)
        self.chunk = max(m.chunk_samples for m in self.separators.values())
        self.edge_trim = int(params.train.mixer.edge_trim)
        check_edge_trim(self.edge_trim, self.chunk)
        self.dataset = build_train_dataset(params, self.chunk, seed, length=items)
        self.batch = int(params.separate.batch)
        self._valid: list[ValidTrack] | None = None
        self._valid_estimates: list[torch.Tensor] = []

    def _on(self, device: torch.device) -> dict:
        for model in self.separators.values():
            model.to(device)
        return self.separators

    @torch.no_grad()
    def _estimate_chunks(self, mixture: torch.Tensor) -> torch.Tensor:
        """(B, 2, L) mixture chunks -> (B, 4, 2, L) separator estimates (chunked if a model's chunk is shorter)."""
        outputs = []
        for source, model in self.separators.items():
            if model.chunk_samples == mixture.shape[-1]:
                outputs.append(model(mixture).float())
            else:
                outputs.append(torch.stack([separate_track(model, m.cpu(), self.stitchings[source], self.batch,
                                                           mixture.device).to(mixture.device) for m in mixture]))
        return torch.stack(outputs, dim=1)

    def prepare(self, batch, device: torch.device):
        """The separators' estimates run under the training's autocast (train.amp, on CUDA only), as the authors'
        Mixer.training_step runs them inside Lightning's precision-16 autocast (src/models/mdxnet.py)."""
        mixture, targets = batch
        mixture = mixture.to(device, non_blocking=True)
        self._on(device)
        with Amp(self.params.train.amp, self.params.train.amp_dtype, device).autocast():
            estimates = self._estimate_chunks(mixture)
        return (estimates, mixture), targets.to(device, non_blocking=True)

    def _prepare_validation(self, device: torch.device) -> None:
        """Separator estimates of the validation tracks, once: the separators are frozen."""
        separators = self._on(device)
        self._valid_estimates = [
            torch.stack([separate_track(model, t.mixture, self.stitchings[s], self.batch, device)
                         for s, model in separators.items()])
            for t in self._valid
        ]

    def _scores(self, estimates: list[torch.Tensor]) -> dict[str, float]:
        """Each source's validation score (`train.valid_sdr` per track, reduced by `train.valid_reduce`)."""
        return {source: source_score(self.params.train, self._valid, source, [e[index].numpy() for e in estimates])
                for index, source in enumerate(self.params.sources)}

    def _validate_as_inference(self, model, device: torch.device) -> tuple[list, list]:
        """train.valid_chunks inference: the whole tracks separated as `mdxnet separate` does (once), then the
        Mixer over them. Returns (with the Mixer, separators alone), one (sources, 2, n) tensor per track."""
        if not self._valid_estimates:
            self._prepare_validation(device)
        mixed = [apply_mixer(model, e, t.mixture, self.chunk, device) for t, e in
                 zip(self._valid, self._valid_estimates, strict=True)]
        return mixed, self._valid_estimates

    def _validate_as_training(self, model, device: torch.device) -> tuple[list, list]:
        """train.valid_chunks training: the authors' Mixer.validation_step (kuielab/mdx-net@Leaderboard_A
        src/models/mdxnet.py): each training-size chunk through the four separators and the Mixer, its
        train.mixer.edge_trim samples (their Mixer `overlap`) cut at both edges, under the training's autocast."""
        sources = len(self.params.sources)

        def through(chunks: torch.Tensor) -> torch.Tensor:  # (B, 2, L) -> (B, 2 x sources, 2, L)
            estimates = self._estimate_chunks(chunks)
            return torch.cat([model(estimates, chunks).float(), estimates.float()], dim=1)

        self._on(device)
        batch = int(self.params.train.mixer.batch_size)
        with Amp(self.params.train.amp, self.params.train.amp_dtype, device).autocast():
            both = [run_training_chunks(through, t.mixture, self.chunk, self.edge_trim, batch, device)
                    for t in self._valid]
        return [b[:sources] for b in both], [b[sources:] for b in both]

    def validate(self, model, device: torch.device) -> dict[str, float] | None:
        if self._valid is None:
            self._valid = load_valid_tracks(self.params, self.params.sources)
        if not self._valid:
            return None
        run = self._validate_as_training if self.params.train.valid_chunks == "training" else \
            self._validate_as_inference
        mixed, alone = run(model, device)
        with_mixer, alone = self._scores(mixed), self._scores(alone)
        # the Mixer's score: the mean over sources of the per-source scores
        metrics = {"valid_sdr": float(np.mean(list(with_mixer.values()))),
                   "valid_sdr_separators": float(np.mean(list(alone.values())))}
        metrics.update({f"valid_sdr_{s}": v for s, v in with_mixer.items()})
        return metrics


def mixer_config(train: Train, out: Path, live_dir: Path | None, steps: int | None, resume_key: str, length: Length):
    """`length`: the budget and validation interval in steps (mdxnet.training.length); `steps` overrides the
    budget (`mdxnet train --steps`)."""
    mixer = train.mixer
    return LoopConfig(
        name="mixer",
        steps=int(steps if steps is not None else length.steps),
        batch_size=int(mixer.batch_size),
        lr=float(mixer.lr),
        valid_every=length.valid_every,
        checkpoint_every=int(mixer.checkpoint_every),
        loss=mixer.loss,
        **shared_loop_settings(train),
        # named after the output, so that two Mixers (mixer.pt, mixer-conv.pt) never share resumable state
        last_path=checkpoint_dir(out, Path(out).stem) / "last.pt",
        best_path=Path(out),
        live_dir=Path(live_dir) if live_dir is not None else Path("dvclive") / "mixer",
        resume_key=resume_key,
    )


def train_mixer(params: Params, models_dir: Path, out: Path, *, device: str = "auto", steps: int | None = None,
                live_dir: Path | None = None):
    dist, torch_device = ddp.init_distributed(device)
    try:
        inputs = [separator_path(models_dir, s) for s in params.sources]
        missing = [str(p) for p in inputs if not p.is_file()]
        if missing:
            raise UserError(f"the Mixer needs the four trained separators; missing {', '.join(missing)}: train "
                            f"them with `mdxnet train separator --source S` or pass --models DIR")
        songs = training_samples(params) if params.train.unit == "epochs" else None
        length = mixer_length(params, mixer_chunk(params), songs)
        cfg = mixer_config(params.train, out, live_dir, steps, resume_key(params, "mixer", inputs), length)
        describe_length("mixer", length)
        seed_everything(cfg.seed)
        task = MixerTask(params, Path(models_dir), cfg.seed, items=cfg.steps * cfg.batch_size)
        return MixerTrainer(task, cfg, dist, torch_device, task.edge_trim).run()
    finally:
        ddp.shutdown(dist)
