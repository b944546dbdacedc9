"""How one separator's chunks are cut from a song and joined back: `Stitching` (trim or crossfade, checked
against params), `ChunkPlan` and the streamed overlap-add `StitchStream`; see `mdxnet.inference.separation`
for the two methods and why both tile the song exactly."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mdxnet.audio import ArraySong
from mdxnet.config import Params, per_source, separator_kwargs
from mdxnet.errors import UserError

STITCHES = ("trim", "crossfade")


@dataclass(frozen=True)
class Stitching:
    """How one separator's chunks are cut from a song and joined back.

    method: 'trim' or 'crossfade'; chunk: samples per chunk the network sees; overlap: for trim the samples
    discarded at each chunk edge, for crossfade the length of the fade between neighbouring chunks.
    """

    method: str
    chunk: int
    overlap: int

    def __post_init__(self):
        if self.method not in STITCHES:
            raise ValueError(f"unknown stitch method {self.method!r}: use one of {STITCHES}")
        if not 0 <= 2 * self.overlap < self.chunk:
            raise ValueError(f"overlap {self.overlap} must be >= 0 and below half the chunk ({self.chunk})")

    @property
    def step(self) -> int:
        """Samples between the starts of neighbouring chunks (new song samples per chunk)."""
        return self.chunk - (2 * self.overlap if self.method == "trim" else self.overlap)


def time_downsampling(num_blocks: int) -> int:
    """The factor by which the TFC-TDF-U-Net shrinks the time axis (models.TFCTDFUNet: num_blocks//2 scales)."""
    return 2 ** (num_blocks // 2)


def checked_chunk_frames(params: Params, source: str) -> int:
    """separate.chunk_frames for `source`, checked against its network and STFT (UserError naming the key)."""
    model = separator_kwargs(params, source)
    frames = int(per_source(params.separate.chunk_frames, source))
    factor = time_downsampling(model["num_blocks"])
    if frames % factor:
        fits = max(factor, round(frames / factor) * factor)
        raise UserError(f"separate.chunk_frames for {source} is {frames}, but the network halves the time axis "
                        f"{model['num_blocks'] // 2} times (model.num_blocks {model['num_blocks']}), so it must be "
                        f"a multiple of {factor}: set it to e.g. {fits} in params.yaml")
    chunk = model["hop"] * (frames - 1)
    if chunk <= model["n_fft"] // 2:  # torch.stft's centring reflects n_fft/2 samples, which must exist
        raise UserError(f"separate.chunk_frames for {source} is {frames}: a chunk of {chunk} samples "
                        f"(hop {model['hop']} x {frames - 1}) is not longer than half the STFT window "
                        f"(model.n_fft {model['n_fft']}); raise it in params.yaml")
    return frames


def stitching_for(params: Params, source: str) -> Stitching:
    """The `Stitching` that params.separate asks for, for one source's separator, checked at start."""
    cfg = params.separate
    if cfg.stitch not in STITCHES:
        raise UserError(f"separate.stitch is {cfg.stitch!r} in params.yaml: use one of {', '.join(STITCHES)}")
    frames = checked_chunk_frames(params, source)
    chunk = separator_kwargs(params, source)["hop"] * (frames - 1)
    overlap = int(per_source(cfg.overlap, source))
    if not 0 <= 2 * overlap < chunk:
        what = "discarded at each chunk edge" if cfg.stitch == "trim" else "faded between chunks"
        raise UserError(f"separate.overlap for {source} is {overlap} samples {what}, but twice that must stay below "
                        f"the chunk of {chunk} samples (separate.chunk_frames {frames}): lower separate.overlap or "
                        f"raise separate.chunk_frames in params.yaml")
    return Stitching(cfg.stitch, chunk, overlap)


@dataclass(frozen=True)
class ChunkPlan:
    """Where the chunks of one song go, in the coordinates of the zero-padded song."""

    length: int  # input samples
    stitching: Stitching
    front: int  # zeros before the song
    padded: int  # total padded length
    starts: tuple[int, ...]

    @classmethod
    def make(cls, length: int, stitching: Stitching) -> ChunkPlan:
        step, overlap = stitching.step, stitching.overlap
        if stitching.method == "trim":
            # the kept middles (step samples each) must cover the song; the last one may run past its end
            count = max(1, math.ceil(length / step))
        else:
            needed = overlap + length + overlap  # the song plus one full fade on each side
            count = max(1, math.ceil((needed - stitching.chunk) / step) + 1)
        starts = tuple(i * step for i in range(count))
        return cls(length, stitching, overlap, starts[-1] + stitching.chunk, starts)

    @property
    def chunk(self) -> int:
        return self.stitching.chunk

    def window(self) -> torch.Tensor:
        """Per-chunk weights: trim's keeps the middle (zero on the trimmed edges); crossfade's ramps linearly
        over `overlap` samples at both ends and is strictly positive, so every sample gets weight."""
        overlap, chunk = self.stitching.overlap, self.stitching.chunk
        if self.stitching.method == "trim":
            win = torch.zeros(chunk)
            win[overlap: chunk - overlap] = 1.0
            return win
        win = torch.ones(chunk)
        if overlap:
            ramp = (torch.arange(overlap) + 0.5) / overlap
            win[:overlap] = ramp
            win[-overlap:] = torch.minimum(win[-overlap:], ramp.flip(0))
        return win


class StitchStream:
    """One separator run chunk by chunk over a song read by ranges (`mdxnet.audio.Song`), giving its stitched
    output as soon as no later chunk can add to it. Sample for sample the result of stitching the whole song at
    once: the same chunks, in the same batches (chunks [0, batch), [batch, 2 batch), ...), summed into the
    same zero-initialised buffer in the same order and divided by the same weights; only the buffer is a window
    that slides along the song, so memory stays a few chunks whatever the song's length."""

    def __init__(self, model, song, stitching: Stitching, batch: int, device: torch.device, progress=None):
        if not isinstance(stitching, Stitching):
            raise TypeError(f"overlap_add takes a Stitching (mdxnet.inference.stitching.stitching_for(params, source)), "
                            f"not {type(stitching).__name__}")
        self.model, self.song, self.batch, self.device, self.progress = model, song, batch, device, progress
        self.plan = ChunkPlan.make(song.length, stitching)
        self.window = self.plan.window()
        self.next = 0  # the next chunk to run
        self.base = 0  # padded-song position of the buffers' first sample
        self.out = torch.zeros(2, 0)
        self.weight = torch.zeros(0)

    @property
    def final(self) -> int:
        """Song samples before this one are final: every chunk that covers them has been added."""
        if self.next >= len(self.plan.starts):
            return self.plan.length
        return self.plan.starts[self.next] - self.plan.front

    def advance(self, stop: int) -> None:
        """Run chunks until song samples [0, stop) are final."""
        while self.final < min(stop, self.plan.length):
            self._run_batch()

    def _run_batch(self) -> None:
        plan = self.plan
        starts = plan.starts[self.next: self.next + self.batch]
        chunks = torch.stack([torch.from_numpy(self.song.read(s - plan.front, s - plan.front + plan.chunk))
                              for s in starts]).to(self.device)
        estimates = self.model(chunks).float().cpu()
        self._extend(starts[-1] + plan.chunk)
        for start, estimate in zip(starts, estimates, strict=True):
            at = start - self.base
            self.out[:, at: at + plan.chunk] += estimate * self.window
            self.weight[at: at + plan.chunk] += self.window
        self.next += len(starts)
        if self.progress is not None:
            self.progress.update(len(starts))

    def _extend(self, stop: int) -> None:
        """Grow the buffers (with zeros) to padded position `stop`."""
        more = stop - self.base - self.weight.shape[0]
        if more > 0:
            self.out = torch.cat([self.out, torch.zeros(2, more)], dim=1)
            self.weight = torch.cat([self.weight, torch.zeros(more)])

    def take(self, start: int, stop: int) -> torch.Tensor:
        """The stitched output for song samples [start, stop), which must be final and not released."""
        if stop > self.final or start + self.plan.front < self.base:
            raise ValueError(f"samples [{start}, {stop}) are not held (final up to {self.final})")
        at = start + self.plan.front - self.base  # every song sample has weight (trim: exactly 1)
        return self.out[:, at: at + stop - start] / self.weight[at: at + stop - start]

    def release(self, before: int) -> None:
        """Forget the output before song sample `before` (it will not be taken again)."""
        drop = min(before + self.plan.front - self.base, self.weight.shape[0])
        if drop > 0:
            self.out, self.weight = self.out[:, drop:].clone(), self.weight[drop:].clone()
            self.base += drop


def overlap_add(model, mixture: torch.Tensor, stitching: Stitching, batch: int, device: torch.device,
                progress=None) -> torch.Tensor:
    """Run `model` ((B, 2, stitching.chunk) -> same shape) over a (2, n) song chunk by chunk; returns (2, n)."""
    song = ArraySong(mixture.detach().cpu().numpy())
    stream = StitchStream(model, song, stitching, batch, device, progress)
    stream.advance(song.length)
    return stream.take(0, song.length)
