"""`mdxnet models`: `init` (randomly initialised checkpoints, for tests and benchmarks) and `import FILE --as
NAME -o DIR` (published weights: the authors' Lightning checkpoints, their Mixer, ONNX separators, into a
models folder that `mdxnet separate` and the evaluation read; mdxnet.weights_import).
"""

from __future__ import annotations

from pathlib import Path

IMPORT_DOC = ("Published weights (the authors' Lightning checkpoints, their Mixer, ONNX separators) into a "
              "models folder that `mdxnet separate` and the evaluation read (mdxnet.weights_import).")
SHAPE_OPTIONS = {  # option -> our name; used only where the file does not say it
    "--n-fft": "n_fft",
    "--hop": "hop",
    "--dim-f": "dim_f",
    "--dim-t": "dim_t",
    "--frames": "frames",
}


def _register_import(models_sub) -> None:
    cmd = models_sub.add_parser(
        "import", help="import published weights (Lightning checkpoint, the authors' Mixer, ONNX separator)",
        description=IMPORT_DOC)
    cmd.add_argument("file", type=Path, help="the downloaded file: <source>.onnx, a Lightning .ckpt, mixer.ckpt")
    cmd.add_argument("--as", dest="name", required=True, metavar="NAME",
                     help="what it is: vocals, drums, bass, other (params sources) or mixer")
    cmd.add_argument("-o", "--out", type=Path, required=True, help="models folder to write into")
    for option, name in SHAPE_OPTIONS.items():
        cmd.add_argument(option, dest=name, type=int, default=None,
                         help=f"{name} of the model, where the file does not say it (default: params)")
    cmd.add_argument("--mixer-sources", nargs="+", default=None, metavar="SOURCE",
                     help="source order of the Mixer file (default: params models.published.mixer_sources)")
    cmd.set_defaults(func=run_import)


def run_import(args) -> int:
    from mdxnet.weights_import import import_file

    given = {name: getattr(args, name) for name in SHAPE_OPTIONS.values()}
    done = import_file(args.file, args.name, args.out, args.params, given, args.mixer_sources)
    print(f"{args.file} -> {done.model} (record {done.manifest})")
    return 0


def register(subparsers) -> None:
    models = subparsers.add_parser("models", help="model checkpoint utilities")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    init = models_sub.add_parser("init", help="write randomly initialised checkpoints (tests, benchmarks)")
    init.add_argument("-o", "--out", required=True, type=Path, help="models folder to write")
    init.add_argument("--seed", type=int, default=0, help="torch seed (default 0)")
    init.set_defaults(func=run_models_init)
    _register_import(models_sub)


def run_models_init(args) -> int:
    from mdxnet.checkpoint import init_models

    for path in init_models(args.out, args.params, seed=args.seed):
        print(path)
    return 0
