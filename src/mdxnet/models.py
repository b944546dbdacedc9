"""The separators, TFC-TDF-U-Net v2 (KUIELAB-MDX-Net's) and v1 (the paper's earlier network, `model.arch`
picks one), and the Mixer that refines the four estimates together.

Separator, per source: STFT with cut-off -> 1x1 conv -> U-Net of TFC-TDF blocks -> 1x1 conv -> iSTFT.
Inside the U-Net the feature maps are laid out (B, C, T, F) so that the TDF's Linear layers act on the
frequency axis. In v2 the skip connections multiply (not add or concatenate) the upsampled decoder features
with the matching encoder output, as in the authors' design; v1 concatenates them (see `TFCTDFUNetV1`).
"""

from __future__ import annotations

import torch
from torch import nn

from mdxnet.config import Mixer as MixerParams
from mdxnet.config import Params, separator_kwargs
from mdxnet.errors import UserError
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


class SpectrogramUNet(nn.Module):
    """What every separator shares: the CutSTFT front and back end around `spec_forward`, a U-Net with
    num_blocks // 2 scales, each halving both the frequency and the time axis."""

    arch: str  # the `model.arch` value that builds the subclass

    def __init__(self, *, n_fft: int, hop: int, dim_f: int, dim_t: int, num_blocks: int):
        super().__init__()
        self.num_scales = num_blocks // 2
        scale = 2**self.num_scales
        if dim_f % scale or dim_t % scale:
            raise ValueError(f"dim_f={dim_f} and dim_t={dim_t} must be divisible by 2**(num_blocks//2)={scale}")
        self.stft = CutSTFT(n_fft, hop, dim_f, dim_t)
        self.dim_f, self.dim_t = dim_f, dim_t

    @property
    def chunk_samples(self) -> int:
        return self.stft.chunk_samples

    def spec_forward(self, spec: torch.Tensor) -> torch.Tensor:
        """The network alone: (B, 4, dim_f, dim_t) mixture spectrogram -> source spectrogram. Subclasses build
        first_conv, encoders, downs, bottleneck, ups, decoders, final_conv and say how a U connection joins."""
        x = self.first_conv(spec).transpose(-1, -2)  # (B, C, T, F): TDF Linear layers act on F
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            x = decoder(self.join(up(x), skip))
        return self.final_conv(x.transpose(-1, -2))

    @staticmethod
    def join(upsampled: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, 2, chunk_samples) mixture -> (B, 2, chunk_samples) source estimate."""
        return self.stft.inverse(self.spec_forward(self.stft(wave)))


class TFCTDFUNet(SpectrogramUNet):
    """TFC-TDF-U-Net v2, the per-source separator: a (B, 2, chunk_samples) mixture chunk in, the source
    estimate out. Channels grow by `growth` at each downsampling; U connections multiply."""

    arch = "v2"

    # the same keyword arguments for every separator class: model_kwargs in checkpoints build either
    def __init__(self, *, n_fft: int, hop: int, dim_f: int, dim_t: int, num_blocks: int, num_convs: int,
                 channels: int, growth: int, kernel: int, bottleneck: int, bias: bool):
        super().__init__(n_fft=n_fft, hop=hop, dim_f=dim_f, dim_t=dim_t, num_blocks=num_blocks)
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

    @staticmethod
    def join(upsampled: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """v2's U connection: multiplication (paper, "TFC-TDF-U-Net v2")."""
        return upsampled * skip


def conv_bn(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels))


