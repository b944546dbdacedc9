"""The cut-off STFT: shapes, exact band-limited round trip, and removal of energy above the cut-off."""

import math

import pytest
import torch

from mdxnet.stft import CutSTFT

N_FFT, HOP, DIM_T = 1024, 256, 32


def bin_centred_tones(bins, length, batch=2):
    """Stereo sum of cosines sitting exactly on STFT bin centres (no leakage beyond their neighbours)."""
    t = torch.arange(length, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    out = torch.zeros(batch, 2, length, dtype=torch.float64)
    for k in bins:
        phase = torch.rand(batch, 2, 1, generator=gen, dtype=torch.float64) * 2 * math.pi
        out += torch.cos(2 * math.pi * k * t / N_FFT + phase)
    return out


def test_shapes_and_chunk_length():
    stft = CutSTFT(N_FFT, HOP, dim_f=128, dim_t=DIM_T)
    wave = torch.randn(3, 2, stft.chunk_samples)
    spec = stft(wave)
    assert spec.shape == (3, 4, 128, DIM_T)
    assert stft.inverse(spec).shape == wave.shape


def test_channels_are_stereo_re_im():
    stft = CutSTFT(N_FFT, HOP, dim_f=N_FFT // 2 + 1, dim_t=DIM_T)
    wave = torch.randn(1, 2, stft.chunk_samples)
    spec = stft(wave)
    right = torch.stft(wave[0, 1], N_FFT, HOP, window=torch.hann_window(N_FFT), center=True, return_complex=True)
    torch.testing.assert_close(spec[0, 2], right.real)
    torch.testing.assert_close(spec[0, 3], right.imag)


def test_full_band_round_trip_is_exact():
    stft = CutSTFT(N_FFT, HOP, dim_f=N_FFT // 2 + 1, dim_t=DIM_T).double()
    wave = torch.randn(2, 2, stft.chunk_samples, dtype=torch.float64)
    assert (stft.inverse(stft(wave)) - wave).abs().max() < 1e-5


@pytest.mark.parametrize("dim_f", [64, 200])
def test_band_limited_round_trip_is_exact(dim_f):
    stft = CutSTFT(N_FFT, HOP, dim_f=dim_f, dim_t=DIM_T).double()
    length = stft.chunk_samples
    # Tones at least two bins under the cut-off: the hann window spreads each over its two neighbours only.
    wave = bin_centred_tones([3, dim_f // 3, dim_f - 3], length)
    out = stft.inverse(stft(wave))
    # The first/last half window see center-padding (a reflection, not the tone), so compare the interior.
    interior = slice(N_FFT, length - N_FFT)
    assert (out - wave)[..., interior].abs().max() < 1e-5
    # float32, the precision the models run at, stays close too.
    out32 = CutSTFT(N_FFT, HOP, dim_f=dim_f, dim_t=DIM_T).inverse(CutSTFT(N_FFT, HOP, dim_f, DIM_T)(wave.float()))
    assert (out32 - wave.float())[..., interior].abs().max() < 1e-4


def test_energy_above_cut_off_is_removed():
    dim_f = 128
    stft = CutSTFT(N_FFT, HOP, dim_f=dim_f, dim_t=DIM_T).double()
    noise = torch.randn(1, 2, stft.chunk_samples, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = stft.inverse(stft(noise))
    spectrum_in = torch.fft.rfft(noise[..., N_FFT:-N_FFT]).abs().pow(2)
    spectrum_out = torch.fft.rfft(out[..., N_FFT:-N_FFT]).abs().pow(2)
    cut = spectrum_in.shape[-1] * dim_f / (N_FFT // 2)  # cut-off as an index of the long FFT
    above = slice(int(cut * 1.05), None)
    below = slice(0, int(cut * 0.9))
    # Above the cut-off (past the window's transition band) almost nothing is left...
    assert spectrum_out[..., above].sum() < 1e-4 * spectrum_in[..., above].sum()
    # ...while the pass band keeps its energy.
    ratio = spectrum_out[..., below].sum() / spectrum_in[..., below].sum()
    assert 0.9 < ratio < 1.1


def test_rejects_dim_f_above_bin_count():
    with pytest.raises(ValueError, match="dim_f"):
        CutSTFT(1024, 256, dim_f=600, dim_t=8)



@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_transforms_run_in_float32_under_autocast(monkeypatch, dtype):
    """Mixed precision leaves the FFTs in float32: cuFFT's half precision takes power-of-two sizes only, and the
    paper's vocals n_fft (6144) stopped the first fp16 step on a GPU. A half-precision spectrogram (the network's
    output under autocast) reaches torch.istft as complex64 and comes back as the float32 inverse of its values."""
    seen = []
    for name in ["stft", "istft"]:
        original = getattr(torch, name)
        monkeypatch.setattr(torch, name, lambda x, *a, _f=original, **k: seen.append(x.dtype) or _f(x, *a, **k))
    stft = CutSTFT(1536, 384, dim_f=256, dim_t=DIM_T)  # 1536 = 3 x 512: not a power of two, as 6144 is not
    wave = torch.randn(2, 2, stft.chunk_samples)
    with torch.autocast("cpu", dtype=dtype):
        half = stft(wave.to(dtype)).to(dtype)
        out = stft.inverse(half)
    assert seen == [torch.float32, torch.complex64]
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, stft.inverse(half.float()))
