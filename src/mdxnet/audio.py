"""Audio I/O shared by every stage: reading any song as float32 stereo at the model rate, atomic wav writes,
and MUSDB `.stem.mp4` files.

Arrays are always shaped (channels=2, samples), float32.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from mdxnet.atomic import atomic_group, write_atomic, write_atomic_group
from mdxnet.errors import AudioError, WriteError

log = logging.getLogger(__name__)

SAMPLE_RATE = 44100
# Stream order of the NI stems format, as musdb reads it.
STEM_NAMES = ("mixture", "drums", "bass", "other", "vocals")
# File endings that are commonly audio (only used to suggest a file when a folder is given as a song).
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".mp4", ".m4a", ".ogg", ".aif", ".aiff")


def to_stereo(audio: np.ndarray, path: str | Path = "<array>") -> np.ndarray:
    """(channels, samples) -> (2, samples): mono is duplicated, more than two channels is refused."""
    if audio.ndim == 1:
        audio = audio[None, :]
    channels = audio.shape[0]
    check_channels(channels, path)
    if channels == 1:
        log.warning("%s is mono: duplicating it to stereo", path)
        return np.repeat(audio, 2, axis=0)
    return audio


def check_channels(channels: int, path: str | Path) -> None:
    """Mono or stereo only: the models take two channels, and which two of a surround file (or what downmix) is
    the user's choice, not ours."""
    if channels > 2:
        raise AudioError(f"{path} has {channels} channels; mdxnet separates mono or stereo audio only: downmix it "
                         f"to stereo first (e.g. ffmpeg -i IN -ac 2 OUT.wav)")


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling along the last axis (exact length: round(n * target / source))."""
    if source_rate == target_rate:
        return audio
    from scipy.signal import resample_poly

    factor = gcd(source_rate, target_rate)
    out = resample_poly(audio, target_rate // factor, source_rate // factor, axis=-1)
    return out.astype(np.float32)


def _decode_with_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    """Formats libsndfile cannot read (mp4/m4a/aac, some mp3): decode with ffmpeg to a temporary wav."""
    if shutil.which("ffmpeg") is None:
        raise AudioError(f"cannot read {path}: it needs ffmpeg, which is not installed (apt-get install ffmpeg)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "decoded.wav"
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-c:a", "pcm_f32le", str(wav)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 or not wav.exists():
            raise AudioError(f"cannot decode {path}: {result.stderr.strip() or 'ffmpeg failed'}")
        data, rate = sf.read(wav, dtype="float32", always_2d=True)
    return data.T, rate


def check_path(path: Path) -> None:
    """A song path must name an existing regular file: a folder or a missing path is refused, naming the fix."""
    if path.is_dir():
        raise AudioError(f"{path} is a folder, not an audio file: pass the song inside it, e.g. "
                         f"{_example_song(path)}")
    if not path.exists():
        raise AudioError(f"audio file {path} does not exist: check the path")
    if not path.is_file():
        raise AudioError(f"{path} is not a regular file: pass an audio file (wav/flac/mp3/mp4)")


def _example_song(folder: Path) -> Path:
    """What to pass instead of a folder: a MUSDB18-HQ track's mixture.wav, else the first audio file in it."""
    if (folder / "mixture.wav").is_file():
        return folder / "mixture.wav"
    audio = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    return audio[0] if audio else folder / "<song>.wav"


def _probe_with_ffprobe(path: Path) -> int:
    """Formats libsndfile cannot read: ffprobe must find an audio stream (what `_decode_with_ffmpeg` decodes).
    Returns its channel count (0 where ffprobe does not say)."""
    if shutil.which("ffprobe") is None:
        raise AudioError(f"cannot read {path}: it needs ffmpeg, which is not installed (apt-get install ffmpeg)")
    cmd = ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=codec_type,channels",
           "-of", "csv=p=0", str(path)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or "audio" not in result.stdout:
        raise AudioError(f"{path} is not audio that mdxnet can read (neither libsndfile nor ffmpeg finds an "
                         f"audio stream in it): convert it to wav or flac")
    fields = result.stdout.strip().splitlines()[0].split(",")
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0