class DenseTFC(nn.Module):
    """v1's Time-Frequency Convolutions: `num_convs` densely connected (k x k conv + BatchNorm + ReLU).

    Conv i sees the concatenation of the block input and the outputs of convs 0..i-1 and emits `growth`
    maps, so its input has in_channels + i * growth channels; the block passes on the last conv's output only
    ((B, growth, T, F)), as `TFC` in the v1 code does.
    """

    def __init__(self, in_channels: int, growth: int, num_convs: int, kernel: int):
        super().__init__()
        self.layers = nn.ModuleList(
            conv_bn_relu(nn.Conv2d(in_channels + i * growth, growth, kernel, padding=kernel // 2), growth)
            for i in range(num_convs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen = x
        for layer in self.layers[:-1]:
            seen = torch.cat([seen, layer(seen)], dim=1)
        return self.layers[-1](seen)


class DenseTFCTDF(nn.Module):
    """One v1 block: the dense TFC (in_channels -> channels), then the TDF added back (x + tdf(x))."""

    def __init__(self, in_channels: int, channels: int, freq: int, num_convs: int, kernel: int,
                 bottleneck: int, bias: bool):
        super().__init__()
        self.tfc = DenseTFC(in_channels, channels, num_convs, kernel)
        self.tdf = TDF(channels, freq, bottleneck, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tfc(x)
        return x + self.tdf(x)


class TFCTDFUNetV1(SpectrogramUNet):
    """TFC-TDF-U-Net v1, the network KUIELAB-MDX-Net's v2 grew from (Choi et al., "Investigating U-Nets with
    various intermediate blocks for spectrogram-based singing voice separation", ISMIR 2020).

    Same interface and STFT front end as v2 (`TFCTDFUNet`), built when `model.arch` is 'v1'.

    From the MDX workshop paper ("TFC-TDF-U-Net v2", "Configurations and Training"), which lists what v2
    changed: v1's U connections concatenate (v2 multiplies); v1 has skip connections besides them (v2 removed
    them all); v1 keeps the number of channels through down/upsampling. Its table: 9 TFC-TDF blocks, 5 convs
    per block, bottleneck factor 16, 2.2M params, 2048 bins, 128 frames, hop 1024.

    From the v1 paper's public code (github.com/ws-choi/ISMIR2020_U_Nets_SVS: `TFC`, `TIF`, `TFC_TIF` in
    intermediate_layers.py and source_separation/models/building_blocks.py; `U_Net_Framework` in
    frameworks.py, `Dense_UNET` in source_separation/models/dense_u_net.py); the v1 paper's own text was not
    available here, so nothing below is attributed to it:
    - the TFC is densely connected (`DenseTFC`); its growth rate is the constant channel count
      (`internal_channels` there);
    - the TDF is the one v2 kept (f -> f/bottleneck -> f Linear layers on the frequency axis, BatchNorm +
      ReLU after each), added back to the TFC output;
    - the first conv has BatchNorm + ReLU, the last one neither;
    - down/upsampling: 2x2 stride-2 conv / transposed conv + BatchNorm, no activation, channels unchanged;
    - a decoder block takes concat(upsampled, encoder output), 2 x channels, and its first conv brings it
      back to `channels`;
    - 24 channels: README's TFC-TDF command and the `--internal_channels` default; the notebook
      ".deprecated/[Table-3] TFC_TDF (large SDR 7.98).ipynb" builds this network (9 blocks, 5 convs,
      bottleneck 16, 24 channels, 2048 bins x 128 frames) with biased TDF Linear layers and prints 2,232,132
      parameters, matching the MDX table's 2.2M. Its STFT is not the table's: n_fft 4096 with hop 2048
      (`MusdbLoaer(n_fft=4096, hop_factor=2, dim_t=128)`; .deprecated/utils_ismir.py, hop_length = n_fft //
      hop_factor), where the MDX table gives hop 1024 (kept by profiles.v1).

    Our reading, where the texts are silent or that code differs from this project's front end:
    - "all skip connections were removed" in v2 means the dense ones: the authors' v2 code
      (kuielab/mdx-net, src/models/modules.py) still adds the TDF back (x + tdf(x)), and keeps an unused
      `DenseTFC` option;
    - the first and last convs are 1x1 as in v2: our CutSTFT keeps exactly dim_f bins, whereas the v1 code
      keeps 2049 and uses (2, 1) kernels to drop and restore one bin (-192 parameters at 24 channels);
    - the TDF width is f // bottleneck as in v2; the v1 code floors it at 16 units (`min_bn_units`), which
      only changes the middle block at 128 bins (8 units, not 16: -2,056 parameters with biases).
    So profiles.v1 (24 channels, TDF bias) builds 2,229,884 parameters = 2,232,132 - 192 - 2,056
    (paper: 2.2M).
    """

    arch = "v1"

    # the same keyword arguments for every separator class: model_kwargs in checkpoints build either
    def __init__(self, *, n_fft: int, hop: int, dim_f: int, dim_t: int, num_blocks: int, num_convs: int,
                 channels: int, growth: int, kernel: int, bottleneck: int, bias: bool):
        if growth:
            raise ValueError(f"TFC-TDF-U-Net v1 keeps the channel count constant: growth must be 0, "
                             f"not {growth}")
        if num_blocks % 2 == 0:
            raise ValueError(f"num_blocks={num_blocks}: a U-Net of encoders, a middle block and decoders has "
                             f"an odd number of blocks")
        super().__init__(n_fft=n_fft, hop=hop, dim_f=dim_f, dim_t=dim_t, num_blocks=num_blocks)
        c = channels

        def block(in_channels: int, freq: int) -> DenseTFCTDF:
            return DenseTFCTDF(in_channels, c, freq, num_convs, kernel, bottleneck, bias)

        self.first_conv = conv_bn_relu(nn.Conv2d(SPEC_CHANNELS, c, 1), c)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        f = dim_f
        for _ in range(self.num_scales):
            self.encoders.append(block(c, f))
            self.downs.append(conv_bn(nn.Conv2d(c, c, 2, stride=2), c))
            f //= 2
        self.bottleneck = block(c, f)
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for _ in range(self.num_scales):
            self.ups.append(conv_bn(nn.ConvTranspose2d(c, c, 2, stride=2), c))
            f *= 2
            self.decoders.append(block(2 * c, f))  # input: concat(upsampled, encoder output)
        self.final_conv = nn.Conv2d(c, SPEC_CHANNELS, 1)

    @staticmethod
    def join(upsampled: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """v1's U connection: concatenation along channels (the decoder block reduces it back)."""
        return torch.cat([upsampled, skip], dim=1)


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


def with_mixer_kind(params: Params, kind: str | None) -> Params:
    """The params a Mixer of `kind` is trained and loaded with: params.mixer with its kind replaced (the extra
    `mixer-conv` run shares hidden/layers/kernel/init with the recipe's Mixer); None keeps params.mixer.kind."""
    if kind is None or kind == params.mixer.kind:
        return params
    return params.replace({"mixer": {"kind": kind}})


def mixer_kwargs(mixer: MixerParams, sources: list[str]) -> dict:
    """Mixer keyword arguments from params `mixer` over `sources` (recorded in its checkpoints as
    `model_kwargs`)."""
    return dict(num_sources=len(sources), kind=mixer.kind, hidden=mixer.hidden,
                layers=mixer.layers, kernel=mixer.kernel, init=mixer.init)


SEPARATORS: dict[str, type[SpectrogramUNet]] = {cls.arch: cls for cls in (TFCTDFUNet, TFCTDFUNetV1)}


def separator_from_kwargs(arch: str, **kwargs) -> SpectrogramUNet:
    """The separator of architecture `arch` ('v2' | 'v1') built from its keyword arguments."""
    if arch not in SEPARATORS:
        raise ValueError(f"unknown separator arch {arch!r}: use one of {sorted(SEPARATORS)}")
    return SEPARATORS[arch](**kwargs)


def build_separator(params: Params, source: str) -> SpectrogramUNet:
    """The separator for `source` as params.yaml's `model` section describes it (`model.arch` picks the
    class)."""
    try:
        return separator_from_kwargs(**separator_kwargs(params, source))
    except ValueError as err:
        raise UserError(f"the model section of params.yaml does not build the {source} separator ({err}): "
                        f"fix model.* there") from err


def build_mixer(mixer: MixerParams, sources: list[str]) -> Mixer:
    return Mixer(**mixer_kwargs(mixer, sources))


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
