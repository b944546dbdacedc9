"""The Mixer's training choices and the validation score, each as the authors' code and as mdxnet's by switch:
init (random | identity), loss (mse | l1) with trimmed chunk edges, and the per-track SDR (authors | mdx)
reduced over the validation tracks (mean | median)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from mdxnet.checkpoint import load_mixer, mixer_path, save_checkpoint
from mdxnet.errors import UserError
from mdxnet.models import Mixer, build_mixer, mixer_kwargs
from mdxnet.training.mixer import EdgeTrimmedLoss, check_edge_trim
from mdxnet.training.validation import ValidTrack, authors_sdr, global_sdr, source_score

SOURCES = ("vocals", "drums", "bass", "other")
TINY_MODEL = {"hop": 128, "dim_f": 64, "dim_t": 16, "num_blocks": 3, "num_convs": 1, "channels": 4, "growth": 2,
              "bottleneck": 4, "n_fft": {s: 512 for s in SOURCES}}  # chunks of 128 x 15 = 1920 samples


# ---- loss over the chunk less its edges ---------------------------------------------------------------------------

def mixer_loss_and_grad(kind: str, edge_trim: int, estimates, mixture, target) -> tuple[float, torch.Tensor]:
    """Loss of a seeded random linear Mixer and its weight gradient."""
    torch.manual_seed(0)
    mixer = Mixer(kind="linear", init="random")
    loss = EdgeTrimmedLoss(kind, edge_trim)(mixer(estimates, mixture), target)
    loss.backward()
    return float(loss.detach()), mixer.linear.weight.grad.clone()


@pytest.mark.parametrize("kind", ["mse", "l1"])
def test_loss_and_gradient_ignore_the_trimmed_edges_only(kind):
    gen = torch.Generator().manual_seed(1)
    estimates, mixture = torch.randn(2, 4, 2, 40, generator=gen), torch.randn(2, 2, 40, generator=gen)
    target = torch.randn(2, 4, 2, 40, generator=gen)
    loss, grad = mixer_loss_and_grad(kind, 6, estimates, mixture, target)

    # the linear Mixer works sample by sample: new inputs or targets at samples 0..5 and 34..39 only change
    # the output and the target inside the trimmed edges
    edges = torch.zeros(40, dtype=torch.bool)
    edges[:6] = edges[-6:] = True
    noise = lambda shape: torch.where(edges, 5 * torch.randn(shape, generator=gen), 0)  # noqa: E731
    for changed in [(estimates + noise(estimates.shape), mixture, target),
                    (estimates, mixture + noise(mixture.shape), target),
                    (estimates, mixture, target + noise(target.shape))]:
        other_loss, other_grad = mixer_loss_and_grad(kind, 6, *changed)
        assert other_loss == loss
        assert torch.equal(other_grad, grad)

    inside = target.clone()
    inside[..., 6] += 1.0  # the first sample that is kept
    other_loss, other_grad = mixer_loss_and_grad(kind, 6, estimates, mixture, inside)
    assert other_loss != loss and not torch.equal(other_grad, grad)


def test_loss_is_the_plain_loss_of_the_kept_samples():
    gen = torch.Generator().manual_seed(2)
    output, target = torch.randn(3, 4, 2, 50, generator=gen), torch.randn(3, 4, 2, 50, generator=gen)
    assert torch.equal(EdgeTrimmedLoss("mse", 0)(output, target), nn.functional.mse_loss(output, target))
    assert torch.equal(EdgeTrimmedLoss("l1", 0)(output, target), nn.functional.l1_loss(output, target))
    expected = ((output[..., 8:42] - target[..., 8:42]) ** 2).mean()
    torch.testing.assert_close(EdgeTrimmedLoss("mse", 8)(output, target), expected, rtol=1e-6, atol=0)


def test_edges_that_leave_nothing_are_a_named_error_at_start(tmp_path, params):
    check_edge_trim(959, 1920)
    with pytest.raises(UserError, match=r"train\.mixer\.edge_trim = 960 in params\.yaml .*1920-sample"):
        check_edge_trim(960, 1920)
    with pytest.raises(UserError, match="edge_trim"):
        EdgeTrimmedLoss("mse", 10)(torch.zeros(1, 20), torch.zeros(1, 20))

    from mdxnet.checkpoint import init_models
    from mdxnet.training.mixer import MixerTask

    tiny = params.replace({"model": TINY_MODEL, "train": {"mixer": {"edge_trim": 960}}})
    init_models(tmp_path, tiny)
    with pytest.raises(UserError, match=r"edge_trim = 960 .*1920-sample"):
        MixerTask(tiny, tmp_path, seed=0, items=4)  # before any data is read


def test_mixer_and_separators_read_their_own_loss_lr_and_batch(tmp_path, params):
    from mdxnet.training.length import Length
    from mdxnet.training.mixer import mixer_config
    from mdxnet.training.separator import separator_config

    p = params.replace({"train": {"loss": "l1", "batch_size": {s: 3 for s in SOURCES},
                                  "mixer": {"loss": "mse", "lr": 3.0e-3, "batch_size": 16}}})
    mixer = mixer_config(p.train, tmp_path / "mixer.pt", None, None, "key", Length(4, 2))
    assert (mixer.loss, mixer.lr, mixer.batch_size) == ("mse", 3.0e-3, 16)
    separator = separator_config(p.train, "bass", tmp_path / "bass.pt", None, None, "key", Length(4, 2))
    assert (separator.loss, separator.batch_size) == ("l1", 3)


# ---- init -------------------------------------------------------------------------------------------------------

def authors_mixer_output(layer: nn.Linear, estimates: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """The forward pass of the authors' Mixer (src/models/mdxnet.py): channels last through nn.Linear(10, 8)."""
    batch, sources, channels, length = estimates.shape
    x = torch.cat([estimates, mixture[:, None]], dim=1).reshape(batch, (sources + 1) * channels, length)
    return layer(x.transpose(-1, -2)).transpose(-1, -2).reshape(batch, sources, channels, length)


