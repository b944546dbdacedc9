"""`mdxnet params`: print the resolved params (profile applied) and their hash."""

from __future__ import annotations

import yaml


def register(subparsers) -> None:
    cmd = subparsers.add_parser("params", help="print the resolved params (profile applied) and their hash")
    cmd.set_defaults(func=run_params)


def run_params(args) -> int:
    from mdxnet.config import params_hash

    params = args.params
    print(yaml.safe_dump(params.to_dict(), sort_keys=False), end="")
    print(f"# params hash: {params_hash(params)}")
    return 0
