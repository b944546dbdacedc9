"""`mdxnet compare A B`: the paired per-song difference between two experiments, with its interval and p.

A and B are each a DVC experiment name, a git revision, a results or project folder, or `workspace`; a
comma-separated list is a seed group (members differing only in train.seed), and `--seeds` gathers each side's
group from the DVC experiments. The statistics live in mdxnet.evaluation.compare.
"""

from __future__ import annotations

from pathlib import Path


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


def run_compare(args) -> int:
    from mdxnet.atomic import require_file_target, write_json_atomic
    from mdxnet.evaluation.compare import compare_named, render_markdown, write_plot

    for path, what in ((args.out, "-o"), (args.plot, "--plot")):
        if path is not None:
            require_file_target(path, what)
    result = compare_named(args.a, args.b, args.params.evaluate.bootstrap, args.seeds, args.runs, args.repo)
    print(render_markdown(result), end="")
    if args.out:
        write_json_atomic(args.out, result)
        print(f"\ncomparison -> {args.out}")
    if args.plot:
        write_plot(result, args.plot)
        print(f"paired per-song plot -> {args.plot}")
    return 0
