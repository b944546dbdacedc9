"""The `mdxnet` command line: a thin dispatcher over the subcommand modules in `mdxnet.commands`.

Each module in COMMAND_MODULES exposes `register(subparsers)`, which adds its subcommands and sets
`func(args) -> int | None` on them. Heavy imports (torch, museval) happen inside those functions so that
`mdxnet --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mdxnet import __version__
from mdxnet.config import ParamsError, load_params, start_trace
from mdxnet.errors import UserError

COMMAND_MODULES = ["separate", "models", "export", "data", "augment", "train", "evaluate", "report", "audit", "render",
                   "params", "plan", "compare", "metrics", "stages"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mdxnet", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mdxnet {__version__}")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"mdxnet.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        # the one reading of params.yaml, checked before any command does work: a bad value or a misspelt key
        # anywhere stops every command here, with its name
        args.params_file = args.params
        args.params = load_params(args.params)
        start_trace()
        return int(args.func(args) or 0)
    except (UserError, ParamsError, FileNotFoundError) as err:
        print(f"mdxnet {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mdxnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
