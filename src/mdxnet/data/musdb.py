"""The one place that lists, names and reads tracks: training, validation, the data check, the workflow,
separation outputs and evaluation all go through it.

Layout: <root>/{train,test}/<track>/{mixture,drums,bass,other,vocals}.wav. MUSDB18 stem files
(<root>/{train,test}/<track>.stem.mp4) are read too. The validation tracks live inside train/:
- a generated dataset records its own split in DATASET_FILE at its root (see `mdxnet.data.synth`); it wins;
- otherwise params data.valid_split decides: 'musdb' takes musdb's official 14-track list (read from the installed
  musdb package) out of train/, 'none' has no validation tracks (every train/ track is trained on).
`split_tracks(params, subset)` applies that rule; every caller that needs a subset goes through it.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from mdxnet.audio import SAMPLE_RATE, STEM_NAMES, read_audio, read_stem_file
from mdxnet.errors import AudioError, UserError, read_json

log = logging.getLogger(__name__)

SUBSETS = ("train", "valid", "test")
STEM_SUFFIX = ".stem.mp4"
# A dataset that records its own split (the generated one) writes this file at its root, last.
DATASET_FILE = "mdxnet_dataset.json"
VALID_SPLITS = ("musdb", "none")


class DatasetMissingError(UserError):
    """The dataset folder (or one of its subsets) does not exist."""


def missing_dataset_message(root: Path) -> str:
    return (
        f"dataset folder {root} not found or incomplete: run `mdxnet data synth` (generated dataset) or "
        f"`mdxnet data fetch` (MUSDB18-HQ), or set data.root in params.yaml to an existing MUSDB18-HQ copy"
    )


@functools.cache
def musdb_validation_names() -> tuple[str, ...]:
    """The official MUSDB18 validation track names, as shipped in the musdb package (configs/mus.yaml)."""
    import importlib.util

    import yaml

    # Found, not imported: importing musdb imports stempeg, which refuses to load without ffmpeg, and training on
    # wav files needs no ffmpeg (a GPU machine without it stopped here).
    spec = importlib.util.find_spec("musdb")
    if spec is None or spec.origin is None:
        raise UserError("the musdb package is not installed (it ships MUSDB18's validation track names): "
                        "run `make setup` or `pip install musdb`")
    config = Path(spec.origin).parent / "configs" / "mus.yaml"
    names = yaml.safe_load(config.read_text())["validation_tracks"]
    return tuple(names)


# ---- naming ----------------------------------------------------------------------------------------------------

def track_name(path: str | Path) -> str:
    """The name a track or song goes by: musdb's track name, the per-track score file's name and the output
    folder of `mdxnet separate`. 'Artist - Title' for a track folder and for 'Artist - Title.stem.mp4'; an
    audio file loses its extension ('song.flac' -> 'song'). A folder keeps its whole name, dots included."""
    path = Path(path)
    if path.name.endswith(STEM_SUFFIX):
        name = path.name[: -len(STEM_SUFFIX)]
    else:
        name = path.stem if path.is_file() else path.name
    problem = name_problem(name)
    if problem:
        raise UserError(f"{path}: {problem}")
    return name


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a folder of results, with the fix; None when it can. Names become folders
    (OUT/<name>/ of `mdxnet separate`, estimates/<run>/test/<name>/ of the workflow): '..' would put the results
    in the parent folder ('...wav' -> '..'), '.' or '' in the folder itself, a separator in a subfolder."""
    if name in ("", ".", "..") or os.sep in name or (os.altsep and os.altsep in name):
        return (f"its track name would be {name!r}, which cannot name a results folder (they would land "
                f"outside it): rename the file (e.g. to 'song.wav', or 'Artist - Title{STEM_SUFFIX}')")
    return None


def is_stem_file(path: Path) -> bool:
    return path.is_file() and path.name.endswith(STEM_SUFFIX)


def broken_link(path: Path) -> str | None:
    """Why `path`, a symbolic link, leads to no file (its target is missing, or the links lead back to themselves),
    as "<path>: <why>: <fix>"; None when it is no link or leads somewhere. Path.is_file answers False for both,
    which reads as a missing file and hides the link, and following it raises."""
    if not path.is_symlink():
        return None
    try:
        path.stat()
    except FileNotFoundError:
        why = f"a symlink to {os.readlink(path)}, which does not exist (dangling)"
    except OSError as err:
        loop = err.errno == errno.ELOOP
        why = (f"a symlink loop (to {os.readlink(path)}; following the links never reaches a file)" if loop
               else f"a symlink to {os.readlink(path)} that cannot be followed ({err.strerror})")
    else:
        return None
    return f"{path}: {why}: point it at the real file or folder, or put that there instead"


# ---- listing -----------------------------------------------------------------------------------------------------

def _tracks_in(folder: Path) -> list[Path]:
    """Track folders and stem files directly inside `folder` (hidden and temporary entries skipped)."""
    tracks = [p for p in folder.iterdir() if not p.name.startswith(".") and (p.is_dir() or is_stem_file(p))]
    return sorted(tracks, key=track_name)


