"""TFC-TDF-U-Net v2 (the KUIELAB-MDX-Net separator) and the Mixer that refines the four estimates together.

Separator, per source: STFT with cut-off -> 1x1 conv -> U-Net of TFC-TDF blocks -> 1x1 conv -> iSTFT.
Inside the U-Net the feature maps are laid out (B, C, T, F) so that the TDF's Linear layers act on the
frequency axis. Skip connections multiply (not add or concatenate) the upsampled decoder features with the
matching encoder output, as in the authors' design.

The paper's v1 network (9 blocks, 5 convs, bottleneck 16, no channel growth) is the same class with other
params; see `profiles.v1` in params.yaml.
"""

from __future__ import annotations

import torch
from torch import nn

from mdxnet.stft import CutSTFT

NUM_SOURCES = 4
SPEC_CHANNELS = 4  # stereo x (real, imaginary)


def conv_bn_relu(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU())


class TFC(nn.Module):
    """Time-Frequency Convolutions: `num_convs` x (k x k conv + BatchNorm + ReLU), channels unchanged."""

    def __init__(self, channels: int, num_convs: int, kernel: int):
        super().__init__()
        self.layers = nn.Sequential(
            *(
                conv_bn_relu(nn.Conv2d(channels, channels, kernel, padding=kernel // 2), channels)
                for _ in range(num_convs)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TDF(nn.Module):
    """Time-Distributed Fully-connected: f -> f/bottleneck -> f on the last (frequency) axis, every frame alike."""

    def __init__(self, channels: int, freq: int, bottleneck: int, bias: bool):
        super().__init__()
        if freq % bottleneck:
            raise ValueError(f"frequency size {freq} is not divisible by the TDF bottleneck {bottleneck}")
        hidden = freq // bottleneck
        self.layers = nn.Sequential(
            nn.Linear(freq, hidden, bias=bias),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Linear(hidden, freq, bias=bias),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TFCTDF(nn.Module):
    """One U-Net block: TFC, then the TDF added back as a residual (x + tdf(x))."""

    def __init__(self, channels: int, freq: int, num_convs: int, kernel: int, bottleneck: int, bias: bool):
        super().__init__()
        self.tfc = TFC(channels, num_convs, kernel)
        self.tdf = TDF(channels, freq, bottleneck, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tfc(x)
        return x + self.tdf(x)


class TFCTDFUNet(nn.Module):
    """The per-source separator: a (B, 2, chunk_samples) mixture chunk in, the source estimate out."""

    def __init__(
        self,
        *,
        n_fft: int,
        hop: int,
        dim_f: int,
        dim_t: int,
        num_blocks: int,
        num_convs: int,
        channels: int,
        growth: int,
        kernel: int,
        bottleneck: int,
        bias: bool,
    ):
        super().__init__()
        self.num_scales = num_blocks // 2
        scale = 2**self.num_scales
        if dim_f % scale or dim_t % scale:
            raise ValueError(f"dim_f={dim_f} and dim_t={dim_t} must be divisible by 2**(num_blocks//2)={scale}")
        self.stft = CutSTFT(n_fft, hop, dim_f, dim_t)
        self.dim_f, self.dim_t = dim_f, dim_t
        block = dict(num_convs=num_convs, kernel=kernel, bottleneck=bottleneck, bias=bias)

        self.first_conv = conv_bn_relu(nn.Conv2d(SPEC_CHANNELS, channels, 1), channels)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        c, f = channels, dim_f
        for _ in range(self.num_scales):
            self.encoders.append(TFCTDF(c, f, **block))
            self.downs.append(conv_bn_relu(nn.Conv2d(c, c + growth, 2, stride=2), c + growth))
            c, f = c + growth, f // 2
        self.bottleneck = TFCTDF(c, f, **block)
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for _ in range(self.num_scales):
            self.ups.append(conv_bn_relu(nn.ConvTranspose2d(c, c - growth, 2, stride=2), c - growth))
            c, f = c - growth, f * 2
            self.decoders.append(TFCTDF(c, f, **block))
        self.final_conv = nn.Conv2d(c, SPEC_CHANNELS, 1)

    @property
    def chunk_samples(self) -> int:
        return self.stft.chunk_samples

    def spec_forward(self, spec: torch.Tensor) -> torch.Tensor:
        """The network alone: (B, 4, dim_f, dim_t) mixture spectrogram -> source spectrogram."""
        x = self.first_conv(spec).transpose(-1, -2)  # (B, C, T, F): TDF Linear layers act on F
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            x = decoder(up(x) * skip)
        return self.final_conv(x.transpose(-1, -2))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, 2, chunk_samples) mixture -> (B, 2, chunk_samples) source estimate."""
        return self.stft.inverse(self.spec_forward(self.stft(wave)))


class Mixer(nn.Module):
    """Refines the four separator estimates jointly, sample by sample (kind 'linear': one 1x1 layer without
    bias, the paper's "single 1x1 convolution layer", the authors' `nn.Linear(10, 8, bias=False)`) or with a
    few 1-D convolutions over time added to that linear map (kind 'conv', mdxnet's own).

    Input: estimates (B, 4, 2, T) and mixture (B, 2, T); output (B, 4, 2, T).

    `init` picks the starting weights:
    - 'random': every layer keeps PyTorch's default init (Kaiming-uniform with a = sqrt(5), i.e. weights
      U(-1/sqrt(fan_in), 1/sqrt(fan_in)), conv biases likewise). The 1x1 conv has the weight shape of the
      authors' nn.Linear(10, 8) plus a trailing 1 and the same fan-in, so under the same seed it draws exactly
      their initial weights (src/models/mdxnet.py, class Mixer, in kuielab/mdx-net).
    - 'identity' (mdxnet's own): the linear map passes the estimates through and ignores the mixture, and the
      conv branch's last layer starts at zero, so an untrained Mixer leaves the separators' output unchanged.
    The default 'identity' is what every Mixer was before `init` existed: checkpoints written then lack the
    key and rebuild as they were trained. Built from params, `init` always comes from `mixer.init`.
    """

    INITS = ("random", "identity")

    def __init__(self, num_sources: int = NUM_SOURCES, kind: str = "linear", hidden: int = 32, layers: int = 3,
                 kernel: int = 5, init: str = "identity"):
        super().__init__()
        if kind not in ("linear", "conv"):
            raise ValueError(f"unknown mixer kind {kind!r}: use 'linear' or 'conv'")
        if init not in self.INITS:
            raise ValueError(f"unknown mixer init {init!r}: use one of {self.INITS}")
        if kind == "conv" and (layers < 1 or kernel % 2 == 0):
            raise ValueError(f"conv mixer needs layers >= 1 and an odd kernel (got layers={layers}, kernel={kernel})")
        self.num_sources, self.kind, self.layers, self.kernel, self.init = num_sources, kind, layers, kernel, init
        inputs, outputs = (num_sources + 1) * 2, num_sources * 2
        self.linear = nn.Conv1d(inputs, outputs, 1, bias=False)
        self.convs = self._conv_stack(inputs, outputs, hidden, layers, kernel) if kind == "conv" else None
        if init == "identity":
            self._start_as_identity(outputs)

    @staticmethod
    def _conv_stack(inputs: int, outputs: int, hidden: int, layers: int, kernel: int) -> nn.Sequential:
        widths = [inputs] + [hidden] * (layers - 1)
        stack = []
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            stack += [nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.ReLU()]
        last = nn.Conv1d(widths[-1], outputs, kernel, padding=kernel // 2)
        return nn.Sequential(*stack, last)

    @torch.no_grad()
    def _start_as_identity(self, outputs: int) -> None:
        """Overwrite the default init (already drawn, so both inits consume the same random numbers)."""
        self.linear.weight.zero_()
        self.linear.weight[:, :outputs, 0] = torch.eye(outputs)
        if self.convs is not None:
            nn.init.zeros_(self.convs[-1].weight)  # the residual branch starts silent
            nn.init.zeros_(self.convs[-1].bias)

    @property
    def context(self) -> int:
        """Samples of context needed on each side for an exact output (0 for the linear Mixer)."""
        return self.layers * (self.kernel // 2) if self.convs is not None else 0

    def forward(self, estimates: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
        batch, sources, channels, length = estimates.shape
        x = torch.cat([estimates.reshape(batch, sources * channels, length), mixture], dim=1)
        out = self.linear(x)
        if self.convs is not None:
            out = out + self.convs(x)
        return out.reshape(batch, sources, channels, length)


def mixer_kwargs(params: dict) -> dict:
    """Mixer keyword arguments from the resolved params (recorded in its checkpoints as `model_kwargs`)."""
    cfg = params.mixer
    return dict(num_sources=len(params.sources), kind=cfg.kind, hidden=cfg.hidden,
                layers=cfg.layers, kernel=cfg.kernel, init=cfg.init)


def build_separator(params: dict, source: str) -> TFCTDFUNet:
    from mdxnet.config import separator_kwargs

    return TFCTDFUNet(**separator_kwargs(params, source))


def build_mixer(params: dict) -> Mixer:
    return Mixer(**mixer_kwargs(params))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """Fold each eval-mode BatchNorm into the conv before it and make the ReLU in-place (inference only).

    The output is unchanged up to float rounding, but each conv block then makes one pass over its feature
    map instead of three; those maps are tens of MB at the paper size, so this matters on CPU.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if model.training:
        raise ValueError("fuse_for_inference needs a model in eval mode (BatchNorm running statistics)")
    for module in model.modules():
        if (isinstance(module, nn.Sequential) and len(module) == 3
                and isinstance(module[0], nn.Conv2d | nn.ConvTranspose2d)
                and isinstance(module[1], nn.BatchNorm2d) and isinstance(module[2], nn.ReLU)):
            module[0] = fuse_conv_bn_eval(module[0], module[1], transpose=isinstance(module[0], nn.ConvTranspose2d))
            module[1] = nn.Identity()
            module[2] = nn.ReLU(inplace=True)
    return model
