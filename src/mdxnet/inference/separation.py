"""Whole-song separation with the four separators and the Mixer: the `SeparationPipeline` used by
`mdxnet separate`, by the evaluation stage and (one separator at a time, through `overlap_add`) by validation
during training.

Each separator sees chunks of `separate.chunk_frames` STFT frames (hop * (chunk_frames - 1) samples). The
network is convolutional over time (its TDF layers act on frequency only), so the chunk may be longer than the
dim_t frames it was trained on, as long as the frame count divides by its time downsampling 2**(num_blocks//2).
Two ways of joining the chunks (`separate.stitch`), both returning exactly the input length:

- trim (the authors' submission, kuielab/mdx-net-submission leaderboard_A predict_blend.py `demix_base`):
  `overlap` samples (n_fft/2) are discarded at both edges of every chunk, where the centred STFT sees zero
  padding, and the kept middles are laid end to end without a window. The song is zero-padded by `overlap` in
  front, so the first kept sample is the song's first.
- crossfade (this project's own): chunks overlap by `overlap` samples and are faded linearly into each other;
  the weighted sum is divided by the summed weights, so the weights sum to exactly one everywhere.

Both are one overlap-add with a per-chunk window: trim's is one on the kept middle and zero on the trimmed
edges, and the kept middles tile the song, so every output sample comes from exactly one chunk.

Songs are separated block by block (`SeparationPipeline.blocks`, `StitchStream`): the overlap-add buffer slides
along the song and each block of `segment` samples is handed on (to the Mixer, then to the caller) as soon as no
later chunk adds to it, so memory does not grow with the song's length. The array API (`separate`) is the same
stream collected into arrays; it equals, bit for bit, stitching the whole song in one buffer
(tests/test_separation.py::test_streamed_separation_equals_the_whole_song_path).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mdxnet.audio import ArraySong
from mdxnet.checkpoint import load_mixer, load_separator, mixer_path, require_models_folder, separator_path
from mdxnet.config import Params, separator_kwargs
from mdxnet.digest import file_sha256
from mdxnet.errors import UserError
from mdxnet.inference.imported import imported_onnx_separator
from mdxnet.inference.onnx_export import cache_path, cached_export, require_writable_cache
from mdxnet.inference.onnx_runtime import OnnxChunkModel
from mdxnet.inference.stitching import ChunkPlan, Stitching, StitchStream, checked_chunk_frames, stitching_for
from mdxnet.models import fuse_for_inference, mixer_kwargs

log = logging.getLogger(__name__)


def mixer_segment(stitchings) -> int:
    """Samples per Mixer call (and per output block of `SeparationPipeline.blocks`): the longest separator chunk.
    Everything that applies a Mixer uses it, so that their outputs are the same sample for sample."""
    return max(stitching.chunk for stitching in stitchings)


def mix_segment(mixer, estimates: torch.Tensor, mixture: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The Mixer on one stretch: (sources, 2, n) estimates and (2, n) mixture -> (sources, 2, n)."""
    return mixer(estimates[None].to(device), mixture[None].to(device))[0].float().cpu()


def apply_mixer(mixer, estimates: torch.Tensor, mixture: torch.Tensor, segment: int,
                device: torch.device) -> torch.Tensor:
    """Mixer over a whole song in segments; `mixer.context` extra samples each side keep it exact."""
    length = mixture.shape[-1]
    out = torch.empty_like(estimates)
    for start, stop, lo, hi in segments(length, segment, mixer.context):
        part = mix_segment(mixer, estimates[..., lo:hi], mixture[:, lo:hi], device)
        out[..., start:stop] = part[..., start - lo: stop - lo]
    return out


def segments(length: int, segment: int, context: int) -> Iterator[tuple[int, int, int, int]]:
    """(start, stop, lo, hi): consecutive stretches [start, stop) of a song, each with `context` samples more on
    both sides where the song has them ([lo, hi))."""
    for start in range(0, length, segment):
        stop = min(start + segment, length)
        yield start, stop, max(0, start - context), min(length, stop + context)


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


