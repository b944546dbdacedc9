"""Whole-song separation: chunk planning, seam-free overlap-add, exact lengths, the Mixer, and the CLI."""

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from mdxnet.checkpoint import init_models
from mdxnet.cli import main
from mdxnet.errors import UserError
from mdxnet.models import Mixer
from mdxnet.separation import ChunkPlan, Separator, apply_mixer
from mdxnet.stft import CutSTFT

SOURCES = ["vocals", "drums", "bass", "other"]


class Pointwise(nn.Module):
    """A 'separator' whose output at each sample depends on that sample only (different per source).

    Any correct overlap-add reproduces it exactly, whatever the chunking, so differences expose seam bugs.
    """

    def __init__(self, chunk_samples: int, gain: float):
        super().__init__()
        self.chunk_samples, self.gain = chunk_samples, gain

    def forward(self, x):
        assert x.shape[-1] == self.chunk_samples
        return torch.tanh(self.gain * x) + 0.1 * x.flip(1)  # flip(1): swaps channels, still per-sample


class RoundTrip(nn.Module):
    """A full-band STFT/iSTFT round trip: a real spectral front end whose chunks reconstruct exactly."""

    def __init__(self, n_fft=256, hop=64, dim_t=40):
        super().__init__()
        self.stft = CutSTFT(n_fft, hop, n_fft // 2 + 1, dim_t)
        self.chunk_samples = self.stft.chunk_samples

    def forward(self, x):
        return self.stft.inverse(self.stft(x))


def pointwise_separator(chunk, overlap, batch=1, mixer=None):
    models = {s: Pointwise(chunk, gain=i + 1.0) for i, s in enumerate(SOURCES)}
    return Separator(models, {s: overlap for s in SOURCES}, mixer=mixer, batch=batch, device="cpu")


def song(n, seed=0):
    return np.random.default_rng(seed).standard_normal((2, n)).astype(np.float32) * 0.3


@pytest.mark.parametrize("length", [1, 999, 1000, 4321])
def test_chunk_plan_covers_the_song_with_one_overlap_margin(length):
    plan = ChunkPlan.make(length, chunk=1000, overlap=300)
    assert plan.starts[0] == 0 and plan.padded == plan.starts[-1] + 1000
    assert plan.padded >= plan.front + length + 300
    assert all(b - a == 700 for a, b in zip(plan.starts, plan.starts[1:], strict=False))
    window = plan.window()
    assert window.min() > 0 and window.max() == 1
    # Neighbouring crossfades sum to one on their own (not only after normalisation).
    assert torch.allclose(window[:300] + window[-300:], torch.ones(300))


def test_two_chunkings_agree_exactly_with_a_pointwise_model():
    mixture = song(10_000)
    a = pointwise_separator(chunk=1000, overlap=250, batch=3).separate(mixture, progress=False)
    b = pointwise_separator(chunk=1536, overlap=700, batch=1).separate(mixture, progress=False)
    expected = {s: torch.tanh((i + 1.0) * torch.from_numpy(mixture)).numpy() + 0.1 * mixture[::-1]
                for i, s in enumerate(SOURCES)}
    for s in SOURCES:
        assert a[s].shape == mixture.shape and a[s].dtype == np.float32
        np.testing.assert_allclose(a[s], b[s], atol=1e-4)
        np.testing.assert_allclose(a[s], expected[s], atol=1e-5)


def test_two_chunkings_agree_with_a_spectral_round_trip():
    mixture = song(12_345, seed=1)
    outs = []
    for overlap, batch in [(512, 2), (1900, 5)]:
        models = {s: RoundTrip() for s in SOURCES}
        outs.append(Separator(models, {s: overlap for s in SOURCES}, batch=batch).separate(mixture, progress=False))
    for s in SOURCES:
        np.testing.assert_allclose(outs[0][s], outs[1][s], atol=1e-4)
        np.testing.assert_allclose(outs[0][s], mixture, atol=1e-4)


@pytest.mark.parametrize("length", [1, 777, 64_512, 100_001])
def test_output_length_equals_input_with_real_models(length, params, tmp_path):
    init_models(tmp_path, params, seed=0)
    separator = Separator.from_dir(tmp_path, params, device="cpu", backend="torch")
    out = separator.separate(song(length), progress=False)
    assert set(out) == set(SOURCES)
    assert all(a.shape == (2, length) and np.isfinite(a).all() for a in out.values())


def test_onnx_backend_matches_torch_and_caches_exports(params, tmp_path):
    # Two sources keep the (slow) exports few; the others go through the very same code.
    params = params.replace({"sources": ["vocals", "bass"], "separate": {"onnx_cache": str(tmp_path / "cache")}})
    init_models(tmp_path / "models", params, seed=2)
    mixture = song(70_000, seed=3)
    by_torch = Separator.from_dir(tmp_path / "models", params, device="cpu", backend="torch")
    by_onnx = Separator.from_dir(tmp_path / "models", params, device="cpu", backend="onnx")
    a, b = by_torch.separate(mixture, progress=False), by_onnx.separate(mixture, progress=False)
    assert sorted(a) == sorted(b) == ["bass", "vocals"]
    for s in a:
        scale = np.abs(a[s]).max()
        np.testing.assert_allclose(b[s], a[s], atol=1e-4 * max(scale, 1.0))
    cached = sorted(p.name.split("-")[0] for p in (tmp_path / "cache").glob("*.onnx"))
    assert cached == ["bass", "vocals"]
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}
    Separator.from_dir(tmp_path / "models", params, device="cpu", backend="onnx")  # reuses the exports
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()} == before


