"""The blend rows: this run's Mixer output, or its separators' output without Mixer, blended per source with a
second system's estimates.

The authors' 2nd-place MDX submission (kuielab/mdx-net-submission, branch leaderboard_A, predict_blend.py) blends
`sources = base_out * b + demucs_out * (1 - b)` per source, `base_out` being their Mixer's output and b = 0.5 /
0.5 / 0.7 / 0.9 for bass / drums / other / vocals; arXiv 2111.12203 also reports the blend of the separators'
output without Mixer ("v2 + Demucs"). Here b is params `blend.weights` and the second system is any
folder of estimates in musdb layout (params `blend.second`, {name: folder}), read through the same checks as the
stored model estimates (mdxnet.evaluation.separated.read_checked_estimates): missing track or source, other
sample rate or length, NaN/inf samples are named errors before anything is scored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdxnet.data.musdb import load_track
from mdxnet.errors import UserError
from mdxnet.evaluation.separated import read_checked_estimates


def blend(ours: dict[str, np.ndarray], second: dict[str, np.ndarray], weights: dict[str, float],
          sources) -> dict[str, np.ndarray]:
    """{source: b * ours + (1 - b) * second} in float64, b = weights[source] (predict_blend.py's formula)."""
    blended = {}
    for source in sources:
        b = float(weights[source])
        if not 0.0 <= b <= 1.0:
            raise UserError(f"blend.weights.{source} is {b}: a blend weight lies in [0, 1] (params.yaml)")
        ours_s, second_s = np.asarray(ours[source], np.float64), np.asarray(second[source], np.float64)
        if ours_s.shape != second_s.shape:
            raise UserError(f"cannot blend {source}: shapes {ours_s.shape} and {second_s.shape} differ")
        blended[source] = ours_s * b + second_s * (1.0 - b)
    return blended


def track_folder(root: str | Path, track: str) -> Path:
    """`<root>/test/<track>` (musdb layout), or `<root>/<track>` when the folder has no test/ level."""
    root = Path(root)
    return root / "test" / track if (root / "test").is_dir() or not root.is_dir() else root / track


def missing_tracks(root: str | Path, tracks, sources) -> list[str]:
    """What a second system's folder lacks for these tracks (whole tracks, single source files), in words."""
    root = Path(root)
    if not root.is_dir():
        return [f"{root} does not exist (expected {root}/test/<track>/<source>.wav)"]
    faults = []
    for track in tracks:
        folder = track_folder(root, track)
        if not folder.is_dir():
            faults.append(f"no estimates for test track {track!r} ({folder} is missing)")
            continue
        absent = [s for s in sources if not (folder / f"{s}.wav").is_file()]
        if absent:
            faults.append(f"{folder} lacks {', '.join(s + '.wav' for s in absent)}")
    return faults


OURS = {"mixer": "this run's Mixer", "no-mixer": "this run's separators (no Mixer)"}


def blend_track(track_path: str | Path, ours_dir: str | Path, second_dir: str | Path, name: str,
                weights: dict[str, float], sources: list[str],
                sample_rate: int, ours_run: str = "mixer") -> tuple[dict, dict[str, np.ndarray]]:
    """(the loaded track, its blended estimates): `ours_dir` and `second_dir` hold this track's estimates,
    `ours_dir` those of the model run `ours_run` (mixer or no-mixer); `weights` is params blend.weights."""
    sources = list(sources)
    track = load_track(track_path, sample_rate)
    length = track["mixture"].shape[-1]
    ours = read_checked_estimates(ours_dir, sources, sample_rate, length, f"the estimates of {OURS[ours_run]}")
    second = read_checked_estimates(second_dir, sources, sample_rate, length,
                                    f"the estimates of the second system {name!r} (params blend.second)")
    return track, blend(ours, second, weights, sources)


def describe(name: str, weights: dict[str, float], sources, ours_run: str = "mixer") -> str:
    """The row's words: both systems and the weights."""
    shown = ", ".join(f"{s} {weights[s]:g}" for s in sources)
    return f"blend: {OURS[ours_run]} x b + {name} x (1 - b), b = {shown}"
