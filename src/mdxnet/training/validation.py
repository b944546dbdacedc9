"""Validation during training: whole validation tracks, separated chunk by chunk exactly as at inference
(`mdxnet.separation.overlap_add`), scored with the MDX-challenge global SDR.

Global SDR of a track = 10 log10(sum s^2 / sum (s - s_hat)^2) over all samples and both channels (no BSS-eval
projection, no framing: fast and monotone in the error energy). The validation score is the median over tracks;
for the Mixer it is the mean over sources of the per-source medians.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger(__name__)

# The MDX challenge's stabiliser: a silent reference with a silent estimate scores 0 dB, not NaN.
SDR_EPS = 1e-7


def global_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    reference = np.asarray(reference, dtype=np.float64)
    error = reference - np.asarray(estimate, dtype=np.float64)
    return float(10 * np.log10((np.sum(reference**2) + SDR_EPS) / (np.sum(error**2) + SDR_EPS)))


@dataclass
class ValidTrack:
    name: str
    mixture: torch.Tensor  # (2, n) float32
    sources: dict[str, np.ndarray]  # only the sources a task scores


def load_valid_tracks(params, sources: list[str]) -> list[ValidTrack]:
    """The dataset's validation tracks (possibly none), keeping only `sources` besides the mixture.

    The split is the sampler's (`mdxnet.data.musdb.split_tracks`), so no validation track is also trained on.
    With none (data.valid_split: none, or a recorded split without any), validation is skipped: said once here.
    """
    from mdxnet.data.musdb import load_track, split_tracks, track_name

    tracks = []
    for folder in split_tracks(params, "valid"):
        stems = load_track(folder)
        tracks.append(ValidTrack(track_name(folder), torch.from_numpy(np.ascontiguousarray(stems["mixture"])),
                                 {s: stems[s] for s in sources}))
    if not tracks:
        log.warning("no validation tracks in %s (data.valid_split: %s): validation is skipped and the model "
                    "written is the last step's, not the best one's", params.data.root, params.data.valid_split)
    return tracks


def separate_track(model, mixture: torch.Tensor, overlap: int, batch: int, device: torch.device) -> torch.Tensor:
    """One separator over a whole (2, n) track, as `mdxnet separate` runs it."""
    from mdxnet.separation import overlap_add

    return overlap_add(model, mixture, overlap, batch, device)


def median_sdr(tracks: list[ValidTrack], source: str, estimates: list[np.ndarray]) -> float:
    return float(np.median([global_sdr(t.sources[source], e) for t, e in zip(tracks, estimates, strict=True)]))
