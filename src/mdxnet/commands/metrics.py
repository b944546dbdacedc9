"""`mdxnet metrics TABLE -o OUT`: the results table reduced to the numbers DVC shows (results/metrics.json): per run
and source the median SDR and its bootstrap interval (mdxnet.evaluation.compare.compact_metrics)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from mdxnet.errors import UserError


def register(subparsers) -> None:
    metrics = subparsers.add_parser("metrics", help="results/table.json reduced to the numbers DVC shows "
                                    "(per run and source: median SDR and its interval)", description=__doc__)
    metrics.add_argument("table", type=Path, help="the results table JSON `mdxnet report` wrote")
    metrics.add_argument("-o", "--out", type=Path, required=True, help="metrics JSON to write")
    metrics.set_defaults(func=run_metrics)


def _number_or_null(value) -> bool:
    """A score as the report writes it: a finite number, or null / NaN for "none" (e.g. every song unscored)."""
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isinf(value))


def table_numbers_problem(table: dict) -> str | None:
    """Where the table's medians (`sdr`: {run: {source: dB}}) or intervals (`ci`: {run: {source: {low, high}}})
    hold something that is not a finite number or null; None when every one is sound."""
    for run, values in table["sdr"].items():
        if not isinstance(values, dict):
            return f"sdr[{run!r}] is {json.dumps(values)}, not {{source: median SDR}}"
        for source, value in values.items():
            if not _number_or_null(value):
                return f"sdr[{run!r}][{source!r}] is {json.dumps(value)}, not a finite SDR in dB (or null/NaN)"
    intervals = table.get("ci") or {}
    if not isinstance(intervals, dict):
        return f"ci is {json.dumps(intervals)}, not {{run: {{source: {{low, high}}}}}}"
    for run, values in intervals.items():
        for source, interval in (values.items() if isinstance(values, dict) else [(None, values)]):
            if interval is not None and not isinstance(interval, dict):
                return f"ci[{run!r}][{source!r}] is {json.dumps(interval)}, not {{low, high}}"
            for end in ("low", "high"):
                if interval is not None and not _number_or_null(interval.get(end)):
                    return f"ci[{run!r}][{source!r}][{end!r}] is {json.dumps(interval.get(end))}, not a finite number"
    return None


def run_metrics(args) -> int:
    from mdxnet.atomic import require_file_target, write_json_atomic
    from mdxnet.errors import read_json
    from mdxnet.evaluation.compare import compact_metrics

    require_file_target(args.out, "-o")
    table = read_json(args.table, "results table", "re-run `mdxnet report` (snakemake all)")
    if not isinstance(table, dict) or not isinstance(table.get("sdr"), dict):
        raise UserError(f"{args.table} is not a results table (no 'sdr'): pass the table.json `mdxnet report` "
                        "wrote")
    problem = table_numbers_problem(table)
    if problem:
        raise UserError(f"{args.table}: {problem}: the file is damaged or was edited; re-run `mdxnet report` "
                        "(snakemake all)")
    write_json_atomic(args.out, compact_metrics(table))
    print(f"{args.table} -> {args.out}")
    return 0
