"""Data-parallel training with torch's DistributedDataParallel, launched by torchrun.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; without them the run is a single process and nothing here does
anything. Each rank takes a disjoint contiguous shard of every step's batch indices (the first ranks one item
more where the batch does not divide: 8 over 3 is 3+3+2, as DataParallel splits it), weights its mean loss by its
share so that DDP's average of the gradients is the gradient of the whole batch's mean loss (the update equals
the single-process update on the whole batch, BatchNorm statistics aside: each rank's own, as each of the
authors' DataParallel GPUs computed them), and only rank 0 validates, logs and writes files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta

import torch

from mdxnet.errors import UserError

log = logging.getLogger(__name__)

# Rank 0 validates on whole tracks while the others wait in the next all-reduce: allow for long validations.
COLLECTIVE_TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def _bounds(self, size: int) -> tuple[int, int]:
        per_rank, rest = divmod(size, self.world)
        start = self.rank * per_rank + min(self.rank, rest)
        return start, start + per_rank + (self.rank < rest)

    def shard(self, indices: list[int]) -> list[int]:
        """This rank's contiguous share of one step's batch indices (the first `len % world` ranks one more)."""
        start, stop = self._bounds(len(indices))
        return indices[start:stop]

    def loss_weight(self, batch_size: int) -> float:
        """What this rank's mean loss is multiplied by before backward: DDP averages the ranks' gradients, so
        world x share / batch makes that average the gradient of the whole batch's mean loss (1 for even shares)."""
        start, stop = self._bounds(batch_size)
        return self.world * (stop - start) / batch_size

    def check_batch(self, batch_size: int) -> None:
        if batch_size < self.world:
            raise UserError(f"batch size {batch_size} is smaller than the {self.world} torchrun processes: set "
                            "train.batch_size (or train.mixer.batch_size) in params.yaml to at least that, or "
                            "train.gpus to at most the batch")


def resolve_device(choice: str, dist: DistContext) -> torch.device:
    """'auto' -> CUDA when available (one GPU per local rank), else CPU."""
    if choice not in ("auto", "cpu", "cuda"):
        raise UserError(f"unknown --device {choice!r}: use auto, cpu or cuda")
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but torch sees no CUDA device: use --device cpu or auto")
    if choice == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", dist.local_rank % torch.cuda.device_count())


def init_distributed(device_choice: str) -> tuple[DistContext, torch.device]:
    """Join the torchrun process group when launched by torchrun; otherwise a single-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), resolve_device(device_choice, DistContext())
    import torch.distributed as tdist

    dist = DistContext(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(device_choice, dist)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not tdist.is_initialized():
        tdist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
    return dist, device


def check_processes(dist: DistContext, asked: int, key: str) -> None:
    """A run in another number of processes than params asks for computes other BatchNorm statistics: said
    loudly (a run by hand may do it on purpose, e.g. one GPU for a profile that names several)."""
    if dist.is_main and dist.enabled:
        log.info("training in %d processes (torchrun), each on its share of every batch", dist.world)
    if dist.is_main and dist.world != asked:
        log.warning("training in %d process(es) while params.yaml %s asks for %d: each process computes "
                    "BatchNorm statistics over its share of the batch, so the result differs from a run in %d "
                    "(the workflow launches %s through torchrun)", dist.world, key, asked, asked, key)


def wrap_model(model: torch.nn.Module, dist: DistContext, device: torch.device) -> torch.nn.Module:
    if not dist.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)


def mean_across_ranks(value: torch.Tensor, dist: DistContext) -> torch.Tensor:
    """Average of a scalar over ranks (NaN on any rank makes it NaN everywhere, so all ranks stop together)."""
    if not dist.enabled:
        return value
    import torch.distributed as tdist

    value = value.detach().clone()
    tdist.all_reduce(value)
    return value / dist.world


def barrier(dist: DistContext) -> None:
    if dist.enabled:
        import torch.distributed as tdist

        tdist.barrier()


def shutdown(dist: DistContext) -> None:
    if dist.enabled:
        import torch.distributed as tdist

        if tdist.is_initialized():
            tdist.destroy_process_group()