def wav_truncation(path: str | Path) -> str | None:
    """Why a RIFF/WAVE file is cut short (its 'data' chunk claims more bytes than the file holds, as after an
    interrupted copy or download), or None. libsndfile reads such a file without complaint, as shorter than its
    header says, so only this look at the header tells. `mdxnet data check` and `mdxnet separate` both ask here."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None  # not plain RIFF (RF64, other formats): leave it to libsndfile
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                available = size - offset - 8
                if chunk_size > available and chunk_size != 0xFFFFFFFF:  # 0xFFFFFFFF: written as a stream
                    return f"header declares {chunk_size} bytes of audio, file holds {available}"
                return None
            offset += 8 + chunk_size + (chunk_size & 1)
    return "no audio data chunk"


def check_audio_file(path: str | Path) -> None:
    """Everything about a song that can be known without decoding it (exists, is a file, readable, holds audio,
    mono or stereo, not cut short): `mdxnet separate` calls it on every song before loading any model, so a typo
    never costs a long wait."""
    path = Path(path)
    check_path(path)
    if not os.access(path, os.R_OK):
        raise AudioError(f"cannot read {path} (permission denied): check its permissions (chmod +r)")
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        check_channels(_probe_with_ffprobe(path), path)
        return
    if info.frames == 0:
        raise AudioError(f"{path} holds no audio samples: pass a non-empty recording")
    check_channels(info.channels, path)
    check_not_truncated(path)


def check_not_truncated(path: Path) -> None:
    """A cut-short wav is refused rather than separated: its stems would look like a whole song's result while
    missing its end, and the fix (copy it again) is cheap; rewriting it keeps just the part it holds."""
    why = wav_truncation(path)
    if why:
        raise AudioError(f"{path} is truncated ({why}; cut short by a copy or download?): copy it again, or to "
                         f"separate the part it holds, rewrite it first (e.g. ffmpeg -i IN OUT.wav)")


def _read_native(path: Path) -> tuple[np.ndarray, int]:
    """(channels, samples) float32 at the file's own rate."""
    check_path(path)
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        audio = data.T
    except (sf.LibsndfileError, RuntimeError, TypeError):
        audio, rate = _decode_with_ffmpeg(path)
    if audio.shape[-1] == 0:
        raise AudioError(f"{path} holds no audio samples: pass a non-empty recording")
    return audio, rate


def _conform(audio: np.ndarray, rate: int, path: Path, sample_rate: int) -> np.ndarray:
    """Stereo at `sample_rate`, with a notice for each change."""
    audio = to_stereo(audio, path)
    if rate != sample_rate:
        log.warning("%s is at %d Hz: resampling to %d Hz", path, rate, sample_rate)
        audio = resample(audio, rate, sample_rate)
    return np.ascontiguousarray(audio, dtype=np.float32)


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read any audio file as float32 (2, samples) at `sample_rate`, upmixing mono and resampling with a notice.

    Samples are returned as stored, NaN included (the evaluation audit reports such files); songs to separate
    are read with `read_song`.
    """
    path = Path(path)
    audio, rate = _read_native(path)
    return _conform(audio, rate, path, sample_rate)


def zero_non_finite(audio: np.ndarray, rate: int, path: str | Path) -> np.ndarray:
    """Replace NaN/inf samples by 0 with a notice (count, first time). One NaN inside a model's chunk makes the
    whole chunk's output NaN (the STFT mixes every sample of a frame), so it must not reach a separator."""
    bad = ~np.isfinite(audio)
    count = int(np.count_nonzero(bad))
    if not count:
        return audio
    _non_finite_notice(path, count, int(np.flatnonzero(bad.any(axis=0))[0]), rate)
    return np.where(bad, np.float32(0), audio)


def _non_finite_notice(path: str | Path, count: int, first: int, rate: int) -> None:
    log.warning("%s has %d NaN/inf sample%s (the first at %.3f s): replaced by 0 (silence) before separating",
                path, count, "" if count == 1 else "s", first / rate)


def read_song(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """`read_audio` for a song to separate: NaN/inf samples become 0 (with a notice) before resampling, which
    would otherwise smear each of them over its filter length."""
    path = Path(path)
    audio, rate = _read_native(path)
    return _conform(zero_non_finite(audio, rate, path), rate, path, sample_rate)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE, subtype: str = "FLOAT") -> None:
    """Write (channels, samples) audio atomically: an interrupted write leaves no half-written file."""
    data = np.asarray(audio, dtype=np.float32).T
    write_atomic(path, lambda tmp: sf.write(tmp, data, sample_rate, subtype=subtype, format="WAV"))


