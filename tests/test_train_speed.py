"""The speed levers of params train.speed (mdxnet.training.speed): each optimised training step computes the loss
and gradients of the eager step, on the CPU, so the suite guards what a GPU run switches on.

Tolerances, from what the levers change (float rounding only; measured on this tiny separator: loss within
2e-7 relative, gradients within 3e-5 relative on every tensor whose gradient is not rounding noise):
- loss: 1e-5 relative;
- gradients: 1e-3 relative plus 1e-4 x the largest gradient of the model absolute. The absolute part covers the
  tensors whose gradient is zero in exact arithmetic (a convolution's bias right before a BatchNorm), where any
  two summation orders give different noise around 0;
- the weights after the step only where the gradients are bitwise equal (the optimizer's kernels): RMSProp's first
  step moves every weight by about 10 x lr x sign(gradient), so a noise gradient's sign alone moves a bias by lr.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mdxnet.config import load_params
from mdxnet.errors import UserError
from mdxnet.models import TFCTDFUNet
from mdxnet.training.ddp import DistContext
from mdxnet.training.loop import LoopConfig, Trainer
from mdxnet.training.speed import StepSpeed, loader_options

# The smallest separator with every kind of layer: STFT, 1x1 conv, TFC, TDF, down/up sampling, U connection.
TINY = dict(n_fft=256, hop=64, dim_f=32, dim_t=16, num_blocks=3, num_convs=2, channels=4, growth=4, kernel=3,
            bottleneck=4, bias=False)
BATCH = 3
LOSS_RTOL = 1e-5
GRAD_RTOL, GRAD_ATOL_OF_MAX = 1e-3, 1e-4


class BatchTask:
    kind, source = "separator", "vocals"

    def __init__(self, model):
        self.model, self.model_kwargs, self.params, self.dataset = model, {}, {}, None

    def prepare(self, batch, device):
        return (batch[0],), batch[1]


@pytest.fixture(scope="module")
def initial():
    torch.manual_seed(0)
    state = TFCTDFUNet(**TINY).state_dict()
    gen = torch.Generator().manual_seed(1)
    length = TINY["hop"] * (TINY["dim_t"] - 1)
    batch = (torch.randn(BATCH, 2, length, generator=gen) * 0.1, torch.randn(BATCH, 2, length, generator=gen) * 0.05)
    return state, batch


def one_step(initial, tmp_path, speed: StepSpeed):
    """(loss, gradients, state after the step) of one training step of the loop under `speed`."""
    state, batch = initial
    model = TFCTDFUNet(**TINY)
    model.load_state_dict(state)
    cfg = LoopConfig(name="tiny", steps=1, batch_size=BATCH, lr=1e-3, loss="l1", valid_every=1, checkpoint_every=1,
                     log_every=1, amp=False, amp_dtype="bfloat16", seed=0, num_workers=0,
                     last_path=tmp_path / "last.pt", best_path=tmp_path / "out.pt", live_dir=tmp_path / "live",
                     resume_key="k", speed=speed)
    trainer = Trainer(BatchTask(model), cfg, DistContext(), torch.device("cpu"))
    loss = trainer._train_step(batch, 0)
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    after = {name: t.clone() for name, t in model.state_dict().items()}
    torch._dynamo.reset()
    return loss, grads, after


def assert_same_step(step, eager):
    loss, grads, _ = step
    assert loss == pytest.approx(eager[0], rel=LOSS_RTOL)
    atol = GRAD_ATOL_OF_MAX * max(g.abs().max().item() for g in eager[1].values())
    for name, grad in grads.items():
        torch.testing.assert_close(grad, eager[1][name], rtol=GRAD_RTOL, atol=atol, msg=name)


def test_a_run_resumes_across_a_change_of_speed_levers():
    from mdxnet.training.state import resume_key

    raw = load_params("params.yaml", profile="ci").to_dict()
    changed = {**raw, "train": {**raw["train"], "speed": {**raw["train"]["speed"], "compile": "default"}}}
    assert resume_key(raw, "separator/vocals") == resume_key(changed, "separator/vocals")
    other_lr = {**raw, "train": {**raw["train"], "lr_scale": 2.0}}
    assert resume_key(raw, "separator/vocals") != resume_key(other_lr, "separator/vocals")


def test_the_params_defaults_are_the_eager_step():
    for profile in ("paper", "embedded", "ci", "rehearsal"):
        speed = load_params("params.yaml", profile=profile).train.speed
        assert StepSpeed.from_params(speed) == StepSpeed(), profile


@pytest.mark.parametrize("changes", [{"channels_last": True}, {"optimizer_impl": "foreach"},
                                     {"optimizer_impl": "for_loop"}], ids=str)
def test_each_lever_computes_the_eager_loss_and_gradients(initial, tmp_path, changes):
    eager = one_step(initial, tmp_path / "eager", StepSpeed())
    step = one_step(initial, tmp_path / "lever", dataclasses.replace(StepSpeed(), **changes))
    assert_same_step(step, eager)
    if "optimizer_impl" in changes:  # same gradients bit for bit: the update must match too
        torch.testing.assert_close(step[2], eager[2])


def test_compiled_step_graphs_compute_the_eager_step(initial, tmp_path, monkeypatch):
    """torch.compile's capture (Dynamo + AOTAutograd: the forward and backward graphs inductor would lower) run
    without code generation: seconds, where inductor's C++ compilation takes minutes on 2 shared cores (the next
    test)."""
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None: real(fn, backend="aot_eager"))
    eager = one_step(initial, tmp_path / "eager", StepSpeed())
    assert_same_step(one_step(initial, tmp_path / "compiled", StepSpeed(compile="default")), eager)


@pytest.mark.slow  # inductor compiles C++ with gcc: ~1 min alone, ~5 min on 2 loaded cores
def test_inductor_compiled_step_computes_the_eager_step(initial, tmp_path):
    eager = one_step(initial, tmp_path / "eager", StepSpeed())
    assert_same_step(one_step(initial, tmp_path / "compiled", StepSpeed(compile="default", channels_last=True,
                                                                         optimizer_impl="foreach")), eager)


def test_cudnn_autotuning_is_refused_with_the_deterministic_setting(tmp_path):
    with pytest.raises(UserError, match="train.deterministic"):
        LoopConfig(name="t", steps=1, batch_size=1, lr=1e-3, loss="l1", valid_every=1, checkpoint_every=1,
                   log_every=1, amp=False, amp_dtype="bfloat16", seed=0, num_workers=0, last_path=tmp_path / "l.pt",
                   best_path=tmp_path / "o.pt", live_dir=tmp_path, resume_key="k", deterministic=True,
                   speed=StepSpeed(cudnn_benchmark=True))
    StepSpeed(cudnn_benchmark=True).check(deterministic=False)


def test_loader_options_apply_where_they_exist():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert loader_options(cpu, 0, StepSpeed()) == {"pin_memory": False}
    assert loader_options(cuda, 0, StepSpeed()) == {"pin_memory": True}  # prefetch only with workers
    assert loader_options(cuda, 4, StepSpeed(prefetch_factor=6, pin_memory=False)) == {"pin_memory": False,
                                                                                       "prefetch_factor": 6}
