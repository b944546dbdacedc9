"""`mdxnet params`: print the resolved params (recipe and profile applied) and their hash, or with `--deviations`
the table of every value that differs from the authors' code or the paper's text (mdxnet.recipes), or with
`--schema` the JSON schema params files are checked against (generated from mdxnet.config's declarations)."""

from __future__ import annotations

import json

import yaml


def register(subparsers) -> None:
    cmd = subparsers.add_parser("params", help="print the resolved params (recipe and profile applied) and their "
                                               "hash, or their deviations from the authors' code and the paper")
    cmd.add_argument("--deviations", action="store_true",
                     help="a markdown table of every value that differs from the authors' code or the paper's "
                          "text, with where each reference value comes from")
    cmd.add_argument("--all", action="store_true", dest="equal",
                     help="with --deviations: also every governed value equal to both references (kind 'equal "
                          "to both'), to see what was compared")
    cmd.add_argument("--schema", action="store_true",
                     help="the JSON schema of params files (for editors), generated from the keys' declarations")
    cmd.add_argument("--recipe", help="resolve with this recipe (authors | paper | mdxnet) instead of the file's")
    cmd.add_argument("--profile", help="resolve with this profile (e.g. embedded | paper | v1 | ci) instead of the "
                                       "file's")
    cmd.set_defaults(func=run_params)


def run_params(args) -> int:
    from mdxnet.config import load_params, params_hash, schema

    if args.schema:
        print(json.dumps(schema(), indent=2))
        return 0
    params = args.params
    if args.recipe is not None or args.profile is not None:
        params = load_params(args.params_file, profile=args.profile, recipe=args.recipe)
    if args.deviations:
        from mdxnet import recipes

        rows = recipes.deviations(params, recipes.read_raw(args.params_file), equal=args.equal)
        print(recipes.heading(params) + "\n")
        print(recipes.render_markdown(rows), end="")
        return 0
    print(yaml.safe_dump(params.to_dict(), sort_keys=False), end="")
    print(f"# params hash: {params_hash(params)}")
    return 0
