"""TFC-TDF-U-Net v2 and the Mixer: shapes, parameter counts at the paper configurations, building blocks."""

import pytest
import torch

from mdxnet.config import load_params
from mdxnet.models import (
    TDF,
    Mixer,
    TFCTDFUNet,
    build_mixer,
    build_separator,
    count_parameters,
)

TINY = dict(n_fft=512, hop=128, dim_f=64, dim_t=16, num_blocks=5, num_convs=2, channels=8, growth=4,
            kernel=3, bottleneck=4, bias=False)


def params_with_profile(repo_root, profile):
    return load_params(repo_root / "params.yaml", profile=profile)


def test_paper_configuration_has_7_4_million_parameters(repo_root):
    params = params_with_profile(repo_root, "paper")
    for source in params.sources:
        model = build_separator(params, source)
        # n_fft differs per source but only changes the STFT, not the network: 7,423,236 for all four.
        assert count_parameters(model) == 7_423_236
        assert model.chunk_samples == 1024 * 255  # ~5.9 s at 44.1 kHz


def test_v1_profile_has_2_2_million_parameters(repo_root):
    params = params_with_profile(repo_root, "v1")
    model = build_separator(params, "vocals")
    assert count_parameters(model) == pytest.approx(2.2e6, rel=0.02)
    assert len(model.encoders) == 4 and model.dim_t == 128


def test_forward_shapes_and_spec_forward():
    model = TFCTDFUNet(**TINY).eval()
    wave = torch.randn(3, 2, model.chunk_samples)
    with torch.no_grad():
        out = model(wave)
        spec = model.spec_forward(model.stft(wave))
    assert out.shape == wave.shape
    assert spec.shape == (3, 4, 64, 16)
    torch.testing.assert_close(out, model.stft.inverse(spec))


def test_unet_structure_and_multiplicative_skips():
    model = TFCTDFUNet(**TINY)
    assert len(model.encoders) == len(model.decoders) == 2
    # Channels grow by `growth` per scale; the TDF of the bottleneck sees dim_f / 4 bins.
    assert model.bottleneck.tfc.layers[0][0].in_channels == 8 + 2 * 4
    assert model.bottleneck.tdf.layers[0].in_features == 64 // 4
    # Zeroing an encoder output zeroes what the decoder receives there (multiplication, not addition).
    captured = {}
    model.decoders[-1].register_forward_pre_hook(lambda mod, inp: captured.setdefault("x", inp[0]))
    model.encoders[0].register_forward_hook(lambda mod, inp, out: torch.zeros_like(out))
    model.eval()
    with torch.no_grad():
        model.spec_forward(torch.randn(1, 4, 64, 16))
    assert captured["x"].abs().max() == 0


def test_tdf_acts_on_the_frequency_axis():
    tdf = TDF(channels=2, freq=16, bottleneck=4, bias=False).eval()
    assert tdf.layers[0].weight.shape == (4, 16)
    with pytest.raises(ValueError, match="bottleneck"):
        TDF(channels=2, freq=10, bottleneck=4, bias=False)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="divisible"):
        TFCTDFUNet(**{**TINY, "dim_t": 18})


def test_embedded_params_build_every_source(params):
    for source in params.sources:
        model = build_separator(params, source).eval()
        with torch.no_grad():
            assert model(torch.zeros(1, 2, model.chunk_samples)).shape == (1, 2, model.chunk_samples)


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_mixer_starts_as_identity_and_keeps_shape(kind):
    mixer = Mixer(kind=kind, hidden=8, layers=2, kernel=3)
    estimates, mixture = torch.randn(2, 4, 2, 100), torch.randn(2, 2, 100)
    out = mixer(estimates, mixture)
    assert out.shape == estimates.shape
    torch.testing.assert_close(out, estimates)


def test_linear_mixer_is_the_papers_single_layer():
    mixer = Mixer(kind="linear")
    assert [p.shape for p in mixer.parameters()] == [(8, 10, 1)]  # (4+1) x 2 -> 4 x 2, no bias
    assert mixer.context == 0


def test_conv_mixer_mixes_over_time_and_trains_away_from_identity():
    mixer = Mixer(kind="conv", hidden=8, layers=3, kernel=5)
    assert mixer.context == 6
    torch.nn.init.normal_(mixer.convs[-1].weight)
    estimates, mixture = torch.zeros(1, 4, 2, 50), torch.zeros(1, 2, 50)
    silent = mixer(estimates, mixture)
    mixture[..., 25] = 1.0  # an impulse in the mixture spreads over +-context samples of the output
    out = (mixer(estimates, mixture) - silent).abs().sum(dim=(0, 1, 2))
    assert out[25 - 6: 25 + 7].sum() > 0
    assert out[: 25 - 6].sum() == 0 and out[25 + 7:].sum() == 0


def test_build_mixer_from_params(repo_root):
    params = load_params(repo_root / "params.yaml")
    mixer = build_mixer(params)
    assert mixer.kind == params.mixer.kind
    with pytest.raises(ValueError, match="mixer kind"):
        Mixer(kind="transformer")
