"""How a training step is computed, apart from what it computes (params train.speed): levers that change the
memory layout, the kernels or their launch, never the mathematics, so a run with any of them trains the same
network on the same data up to float rounding. Every lever is off by default (the loop as the authors' code ran
it: eager PyTorch, contiguous tensors, torch's own optimizer kernels, no cuDNN autotuning).

- channels_last: the model's 4-d weights in NHWC; a convolution whose weight is channels-last writes its output
  channels-last too, so the activations follow from the first convolution on (no hook on the inputs needed);
- compile: torch.compile of one step's forward and loss (AOTAutograd compiles the backward with it), in the
  given mode; `reduce-overhead` replays the step as CUDA graphs. The optimizer step stays eager;
- optimizer_impl: RMSProp's for-loop or multi-tensor (foreach) kernels, or torch's own choice (foreach on CUDA,
  for_loop on CPU). torch has no fused RMSProp;
- cudnn_benchmark: cuDNN times its convolution algorithms and keeps the fastest. Which one wins may differ
  between two runs, so it is refused together with train.deterministic (the authors' setting);
- pin_memory, prefetch_factor: the DataLoader's page-locked batches (asynchronous copies to the GPU) and the
  batches each worker prepares ahead.

The STFT needs no lever: it already runs in float32 under autocast (mdxnet.stft).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from mdxnet.errors import UserError

COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
FOREACH = {"torch": None, "for_loop": False, "foreach": True}


@dataclass(frozen=True)
class StepSpeed:
    """The values of params train.speed (mdxnet.config.Speed), as the training loop reads them."""

    channels_last: bool = False
    compile: str = "none"
    optimizer_impl: str = "torch"
    cudnn_benchmark: bool = False
    pin_memory: bool = True
    prefetch_factor: int = 2

    def __post_init__(self):
        if self.compile not in COMPILE_MODES:
            raise UserError(f"unknown train.speed.compile {self.compile!r} in params.yaml: use one of {COMPILE_MODES}")
        if self.optimizer_impl not in FOREACH:
            raise UserError(f"unknown train.speed.optimizer_impl {self.optimizer_impl!r} in params.yaml: use one of "
                            f"{sorted(FOREACH)}")

    @classmethod
    def from_params(cls, speed) -> StepSpeed:
        return cls(**{field.name: getattr(speed, field.name) for field in dataclasses.fields(cls)})

    def check(self, deterministic: bool) -> None:
        if self.cudnn_benchmark and deterministic:
            raise UserError("train.speed.cudnn_benchmark picks cuDNN's algorithms by timing them, so two runs may "
                            "differ, which train.deterministic: true forbids: set one of them to false in params.yaml")


def set_backends(device: torch.device, deterministic: bool, speed: StepSpeed) -> None:
    """cuDNN's settings for this run (CUDA only): deterministic as the authors' Trainer(deterministic=True) under
    Lightning 1.3.8, autotuning only when asked for."""
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = speed.cudnn_benchmark


def prepare_model(model: nn.Module, speed: StepSpeed) -> nn.Module:
    """The model in the memory layout asked for (in place; returned for chaining)."""
    if speed.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def optimizer(parameters, lr: float, speed: StepSpeed) -> torch.optim.Optimizer:
    """RMSProp without momentum (the paper's and the authors' optimizer) with the kernels asked for."""
    return torch.optim.RMSprop(parameters, lr=lr, momentum=0.0, foreach=FOREACH[speed.optimizer_impl])


def compiled(step: Callable, speed: StepSpeed) -> Callable:
    """`step` (forward and loss) compiled as asked, or as it is."""
    if speed.compile == "none":
        return step
    return torch.compile(step, mode=speed.compile)


def loader_options(device: torch.device, num_workers: int, speed: StepSpeed) -> dict:
    """The DataLoader's keyword arguments for the speed levers (prefetch only exists with workers)."""
    options = {"pin_memory": speed.pin_memory and device.type == "cuda"}
    if num_workers > 0:
        options["prefetch_factor"] = speed.prefetch_factor
    return options
