"""Reading one evaluation track (a MUSDB18-HQ folder or a MUSDB `.stem.mp4`) as {name: (2, n) float32}."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdxnet.audio import SAMPLE_RATE, read_stem_file
from mdxnet.errors import UserError

STEM_SUFFIX = ".stem.mp4"
TRACK_PARTS = ("mixture", "vocals", "drums", "bass", "other")


def track_name(path: str | Path) -> str:
    """The track's name as musdb spells it: the folder name, or the stem file name without `.stem.mp4`."""
    path = Path(path)
    if path.name.endswith(STEM_SUFFIX):
        return path.name[: -len(STEM_SUFFIX)]
    return path.stem if path.is_file() else path.name


def to_musdb_pcm16(audio: np.ndarray) -> np.ndarray:
    """The values musdb reads from a `.stem.mp4`: it decodes through ffmpeg as 16-bit PCM (s16le) and divides by
    32768. Doing the same keeps our scores on stem files identical to musdb + museval's."""
    pcm = np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32768.0), -32768, 32767)
    return (pcm / 32768.0).astype(np.float32)


def _load_folder(folder: Path, sample_rate: int) -> dict[str, np.ndarray]:
    """A MUSDB18-HQ track folder, read by the data package's loader so training and scoring read tracks alike."""
    from mdxnet.data.musdb import load_track

    missing = [part for part in TRACK_PARTS if not (folder / f"{part}.wav").is_file()]
    if missing:
        raise UserError(
            f"track folder {folder} lacks {', '.join(p + '.wav' for p in missing)}: a MUSDB18-HQ track holds "
            f"{', '.join(p + '.wav' for p in TRACK_PARTS)}"
        )
    return load_track(folder, sample_rate)


def load_reference(path: str | Path, sample_rate: int = SAMPLE_RATE) -> dict[str, np.ndarray]:
    """Mixture and true stems of one track: {"mixture", "vocals", "drums", "bass", "other": (2, n) float32}."""
    path = Path(path)
    if path.is_dir():
        audio = _load_folder(path, sample_rate)
    elif path.is_file() and path.name.endswith(".mp4"):
        audio = {name: to_musdb_pcm16(a) for name, a in read_stem_file(path, sample_rate).items()}
    elif path.exists():
        raise UserError(f"{path} is neither a MUSDB18-HQ track folder nor a MUSDB .stem.mp4 file")
    else:
        raise UserError(f"track {path} does not exist: pass a MUSDB18-HQ track folder or a .stem.mp4 file")
    lengths = {name: a.shape[-1] for name, a in audio.items()}
    if len(set(lengths.values())) != 1:
        raise UserError(f"the stems of {path} differ in length {lengths}: re-export them with equal lengths")
    return audio


def _is_track(path: Path) -> bool:
    return (path.is_dir() and not path.name.startswith(".")) or path.name.endswith(STEM_SUFFIX)


def track_index(root: str | Path, subset: str = "test") -> dict[str, Path]:
    """{track name: path} for the tracks under `root/subset` (or `root` itself when it has no `subset` folder):
    MUSDB18-HQ track folders and `.stem.mp4` files alike."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"dataset folder {root} does not exist: pass the MUSDB18-HQ root (holding {subset}/)")
    folder = root / subset if (root / subset).is_dir() else root
    index = {}
    for path in sorted(folder.iterdir()):
        if _is_track(path):
            name = track_name(path)
            if name in index:
                raise UserError(f"track {name!r} appears twice under {folder}: {index[name]} and {path}")
            index[name] = path
    return index
