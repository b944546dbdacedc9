"""Per-stem waveform transforms of the training sampler, configured as a list in params.yaml (`sampler.transforms`).

Each entry is `{name: <class name>, p: <probability>, args: {<constructor arguments>}}`, the way audiomentations
transforms are usually configured. The name is looked up first among this project's own transforms
(`OWN_TRANSFORMS`), then among audiomentations' waveform transforms; the transforms run in list order on each
(2, L) stem chunk.

audiomentations draws its random numbers from the global `random` and `numpy.random` states. The sampler seeds
both from the item's own generator inside `seeded_global_random`, which puts the previous global states back
afterwards, so an item stays a pure function of (seed, index) and no other code sees its random draws change.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence

import numpy as np
from audiomentations.core.transforms_interface import BaseWaveformTransform

from mdxnet.errors import UserError


class SwapChannels(BaseWaveformTransform):
    """Swaps left and right of a stereo chunk (audiomentations has no such transform); mdxnet's own."""

    supports_mono = False
    supports_multichannel = True

    def __init__(self, p: float):
        super().__init__(p)

    def apply(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        if samples.shape[0] != 2:
            raise ValueError(f"SwapChannels needs stereo (2, L) samples, got shape {samples.shape}")
        return np.ascontiguousarray(samples[::-1])


# Looked up before audiomentations' classes, so a name here wins.
OWN_TRANSFORMS: dict[str, type[BaseWaveformTransform]] = {"SwapChannels": SwapChannels}


def transform_class(name: object, key: str) -> type[BaseWaveformTransform]:
    """The waveform transform class called `name`; `key` (e.g. sampler.transforms.1.name) names it in errors."""
    if not isinstance(name, str) or not name or name.startswith("_"):
        raise UserError(f"{key}: {name!r} is not a transform class name")
    found = OWN_TRANSFORMS.get(name)
    if found is None:
        import audiomentations

        found = getattr(audiomentations, name, None)
    if not (isinstance(found, type) and issubclass(found, BaseWaveformTransform)):
        raise UserError(f"{key}: unknown waveform transform {name!r}: use one of mdxnet's "
                        f"({', '.join(sorted(OWN_TRANSFORMS))}) or an audiomentations waveform transform class "
                        "(e.g. Gain, PolarityInversion)")
    if not found.supports_multichannel:
        raise UserError(f"{key}: {name} handles mono audio only, and training chunks are stereo: use another transform")
    return found


def build_transform(spec: dict, key: str) -> BaseWaveformTransform:
    """One transform from its params entry `{name, p, args}`; `key` is the entry's dotted key."""
    cls = transform_class(spec["name"], f"{key}.name")
    args = dict(spec["args"] or {})
    if "p" in args:
        raise UserError(f"{key}.args.p: give the probability as {key}.p, not among the arguments")
    try:
        return cls(p=spec["p"], **args)
    except (TypeError, ValueError, AssertionError) as err:
        raise UserError(f"{key}.args: {spec['name']}({', '.join(f'{k}={v!r}' for k, v in args.items())}) "
                        f"is refused: {err}") from None


def build_transforms(specs: Sequence[dict], key: str = "sampler.transforms") -> tuple[BaseWaveformTransform, ...]:
    """The transforms of `specs` (params entries), in order; errors name the entry (`sampler.transforms.1.name`)."""
    return tuple(build_transform(spec, f"{key}.{i}") for i, spec in enumerate(specs))


def apply_transforms(transforms: Sequence[BaseWaveformTransform], chunk: np.ndarray, sample_rate: int,
                     key: str = "sampler.transforms") -> np.ndarray:
    """`chunk` (2, L) float32 through every transform in order; each must keep the chunk's shape."""
    for i, transform in enumerate(transforms):
        changed = transform(chunk, sample_rate)
        if changed.shape != chunk.shape:
            raise UserError(f"{key}.{i}: {type(transform).__name__} turned a {chunk.shape} training chunk into "
                            f"{changed.shape}: training chunks must keep their length (choose arguments that do)")
        chunk = np.asarray(changed, dtype=np.float32)
    return chunk


@contextlib.contextmanager
def seeded_global_random(seed: int) -> Iterator[None]:
    """Seed the global `random` and `numpy.random` states from `seed` for the block, then restore them."""
    saved_random, saved_numpy = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        random.setstate(saved_random)
        np.random.set_state(saved_numpy)
