"""`mdxnet train separator --source S` and `mdxnet train mixer`: the recipe params.yaml names; the model is
written to --out when training finishes.

Both resume from <models>/checkpoints/<name>/last.pt when it belongs to the same params (rerun the same command
after an interruption), log to dvclive (see `live_dir`) and write the best model (by validation SDR) to --out.
Multi-GPU: `torchrun --nproc_per_node=N -m mdxnet.cli train separator --source S`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _common(parser) -> None:
    parser.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"],
                        help="auto: CUDA when available, else CPU (default: params train.device)")
    parser.add_argument("--steps", type=int, default=None,
                        help="override the number of training steps from params.yaml (smoke runs)")
    parser.add_argument("--live-dir", type=Path, default=None,
                        help="dvclive output folder (default: dvclive/<name> for the project's own models/<name>.pt, "
                             "else <out folder>/dvclive/<out name>)")


def register(subparsers) -> None:
    train = subparsers.add_parser("train", help="train a separator or the Mixer", description=__doc__)
    what = train.add_subparsers(dest="what", metavar="WHAT", required=True)

    separator = what.add_parser("separator", help="train the TFC-TDF-U-Net separator of one source")
    separator.add_argument("--source", required=True, help="vocals, drums, bass or other (params.yaml sources)")
    separator.add_argument("--out", type=Path, default=None, help="best checkpoint (default: models/<source>.pt)")
    _common(separator)
    separator.set_defaults(func=run_separator)

    mixer = what.add_parser("mixer", help="train the Mixer on the four frozen separators' outputs")
    mixer.add_argument("--models", type=Path, default=Path("models"),
                       help="folder with <source>.pt for every source (default: models)")
    mixer.add_argument("--out", type=Path, default=None, help="best checkpoint (default: <models>/mixer.pt)")
    mixer.add_argument("--kind", choices=["linear", "conv"], default=None,
                       help="train a Mixer of this kind (default: params mixer.kind; its other settings come from "
                            "params mixer): the workflow's extra mixer-conv run")
    _common(mixer)
    mixer.set_defaults(func=run_mixer)


def _report(name: str, result) -> int:
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for all
        return 0
    if result.best_score is None:
        print(f"{name}: trained {result.steps} steps (no validation tracks); model written to {result.best_path}")
    else:
        print(f"{name}: trained {result.steps} steps; best validation SDR {result.best_score:.3f} dB at "
              f"step {result.best_step}, written to {result.best_path}")
    return 0


def _diverged(command: str, err: Exception) -> int:
    print(f"mdxnet {command}: error: {err}", file=sys.stderr)
    return 1


PROJECT_MODELS, PROJECT_LIVE = Path("models"), Path("dvclive")


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def live_dir(out: Path, names, given: Path | None) -> Path:
    """Where a training that writes `out` logs. The project's log dvclive/<name>/ belongs to the project's own
    model models/<name>.pt, `name` one of `names` (the workflow's training); any other --out logs beside itself,
    in <out folder>/dvclive/<out name>/, so that a smoke run elsewhere never replaces the project's curves and
    metrics. An explicit --live-dir inside dvclive/ for another --out is refused."""
    out = Path(out)
    own = out.stem in names and out.suffix == ".pt" and out.parent.resolve() == PROJECT_MODELS.resolve()
    if given is not None:
        if not own and _inside(Path(given), PROJECT_LIVE):
            from mdxnet.errors import UserError
            raise UserError(f"--live-dir {given} is inside the project's training logs ({PROJECT_LIVE}/) but --out "
                            f"{out} is not one of the project's models ({PROJECT_MODELS}/<name>.pt): give a "
                            f"--live-dir elsewhere, or leave it out to log in {out.parent / 'dvclive' / out.stem}")
        return Path(given)
    return PROJECT_LIVE / out.stem if own else out.parent / "dvclive" / out.stem


def run_separator(args) -> int:
    from mdxnet.errors import UserError
    from mdxnet.training.loop import TrainingDiverged
    from mdxnet.training.separator import train_separator

    params = args.params
    if args.source not in params.sources:
        raise UserError(f"unknown --source {args.source!r}: {args.params_file} lists {params.sources}")
    out = args.out or Path("models") / f"{args.source}.pt"
    live = live_dir(out, [args.source], args.live_dir)
    try:
        result = train_separator(params, args.source, out, device=args.device or params.train.device, steps=args.steps,
                                 live_dir=live)
    except TrainingDiverged as err:
        return _diverged("train separator", err)
    return _report(args.source, result)


def run_mixer(args) -> int:
    from mdxnet.models import with_mixer_kind
    from mdxnet.runs import mixer_runs
    from mdxnet.training.loop import TrainingDiverged
    from mdxnet.training.mixer import train_mixer

    params = with_mixer_kind(args.params, args.kind)
    out = args.out or args.models / "mixer.pt"
    live = live_dir(out, mixer_runs(False, None), args.live_dir)
    try:
        result = train_mixer(params, args.models, out, device=args.device or params.train.device, steps=args.steps,
                             live_dir=live)
    except TrainingDiverged as err:
        return _diverged("train mixer", err)
    return _report("mixer", result)
