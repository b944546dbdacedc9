"""Auditing someone else's separation results.

`run_audit_checks` scores a folder of estimates (musdb layout: <dir>/test/<track>/<source>.wav) against the
reference test set and flags: missing or extra tracks, missing source files, estimates whose length differs from
the reference, NaN/inf samples, NaN scores, claimed numbers (per-track JSON or a table) that differ from ours by
more than a tolerance, and a test set that overlaps the training split (same track name, or the same mixture
audio under another name).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from mdxnet.errors import UserError


def estimate_folders(root: str | Path) -> dict[str, Path]:
    """{track: folder} of an estimates tree: `<root>/test/<track>/` (musdb layout) or `<root>/<track>/`."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"estimates folder {root} does not exist (expected <dir>/test/<track>/<source>.wav)")
    base = root / "test" if (root / "test").is_dir() else root
    return {p.name: p for p in sorted(base.iterdir()) if p.is_dir() and not p.name.startswith(".")}


def _audio_problems(name: str, estimates: dict[str, np.ndarray], length: int) -> list[dict]:
    problems = []
    for source, audio in estimates.items():
        if audio.shape[-1] != length:
            problems.append({"kind": "wrong_length", "track": name, "source": source,
                             "samples": int(audio.shape[-1]), "expected": int(length)})
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        if bad:
            problems.append({"kind": "nan_audio", "track": name, "source": source, "samples": bad})
    return problems


def score_estimate_folder(folder: str | Path, reference: str | Path, params: dict) -> tuple[dict, list[dict]]:
    """Score `<folder>/<source>.wav` against one reference track; returns (per-track document, problems).

    Like museval, estimates of another length are zero-padded or truncated before scoring; NaN/inf samples are
    reported and zeroed so that the other sources can still be scored.
    """
    from mdxnet.config import params_hash
    from mdxnet.evaluation.scoring import read_estimates_folder, score_estimates, track_document
    from mdxnet.evaluation.tracks import load_reference, track_name

    sources = list(params.sources)
    sample_rate = params.sample_rate
    track = load_reference(reference, sample_rate)
    length = track["mixture"].shape[-1]
    estimates = read_estimates_folder(folder, sources, sample_rate)
    name = track_name(reference)
    problems = _audio_problems(name, estimates, length)
    estimates = {s: np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0) for s, a in estimates.items()}
    started = time.monotonic()
    scores = score_estimates(track, estimates, params)
    evaluation = params.evaluate
    metadata = {
        "track": name,
        "reference": str(reference),
        "estimator": "estimates",
        "estimates": str(folder),
        "params_hash": params_hash(params),
        "samples": int(length),
        "sample_rate": sample_rate,
        "backend": evaluation.backend,
        "score_seconds": round(time.monotonic() - started, 3),
    }
    return track_document(scores, evaluation.win, evaluation.hop, metadata), problems


def mixture_fingerprint(mixture: np.ndarray) -> str:
    """Hash of the mixture quantised to 16-bit PCM: identical audio under another name gives the same value."""
    pcm = np.clip(np.round(np.asarray(mixture, dtype=np.float64) * 32768), -32768, 32767).astype("<i2")
    return hashlib.sha256(pcm.tobytes()).hexdigest()


def _flag(kind: str, message: str, **details) -> dict:
    return {"kind": kind, "message": message, **details}


def _track_set_flags(references: dict[str, Path], folders: dict[str, Path]) -> list[dict]:
    flags = [_flag("missing_track", f"no estimates for reference track {name!r}", track=name)
             for name in references if name not in folders]
    flags += [_flag("extra_track", f"estimates for {name!r}, which is not a reference test track", track=name)
              for name in folders if name not in references]
    return flags


def _missing_sources(folder: Path, sources: list[str]) -> list[str]:
    return [s for s in sources if not (folder / f"{s}.wav").is_file()]


def score_all(references: dict[str, Path], folders: dict[str, Path], params: dict):
    """Score every track present on both sides: ({track: document}, flags)."""
    from tqdm import tqdm

    documents, flags = {}, []
    sources = list(params.sources)
    common = [name for name in folders if name in references]
    for name in tqdm(common, desc="audit: scoring", unit="track", disable=len(common) < 2):
        missing = _missing_sources(folders[name], sources)
        if missing:
            flags.append(_flag("missing_source", f"{name}: no {', '.join(m + '.wav' for m in missing)}",
                               track=name, sources=missing))
            continue
        document, problems = score_estimate_folder(folders[name], references[name], params)
        documents[name] = document
        flags += [_flag(p["kind"], _problem_message(p), **{k: v for k, v in p.items() if k != "kind"})
                  for p in problems]
    return documents, flags


def _problem_message(problem: dict) -> str:
    if problem["kind"] == "wrong_length":
        return (f"{problem['track']}/{problem['source']}.wav has {problem['samples']} samples, the reference "
                f"{problem['expected']} (scored after zero-padding/truncating, as museval does)")
    return f"{problem['track']}/{problem['source']}.wav holds {problem['samples']} NaN/inf samples (scored as 0)"


