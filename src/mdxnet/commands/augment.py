"""`mdxnet augment`: the augmentation cache of one training track, or of all of them (mdxnet.data.augment)."""

from __future__ import annotations


def register(subparsers) -> None:
    augment = subparsers.add_parser("augment", help="cache pitch-shifted / time-stretched stems of one track")
    which = augment.add_mutually_exclusive_group(required=True)
    which.add_argument("--track", help="training track name (see `mdxnet data list`)")
    which.add_argument("--all", action="store_true", help="every training track, one after the other")
    augment.add_argument("--root", help="dataset folder (default: data.root)")
    augment.add_argument("--out", help="augmentation cache folder (default: augment.root)")
    augment.set_defaults(func=run_augment)


def run_augment(args) -> int:
    from mdxnet.data.augment import augment_track
    from mdxnet.data.decoded import decoded_track, require_decoded_room
    from mdxnet.data.musdb import DatasetMissingError, find_track, is_stem_file, list_tracks, track_name

    params = args.params
    root = args.root or params.data.root
    try:  # every training track's cache shares the disk: the first of the per-track jobs checks room for all
        cohort = list_tracks(root, "train", params.data.valid_split)
    except DatasetMissingError:
        cohort = []  # a track found in test/ of a dataset without train/ (find_track names a missing one)
    tracks = cohort if args.all else [find_track(root, args.track)]
    # the decoding comes after each track's augmentation: its folder is checked before that work
    require_decoded_room([t for t in tracks if is_stem_file(t)], params.data.decoded_root)
    for track in tracks:
        manifest = augment_track(track, params.augment, out_root=args.out, cohort=cohort)
        print(f"{track_name(track)}: {len(manifest['variants'])} variants cached in {manifest['folder']}")
        if is_stem_file(track):  # MUSDB18: decoded here, once, rather than by each separator's training
            print(f"{track_name(track)}: decoded for training in {decoded_track(track, params.data.decoded_root)}")
    return 0
