"""`mdxnet separate`: songs -> one wav per source.

`mdxnet separate` checks every input before it loads a model (loading and the ONNX export take a while):
each song exists, is a file, is readable, holds mono or stereo audio and is not a cut-short wav; its name can name
a folder; -o and every song's output folder can be written and their paths fit the file system's length limits; no
two songs would land in the same folder; no song peaks far above full scale (`mdxnet.audio.MAX_PEAK`) unless
--normalize is given. A song that still fails later (e.g. it does not decode) is reported and the others are
separated: the command then exits 2 naming it. A failure to write the stems (disk full) stops the run: nothing of
that song is kept, and the later songs would fail the same way.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections import defaultdict
from pathlib import Path

from mdxnet.atomic import TEMP_NAME_EXTRA
from mdxnet.checkpoint import require_models_folder
from mdxnet.errors import UserError, WriteError

log = logging.getLogger(__name__)

OUTPUT_HELP = (
    "output folder: OUT/<song>/{vocals,drums,bass,other}.wav (default: separated). Songs with the same name "
    "also keep their parent folders, as many as tell them apart: a/song.wav b/song.wav -> OUT/a/song/ and "
    "OUT/b/song/"
)


def count(text: str) -> int:
    """An argparse type: a whole number of at least 1 (argparse names the option in its error)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def register(subparsers) -> None:
    sep = subparsers.add_parser("separate", help="separate songs into vocals/drums/bass/other wavs")
    sep.add_argument("songs", nargs="+", type=Path, metavar="SONG",
                     help="audio files (wav/flac/mp3/...; a .stem.mp4 is read as its mixture). NaN/inf samples "
                          "are replaced by 0 (silence), with a notice giving how many and the first one's time")
    sep.add_argument("-o", "--out", type=Path, default=Path("separated"), help=OUTPUT_HELP)
    sep.add_argument("--models", type=Path, default=Path("models"), help="models folder (default: models)")
    sep.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None,
                     help="default: params separate.device")
    sep.add_argument("--no-mixer", action="store_true", help="skip the Mixer (raw separator outputs)")
    sep.add_argument("--batch", type=count, default=None, help="chunks per forward pass (default: params)")
    sep.add_argument("--parallel", type=count, default=None,
                     help="separators run at once on the CPU, sharing its cores (default: params separate.parallel)")
    sep.add_argument("--backend", choices=["onnx", "torch"], default=None,
                     help="run the separators in ONNX Runtime (CPU) or PyTorch (default: params separate.backend)")
    sep.add_argument("--normalize", action="store_true",
                     help="scale a song peaking above full scale (1.0) to peak 1.0 for the models, and its stems "
                          "back by the same factor, with a notice; without it a song peaking far above full scale "
                          "(mdxnet.audio.MAX_PEAK) is refused before any model loads")
    sep.set_defaults(func=run_separate)


def output_folders(songs: list[Path], out: Path) -> list[Path]:
    """OUT/<song name>/ for each song. Songs that share a name keep as many of their parent folders (the same
    number for all of them) as it takes to tell them apart: a/song.wav, b/song.wav -> OUT/a/song, OUT/b/song;
    MUSDB18-HQ's test/<track>/mixture.wav -> OUT/<track>/mixture. Song names are `track_name`'s, the names
    the evaluation uses too ('Artist - Title.stem.mp4' -> 'Artist - Title', 'song.flac' -> 'song')."""
    from mdxnet.data.musdb import track_name

    resolved = [song.resolve() for song in songs]
    seen: dict[Path, Path] = {}
    for song, real in zip(songs, resolved, strict=True):
        if real in seen:
            raise UserError(f"{song} is given twice (also as {seen[real]}): pass each song once")
        seen[real] = song
    names = [track_name(song) for song in songs]
    same_name: dict[str, list[int]] = defaultdict(list)
    for index, name in enumerate(names):
        same_name[name].append(index)
    relative = [Path(name) for name in names]
    for name, group in same_name.items():
        if len(group) == 1:
            continue
        parents = {i: resolved[i].parent.parts[1:] for i in group}  # without the root, so the path stays relative
        depth = _parents_needed([parents[i] for i in group])
        if depth is None:
            first, second = _same_folder_pair(group, parents)
            raise UserError(f"{songs[first]} and {songs[second]} would both be written to {out / name}/: rename "
                            f"one, or separate them in two runs with different -o folders")
        for i in group:
            relative[i] = Path(*parents[i][-depth:], name)
    return [out / rel for rel in relative]


