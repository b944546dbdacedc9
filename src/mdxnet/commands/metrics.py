"""`mdxnet metrics TABLE -o OUT`: the results table reduced to the numbers DVC shows (results/metrics.json): per run
and source the median SDR and its bootstrap interval (mdxnet.evaluation.compare.compact_metrics)."""

from __future__ import annotations

from pathlib import Path

from mdxnet.errors import UserError


def register(subparsers) -> None:
    metrics = subparsers.add_parser("metrics", help="results/table.json reduced to the numbers DVC shows "
                                    "(per run and source: median SDR and its interval)", description=__doc__)
    metrics.add_argument("table", type=Path, help="the results table JSON `mdxnet report` wrote")
    metrics.add_argument("-o", "--out", type=Path, required=True, help="metrics JSON to write")
    metrics.set_defaults(func=run_metrics)


def run_metrics(args) -> int:
    from mdxnet.atomic import write_json_atomic
    from mdxnet.errors import read_json
    from mdxnet.evaluation.compare import compact_metrics

    table = read_json(args.table, "results table", "re-run `mdxnet report` (snakemake all)")
    if not isinstance(table, dict) or not isinstance(table.get("sdr"), dict):
        raise UserError(f"{args.table} is not a results table (no 'sdr'): pass the table.json `mdxnet report` "
                        "wrote")
    write_json_atomic(args.out, compact_metrics(table))
    print(f"{args.table} -> {args.out}")
    return 0
