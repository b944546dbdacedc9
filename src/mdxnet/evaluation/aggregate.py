"""SiSEC2018 aggregation: per track the median over frames (NaN frames ignored), then the median over tracks,
per source and metric. Same numbers as `museval.EvalStore().agg_frames_tracks_scores()` (tested)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from mdxnet.errors import UserError, read_json
from mdxnet.evaluation.track_json import METRICS, frame_values


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
    document = read_json(path, "per-track scores", "re-run `mdxnet evaluate track`")
    if not isinstance(document, dict) or not isinstance(document.get("targets"), list):
        raise UserError(f"{path} is not a museval per-track JSON (no 'targets' list)")
    if not document["targets"]:  # it would count as a scored track in every source's track count
        raise UserError(f"{path} scores no source ('targets' is empty): delete it and re-run `mdxnet evaluate "
                        "track` for that track")
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


def cross_checks(folders: list[str | Path]) -> list[dict]:
    """The museval cross-checks recorded in the per-track files ("mdxnet" -> "crosscheck"), with their track."""
    found = []
    for folder in folders:
        for path in track_json_paths(folder):
            check = read_track_json(path).get("mdxnet", {}).get("crosscheck")
            if check:
                found.append({"track": path.stem, **check})
    return found


def check_cross_checks(checks: list[dict], where: str) -> None:
    """Fail loudly when a backend differs from museval by more than the recorded tolerance."""
    bad = [c for c in checks if not c["max_abs_diff_db"] <= c["tolerance_db"]]
    if bad:
        raise UserError(f"{where}: the {bad[0]['backend']} scoring backend differs from museval by "
                        + "; ".join(f"{c['max_abs_diff_db']:.3g} dB on {c['track']} ({c['where']})" for c in bad)
                        + f", above the {bad[0]['tolerance_db']:g} dB of params evaluate.crosscheck_tolerance_db: "
                        "these scores cannot stand for museval's; set evaluate.backend: museval and report it")


def aggregate(folders: list[str | Path]) -> dict:
    """The summary document `mdxnet evaluate aggregate` writes (refused when a cross-check failed)."""
    per_track = load_track_medians(folders)
    checks = cross_checks(folders)
    check_cross_checks(checks, ", ".join(str(f) for f in folders))
    return {
        "aggregation": "median over frames (NaN ignored) per track, then median over tracks (SiSEC2018)",
        "tracks": len(per_track),
        "summary": summarize(per_track),
        "per_track": per_track,
        # the museval cross-check of this run's scoring backend (one track), None when none was made
        "crosscheck": max(checks, key=lambda c: c["max_abs_diff_db"]) if checks else None,
    }