def test_random_init_draws_the_authors_initial_linear_layer():
    torch.manual_seed(7)
    ours = Mixer(kind="linear", init="random")
    torch.manual_seed(7)
    theirs = nn.Linear(10, 8, bias=False)
    assert torch.equal(ours.linear.weight[..., 0], theirs.weight)
    estimates, mixture = torch.randn(2, 4, 2, 30), torch.randn(2, 2, 30)
    with torch.no_grad():
        torch.testing.assert_close(ours(estimates, mixture), authors_mixer_output(theirs, estimates, mixture))


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_identity_init_passes_the_estimates_and_random_does_not(kind, params):
    estimates, mixture = torch.randn(2, 4, 2, 64), torch.randn(2, 2, 64)
    mixers = {}
    for init in ("identity", "random"):
        torch.manual_seed(0)
        section = params.replace({"mixer": {"kind": kind, "init": init, "hidden": 6, "layers": 2,
                                            "kernel": 3}}).mixer
        mixers[init] = build_mixer(section, params.sources)
        assert mixers[init].init == init
    with torch.no_grad():
        torch.testing.assert_close(mixers["identity"](estimates, mixture), estimates)
        assert not torch.allclose(mixers["random"](estimates, mixture), estimates, atol=0.1)
    if kind == "conv":  # random: the residual branch's last layer is drawn too (identity: zero)
        assert mixers["random"].convs[-1].weight.abs().sum() > 0
        assert mixers["identity"].convs[-1].weight.abs().sum() == 0
    # the same seed gives the same random Mixer
    torch.manual_seed(0)
    again = Mixer(**mixer_kwargs(params.replace({"mixer": {"kind": kind, "init": "random", "hidden": 6,
                                                           "layers": 2, "kernel": 3}}).mixer, params.sources))
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), mixers["random"].state_dict().values(),
                                                   strict=True))
    with pytest.raises(ValueError, match="mixer init"):
        Mixer(kind=kind, init="zeros")


