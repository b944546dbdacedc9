"""SiSEC2018 aggregation: per track the median over frames (NaN frames ignored), then the median over tracks,
per source and metric. Same numbers as `museval.EvalStore().agg_frames_tracks_scores()` (tested).

A summary reads exactly the per-track files it is given and records them, so that a report on a run's folder reads
those files and no other (a score left in the folder by an earlier run is never counted), and it refuses files that
say they scored different datasets."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from mdxnet.errors import UserError, read_json
from mdxnet.evaluation.track_json import METRICS, frame_values

# A run's summary, beside its test/ folder: `mdxnet evaluate aggregate <run>/test/*.json -o <run>/summary.json`
SUMMARY = "summary.json"


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
    """Per-track files of one scores argument: a file is itself; a folder holding a summary.json (`mdxnet evaluate
    aggregate`) gives exactly the files that summary read; any other folder gives `<folder>/test/**/*.json`
    (museval's layout) or `<folder>/*.json`."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise UserError(f"scores folder {folder} does not exist: run `mdxnet evaluate track ... -o {folder}/test/X.json`")
    if (folder / SUMMARY).is_file():
        return summarized_paths(folder)
    paths = sorted((folder / "test").glob("**/*.json")) if (folder / "test").is_dir() else sorted(folder.glob("*.json"))
    if not paths:
        raise UserError(f"no per-track JSON files in {folder} (looked for test/**/*.json and *.json)")
    return paths


def summarized_paths(folder: Path) -> list[Path]:
    """The per-track files a folder's summary.json was aggregated from (its "files", relative to the folder)."""
    summary = read_json(folder / SUMMARY, "run summary", "re-run `mdxnet evaluate aggregate`")
    files = summary.get("files") if isinstance(summary, dict) else None
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise UserError(f"{folder / SUMMARY} lists no per-track files ('files'): re-run `mdxnet evaluate aggregate` "
                        f"on the run's score files with -o {folder / SUMMARY}")
    paths = [folder / name for name in files]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"{folder / SUMMARY} was aggregated from {missing[0]}, which no longer exists: re-score that "
                        "track and re-run `mdxnet evaluate aggregate`")
    return paths


def score_paths(arguments: list[str | Path]) -> list[Path]:
    """Every per-track file of the scores arguments (files as given, folders as track_json_paths says)."""
    return [path for argument in arguments for path in track_json_paths(argument)]


def dataset_of(document: dict) -> dict | None:
    """What a score file says it scored (mdxnet.evaluation.scoring.dataset_record); None: not written by mdxnet."""
    dataset = document.get("mdxnet", {}).get("dataset")
    return dataset if isinstance(dataset, dict) else None


def check_one_dataset(documents: dict[Path, dict]) -> dict | None:
    """The one dataset the documents scored; refused, naming the file, when they scored different ones."""
    first_path, first = None, None
    for path, document in documents.items():
        dataset = dataset_of(document)
        if dataset is None:
            continue
        if first is None:
            first_path, first = path, dataset
        elif dataset != first:
            changed = sorted(k for k in {*dataset, *first} if dataset.get(k) != first.get(k))
            theirs = ", ".join(f"{k} {dataset.get(k)!r} against {first.get(k)!r}" for k in changed)
            raise UserError(f"{path} scored another dataset than {first_path} ({theirs}): scores of different "
                            "datasets cannot share one median; delete the stale file or score that track again")
    return first


def track_medians(document: dict) -> dict[str, dict[str, float]]:
    """{target: {metric: median over frames}} for one per-track document."""
    return {
        target: {m: nanmedian(values[m]) for m in METRICS} for target, values in frame_values(document).items()
    }


def read_documents(arguments: list[str | Path]) -> dict[Path, dict]:
    """{path: per-track document} for every file of the scores arguments: each track once, one dataset."""
    documents: dict[Path, dict] = {}
    origin: dict[str, Path] = {}
    for path in score_paths(arguments):
        if path.stem in origin:
            raise UserError(f"track {path.stem!r} is scored twice: {origin[path.stem]} and {path}")
        documents[path] = read_track_json(path)
        origin[path.stem] = path
    check_one_dataset(documents)
    return documents


def medians_of(documents: dict[Path, dict]) -> dict[str, dict[str, dict[str, float]]]:
    """{track: {target: {metric: frame median}}}; the track name is the file stem, as museval uses it."""
    return {path.stem: track_medians(document) for path, document in documents.items()}


def load_track_medians(arguments: list[str | Path]) -> dict[str, dict[str, dict[str, float]]]:
    """The frame medians of every per-track file of the scores arguments (score_paths)."""
    return medians_of(read_documents(arguments))


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


def cross_checks(documents: dict[Path, dict]) -> list[dict]:
    """The museval cross-checks recorded in the per-track files ("mdxnet" -> "crosscheck"), with their track."""
    found = []
    for path, document in documents.items():
        check = document.get("mdxnet", {}).get("crosscheck")
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


def aggregate(arguments: list[str | Path], out: str | Path | None = None) -> dict:
    """The summary document `mdxnet evaluate aggregate` writes (refused when a cross-check failed or the files
    scored different datasets). `out`: where it will be written (its "files" are relative to that folder)."""
    documents = read_documents(arguments)
    checks = cross_checks(documents)
    check_cross_checks(checks, ", ".join(str(a) for a in arguments))
    per_track = medians_of(documents)
    return {
        "aggregation": "median over frames (NaN ignored) per track, then median over tracks (SiSEC2018)",
        "tracks": len(per_track),
        # the per-track files read, exactly: a report on this summary's folder reads these and no other
        "files": [_relative(path, out) for path in documents],
        "dataset": check_one_dataset(documents),
        "summary": summarize(per_track),
        "per_track": per_track,
        # the museval cross-check of this run's scoring backend (one track), None when none was made
        "crosscheck": max(checks, key=lambda c: c["max_abs_diff_db"]) if checks else None,
    }


def _relative(path: Path, out: str | Path | None) -> str:
    """A summary's file entry: relative to the summary's folder where it lies inside it (the run folder moves
    whole), else absolute."""
    path = Path(path).resolve()
    if out is None:
        return path.as_posix()
    try:
        return path.relative_to(Path(out).resolve().parent).as_posix()
    except ValueError:
        return path.as_posix()