def _parents_needed(parents: list[tuple[str, ...]]) -> int | None:
    """The fewest trailing parent folders that make every path distinct; None when two share their folder."""
    for depth in range(1, max(len(p) for p in parents) + 1):
        if len({p[-depth:] for p in parents}) == len(parents):
            return depth
    return None


def _same_folder_pair(group: list[int], parents: dict[int, tuple[str, ...]]) -> tuple[int, int]:
    first_in: dict[tuple[str, ...], int] = {}
    for i in group:
        if parents[i] in first_in:
            return first_in[parents[i]], i
        first_in[parents[i]] = i
    raise AssertionError("no two songs share a folder")


def check_out_folder(out: Path) -> None:
    """-o must be a folder, or creatable as one."""
    check_path_lengths(out, [])
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out} is a file, not a folder: pass a folder (it is created when missing)")
    check_writable(out, "-o")


def check_writable(folder: Path, what: str) -> None:
    """`folder` exists as a writable folder, or its nearest existing parent is one (so it can be created)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot create {what} folder {folder}: {existing} is a file; remove it or pass another -o")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {what} folder {folder}: {existing} is not writable (permission denied); "
                        f"pass another -o")


def check_path_lengths(folder: Path, names: list[str]) -> None:
    """`folder` and the files `names` in it (and their temp files) fit the file system's limits on a name's and a
    path's length: beyond them every call fails with 'File name too long', even asking whether the path exists."""
    name_max, path_max = _length_limits(folder)
    for part in folder.parts:
        if len(os.fsencode(part)) > name_max:
            raise UserError(f"cannot create output folder {_shortened(folder)}: its name {_shortened(part)} is "
                            f"{len(os.fsencode(part))} bytes long, over the {name_max} a name may have there: "
                            f"pass a shorter -o")
    longest = max((len(os.fsencode(folder / name)) for name in names), default=len(os.fsencode(folder)))
    if longest + TEMP_NAME_EXTRA >= path_max:  # PATH_MAX counts the terminating NUL
        raise UserError(f"cannot write into {_shortened(folder)}/: its files' paths would be up to "
                        f"{longest + TEMP_NAME_EXTRA} bytes long, over the system's limit of {path_max - 1}: "
                        f"pass a shorter -o")


def _length_limits(folder: Path) -> tuple[int, int]:
    """(longest name, longest path + 1) in bytes on the file system that would hold `folder`: that of its nearest
    existing parent (os.path.exists, unlike Path.exists, answers False for a path too long to ask about)."""
    existing = folder
    while not os.path.exists(existing) and existing != existing.parent:
        existing = existing.parent
    try:
        return os.pathconf(existing, "PC_NAME_MAX"), os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError):  # a system that does not say: Linux's values
        return 255, 4096


def _shortened(path: Path | str, keep: int = 60) -> str:
    """A path of thousands of characters would flood the one-line error: its start and its end."""
    text = str(path)
    return text if len(text) <= keep else f"{text[: keep - 20]}...{text[-17:]}"


def check_outputs(folder: Path, sources: tuple[str, ...] | list[str]) -> None:
    """A song's output folder can be written, and no stem's name is taken by a folder."""
    check_path_lengths(folder, [f"{source}.wav" for source in sources])
    check_writable(folder, "output")
    for source in sources:
        stem = folder / f"{source}.wav"
        if stem.is_dir():
            raise UserError(f"cannot write {stem}: a folder has that name; remove it or pass another -o")