def test_checkpoints_record_init_and_old_ones_without_it_load_or_are_refused_by_name(tmp_path, params):
    p = params.replace({"mixer": {"init": "random"}})
    kwargs = mixer_kwargs(p.mixer, p.sources)
    assert kwargs["init"] == "random"
    save_checkpoint(mixer_path(tmp_path), build_mixer(p.mixer, p.sources), kind="mixer", source=None, model_kwargs=kwargs,
                    params=p, step=0)
    assert load_mixer(mixer_path(tmp_path), expect_kwargs=kwargs).init == "random"

    # a checkpoint from before `init` existed (an identity-initialised Mixer, trained)
    old = tmp_path / "old"
    trained = Mixer(kind="linear", init="identity")
    with torch.no_grad():
        trained.linear.weight.mul_(0.5)
    old_kwargs = {k: v for k, v in kwargs.items() if k != "init"}
    save_checkpoint(mixer_path(old), trained, kind="mixer", source=None, model_kwargs=old_kwargs, params=p, step=9)
    loaded = load_mixer(mixer_path(old))
    assert torch.equal(loaded.linear.weight, trained.linear.weight)
    with pytest.raises(UserError, match=r"another model config \(init: checkpoint None vs params 'random'\)"):
        load_mixer(mixer_path(old), expect_kwargs=kwargs)


# ---- validation score -------------------------------------------------------------------------------------------

def test_authors_sdr_is_their_formula_and_differs_from_mdx_where_the_eps_matter():
    reference = np.ones((2, 100))
    estimate = 0.9 * reference  # reference energy 200, error energy 2: ratio 100
    assert authors_sdr(reference, estimate) == 10 * math.log10(100 + 1e-10)
    assert global_sdr(reference, estimate) == 10 * math.log10((200 + 1e-7) / (2 + 1e-7))
    assert authors_sdr(reference, estimate) == pytest.approx(20.0, abs=1e-9)

    silent = np.zeros((2, 100))
    assert authors_sdr(silent, reference) == -100.0  # 10 log10(0 + 1e-10)
    assert global_sdr(silent, reference) == pytest.approx(10 * math.log10(1e-7 / 200))  # about -93.0
    assert global_sdr(silent, silent) == 0.0
    assert math.isnan(authors_sdr(silent, silent))  # 0/0: their formula has no guard
    assert authors_sdr(reference, reference) == math.inf
    # float32 inputs are scored in float64
    rng = np.random.default_rng(0)
    ref32 = rng.standard_normal((2, 1000)).astype(np.float32)
    est32 = (ref32 + 0.1 * rng.standard_normal((2, 1000))).astype(np.float32)
    assert authors_sdr(ref32, est32) == authors_sdr(ref32.astype(np.float64), est32.astype(np.float64))


def tracks_scoring(sdrs_db: list[float]) -> tuple[list[ValidTrack], list[np.ndarray]]:
    """Validation tracks whose estimates score exactly `sdrs_db` (authors' formula, up to the 1e-10)."""
    rng = np.random.default_rng(3)
    tracks, estimates = [], []
    for i, sdr in enumerate(sdrs_db):
        reference = rng.standard_normal((2, 500))
        error = rng.standard_normal((2, 500))
        error *= np.sqrt(np.sum(reference**2) / np.sum(error**2) / 10 ** (sdr / 10))
        tracks.append(ValidTrack(f"t{i}", torch.zeros(2, 500), {"bass": reference}))
        estimates.append(reference - error)
    return tracks, estimates


@pytest.mark.parametrize(("formula", "reduce", "expected"), [
    ("authors", "mean", (0.0 + 10.0 + 40.0) / 3),
    ("authors", "median", 10.0),
    ("mdx", "mean", (0.0 + 10.0 + 40.0) / 3),
    ("mdx", "median", 10.0),
])
def test_score_reduces_the_per_track_sdr_by_mean_or_median(params, formula, reduce, expected):
    tracks, estimates = tracks_scoring([40.0, 0.0, 10.0])
    p = params.replace({"train": {"valid_sdr": formula, "valid_reduce": reduce}})
    # the two formulas differ by their eps only: under 1e-5 dB on these tracks (1000 samples of unit variance)
    assert source_score(p.train, tracks, "bass", estimates) == pytest.approx(expected, abs=1e-4)


def four_source_tracks(count: int) -> list[ValidTrack]:
    rng = np.random.default_rng(4)
    return [ValidTrack(f"t{i}", torch.zeros(2, 300), {s: rng.standard_normal((2, 300)) for s in SOURCES})
            for i in range(count)]


@pytest.fixture
def no_training_data(monkeypatch):
    """Tasks built without a dataset: these tests only validate."""
    for task_module in ("mdxnet.training.separator", "mdxnet.training.mixer"):
        monkeypatch.setattr(f"{task_module}.build_train_dataset", lambda *args, **kwargs: None)


