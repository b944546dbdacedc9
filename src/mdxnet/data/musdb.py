"""Listing and loading tracks of a dataset in MUSDB18-HQ layout.

Layout: <root>/{train,test}/<track>/{mixture,drums,bass,other,vocals}.wav. MUSDB18 stem files
(<root>/{train,test}/<track>.stem.mp4) are read too. The validation tracks live inside train/:
- real MUSDB18-HQ: musdb's official 14-track list (read from the installed musdb package);
- a generated dataset records its own split in DATASET_FILE at its root (see `mdxnet.data.synth`).
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import numpy as np

from mdxnet.audio import SAMPLE_RATE, STEM_NAMES, read_audio, read_stem_file
from mdxnet.errors import UserError

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
    import musdb
    import yaml

    config = Path(musdb.__file__).parent / "configs" / "mus.yaml"
    names = yaml.safe_load(config.read_text())["validation_tracks"]
    return tuple(names)


def track_name(track: Path) -> str:
    """'Artist - Title' for both a track folder and a `.stem.mp4` file."""
    name = Path(track).name
    return name[: -len(STEM_SUFFIX)] if name.endswith(STEM_SUFFIX) else name


def is_stem_file(path: Path) -> bool:
    return path.is_file() and path.name.endswith(STEM_SUFFIX)


def _tracks_in(folder: Path) -> list[Path]:
    """Track folders and stem files directly inside `folder` (hidden and temporary entries skipped)."""
    tracks = [p for p in folder.iterdir() if not p.name.startswith(".") and (p.is_dir() or is_stem_file(p))]
    return sorted(tracks, key=lambda p: track_name(p))


def read_dataset_file(root: Path) -> dict | None:
    path = Path(root) / DATASET_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err}): regenerate the dataset with `mdxnet data synth`") from err


def _recorded_split(root: Path, info: dict, subset: str) -> list[Path]:
    folder = "test" if subset == "test" else "train"
    tracks = [root / folder / name for name in info["split"][subset]]
    missing = [str(t) for t in tracks if not t.exists()]
    if missing:
        raise DatasetMissingError(f"{root / DATASET_FILE} lists tracks that are absent ({missing[0]}, ...): "
                                  "regenerate it with `mdxnet data synth`")
    return sorted(tracks, key=track_name)


def list_tracks(root: str | Path, subset: str, valid_split: str = "musdb") -> list[Path]:
    """Sorted track folders (or stem files) of one subset: 'train' (without valid), 'valid' or 'test'.

    `valid_split` (params data.valid_split) applies to datasets without a recorded split: 'musdb' takes musdb's
    official validation tracks out of train/, 'none' has no validation tracks.
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


def load_track(track: str | Path, sample_rate: int = SAMPLE_RATE) -> dict[str, np.ndarray]:
    """{'mixture', 'drums', 'bass', 'other', 'vocals'} -> float32 (2, n), from a track folder or a stem file."""
    track = Path(track)
    if is_stem_file(track):
        return read_stem_file(track, sample_rate)
    if not track.is_dir():
        raise DatasetMissingError(f"track {track} not found: check data.root or run `mdxnet data check`")
    stems = {name: read_audio(track / f"{name}.wav", sample_rate) for name in STEM_NAMES}
    lengths = {name: audio.shape[-1] for name, audio in stems.items()}
    if len(set(lengths.values())) != 1:
        raise UserError(f"stems of {track} differ in length {lengths}: run `mdxnet data check` on the dataset")
    return stems


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


def list_test_songs(params: dict, project_root: str | Path = ".") -> list[Path]:
    """Test tracks of data.root plus the stem files named by data.extra_test (relative to the project root).

    Missing extra entries are skipped with a warning; names are unique (a duplicate name is skipped).
    """
    data = params.data
    songs = list_tracks(Path(project_root) / data.root, "test")
    seen = {track_name(s) for s in songs}
    for entry in data.extra_test:
        for song in _extra_test_songs(entry, Path(project_root)):
            if track_name(song) in seen:
                log.warning("extra test song %s has the same name as another test song: skipped", song)
                continue
            seen.add(track_name(song))
            songs.append(song)
    return songs