def runnable(model, checkpoint: Path, source: str, backend: str, cfg, frames: int,
             threads: int | None = None) -> nn.Module:
    """The chunk model the pipeline calls on chunks of `frames` STFT frames: ORT-backed (exported for that
    frame count; `threads` intra-op threads, default torch's), or the torch model with BatchNorm folded in (it
    takes any valid frame count)."""
    if backend == "onnx":
        path = cached_export(checkpoint, model, source, cfg.onnx_cache, frames)
        return OnnxChunkModel(model.stft, path, threads)
    return fuse_for_inference(model)


def require_export_room(models_dir: Path, params: Params, cache_dir) -> None:
    """The ONNX cache entries of the checkpoints in `models_dir`, and a cache folder they can be exported into
    where one is missing: checked before any model loads (imported ONNX separators need no export)."""
    entries = []
    for source in params.sources:
        checkpoint = separator_path(models_dir, source)
        if checkpoint.is_file():  # a missing one is named when it is loaded
            frames = checked_chunk_frames(params, source)
            entries.append(cache_path(cache_dir, source, file_sha256(checkpoint), frames))
    require_writable_cache(cache_dir, entries)


def session_threads(parallel: int) -> int:
    """Intra-op threads per ONNX Runtime session when `parallel` separators run at once: the cores torch uses,
    shared out (at least one each)."""
    return max(1, torch.get_num_threads() // max(1, parallel))


class Locked:
    """`read` (of a `mdxnet.audio.Song`) and `update` (of a progress bar) one call at a time, for streams run by
    several threads: a streamed file seeks, then reads; a bar's count is read, then written."""

    def __init__(self, inner, lock: threading.Lock):
        self.inner, self.lock = inner, lock
        self.length = getattr(inner, "length", None)

    def read(self, start: int, stop: int) -> np.ndarray:
        with self.lock:
            return self.inner.read(start, stop)

    def update(self, n: int) -> None:
        with self.lock:
            self.inner.update(n)


def advance_all(streams, stop: int, pool: ThreadPoolExecutor | None) -> None:
    """Advance every `StitchStream` to `stop`, one after the other or on the pool's threads (errors re-raised)."""
    if pool is None:
        for stream in streams:
            stream.advance(stop)
        return
    for done in [pool.submit(advance_without_autograd, stream, stop) for stream in streams]:
        done.result()


def advance_without_autograd(stream: StitchStream, stop: int) -> None:
    with torch.inference_mode():  # thread-local: the caller's inference mode does not reach pool threads
        stream.advance(stop)


class SeparationPipeline:
    """The whole system on whole songs: four separators (one network per source), each run chunk by chunk and
    stitched back (`Stitching`), then the optional Mixer over the four estimates.

    The constructor takes any chunk models ((B, 2, stitching.chunk) -> same shape) and puts them in eval mode
    on `device`. `parallel` separators run at once, each in its own thread (on the CPU; one at a time on CUDA):
    the chunks, batches and sums of each are those of a sequential run, so the result is the same.
    """

    def __init__(self, separators: dict[str, nn.Module], stitchings: dict[str, Stitching],
                 mixer: nn.Module | None = None, batch: int = 1, device: str = "cpu", parallel: int = 1):
        missing = [name for name in separators if not isinstance(stitchings.get(name), Stitching)]
        if missing:
            raise ValueError(f"no Stitching for {', '.join(missing)}")
        self.device = pick_device(device)
        self.separators = {name: model.to(self.device).eval() for name, model in separators.items()}
        self.mixer = mixer.to(self.device).eval() if mixer is not None else None
        self.stitchings = {name: stitchings[name] for name in separators}
        self.batch = max(1, int(batch))
        self.parallel = max(1, int(parallel)) if self.device.type == "cpu" else 1

    @classmethod
    def from_dir(cls, models_dir, params: Params, device: str = "auto", use_mixer: bool = True,
                 batch: int | None = None, backend: str | None = None,
                 parallel: int | None = None) -> SeparationPipeline:
        """Load <models_dir>/<source>.pt for every source (and mixer.pt), checking them against `params`.

        backend (default params.separate.backend): 'onnx' runs the spectrogram nets in ONNX Runtime (CPU only;
        each checkpoint is exported once per chunk size into params.separate.onnx_cache), 'torch' in PyTorch.
        parallel (default params.separate.parallel): separators run at once, the cores shared between their ORT
        sessions.
        """
        # the separate.* settings are checked before anything is loaded or exported
        stitchings = {source: stitching_for(params, source) for source in params.sources}
        models_dir = require_models_folder(models_dir)
        cfg = params.separate
        backend = choose_backend(backend or cfg.backend, pick_device(device))
        parallel = cfg.parallel if parallel is None else parallel
        threads = session_threads(parallel)
        if backend == "onnx":
            require_export_room(models_dir, params, cfg.onnx_cache)
        mixer = None  # checked first: a missing Mixer should not wait for four ONNX exports
        if use_mixer:
            path = mixer_path(models_dir)
            if not path.is_file():
                raise UserError(f"Mixer checkpoint {path} not found: train it with `mdxnet train mixer` "
                                f"or separate without it (--no-mixer)")
            mixer = load_mixer(path, mixer_kwargs(params.mixer, params.sources), params.sample_rate)
        separators = {}
        for source in params.sources:
            imported = imported_onnx_separator(models_dir, source, params, threads)  # `mdxnet models import` of an .onnx
            if imported is not None:
                separators[source] = imported
                continue
            path = separator_path(models_dir, source)
            model = load_separator(path, source, separator_kwargs(params, source), params.sample_rate)
            frames = checked_chunk_frames(params, source)
            separators[source] = runnable(model, path, source, backend, cfg, frames, threads)
        batch = cfg.batch if batch is None else batch
        return cls(separators, stitchings, mixer, batch=batch, device=device, parallel=parallel)

    def chunk_count(self, length: int) -> int:
        """Chunks the separators run, all sources together, for a song of `length` samples."""
        return sum(len(ChunkPlan.make(length, stitching).starts) for stitching in self.stitchings.values())

    @property
    def segment(self) -> int:
        """Samples per output block (and per Mixer call)."""
        return mixer_segment(self.stitchings.values())

    @torch.inference_mode()
    def blocks(self, song, progress: bool = True) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """Separate a `mdxnet.audio.Song` block by block: yields (first sample, {source: (2, n) float32}) for
        consecutive blocks of `segment` samples covering the song. Memory stays a few chunks per source (plus
        what `song` holds), whatever the song's length; the blocks laid end to end are `separate`'s output."""
        from tqdm import tqdm

        context = self.mixer.context if self.mixer is not None else 0
        pool = ThreadPoolExecutor(self.parallel, "separator") if self.parallel > 1 else None
        with tqdm(total=self.chunk_count(song.length), desc="separating", unit="chunk", disable=not progress,
                  leave=False) as bar, pool or nullcontext():
            source, shown = song, bar
            if pool is not None:
                lock = threading.Lock()
                source, shown = Locked(song, lock), Locked(bar, lock)
            streams = {name: StitchStream(model, source, self.stitchings[name], self.batch, self.device, shown)
                       for name, model in self.separators.items()}
            for start, stop, lo, hi in segments(song.length, self.segment, context):
                advance_all(streams.values(), hi, pool)
                estimates = torch.stack([stream.take(lo, hi) for stream in streams.values()])
                if self.mixer is not None:
                    mixture = torch.from_numpy(song.read(lo, hi))
                    estimates = mix_segment(self.mixer, estimates, mixture, self.device)
                for stream in streams.values():
                    stream.release(stop - context)  # the next block starts its context there
                part = estimates[..., start - lo: stop - lo]
                yield start, {name: est.numpy() for name, est in zip(streams, part, strict=True)}

    def separate(self, mixture: np.ndarray, progress: bool = True) -> dict[str, np.ndarray]:
        """(2, n) float mixture -> {source: (2, n) float32 estimate}: the array API (evaluation, benchmarks);
        `blocks` streams the same output for songs read from files."""
        mixture = np.asarray(mixture, dtype=np.float32)
        if mixture.ndim != 2 or mixture.shape[0] != 2:
            raise UserError(f"expected a stereo (2, samples) mixture, got shape {mixture.shape}")
        song = ArraySong(mixture)
        out = {name: np.empty_like(mixture) for name in self.separators}
        for start, block in self.blocks(song, progress):
            for name, audio in block.items():
                out[name][:, start: start + audio.shape[-1]] = audio
        return out
