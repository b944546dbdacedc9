"""`mdxnet plan`: jobs, disk and time (estimates, bench/README.md's cost model) of each stage of `snakemake all`
for the resolved params and the dataset on disk (or planned, or assumed), before anything runs (mdxnet.plan)."""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    cmd = subparsers.add_parser("plan", help="jobs, disk and time (estimates) of each stage of `snakemake all`, "
                                             "before it runs")
    cmd.add_argument("--recipe", help="plan with this recipe (authors | paper | mdxnet) instead of the file's")
    cmd.add_argument("--profile", help="plan with this profile (e.g. embedded | paper) instead of the file's")
    cmd.add_argument("--json", metavar="FILE", help="also write the plan as JSON here (seconds, bytes, hours)")
    cmd.set_defaults(func=run_plan)


def empty_dataset_notices(plan, params) -> list[str]:
    """What a dataset on disk lacks for the run it plans (its figures then describe a run that cannot happen: an
    empty dataset was planned at the steps' full cost, with no word)."""
    from mdxnet.plan import ON_DISK

    songs = plan.songs
    if songs.source != ON_DISK:
        return []
    where = f"data.root {params.data.root}"
    notices = []
    if not songs.train and params.models.origin == "train":
        notices.append(f"{where} holds no training songs: training would stop at its start, so the training "
                       f"figures above are for a run that cannot happen; fill train/ or fix data.root")
    if not songs.scored:
        notices.append(f"{where} holds no test songs (and data.extra_test names none): nothing would be scored")
    return notices


def run_plan(args) -> int:
    from mdxnet.atomic import require_file_target, write_json_atomic
    from mdxnet.config import load_params
    from mdxnet.plan import as_data, make_plan, render_table

    if args.json:
        require_file_target(args.json, "--json")
    params = args.params
    if args.recipe is not None or args.profile is not None:
        params = load_params(args.params_file, profile=args.profile, recipe=args.recipe)
    plan = make_plan(params)
    print(render_table(plan), end="")
    for notice in empty_dataset_notices(plan, params):
        print(f"mdxnet plan: warning: {notice}", file=sys.stderr)
    if args.json:
        write_json_atomic(args.json, as_data(plan))
    return 0