def write_wavs(files: dict[Path, np.ndarray], sample_rate: int = SAMPLE_RATE, subtype: str = "FLOAT") -> None:
    """Write several wavs as a group (mdxnet.atomic.write_atomic_group): all of them or none."""

    def writer(audio: np.ndarray):
        data = np.asarray(audio, dtype=np.float32).T
        return lambda tmp: sf.write(tmp, data, sample_rate, subtype=subtype, format="WAV")

    write_atomic_group({Path(path): writer(audio) for path, audio in files.items()})


# libsndfile containers whose seek lands on the exact sample asked for: a song in one of them is read block by block
STREAMED_FORMATS = ("WAV", "WAVEX", "W64", "RF64", "AIFF", "CAF", "AU", "FLAC")
# Frames per read when a streamed file is scanned whole (NaN count, peak): bounds that scan's memory.
SCAN_FRAMES = 1 << 20
# A song peaking above this (+40 dB over full scale) is refused unless --normalize asks to scale it. Audio is
# expected within [-1, 1]; real float files exceed it by a few dB at most (inter-sample overs, an unlimited float
# mix), while far above lie integer sample values stored as float (16-bit ones reach 32768) or a wrong gain,
# which the models, trained on [-1, 1], turn into meaningless stems (songs at 1e5 gave stems at 1e13, exit 0).
MAX_PEAK = 100.0


def file_peak(path: str | Path) -> float | None:
    """Largest finite |sample| of a song file, read SCAN_FRAMES at a time (memory stays one block's, whatever its
    length); None where there is nothing to scan before decoding: integer PCM is within full scale by
    construction, and a format only ffmpeg reads is checked once decoded (`open_song`)."""
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return None
    if info.subtype.startswith("PCM"):
        return None
    with sf.SoundFile(path) as file:
        return max((_finite_peak(block) for block in file.blocks(SCAN_FRAMES, dtype="float32", always_2d=True)),
                   default=0.0)


def _finite_peak(audio: np.ndarray) -> float:
    """Largest |sample| that is finite (NaN/inf become 0 before separating: they are not the song's scale)."""
    return float(np.abs(np.where(np.isfinite(audio), audio, np.float32(0))).max(initial=0.0))


def input_scale(peak: float | None, path: str | Path, normalize: bool) -> float:
    """What a song's samples are multiplied by for the models (its stems are divided by it): 1, or with
    `normalize` 1/peak for a song above full scale. Without it, a peak above MAX_PEAK is refused."""
    if peak is None or peak <= 1.0:
        return 1.0
    if normalize:
        log.warning("%s peaks at %.3g, above full scale (1.0): scaled to peak 1.0 for the models (--normalize), "
                    "its stems scaled back by the same factor", path, peak)
        return 1.0 / peak
    if peak > MAX_PEAK:
        raise AudioError(f"{path} peaks at {peak:.3g}, over {MAX_PEAK:g} times full scale (audio is expected within "
                         f"[-1, 1]; integer sample values stored as float look like this): rescale it to [-1, 1], "
                         f"or pass --normalize to scale it for the models and its stems back")
    return 1.0


def check_song_peak(path: str | Path, normalize: bool) -> None:
    """`mdxnet separate`'s check before any model loads: a song peaking above MAX_PEAK is refused (one streamed
    pass over the file) unless `normalize` (then `open_song` scales it)."""
    if not normalize:
        input_scale(file_peak(path), path, normalize=False)


