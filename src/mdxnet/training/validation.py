"""Validation during training: whole validation tracks, separated chunk by chunk exactly as at inference
(`mdxnet.inference.stitching.overlap_add`), each scored with one SDR over all its samples and both channels (no BSS-eval
projection, no framing: fast and monotone in the error energy).

Two formulas (`train.valid_sdr`), both 10 log10 of the reference-to-error energy ratio of a track:
- `authors`: 10 log10(sum s^2 / sum (s - s_hat)^2 + 1e-10), the authors' `sdr` (src/utils/utils.py in
  kuielab/mdx-net, Leaderboard_A), which their separators log once per validation track;
- `mdx`: 10 log10((sum s^2 + 1e-7) / (sum (s - s_hat)^2 + 1e-7)), the MDX challenge's global SDR.
The per-track scores of a source are then reduced over the validation tracks (`train.valid_reduce`): `mean`
(the authors' Lightning `on_epoch` mean of the per-track values) or `median`.

The Mixer's validation score is the mean over the four sources of these per-source scores. (The authors'
Mixer instead scores all four sources of a track as one signal, a single SDR per track; not reproduced, so
that the Mixer's score and the separators' are on the same footing.)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from mdxnet.config import Train
from mdxnet.data.musdb import load_track, split_tracks, track_name
from mdxnet.inference.stitching import overlap_add

log = logging.getLogger(__name__)

# The MDX challenge's stabiliser: a silent reference with a silent estimate scores 0 dB, not NaN.
SDR_EPS = 1e-7
# The authors' stabiliser, added to the ratio: a silent reference scores -100 dB (not -inf) against a non-silent
# estimate. As in their code there is no other guard: a perfect estimate scores +inf, and a silent reference with
# a silent estimate NaN (neither happens with whole tracks and a trained network).
AUTHORS_SDR_EPS = 1e-10


def global_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """The MDX challenge's global SDR of one track (valid_sdr: mdx)."""
    reference = np.asarray(reference, dtype=np.float64)
    error = reference - np.asarray(estimate, dtype=np.float64)
    return float(10 * np.log10((np.sum(reference**2) + SDR_EPS) / (np.sum(error**2) + SDR_EPS)))


def authors_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """The authors' validation SDR of one track (valid_sdr: authors), in float64."""
    reference = np.asarray(reference, dtype=np.float64)
    error = reference - np.asarray(estimate, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.sum(reference**2) / np.sum(error**2)
        return float(10 * np.log10(ratio + AUTHORS_SDR_EPS))


SDR_FORMULAS = {"authors": authors_sdr, "mdx": global_sdr}
REDUCTIONS = {"mean": np.mean, "median": np.median}


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
    tracks = []
    for folder in split_tracks(params, "valid"):
        stems = load_track(folder)
        tracks.append(ValidTrack(track_name(folder), torch.from_numpy(np.ascontiguousarray(stems["mixture"])),
                                 {s: stems[s] for s in sources}))
    if not tracks:
        log.warning("no validation tracks in %s (data.valid_split: %s): validation is skipped and the model "
                    "written is the last step's, not the best one's", params.data.root, params.data.valid_split)
    return tracks


def separate_track(model, mixture: torch.Tensor, stitching, batch: int, device: torch.device) -> torch.Tensor:
    """One separator over a whole (2, n) track, as `mdxnet separate` runs it."""
    return overlap_add(model, mixture, stitching, batch, device)


def source_score(train: Train, tracks: list[ValidTrack], source: str, estimates: list[np.ndarray]) -> float:
    """One source's validation score: `train.valid_sdr` on each track, reduced by `train.valid_reduce`."""
    formula = SDR_FORMULAS[train.valid_sdr]
    reduce = REDUCTIONS[train.valid_reduce]
    return float(reduce([formula(t.sources[source], e) for t, e in zip(tracks, estimates, strict=True)]))


# ---- the authors' validation chunks (train.valid_chunks: training) -----------------------------------------------
def training_chunks(mixture: torch.Tensor, chunk: int, overlap: int) -> torch.Tensor:
    """(2, n) track -> (num, 2, chunk) chunks cut as the authors' MusdbValidDataset cuts a validation track
    (kuielab/mdx-net@Leaderboard_A src/datamodules/datasets/musdb.py): `overlap` zeros before, chunk i starting at
    i (chunk - 2 overlap), zeros after as far as the last chunk reaches. Theirs pads to a whole number of steps
    plus `overlap` and cuts one more chunk when n divides evenly, whose output is cut off; and where 2 overlap is
    a step or more (the embedded Mixer's 8192 of 31744) their last chunks come out short and cannot be batched.
    Here exactly the chunks that hold the track are cut, each whole: the same kept samples wherever theirs runs."""
    step = chunk - 2 * overlap
    if step <= 0:
        raise ValueError(f"{overlap} samples cut at each edge of {chunk}-sample chunks leave nothing")
    length = mixture.shape[-1]
    count = max(1, math.ceil(length / step))
    padded = torch.nn.functional.pad(mixture, (overlap, (count - 1) * step + chunk - overlap - length))
    return torch.stack([padded[:, i * step: i * step + chunk] for i in range(count)])


def join_training_chunks(outputs: torch.Tensor, overlap: int, length: int) -> torch.Tensor:
    """(num, ..., 2, chunk) outputs -> (..., 2, length): each chunk's middle (`overlap` samples cut at both edges),
    laid end to end and cut to the track, as the authors' validation_step joins them."""
    kept = outputs[..., overlap: outputs.shape[-1] - overlap]
    return torch.cat(list(kept), dim=-1)[..., :length]


def run_training_chunks(fn, mixture: torch.Tensor, chunk: int, overlap: int, batch: int,
                        device: torch.device) -> torch.Tensor:
    """`fn` ((B, 2, chunk) -> (B, ..., 2, chunk)) over a whole track in the authors' validation chunks, `batch`
    chunks at a time (their training batch size); returns (..., 2, n) on the CPU, float32."""
    chunks = training_chunks(mixture.float(), chunk, overlap)
    outputs = torch.cat([fn(part.to(device)).float().cpu() for part in chunks.split(batch)])
    return join_training_chunks(outputs, overlap, mixture.shape[-1])