def read_dataset_file(root: Path) -> dict | None:
    path = Path(root) / DATASET_FILE
    if not path.is_file():
        return None
    return read_json(path, "dataset file", "regenerate the dataset with `mdxnet data synth`")


def _folder_or_stem_file(folder: Path, name: str) -> Path:
    stem_file = folder / f"{name}{STEM_SUFFIX}"
    return stem_file if stem_file.is_file() and not (folder / name).exists() else folder / name


def _recorded_split(root: Path, info: dict, subset: str) -> list[Path]:
    names = info["split"].get(subset) if isinstance(info["split"], dict) else None
    if not isinstance(names, list):
        raise UserError(f"{root / DATASET_FILE} records no {subset!r} list in its split: "
                        "regenerate it with `mdxnet data synth`")
    folder = "test" if subset == "test" else "train"
    # A generated dataset is written as track folders (MUSDB18-HQ layout) or stem files (MUSDB18 layout): a name
    # stands for whichever of the two is there.
    tracks = [_folder_or_stem_file(root / folder, name) for name in names]
    missing = [str(t) for t in tracks if not t.exists()]
    if missing:
        raise DatasetMissingError(f"{root / DATASET_FILE} lists tracks that are absent ({missing[0]}, ...): "
                                  "regenerate it with `mdxnet data synth`")
    return sorted(tracks, key=track_name)


def list_tracks(root: str | Path, subset: str, valid_split: str) -> list[Path]:
    """Sorted track folders (or stem files) of one subset: 'train' (without valid), 'valid' or 'test'.

    `valid_split` (params data.valid_split, no default: forgetting it once put validation tracks in training)
    applies to datasets without a recorded split: 'musdb' takes musdb's official validation tracks out of
    train/, 'none' has no validation tracks. Callers holding params use `split_tracks`.
    """
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; expected one of {SUBSETS}")
    if valid_split not in VALID_SPLITS:
        raise UserError(f"data.valid_split is {valid_split!r}; expected one of {VALID_SPLITS}")
    root = Path(root)
    folder = root / ("test" if subset == "test" else "train")
    if not folder.is_dir():
        raise DatasetMissingError(missing_dataset_message(root))
    info = read_dataset_file(root)
    if info is not None and "split" in info:
        return _recorded_split(root, info, subset)
    tracks = _tracks_in(folder)
    if subset == "test":
        return tracks
    valid = set(musdb_validation_names()) if valid_split == "musdb" else set()
    return [t for t in tracks if (track_name(t) in valid) == (subset == "valid")]


def split_tracks(params, subset: str, root: str | Path | None = None) -> list[Path]:
    """The tracks of `subset` under `root` (default data.root) with the params' data.valid_split: the list that
    training, validation, the data check, `mdxnet data list` and the workflow's augmentation jobs share."""
    return list_tracks(root or params.data.root, subset, params.data.valid_split)


