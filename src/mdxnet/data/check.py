"""`mdxnet data check`: validate a dataset in MUSDB18-HQ layout (or MUSDB `.stem.mp4` files) and report EVERY
problem with its file name.

Accepted inputs: a dataset folder (<root>/{train,test}/<track>/{mixture,drums,bass,other,vocals}.wav, or
<root>/{train,test}/<track>.stem.mp4), a folder of `.stem.mp4` files, or one `.stem.mp4` file.

Per track: all five stems present and readable, 44.1 kHz, stereo, the wav not truncated (its header's data size
fits the file), equal lengths, and the mixture within data.check.mix_snr_db of the sum of the stems
(data.check.stem_mix_snr_db for `.stem.mp4` files, whose AAC streams sum to the mixture only approximately). A stem or
track that is a symbolic link leading nowhere (dangling, or a loop) is a problem naming the link. The
report's subset counts (train, valid, test) are those training uses: the dataset's recorded split, else
data.valid_split (`mdxnet.data.musdb.list_tracks`).

The checksum in the report is a cheap dataset fingerprint, not a content hash: sha256 over, for every audio file
sorted by relative path, the path, the size in bytes and the first 64 KiB. It changes when a file is added,
removed, renamed, resized or its beginning (header and first ~0.4 s) changes; reading every byte of MUSDB18-HQ
(~30 GB) on each check would be too slow.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from mdxnet.atomic import write_json_atomic
from mdxnet.audio import SAMPLE_RATE, STEM_NAMES, read_stem_file, wav_truncation
from mdxnet.config import Data
from mdxnet.data.musdb import (
    STEM_SUFFIX,
    SUBSETS,
    DatasetMissingError,
    _tracks_in,
    broken_link,
    is_stem_file,
    list_tracks,
    missing_dataset_message,
    track_name,
)
from mdxnet.errors import UserError

CHECKSUM_METHOD = "sha256 over sorted (relative path, size, first 64 KiB) of every audio file"
HEAD_BYTES = 1 << 16
BLOCK_FRAMES = 1 << 18


@dataclass
class CheckResult:
    root: str
    problems: list[str] = field(default_factory=list)
    tracks: int = 0
    seconds: float = 0.0
    subsets: dict[str, int] = field(default_factory=dict)
    checksum: str = ""
    checksum_method: str = CHECKSUM_METHOD

    @property
    def ok(self) -> bool:
        return not self.problems and self.tracks > 0


def _mix_snr_db(mixture: np.ndarray, stems: list[np.ndarray]) -> float:
    error = mixture - np.sum(stems, axis=0)
    signal, noise = float(np.sum(mixture**2)), float(np.sum(error**2))
    return float("inf") if noise == 0 else 10 * np.log10(max(signal, 1e-20) / noise)


def _wav_snr_db(track: Path) -> float:
    """Mixture vs sum of stems, read block by block so full-length songs need little memory."""
    files = {name: sf.SoundFile(track / f"{name}.wav") for name in STEM_NAMES}
    signal = noise = 0.0
    try:
        while True:
            blocks = {name: f.read(BLOCK_FRAMES, dtype="float64", always_2d=True) for name, f in files.items()}
            if blocks["mixture"].shape[0] == 0:
                break
            mix = blocks.pop("mixture")
            err = mix - np.sum(list(blocks.values()), axis=0)
            signal += float(np.sum(mix**2))
            noise += float(np.sum(err**2))
    finally:
        for f in files.values():
            f.close()
    return float("inf") if noise == 0 else 10 * np.log10(max(signal, 1e-20) / noise)


def check_wav_track(track: Path, min_snr_db: float) -> tuple[list[str], float]:
    """Problems of one MUSDB18-HQ track folder, and its duration in seconds (0 when unknown)."""
    problems, frames = [], {}
    for name in STEM_NAMES:
        path = track / f"{name}.wav"
        if not path.is_file():
            problems.append(broken_link(path) or f"{path}: missing stem '{name}'")
            continue
        try:
            info = sf.info(path)
        except (sf.LibsndfileError, RuntimeError) as err:
            problems.append(f"{path}: unreadable ({err})")
            continue
        truncated = wav_truncation(path)
        if truncated:
            problems.append(f"{path}: truncated: {truncated}")
        if info.samplerate != SAMPLE_RATE:
            problems.append(f"{path}: sample rate {info.samplerate} Hz, expected {SAMPLE_RATE} Hz")
        if info.channels != 2:
            problems.append(f"{path}: {info.channels} channel(s), expected stereo (2)")
        frames[name] = info.frames
    if len(set(frames.values())) > 1:
        lengths = ", ".join(f"{name}={n}" for name, n in frames.items())
        problems.append(f"{track}: stems differ in length (samples: {lengths})")
    if not problems:
        try:
            snr = _wav_snr_db(track)
        except (sf.LibsndfileError, RuntimeError) as err:
            problems.append(f"{track}: audio data unreadable ({err})")
        else:
            if snr < min_snr_db:
                problems.append(f"{track / 'mixture.wav'}: differs from the sum of the stems "
                                f"(SNR {snr:.1f} dB < data.check.mix_snr_db = {min_snr_db:g} dB)")
    return problems, frames.get("mixture", 0) / SAMPLE_RATE


def check_stem_file(path: Path, min_snr_db: float) -> tuple[list[str], float]:
    """Problems of one MUSDB `.stem.mp4` file (5 stereo 44.1 kHz streams, mixture ~ sum of stems)."""
    import stempeg


    try:
        info = stempeg.Info(str(path))
    except Exception as err:  # ffprobe errors surface as various exception types
        return [f"{path}: unreadable stem file ({str(err).strip()[-200:]})"], 0.0
    problems = []
    if info.nb_audio_streams != len(STEM_NAMES):
        problems.append(f"{path}: {info.nb_audio_streams} audio streams, expected 5 ({', '.join(STEM_NAMES)})")
        return problems, 0.0
    for idx, name in enumerate(STEM_NAMES):
        if info.sample_rate(idx) != SAMPLE_RATE:
            problems.append(f"{path} [{name}]: sample rate {info.sample_rate(idx)} Hz, expected {SAMPLE_RATE} Hz")
        if info.channels(idx) != 2:
            problems.append(f"{path} [{name}]: {info.channels(idx)} channel(s), expected stereo (2)")
    if problems:
        return problems, 0.0
    try:
        stems = read_stem_file(path)
    except Exception as err:  # a damaged stream fails only when decoded
        return [f"{path}: cannot decode ({str(err).strip()[-200:]})"], 0.0
    lengths = {name: a.shape[-1] for name, a in stems.items()}
    if len(set(lengths.values())) > 1:
        problems.append(f"{path}: streams differ in length (samples: {lengths})")
    else:
        snr = _mix_snr_db(stems["mixture"], [stems[n] for n in STEM_NAMES[1:]])
        if snr < min_snr_db:
            problems.append(f"{path}: mixture differs from the sum of the stems "
                            f"(SNR {snr:.1f} dB < data.check.stem_mix_snr_db = {min_snr_db:g} dB)")
    return problems, lengths["mixture"] / SAMPLE_RATE


def _audio_files(tracks: list[Path]) -> list[Path]:
    """The files the checksum covers; a link leading nowhere is left out (it is reported as a problem)."""
    files = []
    for track in tracks:
        files += [track] if is_stem_file(track) else sorted(p for p in track.iterdir()
                                                            if p.suffix == ".wav" and p.is_file())
    return files


def _broken_entries(folder: Path, suffix: str = "") -> list[str]:
    """Links in `folder` (named ...`suffix`, not hidden: what could be a track) that lead nowhere: a track or stem
    file linked from elsewhere whose target is gone would otherwise be skipped without a word (it is neither a
    folder nor a file)."""
    return [problem for path in sorted(folder.iterdir())
            if path.name.endswith(suffix) and not path.name.startswith(".") and (problem := broken_link(path))]


def dataset_checksum(files: list[Path], base: Path) -> str:
    """See the module docstring: names, sizes and first 64 KiB of every file, in path order."""
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: str(p.relative_to(base))):
        digest.update(f"{path.relative_to(base)}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as handle:
            digest.update(handle.read(HEAD_BYTES))
    return digest.hexdigest()


def _collect(root: Path, result: CheckResult, valid_split: str) -> list[Path]:
    """The tracks to check, by input kind; layout problems go to `result`."""
    if root.is_file():
        if not is_stem_file(root):
            result.problems.append(f"{root}: not a .stem.mp4 file nor a dataset folder")
            return []
        result.subsets = {"stems": 1}
        return [root]
    if not root.is_dir():
        raise DatasetMissingError(broken_link(root) or missing_dataset_message(root))
    if not (root / "train").is_dir() and not (root / "test").is_dir():
        stems = [p for p in sorted(root.iterdir()) if is_stem_file(p)]
        result.problems += _broken_entries(root, STEM_SUFFIX)
        if not stems:
            result.problems.append(f"{root}: no train/ and test/ folders (MUSDB18-HQ layout) and no .stem.mp4 files")
        result.subsets = {"stems": len(stems)}
        return stems
    tracks = []
    for subset in ("train", "test"):
        folder = root / subset
        if not folder.is_dir():
            result.problems.append(f"{folder}: missing (MUSDB18-HQ layout has train/ and test/)")
            continue
        found = _tracks_in(folder)
        result.problems += _broken_entries(folder)
        if not found:
            result.problems.append(f"{folder}: holds no tracks")
        result.subsets[subset] = len(found)
        tracks += found
    if not result.problems:
        _count_split(root, result, valid_split)
    return tracks


def _count_split(root: Path, result: CheckResult, valid_split: str) -> None:
    """Tracks per subset as training will split them (the dataset's recorded split, else data.valid_split):
    the counts say what is trained on and what validates, not just what is in train/."""
    try:
        result.subsets = {subset: len(list_tracks(root, subset, valid_split)) for subset in SUBSETS}
    except UserError as err:  # a recorded split naming absent tracks, or unreadable: the message names the file
        result.problems.append(str(err))


def check_dataset(root: str | Path, data: Data, progress: bool = True) -> CheckResult:
    from tqdm import tqdm

    root = Path(root)
    min_snr = float(data.check.mix_snr_db)
    min_stem_snr = float(data.check.stem_mix_snr_db)  # AAC streams: the sum holds only approximately
    result = CheckResult(root=str(root))
    tracks = _collect(root, result, data.valid_split)
    for track in tqdm(tracks, desc="check tracks", unit="track", disable=not progress or len(tracks) < 2):
        if is_stem_file(track):
            problems, seconds = check_stem_file(track, min_stem_snr)
        else:
            problems, seconds = check_wav_track(track, min_snr)
        try:
            track_name(track)  # its results folder is named after it: '...stem.mp4' would give '..'
        except UserError as err:
            problems.append(str(err))
        result.problems += problems
        result.seconds += seconds
    result.tracks = len(tracks)
    base = root.parent if root.is_file() else root
    result.checksum = dataset_checksum(_audio_files(tracks), base)
    return result


def write_report(result: CheckResult, path: str | Path) -> None:
    """The JSON summary, written atomically (the workflow uses it as an output)."""
    write_json_atomic(path, {**asdict(result), "ok": result.ok, "seconds": round(result.seconds, 3)})
