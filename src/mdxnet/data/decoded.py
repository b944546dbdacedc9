"""MUSDB18 stem files decoded once to wav for training (`decoded_track`).

Training reads random chunks with a soundfile seek, which a `.stem.mp4` cannot give (an ffmpeg process per chunk;
the measured cost is in `mdxnet.data.sampler`'s docstring), so each training stem file is decoded once into
<data.decoded_root>/<track>/<stem>.wav. The workflow's per-track `mdxnet augment` job decodes it (so the four
separator trainings find it done instead of decoding it side by side); training decodes whatever is still missing.
Kept free of torch: the augment command imports it.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import soundfile as sf

from mdxnet.atomic import write_json_atomic
from mdxnet.audio import SAMPLE_RATE, STEM_NAMES
from mdxnet.data import diskspace
from mdxnet.data.files import write_pcm16_atomic
from mdxnet.data.musdb import load_track, pcm16, track_name, track_seconds
from mdxnet.errors import UserError, read_json

log = logging.getLogger(__name__)

DECODED_STAMP = "decoded.json"


def _stamp(stem_file: Path) -> dict:
    info = stem_file.stat()
    return {"source": str(stem_file.resolve()), "bytes": info.st_size, "mtime_ns": info.st_mtime_ns}


def _done(stem_file: Path, decoded_root: str | Path) -> bool:
    folder = Path(decoded_root) / track_name(stem_file)
    try:
        return read_json(folder / DECODED_STAMP, "", "") == _stamp(stem_file) and \
            all((folder / f"{n}.wav").is_file() for n in STEM_NAMES)
    except UserError:
        return False


def require_decoded_room(stem_files, decoded_root: str | Path) -> None:
    """Before any work (the augmentation of a track takes minutes): the stem files still to decode need a
    decoded_root that can be made and written, with room for their 16-bit wavs (their exact size: 5 stereo
    stems); else a UserError naming params data.decoded_root."""
    todo = [Path(f) for f in stem_files if not _done(Path(f), decoded_root)]
    if not todo:
        return
    folder = Path(decoded_root).absolute()
    existing = diskspace.existing_parent(folder)
    fix = "set data.decoded_root in params.yaml to a folder you can write to, with room"
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"data.decoded_root {folder} cannot be written ({existing} is not a writable folder), and "
                        f"{len(todo)} stem file(s) must be decoded into it for training: {fix}")
    needed = round(sum(track_seconds(f) for f in todo) * SAMPLE_RATE * 2 * 2 * len(STEM_NAMES))
    free = diskspace.free_bytes(folder)
    if free < diskspace.with_margin(needed):
        raise UserError(f"data.decoded_root {folder}: {len(todo)} stem file(s) decode to "
                        f"~{diskspace.gigabytes(needed)} of wav, but only {diskspace.gigabytes(free)} are free on "
                        f"the file system of {existing}; nothing was written: {fix}")


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
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, audio in load_track(stem_file).items():
            write_pcm16_atomic(folder / f"{name}.wav", pcm16(audio))  # exact: the values are multiples of 1/32768
        write_json_atomic(stamp_path, stamp)
    except (OSError, sf.LibsndfileError) as err:  # read-only, full, quota: nothing half-decoded is left to pass for a decoded track
        shutil.rmtree(folder, ignore_errors=True)
        raise UserError(f"cannot decode {stem_file} into {folder} ({err}): nothing of it was kept; set "
                        "data.decoded_root in params.yaml to a folder you can write to, with room") from None
    return folder