def nan_score_flags(per_track: dict[str, dict[str, dict[str, float]]]) -> list[dict]:
    return [
        _flag("nan_score", f"{track}/{target}: every frame's {metric} is NaN", track=track, source=target, metric=metric)
        for track, medians in per_track.items()
        for target, metrics in medians.items()
        for metric, value in metrics.items()
        if np.isnan(value)
    ]


# ---- claimed numbers -------------------------------------------------------------------------------------------

def _table_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV or Markdown (pipe) table as {column: cell}; the first column names the row."""
    import csv

    text = path.read_text()
    if path.suffix.lower() == ".csv":
        return list(csv.DictReader(text.splitlines()))
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    cells = [row for row in cells if not all(set(c) <= set(":- ") for c in row)]  # drop |---| separators
    if len(cells) < 2:
        raise UserError(f"{path} holds no pipe table (| method | vocals | drums | bass | other |)")
    header = cells[0]
    return [dict(zip(header, row, strict=False)) for row in cells[1:]]


def _to_float(cell) -> float | None:
    try:
        return float(str(cell).strip().strip("*"))
    except (TypeError, ValueError):
        return None


def _pick_row(rows: list[dict], sources: list[str], row_name: str | None, path: Path) -> dict[str, float]:
    """SDR per source from the table row named `row_name` (or the only row with numbers for every source)."""
    def values(row):
        lowered = {k.strip().lower(): v for k, v in row.items() if k}
        return {s: _to_float(lowered.get(s)) for s in sources}

    candidates = [row for row in rows if all(v is not None for v in values(row).values())]
    labels = [str(next(iter(row.values()), "")) for row in candidates]
    if row_name is not None:
        exact = [r for r, label in zip(candidates, labels, strict=True) if label.strip() == row_name]
        partial = [r for r, label in zip(candidates, labels, strict=True) if row_name.lower() in label.lower()]
        chosen = exact or partial
        if len(chosen) != 1:
            raise UserError(f"--claimed-row {row_name!r} matches {len(chosen)} rows of {path}; rows: {labels}")
        return values(chosen[0])
    if len(candidates) != 1:
        raise UserError(f"{path} has {len(candidates)} rows with SDR for {sources}; pick one with --claimed-row "
                        f"(rows: {labels})")
    return values(candidates[0])


def load_claims(claimed: str | Path, sources: list[str], row_name: str | None = None) -> dict:
    """Claimed numbers as {"per_track": {track: {target: {metric: v}}} | None, "summary": {target: {metric: v}}}.

    Accepts a folder of per-track museval JSON, one per-track JSON, a summary JSON (`mdxnet evaluate aggregate`),
    a results table.json (`mdxnet report`, pick the row), or a CSV/Markdown table with vocals..other SDR columns.
    """
    from mdxnet.evaluation.aggregate import load_track_medians, read_track_json, summarize, track_medians

    path = Path(claimed)
    if path.is_dir():
        per_track = load_track_medians([path])
        return {"per_track": per_track, "summary": summarize(per_track), "source": str(path)}
    if not path.is_file():
        raise UserError(f"claimed results {path} not found: pass a folder of per-track JSON, a JSON or a table")
    if path.suffix.lower() == ".json":
        import json

        document = json.loads(path.read_text())
        if "targets" in document:
            per_track = {path.stem: track_medians(read_track_json(path))}
            return {"per_track": per_track, "summary": summarize(per_track), "source": str(path)}
        if "summary" in document:
            return {"per_track": document.get("per_track"), "summary": document["summary"], "source": str(path)}
        if "rows" in document:
            rows = [{"method": r["method"], **{s: r["sdr"].get(s) for s in sources}} for r in document["rows"]]
            sdr = _pick_row(rows, sources, row_name, path)
            return {"per_track": None, "summary": {s: {"SDR": v} for s, v in sdr.items()}, "source": str(path)}
        raise UserError(f"{path} is neither a museval per-track JSON, a summary JSON nor a results table.json")
    sdr = _pick_row(_table_rows(path), sources, row_name, path)
    return {"per_track": None, "summary": {s: {"SDR": v} for s, v in sdr.items()}, "source": str(path)}


def _differs(ours: float, theirs: float, tolerance: float) -> bool:
    if np.isnan(ours) or np.isnan(theirs):
        return np.isnan(ours) != np.isnan(theirs)
    return abs(ours - theirs) > tolerance


def _compare_medians(ours: dict, theirs: dict, tolerance: float, track: str | None) -> list[dict]:
    where = f"{track}/" if track else "summary "
    flags = []
    for target, metrics in theirs.items():
        for metric, claimed in metrics.items():
            if claimed is None or target not in ours or metric not in ours[target]:
                continue
            value = ours[target][metric]
            if _differs(value, float(claimed), tolerance):
                flags.append(_flag(
                    "claimed_mismatch", f"{where}{target} {metric}: claimed {float(claimed):.3f}, scored {value:.3f} "
                    f"(difference {value - float(claimed):+.3f} dB > {tolerance})",
                    track=track, source=target, metric=metric, claimed=float(claimed), scored=value))
    return flags


def compare_claims(per_track: dict, summary: dict, claims: dict, tolerance: float) -> list[dict]:
    """Flags for every claimed value further than `tolerance` dB from ours, and claimed/scored track mismatches."""
    flags = []
    claimed_tracks = claims.get("per_track")
    if claimed_tracks:
        for track, medians in claimed_tracks.items():
            if track not in per_track:
                flags.append(_flag("claimed_unscored", f"claims scores for {track!r}, which was not scored", track=track))
            else:
                flags += _compare_medians(per_track[track], medians, tolerance, track)
        flags += [_flag("claimed_missing", f"no claimed scores for scored track {track!r}", track=track)
                  for track in per_track if track not in claimed_tracks]
    flags += _compare_medians(summary, claims.get("summary") or {}, tolerance, None)
    return flags


# ---- overlap with the training split ----------------------------------------------------------------------------

def _mixture(path: Path, sample_rate: int) -> np.ndarray:
    from mdxnet.audio import read_audio
    from mdxnet.evaluation.tracks import load_reference

    if path.is_dir() and (path / "mixture.wav").is_file():
        return read_audio(path / "mixture.wav", sample_rate)
    return load_reference(path, sample_rate)["mixture"]


def overlap_flags(test_tracks: dict[str, Path], train_root: str | Path, sample_rate: int) -> tuple[list[dict], int]:
    """Test tracks that also appear in the training data: by name, or by identical mixture audio (16-bit PCM)."""
    from tqdm import tqdm

    from mdxnet.evaluation.tracks import track_index

    train_tracks = track_index(train_root, "train")
    flags = [_flag("train_overlap_name", f"test track {name!r} is also in the training data ({train_tracks[name]})",
                   track=name) for name in test_tracks if name in train_tracks]
    fingerprints: dict[str, str] = {}
    for name, path in tqdm(test_tracks.items(), desc="audit: fingerprints", unit="track", disable=len(test_tracks) < 4):
        fingerprints[mixture_fingerprint(_mixture(path, sample_rate))] = name
    for name, path in tqdm(train_tracks.items(), desc="audit: training split", unit="track",
                           disable=len(train_tracks) < 4):
        test_name = fingerprints.get(mixture_fingerprint(_mixture(path, sample_rate)))
        if test_name is not None:
            flags.append(_flag("train_overlap_audio", f"test track {test_name!r} has the same mixture audio as "
                               f"training track {name!r} ({path})", track=test_name, train_track=name))
    return flags, len(train_tracks)


# ---- the whole audit ----------------------------------------------------------------------------------------------

def run_audit_checks(
    estimates: str | Path,
    references_root: str | Path,
    params: dict,
    claimed: str | Path | None = None,
    claimed_row: str | None = None,
    tolerance: float = 0.05,
    train_root: str | Path | None = None,
) -> dict:
    """Every audit check; the returned report's "flags" list is empty when nothing is wrong."""
    from mdxnet.evaluation.aggregate import summarize, track_medians
    from mdxnet.evaluation.tracks import track_index

    references = track_index(references_root, "test")
    folders = estimate_folders(estimates)
    flags = _track_set_flags(references, folders)
    documents, score_flags = score_all(references, folders, params)
    flags += score_flags
    per_track = {name: track_medians(document) for name, document in documents.items()}
    summary = summarize(per_track)
    flags += nan_score_flags(per_track)
    claims = None
    if claimed:
        claims = load_claims(claimed, list(params.sources), claimed_row)
        flags += compare_claims(per_track, summary, claims, tolerance)
    train_tracks = None
    if train_root:
        overlap, train_tracks = overlap_flags(references, train_root, params.sample_rate)
        flags += overlap
    return {
        "estimates": str(estimates),
        "references": str(references_root),
        "tolerance_db": tolerance,
        "tracks_scored": len(documents),
        "summary": summary,
        "per_track": per_track,
        "claimed": claims and {"source": claims["source"], "summary": claims["summary"]},
        "train_overlap_checked": train_root is not None,
        "train_tracks": train_tracks,
        "flags": [{k: v for k, v in flag.items() if v is not None} for flag in flags],
    }


def format_audit(report: dict) -> str:
    """Human-readable audit: our SDR summary, then every flag (or a clean bill)."""
    lines = [f"audit of {report['estimates']} against {report['references']} ({report['tracks_scored']} tracks scored)"]
    for target, metrics in report["summary"].items():
        lines.append(f"  {target:<8} " + "  ".join(f"{m} {v:7.3f}" for m, v in metrics.items()))
    if not report["train_overlap_checked"]:
        lines.append("  (training split overlap not checked: pass --train-root)")
    if not report["flags"]:
        lines.append("OK: nothing flagged")
    else:
        lines.append(f"FLAGGED: {len(report['flags'])} problem(s)")
        lines += [f"  [{flag['kind']}] {flag['message']}" for flag in report["flags"]]
    return "\n".join(lines)
