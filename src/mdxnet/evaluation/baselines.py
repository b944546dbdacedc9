"""The estimators scored by `mdxnet evaluate track`: the trained model and the two reference baselines.

- `mixture`: the mixture itself as every source's estimate (lower bound: what doing nothing scores).
- `irm`: the ideal ratio mask oracle (upper bound for masking methods), built from the true stems like the
  SiSEC2018 `IRM2` oracle: per channel, mask_j = |S_j|^alpha / (sum_k |S_k|^alpha + eps) with alpha = 2
  (power spectrograms), applied to the mixture STFT (Hann window, n_fft 2048, hop 1024: scipy's defaults for
  nperseg=2048), then inverted. The exponent and STFT size come from params `evaluate.irm`.
- `model`: the trained separators (optionally followed by the Mixer) through the same `SeparationPipeline` API as
  `mdxnet separate`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdxnet.config import Params
from mdxnet.errors import UserError
from mdxnet.inference.separation import SeparationPipeline

ESTIMATORS = ("model", "mixture", "irm")


def mixture_estimates(track: dict[str, np.ndarray], sources: list[str]) -> dict[str, np.ndarray]:
    return {source: track["mixture"].copy() for source in sources}


def irm_estimates(
    track: dict[str, np.ndarray], sources: list[str], n_fft: int = 2048, hop: int = 1024, alpha: float = 2.0
) -> dict[str, np.ndarray]:
    """Ideal ratio mask oracle applied to the mixture (see module docstring)."""
    from scipy.signal import istft, stft

    stft_args = {"nperseg": n_fft, "noverlap": n_fft - hop, "window": "hann"}
    length = track["mixture"].shape[-1]
    mixture_spec = stft(track["mixture"].astype(np.float64), **stft_args)[-1]
    powers = {s: np.abs(stft(track[s].astype(np.float64), **stft_args)[-1]) ** alpha for s in sources}
    total = sum(powers.values()) + np.finfo(np.float64).eps
    estimates = {}
    for source in sources:
        wave = istft(mixture_spec * (powers[source] / total), **stft_args)[-1]
        wave = wave[:, :length]
        if wave.shape[-1] < length:  # istft may return a few samples short of the input
            wave = np.pad(wave, ((0, 0), (0, length - wave.shape[-1])))
        estimates[source] = wave.astype(np.float32)
    return estimates


def model_estimates(
    track: dict[str, np.ndarray],
    params: Params,
    models_dir: str | Path,
    use_mixer: bool = True,
    device: str | None = None,
) -> tuple[dict[str, np.ndarray], str]:
    """Separate the mixture with the trained models; returns (estimates, device actually used)."""
    device = device or params.separate.device
    pipeline = SeparationPipeline.from_dir(models_dir, params, device=device, use_mixer=use_mixer)
    estimates = pipeline.separate(track["mixture"], progress=True)
    used = str(getattr(pipeline, "device", device))
    return {source: np.asarray(estimates[source], dtype=np.float32) for source in params.sources}, used


def estimates_for(
    estimator: str,
    track: dict[str, np.ndarray],
    params: Params,
    models_dir: str | Path | None = None,
    use_mixer: bool = True,
    device: str | None = None,
) -> tuple[dict[str, np.ndarray], str]:
    """Dispatch on the estimator name; returns (estimates, device) where device is "cpu" for the baselines."""
    sources = params.sources
    if estimator == "mixture":
        return mixture_estimates(track, sources), "cpu"
    if estimator == "irm":
        irm = params.evaluate.irm
        return irm_estimates(track, sources, irm.n_fft, irm.hop, irm.alpha), "cpu"
    if estimator == "model":
        if models_dir is None:
            raise UserError("--estimator model needs --models DIR (the folder holding <source>.pt and mixer.pt)")
        return model_estimates(track, params, models_dir, use_mixer, device)
    raise ValueError(f"unknown estimator {estimator!r}; known: {ESTIMATORS}")
