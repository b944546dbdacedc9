"""Audio I/O shared by every stage: reading any song as float32 stereo at the model rate, atomic wav writes,
and MUSDB `.stem.mp4` files.

Arrays are always shaped (channels=2, samples), float32.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from mdxnet.atomic import write_atomic
from mdxnet.errors import AudioError

log = logging.getLogger(__name__)

SAMPLE_RATE = 44100
# Stream order of the NI stems format, as musdb reads it.
STEM_NAMES = ("mixture", "drums", "bass", "other", "vocals")


def to_stereo(audio: np.ndarray, path: str | Path = "<array>") -> np.ndarray:
    """(channels, samples) -> (2, samples): mono is duplicated, more than two channels is refused."""
    if audio.ndim == 1:
        audio = audio[None, :]
    channels = audio.shape[0]
    if channels == 1:
        log.warning("%s is mono: duplicating it to stereo", path)
        return np.repeat(audio, 2, axis=0)
    if channels != 2:
        raise AudioError(f"{path} has {channels} channels; mdxnet separates mono or stereo audio only")
    return audio


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


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read any audio file as float32 (2, samples) at `sample_rate`, upmixing mono and resampling with a notice."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file {path} does not exist")
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        audio = data.T
    except (sf.LibsndfileError, RuntimeError, TypeError):
        audio, rate = _decode_with_ffmpeg(path)
    if audio.shape[-1] == 0:
        raise AudioError(f"{path} holds no audio samples")
    audio = to_stereo(audio, path)
    if rate != sample_rate:
        log.warning("%s is at %d Hz: resampling to %d Hz", path, rate, sample_rate)
        audio = resample(audio, rate, sample_rate)
    return np.ascontiguousarray(audio, dtype=np.float32)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE, subtype: str = "FLOAT") -> None:
    """Write (channels, samples) audio atomically: an interrupted write leaves no half-written file."""
    data = np.asarray(audio, dtype=np.float32).T
    write_atomic(path, lambda tmp: sf.write(tmp, data, sample_rate, subtype=subtype, format="WAV"))


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
