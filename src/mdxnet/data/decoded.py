"""MUSDB18 stem files decoded once to wav for training (`decoded_track`).

Training reads random chunks with a soundfile seek, which a `.stem.mp4` cannot give (an ffmpeg process per chunk;
the measured cost is in `mdxnet.data.sampler`'s docstring), so each training stem file is decoded once into
<data.decoded_root>/<track>/<stem>.wav. The workflow's per-track `mdxnet augment` job decodes it (so the four
separator trainings find it done instead of decoding it side by side); training decodes whatever is still missing.
Kept free of torch: the augment command imports it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mdxnet.atomic import write_json_atomic
from mdxnet.audio import STEM_NAMES
from mdxnet.data.files import write_pcm16_atomic
from mdxnet.data.musdb import load_track, pcm16, track_name
from mdxnet.errors import read_json

log = logging.getLogger(__name__)

DECODED_STAMP = "decoded.json"


def _stamp(stem_file: Path) -> dict:
    info = stem_file.stat()
    return {"source": str(stem_file.resolve()), "bytes": info.st_size, "mtime_ns": info.st_mtime_ns}


def decoded_track(stem_file: Path, decoded_root: str | Path) -> Path:
    """The folder of `stem_file`'s five stems as 16-bit wavs (<decoded_root>/<track>/), decoding it first when
    it is absent or stale. Each wav is written atomically and the stamp last, so an interrupted decode (or two
    trainings decoding the same track at once) never leaves a folder that passes for complete."""
    folder = Path(decoded_root) / track_name(stem_file)
    stamp_path = folder / DECODED_STAMP
    stamp = _stamp(stem_file)
    if stamp_path.is_file() and all((folder / f"{n}.wav").is_file() for n in STEM_NAMES):
        if read_json(stamp_path, "decoded-track stamp", f"delete {folder} and rerun") == stamp:
            return folder
    log.info("decoding %s to %s (once; training reads the wavs)", stem_file, folder)
    stamp_path.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    for name, audio in load_track(stem_file).items():
        write_pcm16_atomic(folder / f"{name}.wav", pcm16(audio))  # exact: the values are multiples of 1/32768
    write_json_atomic(stamp_path, stamp)
    return folder