def track_index(root: str | Path, subset: str = "test") -> dict[str, Path]:
    """{track name: path} of every track under `root/subset` (or `root` itself when it has no `subset` folder),
    no split applied: the reference tracks an estimates folder is scored against, or a training folder to check
    for overlap. A name present twice (a folder and a stem file) is an error: which one is meant is unclear."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"dataset folder {root} does not exist: pass the MUSDB18-HQ root (holding {subset}/)")
    folder = root / subset if (root / subset).is_dir() else root
    index: dict[str, Path] = {}
    for path in _tracks_in(folder):
        name = track_name(path)
        if name in index:
            raise UserError(f"track {name!r} appears twice under {folder}: {index[name]} and {path}")
        index[name] = path
    return index


def find_track(root: str | Path, name: str) -> Path:
    """The track folder (or stem file) called `name` in train/ or test/."""
    root = Path(root)
    for folder in ("train", "test"):
        for candidate in (root / folder / name, root / folder / f"{name}{STEM_SUFFIX}"):
            if candidate.exists():
                return candidate
    if not root.is_dir():
        raise DatasetMissingError(missing_dataset_message(root))
    raise UserError(f"no track named {name!r} in {root}/train or {root}/test: list them with `mdxnet data list`")


def _extra_test_songs(entry: str, project_root: Path) -> list[Path]:
    path = Path(entry)
    path = path if path.is_absolute() else project_root / path
    if is_stem_file(path):
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if is_stem_file(p))
        if not found:
            log.warning("data.extra_test entry %s holds no %s files: skipped", path, STEM_SUFFIX)
        return found
    log.warning("data.extra_test entry %s does not exist: skipped", path)
    return []


def extra_test_songs(entries: list[str], project_root: str | Path = ".", taken: set[str] = frozenset()) -> list[Path]:
    """The stem files named by `entries` (params data.extra_test, relative to the project root), skipping with a
    warning missing entries and songs whose name is already `taken` (or came earlier in the list)."""
    seen, songs = set(taken), []
    for entry in entries:
        for song in _extra_test_songs(entry, Path(project_root)):
            if track_name(song) in seen:
                log.warning("extra test song %s has the same name as another test song: skipped", song)
                continue
            seen.add(track_name(song))
            songs.append(song)
    return songs


def list_test_songs(params, project_root: str | Path = ".") -> list[Path]:
    """Test tracks of the scored release (params data.score: data.root, or data.score.root for a release other
    than the training one) plus the stem files named by data.extra_test (relative to the project root).

    Missing extra entries are skipped with a warning; names are unique (a duplicate name is skipped).
    """
    songs = split_tracks(params, "test", Path(project_root) / params.data.scored_root)
    return songs + extra_test_songs(params.data.extra_test, project_root, {track_name(s) for s in songs})


# ---- reading -----------------------------------------------------------------------------------------------------

def track_seconds(track: str | Path) -> float:
    """A track's length in seconds from its header alone: the mixture.wav of a track folder, or a stem file's
    first stream (the cost plan and the augmentation cache's space check read many tracks: no decoding)."""
    import subprocess

    track = Path(track)
    try:
        if is_stem_file(track):
            import stempeg  # imported where used, as mdxnet.audio and mdxnet.data.check do

            return float(stempeg.Info(str(track)).duration(0))
        return float(sf.info(track / "mixture.wav").duration)
    except (OSError, RuntimeError, ValueError, KeyError, IndexError, TypeError, subprocess.SubprocessError) as err:
        # libsndfile's and ffprobe's own errors named no track
        raise AudioError(f"track {track} cannot be read ({type(err).__name__}: {str(err).strip()[:200]}): replace "
                         f"or remove it (`mdxnet data check` lists every such track)") from None


def track_samples(track: str | Path) -> int:
    """A training track's length in samples from its header: the vocals.wav of a track folder (the stem the
    authors' MusdbTrainDataset measures, src/datamodules/datasets/musdb.py), or a stem file's first stream (its
    duration at SAMPLE_RATE, rounded)."""
    track = Path(track)
    if is_stem_file(track):
        return round(track_seconds(track) * SAMPLE_RATE)
    return int(sf.info(track / "vocals.wav").frames)


def pcm16(audio: np.ndarray) -> np.ndarray:
    """float audio -> int16 samples, rounded and clipped as a 16-bit PCM encoder does."""
    return np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def to_musdb_pcm16(audio: np.ndarray) -> np.ndarray:
    """The values musdb reads from a `.stem.mp4`: it decodes through ffmpeg as 16-bit PCM (s16le) and divides by
    32768. Reading stem files the same way keeps our scores on them identical to musdb + museval's."""
    return (pcm16(audio) / 32768.0).astype(np.float32)


def _read_track_folder(folder: Path, sample_rate: int) -> dict[str, np.ndarray]:
    missing = [name for name in STEM_NAMES if not (folder / f"{name}.wav").is_file()]
    broken = [problem for name in missing if (problem := broken_link(folder / f"{name}.wav"))]
    if broken:
        raise UserError(broken[0])
    if missing:
        raise UserError(
            f"track folder {folder} lacks {', '.join(n + '.wav' for n in missing)}: a MUSDB18-HQ track holds "
            f"{', '.join(n + '.wav' for n in STEM_NAMES)}; run `mdxnet data check` on the dataset"
        )
    return {name: read_audio(folder / f"{name}.wav", sample_rate) for name in STEM_NAMES}


def load_track(track: str | Path, sample_rate: int = SAMPLE_RATE) -> dict[str, np.ndarray]:
    """{'mixture', 'drums', 'bass', 'other', 'vocals'} -> float32 (2, n), from a MUSDB18-HQ track folder or a
    MUSDB `.stem.mp4` (read as musdb reads it, see `to_musdb_pcm16`). Training, validation, augmentation and
    scoring all read tracks through here, so they read the same values."""
    track = Path(track)
    track_name(track)  # a name that cannot name its results folder is refused before anything is read
    if is_stem_file(track):
        stems = {name: to_musdb_pcm16(audio) for name, audio in read_stem_file(track, sample_rate).items()}
    elif track.is_dir():
        stems = _read_track_folder(track, sample_rate)
    elif track.exists():
        raise UserError(f"{track} is neither a MUSDB18-HQ track folder nor a MUSDB {STEM_SUFFIX} file")
    else:
        raise DatasetMissingError(f"track {track} does not exist: pass a MUSDB18-HQ track folder or a "
                                  f"{STEM_SUFFIX} file (`mdxnet data list` names the dataset's tracks)")
    lengths = {name: audio.shape[-1] for name, audio in stems.items()}
    if len(set(lengths.values())) != 1:
        raise UserError(f"stems of {track} differ in length {lengths}: run `mdxnet data check` on the dataset")
    return stems
