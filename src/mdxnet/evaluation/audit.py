"""Auditing someone else's separation results.

`run_audit_checks` first reads and checks the claimed numbers and the folders it is given (a claimed file that
cannot be read or understood stops the audit with its name and what is wrong, before anything is scored), then
scores the estimates folder with `mdxnet.evaluation.estimates`, whose problems become flags (missing or extra
tracks, missing source files, estimates of another length than the reference, NaN/inf samples), and adds the
audit's own: NaN scores, claimed numbers (per-track JSON or a table) that differ from ours by more than a
tolerance, and a test set that overlaps the training split (same track name, or the same mixture audio under
another name).

Beside the fixed tolerance, every claimed median over songs (the summary, not per-track numbers) is placed
against the bootstrap confidence interval over songs of ours (mdxnet.evaluation.stats, params
`evaluate.bootstrap`): inside = the claimed number is within what another draw of songs could give. The tolerance
alone decides the flags: on the very same estimates and songs a difference beyond it is a discrepancy whatever
the interval says; the interval tells whether that difference matters beside the noise of the song choice.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from mdxnet.audio import read_audio
from mdxnet.data.musdb import load_track, pcm16, track_index
from mdxnet.errors import UserError
from mdxnet.evaluation.aggregate import load_track_medians, read_track_json, summarize, track_medians
from mdxnet.evaluation.estimates import match_estimates, score_matched
from mdxnet.evaluation.estimates import problem as _flag
from mdxnet.evaluation.stats import median_ci


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
    """A cell's number: `9.00`, `**9.00**`, or the median of a `8.91 [8.40, 9.30]` cell (`mdxnet report`)."""
    try:
        return float(str(cell).split("[")[0].strip().strip("*"))
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
    if not candidates:  # --claimed-row cannot help: no row has the numbers
        columns = [k.strip() for k in (rows[0] if rows else {}) if k]
        raise UserError(f"{path} has no row with an SDR number in each of the columns {', '.join(sources)} "
                        f"(its columns: {', '.join(columns) or 'none'}): claim one number per source in a row")
    if len(candidates) != 1:
        raise UserError(f"{path} has {len(candidates)} rows with SDR for {sources}; pick one with --claimed-row "
                        f"(rows: {labels})")
    return values(candidates[0])


CLAIM_FORMATS = ("a folder of museval per-track JSON, a per-track JSON, a summary JSON (`mdxnet evaluate "
                 "aggregate`), a results table.json (`mdxnet report`) or a CSV/Markdown table with vocals..other "
                 "SDR columns")


def _read_claims(path: Path, sources: list[str], row_name: str | None) -> dict:

    if path.is_dir():
        per_track = load_track_medians([path])
        return {"per_track": per_track, "summary": summarize(per_track), "source": str(path)}
    if path.suffix.lower() == ".json":
        document = json.loads(path.read_text())
        if not isinstance(document, dict):
            raise UserError(f"claimed results {path} hold a JSON {type(document).__name__}, not an object: "
                            f"pass {CLAIM_FORMATS}")
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


def _is_medians(value) -> bool:
    """{target: {metric: number or null}}, as our summaries and per-track medians are."""

    def number(v):
        return v is None or (isinstance(v, int | float) and not isinstance(v, bool))

    return isinstance(value, dict) and all(
        isinstance(metrics, dict) and all(number(v) for v in metrics.values()) for metrics in value.values())


def _check_claims(claims: dict, sources: list[str], path: Path) -> None:
    """The claims have the shape compare_claims reads, and claim something about at least one source."""
    if not _is_medians(claims["summary"]):
        raise UserError(f"claimed results {path}: 'summary' is not {{source: {{metric: number}}}}")
    per_track = claims["per_track"]
    if per_track is not None and not (isinstance(per_track, dict) and all(map(_is_medians, per_track.values()))):
        raise UserError(f"claimed results {path}: 'per_track' is not {{track: {{source: {{metric: number}}}}}}")
    claimed = [claims["summary"], *(per_track or {}).values()]
    if not any(v is not None for medians in claimed for s in sources for v in medians.get(s, {}).values()):
        raise UserError(f"claimed results {path} claim no score for any of {', '.join(sources)}: "
                        f"pass {CLAIM_FORMATS}")


