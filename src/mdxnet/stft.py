"""STFT with a frequency cut-off, the front and back end of every TFC-TDF-U-Net separator.

A stereo chunk (B, 2, L) becomes a (B, 4, dim_f, dim_t) real tensor: the four channels are
(left re, left im, right re, right im) and only the lowest `dim_f` frequency bins are kept, so each source
model sees the band it cares about (bass uses a long n_fft, hence a low cut-off). The inverse zero-pads the
removed bins back before `torch.istft`, so anything above the cut-off comes out silent.

Under mixed precision both transforms run in float32 (the network between them in half precision): cuFFT
computes half-precision transforms only for power-of-two sizes, and the paper's vocals n_fft 6144 stopped the
first fp16 training step on an H200 (bench/README.md, GPU rehearsal); float32 is also what an FFT of that size
needs to stay accurate.
"""

from __future__ import annotations

import functools

import torch
from torch import nn


def float32_under_autocast(transform):
    """Runs a transform of one tensor in float32 with autocast off, where autocast is on (see the module's note)."""

    @functools.wraps(transform)
    def run(self, tensor: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled(tensor.device.type):
            with torch.autocast(tensor.device.type, enabled=False):
                return transform(self, tensor.float())
        return transform(self, tensor)

    return run


class CutSTFT(nn.Module):
    """Forward/inverse STFT keeping the lowest `dim_f` bins of an `n_fft` transform (hann window, center=True)."""

    def __init__(self, n_fft: int, hop: int, dim_f: int, dim_t: int):
        super().__init__()
        num_bins = n_fft // 2 + 1
        if not 0 < dim_f <= num_bins:
            raise ValueError(f"dim_f={dim_f} must be in 1..{num_bins} (n_fft={n_fft} has {num_bins} bins)")
        self.n_fft, self.hop, self.dim_f, self.dim_t = n_fft, hop, dim_f, dim_t
        self.num_bins = num_bins
        # The window follows the module across devices but is not a weight, so it stays out of checkpoints.
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)

    @property
    def chunk_samples(self) -> int:
        """Wave length whose centered STFT has exactly dim_t frames."""
        return self.hop * (self.dim_t - 1)

    @float32_under_autocast
    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, 2, chunk_samples) -> (B, 4, dim_f, dim_t)."""
        batch, channels, length = wave.shape
        spec = torch.stft(
            wave.reshape(batch * channels, length),
            n_fft=self.n_fft,
            hop_length=self.hop,
            window=self.window,
            center=True,
            return_complex=True,
        )
        spec = torch.view_as_real(spec[:, : self.dim_f])  # (B*2, dim_f, T, 2)
        spec = spec.reshape(batch, channels, self.dim_f, -1, 2).permute(0, 1, 4, 2, 3)
        return spec.reshape(batch, channels * 2, self.dim_f, spec.shape[-1])

    @float32_under_autocast
    def inverse(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, 4, dim_f, dim_t) -> (B, 2, chunk_samples), the cut bins filled with zeros."""
        batch, _, dim_f, frames = spec.shape
        spec = spec.reshape(batch * 2, 2, dim_f, frames).permute(0, 2, 3, 1)  # (B*2, dim_f, T, re/im)
        spec = nn.functional.pad(spec, (0, 0, 0, 0, 0, self.num_bins - dim_f))
        wave = torch.istft(
            torch.view_as_complex(spec.contiguous()),
            n_fft=self.n_fft,
            hop_length=self.hop,
            window=self.window,
            center=True,
            length=self.hop * (frames - 1),
        )
        return wave.reshape(batch, 2, -1)