def test_conv_mixer_in_segments_equals_one_pass():
    torch.manual_seed(0)
    mixer = Mixer(kind="conv", hidden=6, layers=3, kernel=5).eval()
    nn.init.normal_(mixer.convs[-1].weight)
    estimates, mixture = torch.randn(4, 2, 1000), torch.randn(2, 1000)
    with torch.no_grad():
        whole = mixer(estimates[None], mixture[None])[0]
        parts = apply_mixer(mixer, estimates, mixture, segment=97, device=torch.device("cpu"))
    torch.testing.assert_close(parts, whole, atol=1e-5, rtol=1e-5)


def test_mixer_is_applied_after_separation():
    mixer = Mixer(kind="linear")
    with torch.no_grad():
        mixer.linear.weight.mul_(2.0)
    mixture = song(3000)
    plain = pointwise_separator(800, 100).separate(mixture, progress=False)
    mixed = pointwise_separator(800, 100, mixer=mixer).separate(mixture, progress=False)
    for s in SOURCES:
        np.testing.assert_allclose(mixed[s], 2 * plain[s], atol=1e-5)


def test_bad_overlap_and_missing_models_are_clear(tmp_path, params):
    with pytest.raises(UserError, match="separate.overlap for vocals"):
        pointwise_separator(chunk=500, overlap=500)
    with pytest.raises(UserError, match=r"models folder .*nope does not exist.*models init"):
        Separator.from_dir(tmp_path / "nope", params)
    init_models(tmp_path, params)
    (tmp_path / "mixer.pt").unlink()
    with pytest.raises(UserError, match=r"mixer\.pt not found.*--no-mixer"):
        Separator.from_dir(tmp_path, params)


def test_cli_separates_the_real_clip(real_clip, tmp_path, repo_root, capsys):
    from mdxnet.audio import read_audio

    params_file = str(repo_root / "params.yaml")
    models = tmp_path / "models"
    assert main(["--params", params_file, "models", "init", "-o", str(models)]) == 0
    out = tmp_path / "out"
    code = main(["--params", params_file, "separate", str(real_clip), "-o", str(out), "--models", str(models),
                 "--device", "cpu", "--batch", "2", "--backend", "torch"])
    assert code == 0
    length = read_audio(real_clip).shape[-1]
    folder = out / "Music Delta - Rock"
    for source in SOURCES:
        info = sf.info(folder / f"{source}.wav")
        assert (info.frames, info.channels, info.samplerate) == (length, 2, 44100)
    assert not list(folder.glob(".*tmp"))


def test_cli_bad_file_exits_2_naming_it(tmp_path, repo_root, params, capsys):
    init_models(tmp_path / "models", params)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF nonsense")
    code = main(["--params", str(repo_root / "params.yaml"), "separate", str(bad), "-o", str(tmp_path / "o"),
                 "--models", str(tmp_path / "models"), "--backend", "torch"])
    assert code == 2
    assert "broken.wav" in capsys.readouterr().err


def test_cli_missing_models_exits_2(tmp_path, repo_root, capsys):
    code = main(["--params", str(repo_root / "params.yaml"), "separate", "x.wav", "--models", str(tmp_path / "m")])
    assert code == 2
    assert "models init" in capsys.readouterr().err


@pytest.mark.gpu
def test_cuda_matches_cpu(params, tmp_path, monkeypatch):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    # TF32 (on by default for cuDNN convs) rounds to ~1e-3: compare full fp32 arithmetic.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    init_models(tmp_path, params, seed=4)
    mixture = song(80_000, seed=5)
    on_cpu = Separator.from_dir(tmp_path, params, device="cpu", backend="torch").separate(mixture, progress=False)
    on_gpu = Separator.from_dir(tmp_path, params, device="cuda").separate(mixture, progress=False)
    for s in SOURCES:
        np.testing.assert_allclose(on_gpu[s], on_cpu[s], atol=1e-4 * max(1.0, np.abs(on_cpu[s]).max()))
