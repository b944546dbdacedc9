"""Whole-song separation: chunk planning, both stitchings (the authors' trim, our crossfade), exact lengths,
settings checked at start, the Mixer, and the CLI."""

import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from mdxnet.checkpoint import init_models
from mdxnet.cli import main
from mdxnet.errors import UserError
from mdxnet.inference.separation import SeparationPipeline, apply_mixer
from mdxnet.inference.stitching import ChunkPlan, Stitching, overlap_add, stitching_for
from mdxnet.models import Mixer, TFCTDFUNet
from mdxnet.stft import CutSTFT

SOURCES = ["vocals", "drums", "bass", "other"]
CPU = torch.device("cpu")


class Pointwise(nn.Module):
    """A 'separator' whose output at each sample depends on that sample only (different per source).

    Any correct stitching reproduces it exactly, whatever the chunking, so differences expose seam bugs. It
    records the chunk lengths it is given.
    """

    def __init__(self, gain: float):
        super().__init__()
        self.gain, self.lengths = gain, set()

    def forward(self, x):
        self.lengths.add(x.shape[-1])
        return torch.tanh(self.gain * x) + 0.1 * x.flip(1)  # flip(1): swaps channels, still per-sample


class LocalConv(nn.Module):
    """A nonlinear stand-in whose output at a sample depends only on the input within `reach` samples of it
    (two zero-padded convolutions); the zero padding corrupts exactly the `reach` samples at each chunk edge."""

    def __init__(self, reach: int, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        first, second = reach // 2, reach - reach // 2
        self.a = nn.Conv1d(2, 3, 2 * first + 1, padding=first)
        self.b = nn.Conv1d(3, 2, 2 * second + 1, padding=second)
        for weight in (self.a.weight, self.b.weight):
            weight.data = torch.randn(weight.shape, generator=gen) / weight[0].numel() ** 0.5

    def forward(self, x):
        return self.b(torch.tanh(3 * self.a(x)))


class RoundTrip(nn.Module):
    """A full-band STFT/iSTFT round trip: a real spectral front end whose chunks reconstruct exactly."""

    def __init__(self, n_fft=256, hop=64):
        super().__init__()
        self.stft = CutSTFT(n_fft, hop, n_fft // 2 + 1, 8)  # dim_t unused: CutSTFT takes any length

    def forward(self, x):
        return self.stft.inverse(self.stft(x))


def pointwise_pipeline(stitching, batch=1, mixer=None):
    models = {s: Pointwise(gain=i + 1.0) for i, s in enumerate(SOURCES)}
    return SeparationPipeline(models, {s: stitching for s in SOURCES}, mixer=mixer, batch=batch, device="cpu")


def song(n, seed=0):
    return np.random.default_rng(seed).standard_normal((2, n)).astype(np.float32) * 0.3


def song_weights(plan: ChunkPlan) -> torch.Tensor:
    """The summed chunk windows over the song's own samples."""
    weight = torch.zeros(plan.padded)
    for start in plan.starts:
        weight[start: start + plan.chunk] += plan.window()
    return weight[plan.front: plan.front + plan.length]


@pytest.mark.parametrize("length", [1, 999, 1000, 4321])
def test_crossfade_plan_covers_the_song_with_one_overlap_margin(length):
    plan = ChunkPlan.make(length, Stitching("crossfade", chunk=1000, overlap=300))
    assert plan.starts[0] == 0 and plan.padded == plan.starts[-1] + 1000
    assert plan.padded >= plan.front + length + 300
    assert all(b - a == 700 for a, b in zip(plan.starts, plan.starts[1:], strict=False))
    window = plan.window()
    assert window.min() > 0 and window.max() == 1
    # Neighbouring crossfades sum to one on their own (not only after normalisation).
    assert torch.allclose(window[:300] + window[-300:], torch.ones(300))
    assert torch.allclose(song_weights(plan), torch.ones(length))


@pytest.mark.parametrize("length", [1, 399, 400, 401, 4321])
def test_trim_plan_takes_every_song_sample_from_exactly_one_chunk_middle(length):
    plan = ChunkPlan.make(length, Stitching("trim", chunk=1000, overlap=300))
    assert plan.front == 300 and plan.starts[0] == 0
    assert all(b - a == 400 for a, b in zip(plan.starts, plan.starts[1:], strict=False))
    assert len(plan.starts) == max(1, -(-length // 400))  # as few chunks as cover the song
    window = plan.window()
    assert window[:300].sum() == 0 and window[-300:].sum() == 0 and window[300:700].min() == 1
    assert torch.equal(song_weights(plan), torch.ones(length))  # no fade: one chunk per sample, weight 1


@pytest.mark.parametrize("method", ["trim", "crossfade"])
def test_two_chunkings_agree_exactly_with_a_pointwise_model(method):
    mixture = song(10_000)
    a = pointwise_pipeline(Stitching(method, 1000, 250), batch=3)
    b = pointwise_pipeline(Stitching(method, 1536, 700), batch=1)
    out_a, out_b = a.separate(mixture, progress=False), b.separate(mixture, progress=False)
    expected = {s: torch.tanh((i + 1.0) * torch.from_numpy(mixture)).numpy() + 0.1 * mixture[::-1]
                for i, s in enumerate(SOURCES)}
    for s in SOURCES:
        assert out_a[s].shape == mixture.shape and out_a[s].dtype == np.float32
        np.testing.assert_allclose(out_a[s], out_b[s], atol=1e-4)
        np.testing.assert_allclose(out_a[s], expected[s], atol=1e-5)
        assert a.separators[s].lengths == {1000} and b.separators[s].lengths == {1536}


def padded_whole_song(model, mixture: torch.Tensor, stitching: Stitching) -> torch.Tensor:
    """The model run once over the song as the stitching pads it (zeros around it), cut back to the song."""
    plan = ChunkPlan.make(mixture.shape[-1], stitching)
    padded = nn.functional.pad(mixture, (plan.front, plan.padded - plan.front - plan.length))
    with torch.no_grad():
        return model(padded[None])[0][:, plan.front: plan.front + plan.length]


@pytest.mark.parametrize(("length", "chunk", "overlap"), [(10_000, 1000, 120), (7_777, 2048, 300), (50, 900, 64)])
def test_trim_equals_one_unchunked_pass_when_the_reach_fits_the_trim(length, chunk, overlap):
    model = LocalConv(reach=overlap).eval()
    mixture = torch.from_numpy(song(length, seed=length))
    stitching = Stitching("trim", chunk, overlap)
    with torch.no_grad():
        stitched = overlap_add(model, mixture, stitching, batch=3, device=CPU)
    torch.testing.assert_close(stitched, padded_whole_song(model, mixture, stitching), atol=1e-6, rtol=1e-5)
    # the crossfade of the same chunks keeps samples inside the corrupted edges: it does not match
    fade = overlap_add(model, mixture, Stitching("crossfade", chunk, overlap), batch=3, device=CPU)
    if length > chunk:
        assert not torch.allclose(fade, padded_whole_song(model, mixture, stitching), atol=1e-3)


def frame_by_frame_net() -> TFCTDFUNet:
    """A real TFC-TDF net (BatchNorm with non-trivial statistics, TDF) with no time context of its own: 1x1
    convs and no down/up-sampling, so each STFT frame is processed alone."""
    torch.manual_seed(0)
    net = TFCTDFUNet(n_fft=256, hop=64, dim_f=64, dim_t=8, num_blocks=1, num_convs=2, channels=6, growth=2,
                     kernel=1, bottleneck=4, bias=True)
    gen = torch.Generator().manual_seed(1)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1, generator=gen)
            module.running_var.uniform_(0.5, 2.0, generator=gen)
    return net.eval()


def test_trim_with_a_tfc_tdf_net_equals_one_unchunked_pass():
    # An output sample of STFT -> per-frame net -> iSTFT depends on the input within n_fft of it, so a trim of
    # n_fft (a multiple of the hop, keeping the chunks' frames on the whole song's frame grid) makes it exact.
    net = frame_by_frame_net()
    mixture = torch.from_numpy(song(20_000, seed=7))
    stitching = Stitching("trim", chunk=64 * (40 - 1), overlap=256)
    with torch.no_grad():
        stitched = overlap_add(net, mixture, stitching, batch=2, device=CPU)
    whole = padded_whole_song(net, mixture, stitching)
    assert whole.abs().max() > 1e-3  # not a silent net
    torch.testing.assert_close(stitched, whole, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method", ["trim", "crossfade"])
def test_two_chunkings_agree_with_a_spectral_round_trip(method):
    mixture = song(12_345, seed=1)
    outs = []
    for chunk, overlap, batch in [(64 * 39, 512, 2), (64 * 71, 1900, 5)]:
        models = {s: RoundTrip() for s in SOURCES}
        stitchings = {s: Stitching(method, chunk, overlap) for s in SOURCES}
        outs.append(SeparationPipeline(models, stitchings, batch=batch).separate(mixture, progress=False))
    for s in SOURCES:
        np.testing.assert_allclose(outs[0][s], outs[1][s], atol=1e-4)
        np.testing.assert_allclose(outs[0][s], mixture, atol=1e-4)


def test_stitching_reads_params_per_source(params):
    params = params.replace({"separate": {"stitch": "trim", "chunk_frames": {"vocals": 64, "drums": 128,
                                                                              "bass": 256, "other": 32},
                                          "overlap": {"vocals": 1024, "drums": 2048, "bass": 0, "other": 100}}})
    hop = params.model.hop
    assert stitching_for(params, "vocals") == Stitching("trim", hop * 63, 1024)
    assert stitching_for(params, "bass") == Stitching("trim", hop * 255, 0)
    assert stitching_for(params.replace({"separate": {"stitch": "crossfade"}}), "other") == \
        Stitching("crossfade", hop * 31, 100)


@pytest.mark.parametrize("method", ["trim", "crossfade"])
@pytest.mark.parametrize("length", [1, 777, 100_001])
def test_output_length_equals_input_with_real_models(method, length, params, tmp_path):
    params = params.replace({"separate": {"stitch": method}})
    init_models(tmp_path, params, seed=0)
    pipeline = SeparationPipeline.from_dir(tmp_path, params, device="cpu", backend="torch")
    chunk = params.model.hop * (params.separate.chunk_frames - 1)
    assert all(st.chunk == chunk and st.method == method for st in pipeline.stitchings.values())
    out = pipeline.separate(song(length), progress=False)
    assert set(out) == set(SOURCES)
    assert all(a.shape == (2, length) and np.isfinite(a).all() for a in out.values())


def test_onnx_backend_matches_torch_and_caches_exports(params, tmp_path):
    # Two sources keep the (slow) exports few; the others go through the very same code.
    params = params.replace({"sources": ["vocals", "bass"], "separate": {"onnx_cache": str(tmp_path / "cache")}})
    assert params.separate.chunk_frames != params.model.dim_t  # the export runs the inference chunk, not dim_t
    init_models(tmp_path / "models", params, seed=2)
    mixture = song(150_000, seed=3)
    by_torch = SeparationPipeline.from_dir(tmp_path / "models", params, device="cpu", backend="torch")
    by_onnx = SeparationPipeline.from_dir(tmp_path / "models", params, device="cpu", backend="onnx")
    assert {m.chunk_samples for m in by_onnx.separators.values()} == {st.chunk for st in by_onnx.stitchings.values()}
    a, b = by_torch.separate(mixture, progress=False), by_onnx.separate(mixture, progress=False)
    assert sorted(a) == sorted(b) == ["bass", "vocals"]
    for s in a:
        scale = np.abs(a[s]).max()
        np.testing.assert_allclose(b[s], a[s], atol=1e-4 * max(scale, 1.0))
    cached = sorted(p.name.split("-")[0] for p in (tmp_path / "cache").glob("*.onnx"))
    assert cached == ["bass", "vocals"]
    frames = params.separate.chunk_frames
    assert all(p.name.endswith(f"-t{frames}.onnx") for p in (tmp_path / "cache").glob("*.onnx"))
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}
    shared = SeparationPipeline.from_dir(tmp_path / "models", params, device="cpu", backend="onnx", parallel=2)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()} == before  # reuses the exports
    threads = {m.session.get_session_options().intra_op_num_threads for m in shared.separators.values()}
    assert threads == {max(1, torch.get_num_threads() // 2)}  # the cores shared out between 2 sessions
    c = shared.separate(mixture, progress=False)
    for s in b:
        np.testing.assert_allclose(c[s], b[s], rtol=0, atol=1e-6 * max(np.abs(b[s]).max(), 1.0))


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
    plain = pointwise_pipeline(Stitching("trim", 800, 100)).separate(mixture, progress=False)
    mixed = pointwise_pipeline(Stitching("trim", 800, 100), mixer=mixer).separate(mixture, progress=False)
    for s in SOURCES:
        np.testing.assert_allclose(mixed[s], 2 * plain[s], atol=1e-5)


BAD_STITCH_SETTINGS = [  # (overlay on the embedded params: hop 1024, num_blocks 5 -> time downsampling 4)
    ({"separate": {"chunk_frames": 130}}, r"separate\.chunk_frames for vocals is 130.*multiple of 4.*e\.g\. 128"),
    ({"separate": {"chunk_frames": {"vocals": 128, "drums": 128, "bass": 62, "other": 128}}},
     r"separate\.chunk_frames for bass is 62"),
    ({"separate": {"chunk_frames": 4, "overlap": 0}, "model": {"n_fft": {"bass": 8192}}},
     r"separate\.chunk_frames for bass is 4.*half the STFT window"),
    ({"separate": {"stitch": "trim", "chunk_frames": 8, "overlap": 3584}},
     r"separate\.overlap for vocals is 3584 samples discarded.*chunk of 7168"),
    ({"separate": {"stitch": "crossfade", "chunk_frames": 8, "overlap": 4000}},
     r"separate\.overlap for vocals is 4000 samples faded"),
]


@pytest.mark.parametrize(("overlay", "message"), BAD_STITCH_SETTINGS)
def test_bad_stitch_settings_are_refused_at_start_naming_the_key(overlay, message, params, tmp_path):
    bad = params.replace(overlay)
    with pytest.raises(UserError, match=message):  # before the models folder is even looked at
        SeparationPipeline.from_dir(tmp_path / "nope", bad)
    if "chunk_frames" in message:  # the ONNX export's input size is the chunk: checked the same way
        from mdxnet.inference.onnx_export import export_models

        with pytest.raises(UserError, match=message):
            export_models(tmp_path / "nope", tmp_path / "onnx", bad)


def test_training_validation_stitches_like_separate(params, monkeypatch):
    from mdxnet.training import separator, validation

    monkeypatch.setattr(separator, "build_train_dataset", lambda *args, **kwargs: [])  # no training data needed
    task = separator.SeparatorTask(params, "bass", seed=0, items=1)
    assert task.stitching == stitching_for(params, "bass") and task.stitching.method == params.separate.stitch
    seen = []  # validation's whole-track separation hands that stitching to the same overlap_add
    monkeypatch.setattr("mdxnet.training.validation.overlap_add", lambda model, mix, stitching, *a: seen.append(stitching))
    validation.separate_track(None, torch.zeros(2, 5), task.stitching, 1, CPU)
    assert seen == [task.stitching]
    with pytest.raises(UserError, match=r"separate\.chunk_frames for bass is 66"):
        separator.SeparatorTask(params.replace({"separate": {"chunk_frames": 66}}), "bass", seed=0, items=1)


def test_stitching_checks_and_overlap_add_takes_only_a_stitching():
    with pytest.raises(ValueError, match="below half the chunk"):
        Stitching("trim", 1000, 500)
    with pytest.raises(ValueError, match="unknown stitch"):
        Stitching("window", 1000, 10)
    with pytest.raises(TypeError, match="takes a Stitching"):
        overlap_add(Pointwise(1.0), torch.zeros(2, 10), 100, 1, CPU)


def test_missing_models_are_clear(tmp_path, params):
    with pytest.raises(UserError, match=r"models folder .*nope does not exist.*models init"):
        SeparationPipeline.from_dir(tmp_path / "nope", params)
    init_models(tmp_path, params)
    (tmp_path / "mixer.pt").unlink()
    with pytest.raises(UserError, match=r"mixer\.pt not found.*--no-mixer"):
        SeparationPipeline.from_dir(tmp_path, params)


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


@pytest.mark.parametrize("value", ["0", "-2", "two"])
@pytest.mark.parametrize("option", ["--batch", "--parallel"])
def test_cli_counts_below_one_are_refused_naming_the_option(option, value, repo_root, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--params", str(repo_root / "params.yaml"), "separate", "x.wav", option, value])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert option in error and f"{value!r} is not a whole number of at least 1" in error


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
    on_cpu = SeparationPipeline.from_dir(tmp_path, params, device="cpu", backend="torch").separate(mixture,
                                                                                                 progress=False)
    on_gpu = SeparationPipeline.from_dir(tmp_path, params, device="cuda").separate(mixture, progress=False)
    for s in SOURCES:
        np.testing.assert_allclose(on_gpu[s], on_cpu[s], atol=1e-4 * max(1.0, np.abs(on_cpu[s]).max()))


# ---- streaming: block by block, identical to the whole song at once -----------------------------------------


def whole_song_reference(pipeline: SeparationPipeline, mixture: np.ndarray) -> dict[str, np.ndarray]:
    """The whole-song path as it was before streaming: each separator over the zero-padded song in one buffer,
    then the Mixer in segments of the longest chunk over the whole estimates."""
    mix = torch.from_numpy(mixture)
    stitched = []
    for name, model in pipeline.separators.items():
        plan = ChunkPlan.make(mix.shape[-1], pipeline.stitchings[name])
        padded = nn.functional.pad(mix, (plan.front, plan.padded - plan.front - plan.length))
        out, weight, window = torch.zeros_like(padded), torch.zeros(plan.padded), plan.window()
        for first in range(0, len(plan.starts), pipeline.batch):
            starts = plan.starts[first: first + pipeline.batch]
            estimates = model(torch.stack([padded[:, s: s + plan.chunk] for s in starts])).float()
            for start, estimate in zip(starts, estimates, strict=True):
                out[:, start: start + plan.chunk] += estimate * window
                weight[start: start + plan.chunk] += window
        stitched.append(out[:, plan.front: plan.front + plan.length] / weight[plan.front: plan.front + plan.length])
    estimates = torch.stack(stitched)
    if pipeline.mixer is not None:
        estimates = apply_mixer(pipeline.mixer, estimates, mix, pipeline.segment, CPU)
    return {name: est.numpy() for name, est in zip(pipeline.separators, estimates, strict=True)}


def tiny_real_pipeline(params, method: str, mixer: bool, parallel: int = 1) -> SeparationPipeline:
    """The ci profile's TFC-TDF separators (random weights, per-source n_fft and overlaps) and a conv Mixer with
    context, so that blocks need each other's samples."""
    from mdxnet.models import build_separator

    params = params.replace({"separate": {"stitch": method, "overlap": {"vocals": 512, "drums": 256, "bass": 1024,
                                                                      "other": 0}}})
    torch.manual_seed(0)
    models = {s: build_separator(params, s).eval() for s in SOURCES}
    conv = Mixer(kind="conv", hidden=6, layers=3, kernel=5).eval()
    nn.init.normal_(conv.convs[-1].weight)
    return SeparationPipeline(models, {s: stitching_for(params, s) for s in SOURCES},
                              mixer=conv if mixer else None, batch=3, device="cpu", parallel=parallel)


@pytest.fixture
def ci_params(repo_root):
    from mdxnet.config import load_params

    return load_params(repo_root / "params.yaml", profile="ci")


@pytest.mark.parametrize(("mixer", "parallel"), [(True, 1), (False, 1), (True, 2)])
@pytest.mark.parametrize("method", ["trim", "crossfade"])
def test_streamed_separation_equals_the_whole_song_path(method, mixer, parallel, ci_params):
    pipeline = tiny_real_pipeline(ci_params, method, mixer, parallel)
    mixture = song(4 * pipeline.segment + 1234, seed=11)  # several blocks, the last one partial
    with torch.inference_mode():
        expected = whole_song_reference(pipeline, mixture)
    got = pipeline.separate(mixture, progress=False)
    for s in SOURCES:
        assert np.abs(expected[s]).max() > 1e-5  # random weights: small, but not silent
        np.testing.assert_array_equal(got[s], expected[s])  # same sums in the same order: bit for bit


@pytest.mark.parametrize("parallel", [1, 3])
def test_cli_stream_writes_exactly_the_array_output(parallel, ci_params, tmp_path):
    from mdxnet.audio import read_audio
    from mdxnet.commands.separate import separate_song

    pipeline = tiny_real_pipeline(ci_params, "trim", mixer=True, parallel=parallel)  # 3: the file read by 3 threads
    wav = tmp_path / "long.flac"
    sf.write(wav, song(3 * pipeline.segment + 99, seed=4).T, 44100, subtype="PCM_24")
    assert separate_song(pipeline, wav, tmp_path / "out", 44100) == pytest.approx((3 * pipeline.segment + 99) / 44100)
    expected = pipeline.separate(read_audio(wav), progress=False)
    for s in SOURCES:
        stem, rate = sf.read(tmp_path / "out" / f"{s}.wav", dtype="float32", always_2d=True)
        np.testing.assert_array_equal(stem.T, expected[s])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"{s}.wav" for s in SOURCES)


class Recording(nn.Module):
    """Pointwise, and records the thread and the inference mode of every call; fails when told to."""

    def __init__(self, gain: float, fail: bool = False):
        super().__init__()
        self.inner, self.fail, self.calls = Pointwise(gain), fail, []

    def forward(self, x):
        self.calls.append((threading.current_thread().name, torch.is_inference_mode_enabled()))
        if self.fail:
            raise RuntimeError("this separator fails")
        return self.inner(x)


def test_parallel_separators_run_on_pool_threads_without_autograd_and_errors_reach_the_caller():
    stitching = Stitching(chunk=1000, overlap=100, method="trim")
    models = {s: Recording(i + 1.0) for i, s in enumerate(SOURCES)}
    pipeline = SeparationPipeline(models, {s: stitching for s in SOURCES}, batch=2, device="cpu", parallel=2)
    mixture = song(9_000, seed=5)
    got = pipeline.separate(mixture, progress=False)
    alone = pointwise_pipeline(stitching, batch=2).separate(mixture, progress=False)
    for s in SOURCES:
        np.testing.assert_array_equal(got[s], alone[s])
    calls = [call for model in models.values() for call in model.calls]
    assert calls and all(name.startswith("separator") and inference for name, inference in calls)
    models["bass"] = Recording(3.0, fail=True)
    failing = SeparationPipeline(models, {s: stitching for s in SOURCES}, device="cpu", parallel=2)
    with pytest.raises(RuntimeError, match="this separator fails"):
        failing.separate(mixture, progress=False)


@pytest.mark.parametrize(("name", "channels", "rate", "subtype", "streamed"), [
    ("a.wav", 2, 44100, "PCM_16", True),
    ("b.flac", 1, 44100, "PCM_24", True),
    ("c.wav", 2, 48000, "FLOAT", False),  # resampled: read whole
    ("d.ogg", 2, 44100, "VORBIS", False),  # lossy, not seeked in exactly: read whole
])
def test_open_song_reads_what_read_song_reads(name, channels, rate, subtype, streamed, tmp_path):
    from mdxnet.audio import FileSong, open_song, read_song

    path = tmp_path / name
    sf.write(path, song(30_000, seed=2)[:channels].T, rate, subtype=subtype)
    whole = read_song(path)
    with open_song(path) as opened:
        assert isinstance(opened, FileSong) == streamed
        assert opened.length == whole.shape[-1]
        np.testing.assert_array_equal(opened.read(-50, opened.length + 70)[:, 50:-70], whole)
        np.testing.assert_array_equal(opened.read(12_345, 12_400), whole[:, 12_345:12_400])
        assert not opened.read(-50, 0).any() and not opened.read(opened.length, opened.length + 9).any()


def test_streamed_read_repairs_nan_with_the_notice(tmp_path, caplog):
    from mdxnet.audio import open_song

    audio = song(50_000, seed=3)
    audio[1, 22_050], audio[0, 40_000] = np.nan, -np.inf
    path = tmp_path / "glitch.wav"
    sf.write(path, audio.T, 44100, subtype="FLOAT")
    with caplog.at_level("WARNING", logger="mdxnet.audio"), open_song(path) as opened:
        assert "glitch.wav has 2 NaN/inf samples (the first at 0.500 s)" in caplog.text
        np.testing.assert_array_equal(opened.read(0, opened.length), np.where(np.isfinite(audio), audio, 0))
        assert opened.peak() == np.abs(np.where(np.isfinite(audio), audio, 0)).max()


RSS_PROBE = """
import sys, numpy as np, soundfile as sf, torch
from pathlib import Path
from mdxnet.commands.separate import separate_song
from mdxnet.models import Mixer
from mdxnet.inference.separation import SeparationPipeline
from mdxnet.inference.stitching import Stitching
torch.set_num_threads(1)
seconds, folder = float(sys.argv[1]), Path(sys.argv[2])
wav = folder / "song.wav"
with sf.SoundFile(wav, "w", 44100, 2, "PCM_16") as f:  # generated block by block: no whole array here either
    rng = np.random.default_rng(0)
    for _ in range(int(seconds / 10)):
        f.write((0.1 * rng.standard_normal((441_000, 2))).astype(np.float32))
models = {s: torch.nn.Conv1d(2, 2, 1) for s in ("vocals", "drums", "bass", "other")}
stitchings = {s: Stitching("trim", 64 * 1023, 4096) for s in models}
pipeline = SeparationPipeline(models, stitchings, mixer=Mixer(kind="conv", hidden=4, layers=2, kernel=3), batch=2)
separate_song(pipeline, wav, folder / "out", 44100)
assert sf.info(folder / "out" / "bass.wav").frames == sf.info(wav).frames
print([line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")][0])
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_separate_peak_memory_does_not_grow_with_song_length(tmp_path):
    # Tiny 1x1-conv separators (their memory does not depend on the song) keep this fast; everything that does
    # depend on the song's length (reading, chunking, stitching, the Mixer, writing) is the real code. 8 min of
    # float32 stereo is 169 MB per array, so the whole-song path grew by ~0.7 GB from 1 to 8 min.
    import subprocess
    import sys

    peaks = {}
    for minutes in (1, 8):
        folder = tmp_path / f"{minutes}min"
        folder.mkdir()
        run = subprocess.run([sys.executable, "-c", RSS_PROBE, str(60 * minutes), str(folder)],
                             capture_output=True, text=True, check=True)
        peaks[minutes] = int(run.stdout.split()[-1]) / 1024  # MB
    assert peaks[8] - peaks[1] < 30, peaks


def test_an_onnx_cache_that_cannot_be_written_is_named_before_the_models_load(params, tmp_path, monkeypatch):
    """an unwritable ONNX cache folder gave a traceback, after the models had loaded."""
    import mdxnet.inference.separation

    init_models(tmp_path / "models", params, seed=1)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    unwritable = params.replace({"separate": {"onnx_cache": str(blocker / "cache"), "backend": "onnx"}})

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded before the cache folder was checked")

    monkeypatch.setattr(mdxnet.inference.separation, "load_separator", no_loading)
    monkeypatch.setattr(mdxnet.inference.separation, "load_mixer", no_loading)
    with pytest.raises(UserError, match=r"ONNX cache folder .*a-file/cache cannot be made \(.*a-file is a file\)"
                                        r".*separate.onnx_cache"):
        SeparationPipeline.from_dir(tmp_path / "models", unwritable, device="cpu")


def test_models_given_as_a_file_is_named(params, tmp_path, repo_root, capsys):
    """`--models models/vocals.pt` said the folder does not exist."""
    init_models(tmp_path / "models", params, seed=1)
    song = tmp_path / "song.wav"
    sf.write(song, np.zeros((44100, 2), dtype=np.float32), 44100)
    code = main(["--params", str(repo_root / "params.yaml"), "separate", str(song), "--models",
                 str(tmp_path / "models" / "vocals.pt"), "-o", str(tmp_path / "out")])
    assert code == 2
    assert f"--models {tmp_path / 'models' / 'vocals.pt'} is a file: pass the folder" in capsys.readouterr().err
