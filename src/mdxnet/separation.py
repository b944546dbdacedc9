"""Whole-song separation with the four separators and the Mixer: the `Separator` API used by
`mdxnet separate` and by the evaluation stage.

Each separator only sees fixed-length chunks (model.chunk_samples). A song is cut into chunks that overlap
by `overlap` samples (per source, params.separate.overlap); every chunk's output is weighted by a window that
ramps linearly over the overlaps, and the weighted sum is divided by the summed weights, so the crossfade
weights sum to exactly one everywhere and seams do not click. The song is zero-padded at both ends (the
front by one overlap, so the first real sample is not inside a fade) and the output is cut back to exactly
the input length.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mdxnet.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkPlan:
    """Where the chunks of one song go, in the coordinates of the zero-padded song."""

    length: int  # input samples
    chunk: int
    overlap: int
    front: int  # zeros before the song
    padded: int  # total padded length
    starts: tuple[int, ...]

    @classmethod
    def make(cls, length: int, chunk: int, overlap: int) -> ChunkPlan:
        if not 0 <= overlap < chunk:
            raise ValueError(f"overlap {overlap} must be in [0, chunk={chunk})")
        step = chunk - overlap
        needed = overlap + length + overlap  # the song plus one full overlap on each side
        count = max(1, math.ceil((needed - chunk) / step) + 1)
        starts = tuple(i * step for i in range(count))
        return cls(length, chunk, overlap, overlap, starts[-1] + chunk, starts)

    def window(self) -> torch.Tensor:
        """Linear fade-in/out over `overlap` samples; strictly positive so every sample gets weight."""
        win = torch.ones(self.chunk)
        if self.overlap:
            ramp = (torch.arange(self.overlap) + 0.5) / self.overlap
            win[: self.overlap] = ramp
            win[-self.overlap:] = torch.minimum(win[-self.overlap:], ramp.flip(0))
        return win


def overlap_add(model, mixture: torch.Tensor, overlap: int, batch: int, device: torch.device,
                progress=None) -> torch.Tensor:
    """Run `model` (any module taking (B, 2, model.chunk_samples)) over a (2, n) song chunk by chunk."""
    plan = ChunkPlan.make(mixture.shape[-1], model.chunk_samples, overlap)
    padded = nn.functional.pad(mixture, (plan.front, plan.padded - plan.front - plan.length))
    window = plan.window()
    out = torch.zeros_like(padded)
    weight = torch.zeros(plan.padded)
    for first in range(0, len(plan.starts), batch):
        starts = plan.starts[first: first + batch]
        chunks = torch.stack([padded[:, s: s + plan.chunk] for s in starts]).to(device)
        estimates = model(chunks).float().cpu()
        for start, estimate in zip(starts, estimates, strict=True):
            out[:, start: start + plan.chunk] += estimate * window
            weight[start: start + plan.chunk] += window
        if progress is not None:
            progress.update(len(starts))
    return (out / weight)[:, plan.front: plan.front + plan.length]


def apply_mixer(mixer, estimates: torch.Tensor, mixture: torch.Tensor, segment: int,
                device: torch.device) -> torch.Tensor:
    """Mixer over a whole song in segments; `mixer.context` extra samples each side keep it exact."""
    length, context = mixture.shape[-1], mixer.context
    out = torch.empty_like(estimates)
    for start in range(0, length, segment):
        stop = min(start + segment, length)
        lo, hi = max(0, start - context), min(length, stop + context)
        part = mixer(estimates[None, ..., lo:hi].to(device), mixture[None, :, lo:hi].to(device))[0].float().cpu()
        out[..., start:stop] = part[..., start - lo: stop - lo]
    return out


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA device: use --device cpu")
    if device not in ("cpu", "cuda"):
        raise UserError(f"unknown device {device!r}: use cpu, cuda or auto")
    return torch.device(device)


def choose_backend(backend: str, device: torch.device) -> str:
    """'onnx' (CPU only, needs onnxruntime) or 'torch'; falls back to torch with a notice where onnx cannot run."""
    if backend not in ("onnx", "torch"):
        raise UserError(f"unknown separate.backend {backend!r} in params: use onnx or torch")
    if backend == "onnx" and device.type != "cpu":
        log.info("ONNX Runtime backend is CPU-only: running the separators in PyTorch on %s", device)
        return "torch"
    if backend == "onnx":
        try:
            import onnxruntime  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError:
            log.warning("onnxruntime/onnxscript not installed: running the separators in PyTorch")
            return "torch"
    return backend


def runnable(model, checkpoint: Path, source: str, backend: str, cfg: dict) -> nn.Module:
    """The chunk model the Separator calls: ORT-backed, or the torch model with BatchNorm folded in."""
    from mdxnet.models import fuse_for_inference

    if backend == "onnx":
        from mdxnet.onnx_export import OnnxChunkModel, cached_export

        return OnnxChunkModel(model.stft, cached_export(checkpoint, model, source, cfg.onnx_cache))
    return fuse_for_inference(model)


class Separator:
    """Four separators (+ optional Mixer) applied to whole songs.

    The constructor takes any chunk models (a `chunk_samples` attribute; (B, 2, chunk) -> (B, 2, chunk)) and
    puts them in eval mode on `device`: a trainer that validates with its own model must call .train() after.
    """

    def __init__(self, separators: dict[str, nn.Module], overlaps: dict[str, int], mixer: nn.Module | None = None,
                 batch: int = 1, device: str = "cpu"):
        self.device = pick_device(device)
        self.separators = {name: model.to(self.device).eval() for name, model in separators.items()}
        self.mixer = mixer.to(self.device).eval() if mixer is not None else None
        self.overlaps = overlaps
        self.batch = max(1, int(batch))
        for name, model in self.separators.items():
            if not 0 <= overlaps[name] < model.chunk_samples:
                raise UserError(f"separate.overlap for {name} is {overlaps[name]} but must be below the model's "
                                f"chunk of {model.chunk_samples} samples: fix it in params.yaml")

    @classmethod
    def from_dir(cls, models_dir, params: dict, device: str = "auto", use_mixer: bool = True,
                 batch: int | None = None, backend: str | None = None) -> Separator:
        """Load <models_dir>/<source>.pt for every source (and mixer.pt), checking them against `params`.

        backend (default params.separate.backend): 'onnx' runs the spectrogram nets in ONNX Runtime (CPU only;
        each checkpoint is exported once into params.separate.onnx_cache), 'torch' runs them in PyTorch.
        """
        from mdxnet.checkpoint import HOW_TO_GET, load_mixer, load_separator, mixer_path, separator_path
        from mdxnet.config import per_source, separator_kwargs
        from mdxnet.models import mixer_kwargs

        models_dir = Path(models_dir)
        if not models_dir.is_dir():
            raise UserError(f"models folder {models_dir} does not exist: {HOW_TO_GET}, or pass --models DIR")
        cfg = params.separate
        backend = choose_backend(backend or cfg.backend, pick_device(device))
        mixer = None  # checked first: a missing Mixer should not wait for four ONNX exports
        if use_mixer:
            path = mixer_path(models_dir)
            if not path.is_file():
                raise UserError(f"Mixer checkpoint {path} not found: train it with `mdxnet train mixer` "
                                f"or separate without it (--no-mixer)")
            mixer = load_mixer(path, mixer_kwargs(params))
        separators = {}
        for source in params.sources:
            path = separator_path(models_dir, source)
            model = load_separator(path, source, separator_kwargs(params, source))
            separators[source] = runnable(model, path, source, backend, cfg)
        overlaps = {s: int(per_source(cfg.overlap, s)) for s in params.sources}
        batch = cfg.batch if batch is None else batch
        return cls(separators, overlaps, mixer, batch=batch, device=device)

    @torch.inference_mode()
    def separate(self, mixture: np.ndarray, progress: bool = True) -> dict[str, np.ndarray]:
        """(2, n) float mixture -> {source: (2, n) float32 estimate}."""
        from tqdm import tqdm

        mixture = np.asarray(mixture, dtype=np.float32)
        if mixture.ndim != 2 or mixture.shape[0] != 2:
            raise UserError(f"expected a stereo (2, samples) mixture, got shape {mixture.shape}")
        mix = torch.from_numpy(mixture)
        total = sum(len(ChunkPlan.make(mix.shape[-1], m.chunk_samples, self.overlaps[s]).starts)
                    for s, m in self.separators.items())
        with tqdm(total=total, desc="separating", unit="chunk", disable=not progress, leave=False) as bar:
            estimates = torch.stack([overlap_add(model, mix, self.overlaps[name], self.batch, self.device, bar)
                                     for name, model in self.separators.items()])
        if self.mixer is not None:
            segment = max(m.chunk_samples for m in self.separators.values())
            estimates = apply_mixer(self.mixer, estimates, mix, segment, self.device)
        return {name: est.numpy() for name, est in zip(self.separators, estimates, strict=True)}