class Song:
    """A stereo song at the model rate, read by sample ranges: `read(start, stop)` gives (2, stop - start)
    float32 with zeros outside [0, length), the padding the chunking needs, and NaN/inf already replaced by 0,
    multiplied by `scale` (set by `open_song`: 1 unless --normalize scales a song above full scale).
    A context manager (a streamed file is open until closed)."""

    length: int
    scale: float = 1.0
    # largest finite |sample| as read from the file, None when known to be within full scale (integer PCM)
    raw_peak: float | None = None

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.zeros((2, stop - start), dtype=np.float32)
        lo, hi = max(start, 0), min(stop, self.length)
        if lo < hi:
            out[:, lo - start: hi - start] = self._read_inside(lo, hi)
        if self.scale != 1.0:
            out *= np.float32(self.scale)
        return out

    def _read_inside(self, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError

    def peak(self) -> float:
        """Largest absolute sample as the models see it (after the NaN/inf repair and `scale`)."""
        return max((float(np.abs(self.read(lo, min(lo + SCAN_FRAMES, self.length))).max())
                    for lo in range(0, self.length, SCAN_FRAMES)), default=0.0)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ArraySong(Song):
    """A song held in memory as a (2, n) array."""

    def __init__(self, audio: np.ndarray):
        self.audio = np.asarray(audio, dtype=np.float32)
        if self.audio.ndim != 2 or self.audio.shape[0] != 2:
            raise AudioError(f"expected a stereo (2, samples) mixture, got shape {self.audio.shape}")
        self.length = self.audio.shape[-1]

    @property
    def raw_peak(self) -> float:
        return _finite_peak(self.audio)

    def _read_inside(self, start: int, stop: int) -> np.ndarray:
        return self.audio[:, start:stop]


class FileSong(Song):
    """A song streamed from a file libsndfile seeks exactly in (STREAMED_FORMATS) at the model rate: memory stays
    that of the ranges read, whatever the song's length. Mono is duplicated and NaN/inf become 0 (with the same
    notice as `read_song`, given when the file is opened, whose scan also finds a float file's `raw_peak`)."""

    def __init__(self, path: Path):
        self.path = path
        self.file = sf.SoundFile(path)
        self.length = self.file.frames
        try:
            if self.length == 0:
                raise AudioError(f"{path} holds no audio samples: pass a non-empty recording")
            check_channels(self.file.channels, path)
            if self.file.channels == 1:
                log.warning("%s is mono: duplicating it to stereo", path)
            if self.file.subtype in ("FLOAT", "DOUBLE"):  # integer PCM: no NaN/inf, within full scale: no scan
                self.raw_peak = self._scan()
        except BaseException:
            self.file.close()
            raise

    def _raw(self, start: int, stop: int) -> np.ndarray:
        try:
            self.file.seek(start)
            data = self.file.read(stop - start, dtype="float32", always_2d=True).T
        except (sf.LibsndfileError, RuntimeError) as err:  # e.g. a cut-short FLAC: "flac decoder lost sync"
            raise AudioError(f"{self.path} cannot be decoded from sample {start} of its {self.length} ({err}; "
                             f"truncated or damaged file?): re-export it") from None
        if data.shape[-1] != stop - start:
            raise AudioError(f"{self.path} ended after {start + data.shape[-1]} of its {self.length} samples "
                             f"(truncated file?): re-export it")
        return np.repeat(data, 2, axis=0) if data.shape[0] == 1 else data

    def _scan(self) -> float:
        """One pass over the file: the NaN/inf notice, and the largest finite |sample|."""
        count, first, peak = 0, None, 0.0
        for lo in range(0, self.length, SCAN_FRAMES):
            raw = self._raw(lo, min(lo + SCAN_FRAMES, self.length))
            bad = ~np.isfinite(raw)
            if first is None and bad.any():
                first = lo + int(np.flatnonzero(bad.any(axis=0))[0])
            count += int(np.count_nonzero(bad))
            peak = max(peak, _finite_peak(raw))
        if count:
            _non_finite_notice(self.path, count, first, self.file.samplerate)
        return peak

    def _read_inside(self, start: int, stop: int) -> np.ndarray:
        data = self._raw(start, stop)
        return np.where(np.isfinite(data), data, np.float32(0))

    def close(self) -> None:
        self.file.close()


def open_song(path: str | Path, sample_rate: int = SAMPLE_RATE, normalize: bool = False) -> Song:
    """A song to separate, streamed (`FileSong`) where libsndfile seeks exactly in its format and it is already
    at `sample_rate`; otherwise (mp3/mp4/.stem.mp4/ogg, or another rate: the resampler needs the whole signal)
    read whole with `read_song`, so its memory grows with its length, with a notice saying so. A song above
    MAX_PEAK is refused, or with `normalize` scaled (`input_scale`); a song within full scale is read as stored."""
    song = _open_song(Path(path), sample_rate)
    try:
        song.scale = input_scale(song.raw_peak, path, normalize)
    except BaseException:
        song.close()
        raise
    return song


def _open_song(path: Path, sample_rate: int) -> Song:
    check_path(path)
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        info = None
    if info is not None and info.format in STREAMED_FORMATS and info.samplerate == sample_rate:
        return FileSong(path)
    why = (f"it is at {info.samplerate} Hz (resampled whole)" if info is not None and info.format in STREAMED_FORMATS
           else f"its format ({info.format if info is not None else path.suffix or 'unknown'}) is not streamed")
    log.info("%s is read whole, not block by block: %s", path, why)
    return ArraySong(read_song(path, sample_rate))


# What a full disk, a quota or an I/O error raise while writing: libsndfile says only "System error."
WRITE_FAILURES = (OSError, sf.LibsndfileError)


@contextmanager
def wav_group_writer(paths: list[Path], sample_rate: int = SAMPLE_RATE,
                     subtype: str = "FLOAT") -> Iterator[Callable[[dict[Path, np.ndarray]], None]]:
    """Write several wavs block by block as one unit (mdxnet.atomic.atomic_group): yields `write({path: (2, n)
    block})`, to call with consecutive blocks; the files appear under their names only if the whole `with`
    succeeds, otherwise none of them (nor their temp files) is left. A failure to write them (disk full, quota,
    I/O error) raises WriteError naming their folder; an exception of the caller's passes through as it is."""
    paths = [Path(path) for path in paths]
    caller_failed = False
    try:
        with atomic_group(paths) as staged, ExitStack() as files:
            opened = {path: files.enter_context(sf.SoundFile(tmp, "w", sample_rate, 2, subtype, format="WAV"))
                      for path, tmp in staged.items()}

            def write(blocks: dict[Path, np.ndarray]) -> None:
                try:
                    for path, block in blocks.items():
                        opened[Path(path)].write(np.asarray(block, dtype=np.float32).T)
                except WRITE_FAILURES as err:
                    raise _write_error(paths, err) from err

            try:
                yield write
            except BaseException:
                caller_failed = True  # e.g. a song that fails to decode: not the output's fault
                raise
    except WRITE_FAILURES as err:  # opening the temp files, or closing (flushing) and moving them into place
        if caller_failed:
            raise
        raise _write_error(paths, err) from err


def _write_error(paths: list[Path], err: BaseException) -> WriteError:
    """One line naming the folder, why, and the free space left (libsndfile's "System error." does not say that
    the disk is full); `atomic_group` has removed every temp file by the time it is read."""
    folder = Path(os.path.commonpath(paths)) if len(paths) > 1 else paths[0].parent
    why = err.strerror if isinstance(err, OSError) and err.strerror else str(err).strip()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        free = f"{shutil.disk_usage(existing).free / 1e6:.1f} MB free on its disk"
    except OSError:
        free = "free space unknown"
    return WriteError(f"cannot write {folder}/ ({why}; {free}): nothing new was kept (no file, no temp file)")


def read_stem_file(path: str | Path, sample_rate: int = SAMPLE_RATE) -> dict[str, np.ndarray]:
    """Read a MUSDB `.stem.mp4` (mixture, drums, bass, other, vocals) as {name: (2, samples)} float32."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"stem file {path} does not exist")
    import stempeg

    try:
        stems, rate = stempeg.read_stems(str(path), dtype=np.float32, always_3d=True)
    except Exception as err:  # stempeg raises bare Exceptions/ffmpeg errors on corrupt input
        raise AudioError(f"cannot read stem file {path}: {err}") from err
    if stems.shape[0] != len(STEM_NAMES):
        raise AudioError(f"{path} has {stems.shape[0]} streams; a MUSDB stem file has 5 ({', '.join(STEM_NAMES)})")
    out = {}
    for name, stem in zip(STEM_NAMES, stems, strict=True):
        audio = to_stereo(stem.T, f"{path} [{name}]")
        out[name] = resample(audio, int(rate), sample_rate).astype(np.float32)
    return out
