"""`mdxnet separate` (songs -> one wav per source), `mdxnet models init` and `mdxnet export onnx`."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    models = subparsers.add_parser("models", help="model checkpoint utilities")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    init = models_sub.add_parser("init", help="write randomly initialised checkpoints (tests, benchmarks)")
    init.add_argument("-o", "--out", required=True, type=Path, help="models folder to write")
    init.add_argument("--seed", type=int, default=0, help="torch seed (default 0)")
    init.set_defaults(func=run_models_init)


def run_models_init(args) -> int:
    from mdxnet.checkpoint import init_models
    from mdxnet.config import load_params

    for path in init_models(args.out, load_params(args.params), seed=args.seed):
        print(path)
    return 0