def test_separator_validation_uses_the_configured_score(params, monkeypatch, no_training_data):
    from mdxnet.training import separator

    # whole tracks as `mdxnet separate` cuts them (train.valid_chunks inference): `separate_track` is the stand-in
    tiny = params.replace({"model": TINY_MODEL, "train": {"valid_sdr": "authors", "valid_reduce": "mean",
                                                          "valid_chunks": "inference"}})
    task = separator.SeparatorTask(tiny, "bass", seed=0, items=1)
    task._valid = tracks = four_source_tracks(3)
    # a stand-in for separation: half the track's reference, 10 log10(4) = 6.02 dB
    halves = iter([torch.from_numpy(0.5 * t.sources["bass"]) for t in tracks])
    monkeypatch.setattr(separator, "separate_track", lambda *args: next(halves))
    score = task.validate(task.model, torch.device("cpu"))["valid_sdr"]
    assert score == 10 * math.log10(4 + 1e-10)


def test_mixer_validation_is_the_mean_over_sources_of_the_configured_score(tmp_path, params, no_training_data):
    from mdxnet.checkpoint import init_models
    from mdxnet.training.mixer import MixerTask

    tiny = params.replace({"model": TINY_MODEL, "train": {"valid_sdr": "authors", "valid_reduce": "median",
                                                          "valid_chunks": "inference", "mixer": {"edge_trim": 256}}})
    init_models(tmp_path, tiny)
    task = MixerTask(tiny, tmp_path, seed=0, items=1)
    task._valid = tracks = four_source_tracks(3)
    scale = {"vocals": 0.5, "drums": 0.9, "bass": 0.5, "other": 0.75}  # errors 1/2, 1/10, 1/2, 1/4 of each source
    task._valid_estimates = [torch.stack([torch.from_numpy(scale[s] * t.sources[s]) for s in SOURCES]).float()
                             for t in tracks]  # as if the separators gave these
    with torch.inference_mode():  # as the training loop calls it
        metrics = task.validate(Mixer(kind="linear", init="identity"), torch.device("cpu"))
    alone = {s: 10 * math.log10(1 / (1 - scale[s]) ** 2) for s in SOURCES}
    for s in SOURCES:
        assert metrics[f"valid_sdr_{s}"] == pytest.approx(alone[s], abs=1e-5)
    assert metrics["valid_sdr"] == pytest.approx(np.mean(list(alone.values())), abs=1e-5)
    assert metrics["valid_sdr_separators"] == pytest.approx(metrics["valid_sdr"], abs=1e-9)


def test_separator_estimates_for_mixer_training_run_under_the_training_autocast(tmp_path, params, monkeypatch,
                                                                                no_training_data):
    """The authors' Mixer.training_step runs the separators inside Lightning's precision-16 autocast: so do the
    estimates here (Amp with train.amp / amp_dtype; autocast itself only acts on CUDA)."""
    from mdxnet.checkpoint import init_models
    from mdxnet.training import mixer as mixer_module

    tiny = params.replace({"model": TINY_MODEL, "train": {"amp": True, "amp_dtype": "float16",
                                                          "mixer": {"edge_trim": 256}}})
    init_models(tmp_path, tiny)
    task = mixer_module.MixerTask(tiny, tmp_path, seed=0, items=1)
    seen, inside = [], []

    class RecordingAmp:
        def __init__(self, enabled, dtype_name, device):
            seen.append((enabled, dtype_name, device.type))

        def autocast(self):
            class Context:
                def __enter__(self):
                    inside.append(True)

                def __exit__(self, *exc):
                    inside.append(False)

            return Context()

    calls = []
    for source, model in task.separators.items():
        model.register_forward_pre_hook(lambda module, args, s=source: calls.append((s, inside[-1])))
    monkeypatch.setattr(mixer_module, "Amp", RecordingAmp)
    mixture, targets = torch.zeros(2, 2, 1920), torch.zeros(2, 4, 2, 1920)
    (estimates, _), _ = task.prepare((mixture, targets), torch.device("cpu"))
    assert seen == [(True, "float16", "cpu")]
    assert calls == [(s, True) for s in SOURCES] and inside[-1] is False
    assert estimates.dtype == torch.float32 and estimates.shape == (2, 4, 2, 1920)