def load_claims(claimed: str | Path, sources: list[str], row_name: str | None = None) -> dict:
    """Claimed numbers as {"per_track": {track: {target: {metric: v}}} | None, "summary": {target: {metric: v}}}.

    Accepts a folder of per-track museval JSON, one per-track JSON, a summary JSON (`mdxnet evaluate aggregate`),
    a results table.json (`mdxnet report`, pick the row), or a CSV/Markdown table with vocals..other SDR columns.
    Whatever cannot be read or understood is a UserError naming the file and what is wrong with it.
    """
    path = Path(claimed)
    if not path.exists():
        raise UserError(f"claimed results {path} not found: pass {CLAIM_FORMATS}")
    try:
        claims = _read_claims(path, sources, row_name)
    except json.JSONDecodeError as err:
        raise UserError(f"claimed results {path} are not valid JSON ({err})") from err
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read claimed results {path}: {err}") from err
    except (KeyError, TypeError, AttributeError, ValueError) as err:  # a document of an unexpected shape
        raise UserError(f"claimed results {path} are malformed ({type(err).__name__}: {err}): "
                        f"pass {CLAIM_FORMATS}") from err
    _check_claims(claims, sources, path)
    return claims


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


def claim_intervals(per_track: dict, summary: dict, claims: dict, tolerance: float, bootstrap) -> list[dict]:
    """Every claimed summary median (source, metric) beside ours: the difference, the tolerance check (the one that
    flags) and whether the claimed number lies inside the bootstrap interval over songs of ours (None without an
    interval: fewer than 2 songs scored)."""
    checks = []
    for target, metrics in (claims.get("summary") or {}).items():
        for metric, claimed in metrics.items():
            if claimed is None or metric not in summary.get(target, {}):
                continue
            claimed, scored = float(claimed), summary[target][metric]
            interval = median_ci([m[target][metric] for m in per_track.values() if target in m], bootstrap)
            checks.append({
                "source": target, "metric": metric, "claimed": claimed, "scored": scored,
                "difference": scored - claimed,
                "within_tolerance": not _differs(scored, claimed, tolerance),
                "ci_low": interval.low, "ci_high": interval.high, "ci_level": interval.level,
                "songs": interval.songs, "few_songs": interval.songs < bootstrap.min_songs,
                "inside_ci": interval.contains(claimed),
            })
    return checks


# ---- overlap with the training split ----------------------------------------------------------------------------

def mixture_fingerprint(mixture: np.ndarray) -> str:
    """Hash of the mixture quantised to 16-bit PCM: identical audio under another name gives the same value."""
    return hashlib.sha256(pcm16(mixture).astype("<i2").tobytes()).hexdigest()


def _mixture(path: Path, sample_rate: int) -> np.ndarray:

    return read_audio(path / "mixture.wav", sample_rate) if path.is_dir() else load_track(path, sample_rate)["mixture"]


def overlap_flags(test_tracks: dict[str, Path], train_tracks: dict[str, Path], sample_rate: int) -> list[dict]:
    """Test tracks that also appear in the training data: by name, or by identical mixture audio (16-bit PCM)."""
    from tqdm import tqdm

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
    return flags


# ---- the whole audit ----------------------------------------------------------------------------------------------

