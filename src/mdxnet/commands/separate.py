"""`mdxnet separate` (songs -> one wav per source), `mdxnet models init` and `mdxnet export onnx`."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    sep = subparsers.add_parser("separate", help="separate songs into vocals/drums/bass/other wavs")
    sep.add_argument("songs", nargs="+", type=Path, metavar="SONG",
                     help="audio files (wav/flac/mp3/...; a .stem.mp4 is read as its mixture)")
    sep.add_argument("-o", "--out", type=Path, default=Path("separated"),
                     help="output folder: OUT/<song>/{vocals,drums,bass,other}.wav (default: separated)")
    sep.add_argument("--models", type=Path, default=Path("models"), help="models folder (default: models)")
    sep.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None,
                     help="default: params separate.device")
    sep.add_argument("--no-mixer", action="store_true", help="skip the Mixer (raw separator outputs)")
    sep.add_argument("--batch", type=int, default=None, help="chunks per forward pass (default: params)")
    sep.add_argument("--backend", choices=["onnx", "torch"], default=None,
                     help="run the separators in ONNX Runtime (CPU) or PyTorch (default: params separate.backend)")
    sep.set_defaults(func=run_separate)

    models = subparsers.add_parser("models", help="model checkpoint utilities")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    init = models_sub.add_parser("init", help="write randomly initialised checkpoints (tests, benchmarks)")
    init.add_argument("-o", "--out", required=True, type=Path, help="models folder to write")
    init.add_argument("--seed", type=int, default=0, help="torch seed (default 0)")
    init.set_defaults(func=run_models_init)

    export = subparsers.add_parser("export", help="export trained separators")
    export_sub = export.add_subparsers(dest="export_format", metavar="FORMAT", required=True)
    onnx = export_sub.add_parser("onnx", help="each separator's spectrogram network as <out>/<source>.onnx")
    onnx.add_argument("--models", type=Path, default=Path("models"), help="models folder (default: models)")
    onnx.add_argument("-o", "--out", type=Path, required=True, help="folder for the .onnx files")
    onnx.set_defaults(func=run_export_onnx)


def run_models_init(args) -> int:
    from mdxnet.checkpoint import init_models

    for path in init_models(args.out, args.params, seed=args.seed):
        print(path)
    return 0


def run_export_onnx(args) -> int:
    from mdxnet.checkpoint import HOW_TO_GET
    from mdxnet.errors import UserError
    from mdxnet.onnx_export import export_models

    if not args.models.is_dir():
        raise UserError(f"models folder {args.models} does not exist: {HOW_TO_GET}, or pass --models DIR")
    for path in export_models(args.models, args.out, args.params):
        print(path)
    return 0


def song_name(path: Path) -> str:
    """'Music Delta - Rock.stem.mp4' -> 'Music Delta - Rock'; 'song.flac' -> 'song'."""
    name = path.name
    return name[: -len(".stem.mp4")] if name.endswith(".stem.mp4") else path.stem


def run_separate(args) -> int:
    import time

    from mdxnet.audio import read_audio, write_wav
    from mdxnet.separation import Separator

    params = args.params
    device = args.device or params.separate.device
    separator = Separator.from_dir(args.models, params, device=device, use_mixer=not args.no_mixer,
                                   batch=args.batch, backend=args.backend)
    rate = params.sample_rate
    for song in args.songs:
        started = time.perf_counter()
        mixture = read_audio(song, rate)
        estimates = separator.separate(mixture)
        folder = args.out / song_name(song)
        for source, audio in estimates.items():
            write_wav(folder / f"{source}.wav", audio, rate)
        seconds = mixture.shape[-1] / rate
        elapsed = time.perf_counter() - started
        print(f"{song} -> {folder}/ ({seconds:.1f} s of audio in {elapsed:.1f} s, "
              f"{seconds / elapsed:.2f}x real time)")
    return 0
