"""The collapse check of trained separators (mdxnet.training.health): a separator that outputs silence, or a
scaled-down copy of its estimate, is flagged in the training log, dvclive, its checkpoint and the results table."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from torch import nn

from mdxnet.training import health
from mdxnet.training.validation import ValidTrack

TINY_MODEL = {"hop": 128, "dim_f": 64, "dim_t": 16, "num_blocks": 3, "num_convs": 1, "channels": 4, "growth": 2,
              "bottleneck": 4, "n_fft": 256}
HEALTH = type("Health", (), {"min_level_db": -30.0, "min_sdr_db": 0.1})


def valid_tracks(count: int = 2, seconds: float = 1.0) -> list[ValidTrack]:
    gen = np.random.default_rng(0)
    tracks = []
    for i in range(count):
        sources = {s: (0.1 * gen.standard_normal((2, int(44100 * seconds)))).astype(np.float32)
                   for s in ("vocals", "drums", "bass", "other")}
        mixture = torch.from_numpy(sum(sources.values()))
        tracks.append(ValidTrack(f"t{i}", mixture, sources))
    return tracks


class Scaled(nn.Module):
    """A stand-in separator: `scale` times its input source (set by the test through `target`)."""

    def __init__(self, model: nn.Module, scale: float):
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x):
        return self.model(x) * self.scale


@pytest.fixture
def task(params, monkeypatch):
    """A separator task of a tiny network whose 'separation' of each validation track is the true source
    (so that a scale of 1 is a perfect separator), without any training data."""
    from mdxnet.training import separator

    monkeypatch.setattr(separator, "build_train_dataset", lambda *args, **kwargs: None)
    # whole tracks as `mdxnet separate` cuts them: `separate_track` is the stand-in's way in
    tiny = params.replace({"model": TINY_MODEL, "train": {"valid_chunks": "inference"}})
    task = separator.SeparatorTask(tiny, "other", seed=0, items=1)
    task._valid = valid_tracks()
    truth = iter([])

    def separate(model, mixture, stitching, batch, device):
        source = next(truth)
        return model.scale * torch.from_numpy(source)

    def set_truth():
        nonlocal truth
        truth = iter([t.sources["other"] for t in task._valid])

    monkeypatch.setattr(separator, "separate_track", separate)
    task.set_truth = set_truth
    return task


@pytest.mark.parametrize("scale, collapsed", [(1e-3, True), (0.0, True), (0.5, False), (1.0, False)])
def test_a_scaled_down_or_silent_separator_is_flagged_and_a_working_one_is_not(task, scale, collapsed):
    task.set_truth()
    metrics = task.validate(Scaled(nn.Identity(), scale), torch.device("cpu"))
    expected_level = 20 * np.log10(scale) if scale > 0 else -300.0
    assert metrics["valid_level_db"] == pytest.approx(expected_level, abs=1e-6)
    warnings = task.health_warnings(metrics)
    assert bool(warnings) is collapsed
    if scale == 1e-3:  # -60 dB: the level says it; SDR 20 log10(1 / 0.999) = 0.009 dB: so does the score
        assert len(warnings) == 2 and "60.0 dB quieter" in warnings[0] and "within 0.1 dB of 0" in warnings[1]


def test_a_quiet_estimate_with_a_real_score_is_flagged_by_level_only():
    warnings = health.warnings_for({"valid_sdr": 3.0, "valid_level_db": -35.0}, HEALTH)
    assert len(warnings) == 1 and "35.0 dB quieter" in warnings[0]
    assert health.warnings_for({"valid_sdr": -0.05, "valid_level_db": -2.0}, HEALTH)[0].startswith(
        "its validation SDR -0.050 dB")
    assert health.warnings_for({"valid_sdr": 0.2, "valid_level_db": -29.0}, HEALTH) == []
    assert health.warnings_for(None, HEALTH) == []


def test_level_is_pooled_over_tracks_and_finite_for_silence():
    refs = [np.ones((2, 10)), np.ones((2, 30))]
    assert health.level_db(refs, [np.ones((2, 10)), np.zeros((2, 30))]) == pytest.approx(10 * np.log10(0.25))
    assert health.level_db(refs, [np.zeros((2, 10)), np.zeros((2, 30))]) == -300.0


def test_a_separator_trained_to_silence_is_announced_and_marked_in_its_checkpoint(tmp_path, params, caplog,
                                                                                  synth_dataset):
    """End to end through the training loop: a separator whose output is forced to silence trains, and the
    log, dvclive's metrics.json and the published checkpoint all say it collapsed; the table reads it back."""
    from mdxnet.training import separator
    from mdxnet.training.ddp import DistContext
    from mdxnet.training.length import Length
    from mdxnet.training.loop import Trainer

    tiny = params.replace({"model": TINY_MODEL, "data": {"root": str(synth_dataset)},
                           "sampler": {"use_augmented": False},
                           "separate": {"chunk_frames": 32, "overlap": 128}})
    task = separator.SeparatorTask(tiny, "other", seed=0, items=8)
    task.model = Scaled(task.model, 0.0)  # trains (the gradient is 0) and outputs silence
    out = tmp_path / "models" / "other.pt"
    cfg = separator.separator_config(tiny.train, "other", out, tmp_path / "live", steps=2, resume_key="k",
                                     length=Length(2, 2))
    cfg.valid_every, cfg.batch_size = 2, 2
    with caplog.at_level(logging.WARNING, logger="mdxnet.training.health"):
        Trainer(task, cfg, DistContext(), torch.device("cpu")).run()
    assert "SEPARATOR 'other' IS NOT HEALTHY" in caplog.text and "300.0 dB quieter" in caplog.text
    assert json.loads((tmp_path / "live" / "metrics.json").read_text())["collapsed"] == 1.0
    stored = torch.load(out, weights_only=True)["extra"]["health"]
    assert stored["metrics"]["valid_level_db"] == -300.0 and len(stored["warnings"]) == 2
    assert health.separator_health(out.parent, list(params.sources)) == {"other": stored["warnings"]}


def test_an_unreadable_separator_file_is_a_named_error_for_the_table(tmp_path):
    from mdxnet.errors import UserError

    (tmp_path / "other.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"other\.pt cannot be read"):
        health.separator_health(tmp_path, ["vocals", "other"])