def run_audit_checks(
    estimates: str | Path,
    references_root: str | Path,
    params,
    claimed: str | Path | None = None,
    claimed_row: str | None = None,
    tolerance: float = 0.05,
    train_root: str | Path | None = None,
) -> dict:
    """Every audit check; the returned report's "flags" list is empty when nothing is wrong."""
    sources = list(params.sources)
    # Every input is read and checked before the scoring, which takes minutes per track: a claimed file that
    # cannot be understood must fail now, not after the work, and leave no report.
    claims = load_claims(claimed, sources, claimed_row) if claimed else None
    train_tracks = track_index(train_root, "train") if train_root else None
    match = match_estimates(estimates, references_root, sources)
    flags = list(match.problems)
    per_track = {}
    for name, document, problems in score_matched(match, params, desc="audit: scoring"):
        if document is not None:
            per_track[name] = track_medians(document)
        flags += problems
    summary = summarize(per_track)
    flags += nan_score_flags(per_track)
    bootstrap = params.evaluate.bootstrap
    checks = []
    if claims:
        flags += compare_claims(per_track, summary, claims, tolerance)
        checks = claim_intervals(per_track, summary, claims, tolerance, bootstrap)
    if train_tracks is not None:
        flags += overlap_flags(match.references, train_tracks, params.sample_rate)
    return {
        "estimates": str(estimates),
        "references": str(references_root),
        "tolerance_db": tolerance,
        "tracks_scored": len(per_track),
        "summary": summary,
        "per_track": per_track,
        "claimed": claims and {"source": claims["source"], "summary": claims["summary"]},
        "claim_checks": checks,
        "bootstrap": {"resamples": bootstrap.resamples, "confidence": bootstrap.confidence, "seed": bootstrap.seed,
                      "min_songs": bootstrap.min_songs,
                      "interval": "percentile bootstrap over songs of the median over songs"},
        "train_overlap_checked": train_root is not None,
        "train_tracks": None if train_tracks is None else len(train_tracks),
        "flags": [{k: v for k, v in flag.items() if v is not None} for flag in flags],
    }


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def claim_lines(report: dict) -> list[str]:
    """Each claimed median: ours with its interval, the tolerance check and the interval check side by side."""
    checks = report.get("claim_checks") or []
    if not checks:
        return []
    b = report["bootstrap"]
    lines = [f"claimed medians over songs against ours (tolerance {report['tolerance_db']} dB, which flags; "
             f"{100 * b['confidence']:g} % bootstrap interval over songs, {b['resamples']} resamples, "
             f"seed {b['seed']}, which does not):"]
    for c in checks:
        interval = ("[no interval]" if c["ci_low"] is None
                    else f"[{_number(c['ci_low'])}, {_number(c['ci_high'])}]")
        verdict = {True: "inside", False: "OUTSIDE", None: "n/a"}[c["inside_ci"]]
        lines.append(f"  {c['source']:<8} {c['metric']:<4} claimed {_number(c['claimed']):>8}  scored "
                     f"{_number(c['scored']):>8} {interval}  diff {c['difference']:+.3f}  tolerance: "
                     f"{'within' if c['within_tolerance'] else 'BEYOND'}  interval: {verdict}")
    few = sorted({c["songs"] for c in checks if c["few_songs"]})
    if few:
        lines.append(f"  (only {few[0]} song(s) scored, fewer than {b['min_songs']}: the interval is wide and "
                     "unreliable, and there is none from one song)")
    lines.append("  (inside: the claimed number is within what another draw of songs could give; on the same "
                 "estimates and songs a difference beyond the tolerance is still a discrepancy)")
    return lines


def format_audit(report: dict) -> str:
    """Human-readable audit: our SDR summary, then every flag (or a clean bill)."""
    lines = [f"audit of {report['estimates']} against {report['references']} ({report['tracks_scored']} tracks scored)"]
    for target, metrics in report["summary"].items():
        lines.append(f"  {target:<8} " + "  ".join(f"{m} {v:7.3f}" for m, v in metrics.items()))
    lines += claim_lines(report)
    if not report["train_overlap_checked"]:
        lines.append("  (training split overlap not checked: pass --train-root)")
    if not report["flags"]:
        lines.append("OK: nothing flagged")
    else:
        lines.append(f"FLAGGED: {len(report['flags'])} problem(s)")
        lines += [f"  [{flag['kind']}] {flag['message']}" for flag in report["flags"]]
    return "\n".join(lines)