def plan(args) -> list[tuple[Path, Path]]:
    """(song, output folder) pairs, with every input checked; nothing is loaded or written here."""
    from mdxnet.audio import check_audio_file, check_song_peak

    require_models_folder(args.models)
    for song in args.songs:
        check_audio_file(song)
    check_out_folder(args.out)
    folders = output_folders(list(args.songs), args.out)
    for folder in folders:
        check_outputs(folder, args.params.sources)
    for song in args.songs:  # last: it reads each float file once through
        check_song_peak(song, args.normalize)
    return list(zip(args.songs, folders, strict=True))


def separate_song(pipeline, song: Path, folder: Path, rate: int, normalize: bool = False) -> float:
    """Separate one song into `folder`; returns its duration in seconds. All four stems are written or none.

    The song is read, separated and written block by block (`SeparationPipeline.blocks`), so memory does not
    grow with its length; formats libsndfile cannot seek in exactly (mp3, mp4, .stem.mp4) and songs at another
    rate are read whole first (`mdxnet.audio.open_song`). With `normalize`, a song above full scale is separated
    scaled to peak 1 and its stems are scaled back (`mdxnet.audio.input_scale`)."""
    import numpy as np

    from mdxnet.audio import open_song, wav_group_writer

    paths = {source: folder / f"{source}.wav" for source in pipeline.separators}
    with open_song(song, rate, normalize) as mixture, wav_group_writer(list(paths.values()), rate) as write:
        for start, block in pipeline.blocks(mixture):
            broken = [source for source, audio in block.items() if not np.isfinite(audio).all()]
            if broken:
                raise UserError(f"separating {song} gave NaN/inf in {', '.join(broken)} from {start / rate:.1f} s "
                                f"(its peak sample is {mixture.peak():.3g}; audio is expected within [-1, 1]): "
                                f"scale it down and rerun; nothing was written for it")
            write({paths[source]: audio / mixture.scale for source, audio in block.items()})
        return mixture.length / rate


def run_separate(args) -> int:
    import time

    from mdxnet.inference.separation import SeparationPipeline

    jobs = plan(args)  # before any model is loaded: a typo or a clash must not wait for the ONNX export
    params = args.params
    device = args.device or params.separate.device
    pipeline = SeparationPipeline.from_dir(args.models, params, device=device, use_mixer=not args.no_mixer,
                                           batch=args.batch, backend=args.backend, parallel=args.parallel)
    failed = []
    for index, (song, folder) in enumerate(jobs):
        started = time.perf_counter()
        try:
            seconds = separate_song(pipeline, song, folder, params.sample_rate, args.normalize)
        except WriteError as err:  # the output's disk, not the song: every later song would fail the same way
            raise UserError(f"separating {song}: {err}; free space on that disk or pass another -o, then rerun "
                            f"{_songs_left(jobs, index)}") from None
        except UserError as err:  # one bad song must not cost the others their result
            log.error("%s", err)
            failed.append(str(song))
            continue
        elapsed = time.perf_counter() - started
        print(f"{song} -> {folder}/ ({seconds:.1f} s of audio in {elapsed:.1f} s, "
              f"{seconds / elapsed:.2f}x real time)")
    if failed:
        raise UserError(f"{len(failed)} of {len(jobs)} songs not separated ({', '.join(failed)}): see the errors "
                        f"above, fix those files and rerun them")
    return 0


def _songs_left(jobs: list[tuple[Path, Path]], index: int) -> str:
    """What a run stopped at jobs[index] still has to separate (the songs before it were written)."""
    left = len(jobs) - index
    return "it" if left == 1 else f"it and the {left - 1} song{'s' if left > 2 else ''} after it"
