"""`mdxnet export onnx`: each trained separator's spectrogram network as <out>/<source>.onnx
(mdxnet.inference.onnx_export)."""

from __future__ import annotations

from pathlib import Path

from mdxnet.checkpoint import require_models_folder


def register(subparsers) -> None:
    export = subparsers.add_parser("export", help="export trained separators")
    export_sub = export.add_subparsers(dest="export_format", metavar="FORMAT", required=True)
    onnx = export_sub.add_parser("onnx", help="each separator's spectrogram network as <out>/<source>.onnx")
    onnx.add_argument("--models", type=Path, default=Path("models"), help="models folder (default: models)")
    onnx.add_argument("-o", "--out", type=Path, required=True, help="folder for the .onnx files")
    onnx.set_defaults(func=run_export_onnx)


def run_export_onnx(args) -> int:
    from mdxnet.inference.onnx_export import export_models

    require_models_folder(args.models)
    for path in export_models(args.models, args.out, args.params):
        print(path)
    return 0
