"""`mdxnet compare A B`: the paired per-song difference between two experiments, with its interval and p; and
`mdxnet metrics`: the compact metrics file DVC shows (results/metrics.json).

A and B are each a DVC experiment name, a git revision, a results or project folder, or `workspace`; a
comma-separated list is a seed group (members differing only in train.seed), and `--seeds` gathers each side's
group from the DVC experiments. The statistics live in mdxnet.evaluation.compare.
"""

from __future__ import annotations

from pathlib import Path

from mdxnet.errors import UserError


def register(subparsers) -> None:
    cmd = subparsers.add_parser("compare", help="did B help over A: paired per-song SDR differences, bootstrap "
                                "interval and signed-rank p per run and source, and the params that differ",
                                description=__doc__)
    cmd.add_argument("a", metavar="A", help="DVC experiment, git revision, results folder or `workspace`; "
                                            "a,b,c = a seed group")
    cmd.add_argument("b", metavar="B", help="the same, for the side compared against A (differences are B - A)")
    cmd.add_argument("--seeds", action="store_true",
                     help="extend A and B each with every DVC experiment that differs from it only in train.seed")
    cmd.add_argument("--runs", nargs="+", metavar="RUN", help="only these runs (default: every run both scored)")
    cmd.add_argument("--repo", default=".", help="git repository the names refer to (default: .)")
    cmd.add_argument("-o", "--out", type=Path, help="write the comparison as JSON here")
    cmd.add_argument("--plot", type=Path, help="write the paired per-song plot (PNG) here")
    cmd.set_defaults(func=run_compare)

    metrics = subparsers.add_parser("metrics", help="results/table.json reduced to the numbers DVC shows "
                                    "(per run and source: median SDR and its interval)")
    metrics.add_argument("table", type=Path, help="the results table JSON `mdxnet report` wrote")
    metrics.add_argument("-o", "--out", type=Path, required=True, help="metrics JSON to write")
    metrics.set_defaults(func=run_metrics)


def comparison(args, a: str, b: str, seeds: bool = False, runs=None, repo: str = ".") -> dict:
    from mdxnet.evaluation.compare import compare, load_group, seed_group

    if seeds and ("," in a or "," in b):
        raise UserError("--seeds gathers the seed groups itself: name one experiment per side, not a list")
    side_a = seed_group(a, repo) if seeds else load_group(a, repo)
    side_b = seed_group(b, repo) if seeds else load_group(b, repo)
    return compare(side_a, side_b, args.params.evaluate.bootstrap, runs)


def run_compare(args) -> int:
    from mdxnet.atomic import write_json_atomic
    from mdxnet.evaluation.compare import render_markdown, write_plot

    result = comparison(args, args.a, args.b, args.seeds, args.runs, args.repo)
    print(render_markdown(result), end="")
    if args.out:
        write_json_atomic(args.out, result)
        print(f"\ncomparison -> {args.out}")
    if args.plot:
        write_plot(result, args.plot)
        print(f"paired per-song plot -> {args.plot}")
    return 0


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


def write_comparison_page(args, a: str, b: str, out: Path) -> list[Path]:
    """`mdxnet report --compare A B`: compare.html and its plot compare.png in the report's folder."""
    from mdxnet.evaluation.compare import write_page, write_plot

    result = comparison(args, a, b)
    out.mkdir(parents=True, exist_ok=True)
    plot = write_plot(result, out / "compare.png")
    return [write_page(result, out / "compare.html", plot.name), plot]
