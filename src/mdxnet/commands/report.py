"""`mdxnet report`: the paper's table with this run's rows and the SDR box plots (mdxnet.evaluation.report), or
with --compare the comparison page of two experiments (`mdxnet compare`)."""

from __future__ import annotations

from pathlib import Path

from mdxnet.errors import UserError


def register(subparsers) -> None:
    cmd = subparsers.add_parser("report", help="the paper's table with this run's rows (medians with bootstrap "
                                "intervals over songs, paired tests between runs), and SDR box plots")
    cmd.add_argument("--runs", nargs="+", metavar="NAME=DIR",
                     help="evaluation folders by row name; names no-mixer, mixer, mixture, irm get their "
                          "standard labels (and the model rows a delta to the paper)")
    cmd.add_argument("--compare", nargs=2, metavar=("A", "B"),
                     help="instead of the table: the comparison page of two experiments (DVC experiments, git "
                          "revisions or results folders; `mdxnet compare`) -> <out>/compare.html, compare.png")
    cmd.add_argument("--data-check", help="data check report JSON (its dataset checksum goes in the table)")
    cmd.add_argument("--score-check", help="the scored release's data check report, where it is not the "
                                           "training release (params data.score): its checksum goes in too")
    cmd.add_argument("--models", help="the runs' models folder: a separator that collapsed in training is marked")
    cmd.add_argument("--imported", help="models folder of imported published weights the model runs used "
                                        "(`mdxnet models import`): rows labelled so, files and sha256 recorded")
    cmd.add_argument("-o", "--out", default="results", help="output folder (default: results)")
    cmd.set_defaults(func=run_report)


def run_report(args) -> int:
    from mdxnet.evaluation.report import parse_runs, write_report

    if args.compare:
        from mdxnet.atomic import require_file_target, require_folder_target
        from mdxnet.evaluation.compare import compare_named, write_comparison_page

        require_folder_target(args.out, "-o")
        for name in ("compare.html", "compare.png"):
            require_file_target(Path(args.out) / name, "the comparison page's file")
        result = compare_named(*args.compare, args.params.evaluate.bootstrap)
        for path in write_comparison_page(result, Path(args.out)):
            print(path)
        return 0
    if not args.runs:
        raise UserError("report needs --runs NAME=DIR ... (the results table) or --compare A B (a comparison page)")
    params = args.params
    paths = write_report(parse_runs(args.runs), params, args.out, data_check=args.data_check,
                         score_check=args.score_check,
                         params_file=args.params_file,  # the file --params named, not ./params.yaml
                         imported=args.imported, models=args.models)
    for path in paths:
        print(path)
    return 0
