"""`mdxnet data fetch|synth|check|list`: getting, generating, validating and listing the dataset."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="get, generate, check or list the dataset")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    fetch = sub.add_parser("fetch", help="download MUSDB18-HQ into data.root (resumable, md5-checked)")
    fetch.add_argument("--root", help="dataset folder (default: data.root)")
    fetch.add_argument("--force", action="store_true", help="download even if data.origin is 'existing'")
    scored(fetch)
    fetch.set_defaults(func=run_fetch)

    synth = sub.add_parser("synth", help="generate the embedded dataset with fluidsynth, in the layout of "
                           "data.dataset (MUSDB18-HQ wav folders or MUSDB18 .stem.mp4 files)")
    synth.add_argument("--tracks", type=int, help="number of songs (default: data.synth.tracks)")
    synth.add_argument("--valid-tracks", type=int, help="validation songs among them (data.synth.valid_tracks)")
    synth.add_argument("--test-tracks", type=int, help="test songs among them (data.synth.test_tracks)")
    synth.add_argument("--seconds", type=float, help="song length (default: data.synth.seconds)")
    synth.add_argument("--seed", type=int, help="random seed (default: data.synth.seed)")
    synth.add_argument("--jobs", type=int, help="parallel renders (default: data.synth.jobs)")
    synth.add_argument("-o", "--out", help="dataset folder (default: data.root)")
    scored(synth)
    synth.set_defaults(func=run_synth)

    check = sub.add_parser("check", help="validate a dataset in MUSDB18-HQ layout (or .stem.mp4 files)")
    check.add_argument("root", nargs="?", help="dataset folder, stem file or folder of stem files (data.root)")
    check.add_argument("--report", help="write a JSON summary here (track count, seconds, checksum, problems)")
    scored(check)
    check.set_defaults(func=run_check)

    listing = sub.add_parser("list", help="print the track names of one subset, one per line")
    listing.add_argument("--subset", choices=["train", "valid", "test"], default="train")
    listing.add_argument("--root", help="dataset folder (default: data.root)")
    scored(listing)
    listing.add_argument("--planned", action="store_true",
                         help="names the generator will produce (data.origin synth), without reading the dataset")
    listing.set_defaults(func=run_list)


def scored(parser) -> None:
    parser.add_argument("--scored", action="store_true",
                        help="the release that is scored (data.score: its release and folder) instead of the "
                             "training one; the same dataset where data.score.dataset is the training release")


def dataset_of(args):
    """The data section the command acts on: the training release's, or with --scored the scored release's."""
    data = args.params.data
    return data.scored() if args.scored else data


def run_fetch(args) -> int:
    from mdxnet.data.fetch import fetch_dataset

    fetch_dataset(dataset_of(args), root=args.root, force=args.force)
    return 0


def run_synth(args) -> int:
    import time

    from mdxnet.data.synth import generate_dataset, synth_config

    data = dataset_of(args)
    config = synth_config(data.synth, tracks=args.tracks, valid_tracks=args.valid_tracks,
                          test_tracks=args.test_tracks, seconds=args.seconds, seed=args.seed, jobs=args.jobs)
    root = args.out or data.root
    start = time.perf_counter()
    info = generate_dataset(root, config, layout=data.dataset)
    split = {name: len(tracks) for name, tracks in info["split"].items()}
    print(f"synthetic dataset at {root}: {split} ({config.seconds:g} s each) in {time.perf_counter() - start:.1f} s")
    return 0


def run_check(args) -> int:
    from mdxnet.data.check import check_dataset, write_report

    data = dataset_of(args)
    root = args.root or data.root
    result = check_dataset(root, data)
    if args.report:
        write_report(result, args.report)
    for problem in result.problems:
        print(f"PROBLEM {problem}")
    status = "OK" if result.ok else f"{len(result.problems)} problem(s)"
    print(f"{root}: {result.tracks} tracks, {result.seconds:.1f} s, checksum {result.checksum}: {status}")
    return 0 if result.ok else 2


def run_list(args) -> int:
    from mdxnet.data.musdb import split_tracks, track_name

    data = dataset_of(args)
    if args.planned:
        from mdxnet.data.synth import planned_track_names

        names = planned_track_names(data, args.subset)
    else:
        names = [track_name(t) for t in split_tracks(args.params, args.subset, args.root or data.root)]
    print("\n".join(names))
    return 0
