"""SiSEC2018 aggregation: per track the median over frames (NaN frames ignored), then the median over tracks,
per source and metric. Same numbers as `museval.EvalStore().agg_frames_tracks_scores()` (tested)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from mdxnet.errors import UserError
from mdxnet.evaluation.scoring import METRICS, frame_values


def nanmedian(values) -> float:
    """Median ignoring NaN; NaN when nothing is left (pandas' groupby median, which museval uses, does the same)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.median(values))


def read_track_json(path: str | Path) -> dict:
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read per-track scores {path}: {err}; re-run `mdxnet evaluate track`") from err
    if not isinstance(document, dict) or not isinstance(document.get("targets"), list):
        raise UserError(f"{path} is not a museval per-track JSON (no 'targets' list)")
    return document


def track_json_paths(folder: str | Path) -> list[Path]:
    """Per-track files of one evaluation folder: `<folder>/test/**/*.json` (museval's layout) or `<folder>/*.json`."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise UserError(f"scores folder {folder} does not exist: run `mdxnet evaluate track ... -o {folder}/test/X.json`")
    paths = sorted((folder / "test").glob("**/*.json")) if (folder / "test").is_dir() else sorted(folder.glob("*.json"))
    if not paths:
        raise UserError(f"no per-track JSON files in {folder} (looked for test/**/*.json and *.json)")
    return paths


def track_medians(document: dict) -> dict[str, dict[str, float]]:
    """{target: {metric: median over frames}} for one per-track document."""
    return {
        target: {m: nanmedian(values[m]) for m in METRICS} for target, values in frame_values(document).items()
    }


def load_track_medians(folders: list[str | Path]) -> dict[str, dict[str, dict[str, float]]]:
    """{track: {target: {metric: frame median}}} over every per-track file in the folders; the track name is the
    file stem, as museval uses it."""
    per_track: dict[str, dict] = {}
    origin: dict[str, Path] = {}
    for folder in folders:
        for path in track_json_paths(folder):
            if path.stem in per_track:
                raise UserError(f"track {path.stem!r} is scored twice: {origin[path.stem]} and {path}")
            per_track[path.stem] = track_medians(read_track_json(path))
            origin[path.stem] = path
    return per_track


def summarize(per_track: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """{target: {metric: median over tracks of the frame medians}}, targets in first-seen order."""
    targets: list[str] = []
    for medians in per_track.values():
        targets += [t for t in medians if t not in targets]
    return {
        target: {
            m: nanmedian([medians[target][m] for medians in per_track.values() if target in medians]) for m in METRICS
        }
        for target in targets
    }


def aggregate(folders: list[str | Path]) -> dict:
    """The summary document `mdxnet evaluate aggregate` writes."""
    per_track = load_track_medians(folders)
    return {
        "aggregation": "median over frames (NaN ignored) per track, then median over tracks (SiSEC2018)",
        "tracks": len(per_track),
        "summary": summarize(per_track),
        "per_track": per_track,
    }
