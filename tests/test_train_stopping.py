"""Early stopping (train.early_stopping), as PyTorch Lightning 1.3.8's EarlyStopping that the authors train with
(mode max, min_delta, patience counted in validations), and inside the training loop with exact resumption."""

from __future__ import annotations

import math

import pytest
import torch

from mdxnet.training.ddp import DistContext
from mdxnet.training.loop import Trainer
from mdxnet.training.state import seed_everything
from mdxnet.training.stopping import EarlyStopping
from test_train_loop import ToyTask, config


def stops_at(scores, patience, min_delta) -> int | None:
    """1-based validation at which the rule stops, None if it never does."""
    stopping = EarlyStopping(patience, min_delta)
    return next((index for index, score in enumerate(scores, 1) if stopping.update(score)), None)


def test_the_rule_on_planted_curves():
    # 1.00 best; 1.04 and 1.05 are within min_delta 0.05 of it (no improvement); 1.20 is one and resets the count
    curve = [1.00, 1.04, 1.05, 1.20, 1.22, 1.24, 1.25, 1.10]
    assert stops_at(curve, patience=2, min_delta=0.05) == 3
    assert stops_at(curve, patience=3, min_delta=0.05) == 7  # 1.22, 1.24, 1.25 all within 0.05 of 1.20
    assert stops_at(curve, patience=3, min_delta=0.0) is None  # every rise counts without a min_delta
    assert stops_at(curve, patience=None, min_delta=0.05) is None  # off: the step budget only
    assert stops_at([1.0, math.nan], patience=50, min_delta=0.05) == 2  # a score that is not finite stops
    # the authors' setting on a long plateau: stops at the 50th validation without improvement
    assert stops_at([5.0] + [5.01] * 60, patience=50, min_delta=0.05) == 51


class PlantedTask(ToyTask):
    """The toy task with validation scores read from a planted curve, one per validation."""

    def __init__(self, curve, **kwargs):
        super().__init__(**kwargs)
        self.curve, self.calls = list(curve), 0

    def validate(self, model, device):
        self.calls += 1
        return {"valid_sdr": self.curve[self.calls - 1]}


def run(tmp_path, curve, steps=20, patience=2, **overrides):
    seed_everything(0)
    task = PlantedTask(curve)
    cfg = config(tmp_path, steps, valid_every=2, patience=patience, min_delta=0.05, **overrides)
    return Trainer(task, cfg, DistContext(), torch.device("cpu")).run(), task


def test_the_loop_stops_at_the_planted_validation_and_keeps_the_best_model(tmp_path):
    # validations at steps 2, 4, 6, 8: 2.0 at step 4, then two without an improvement above 0.05 (2.03 is
    # not one for the stopping rule, but it is the best model, kept as the authors' ModelCheckpoint keeps it)
    result, task = run(tmp_path, [1.0, 2.0, 2.03, 1.5, 9.0, 9.0])
    assert task.calls == 4 and result.steps == 8
    assert result.best_step == 6 and result.best_score == 2.03
    last = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert last["step"] == 8 and last["extra"]["early_stopping"]["stopped"] is True
    # a rerun trains no further and keeps the same output
    output = torch.load(tmp_path / "out.pt", weights_only=True)
    again, task = run(tmp_path, [1.0, 2.0, 2.03, 1.5, 9.0, 9.0])
    assert task.calls == 0 and again.steps == 8 and again.best_step == 6
    after = torch.load(tmp_path / "out.pt", weights_only=True)
    assert all(torch.equal(after["state_dict"][k], v) for k, v in output["state_dict"].items())


def test_a_resumed_run_stops_where_the_uninterrupted_one_does(tmp_path):
    curve = [1.0, 1.2, 1.5, 1.52, 1.53, 9.0, 9.0, 9.0]
    whole, _ = run(tmp_path / "whole", curve)
    # 1.52 and 1.53 are within 0.05 of 1.5: stops at the 5th validation (step 10). Killed after step 6 (3
    # validations), the resumed run must carry the count over and stop at the same step
    first, _ = run(tmp_path / "split", curve, steps=6)
    assert first.steps == 6
    seed_everything(0)
    task = PlantedTask(curve[3:])
    cfg = config(tmp_path / "split", 20, valid_every=2, patience=2, min_delta=0.05)
    resumed = Trainer(task, cfg, DistContext(), torch.device("cpu")).run()
    assert whole.steps == resumed.steps == 10 and whole.best_step == resumed.best_step == 10


def test_without_patience_the_budget_is_run(tmp_path):
    result, task = run(tmp_path, [1.0] * 10, patience=None)
    assert result.steps == 20 and task.calls == 10


@pytest.mark.parametrize("recipe", ["authors", "paper"])
def test_the_authors_and_paper_recipes_stop_as_the_authors_do(recipe, repo_root):
    from mdxnet.config import load_params

    params = load_params(repo_root / "params.yaml", profile="paper", recipe=recipe)
    assert params.train.early_stopping.patience == 50 and params.train.early_stopping.min_delta == 0.05
    assert params.train.deterministic is True
    assert load_params(repo_root / "params.yaml", profile="paper", recipe="mdxnet").train.early_stopping.patience \
        is None
