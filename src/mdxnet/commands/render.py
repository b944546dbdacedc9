"""`mdxnet render curves` and `mdxnet render table`: views of finished results for the HTML report.

Neither computes anything new: `curves` draws the training curves dvclive logged for each model
(dvclive/<name>/) into <out>/<name>.png, `table` turns results/table.md into a standalone HTML page. The
workflow's `report` rule runs both, so `snakemake --report results/report.html` can show them.
"""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    render = subparsers.add_parser("render", help="figures and pages of finished results for the HTML report",
                                   description=__doc__)
    what = render.add_subparsers(dest="what", metavar="WHAT", required=True)

    curves = what.add_parser("curves", help="training loss and validation SDR of each model as a PNG")
    curves.add_argument("live_dirs", nargs="+", type=Path, metavar="LIVE_DIR",
                        help="a model's dvclive folder (e.g. dvclive/vocals); one figure per folder")
    curves.add_argument("-o", "--out", type=Path, required=True,
                        help="output folder: <out>/<LIVE_DIR name>.png")
    curves.set_defaults(func=run_curves)

    table = what.add_parser("table", help="results/table.md as a standalone HTML page")
    table.add_argument("table", type=Path, help="the markdown table `mdxnet report` wrote (results/table.md)")
    table.add_argument("-o", "--out", type=Path, required=True, help="HTML page to write")
    table.set_defaults(func=run_table)


def run_curves(args) -> int:
    from mdxnet.errors import UserError
    from mdxnet.training.curves import write_curves

    names = [live_dir.name for live_dir in args.live_dirs]
    if len(set(names)) != len(names):
        raise UserError(f"LIVE_DIR folders must have different names (each names its figure): {names}")
    for live_dir in args.live_dirs:
        path = write_curves(live_dir, args.out / f"{live_dir.name}.png")
        print(f"training curves of {live_dir} written to {path}")
    return 0


def run_table(args) -> int:
    from mdxnet.evaluation.table_page import write_page

    path = write_page(args.table, args.out)
    print(f"{args.table} rendered to {path}")
    return 0
