"""What a resumed run needs to continue exactly like an uninterrupted one.

The data a step sees is a pure function of (seed, step) (see `loop.step_indices`), so resuming only needs the
model and optimizer state plus the RNG streams; those are stored as plain tensors/lists so that checkpoints load
with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import torch

from mdxnet.config import Params, as_plain
from mdxnet.digest import file_sha256

# Values that may change between a run and its resumption without changing the result up to the old end.
# The step budget, and how a step is computed (train.speed: the same mathematics), may change and the run resume.
RESUME_INSENSITIVE_KEYS = (("train", "steps"), ("train", "mixer", "steps"), ("train", "max_epochs"),
                           ("train", "mixer", "max_epochs"), ("train", "speed"))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng() -> dict:
    """Every RNG stream in the process, as weights_only-loadable values."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": np_kind,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    nps = state["numpy"]
    np.random.set_state(
        (nps["kind"], nps["keys"].numpy().astype(np.uint32), nps["pos"], nps["has_gauss"], nps["gauss"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def resume_key(params: Params | dict, name: str, inputs: list[Path] | None = None) -> str:
    """Identity of a training run: its name, the params that shape its result and the files it reads.

    A `last.pt` with another key belongs to another experiment (e.g. a changed lr) and is not resumed.
    `inputs` are files whose content matters (the frozen separators of the Mixer).
    """
    shaped = as_plain(params)
    for path in RESUME_INSENSITIVE_KEYS:
        node = shaped
        for key in path[:-1]:
            node = node.get(key, {})
        node.pop(path[-1], None)
    digest = hashlib.sha256(json.dumps({"name": name, "params": shaped}, sort_keys=True, default=str).encode())
    for path in inputs or []:
        digest.update(Path(path).name.encode())
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()[:16]


