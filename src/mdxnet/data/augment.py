"""The augmentation cache (the paper's pitch shift and time stretch), rendered once per training track.

For one track, every stem is pitch-shifted by each of augment.pitch_semitones and time-stretched by each of
augment.tempo_rates with pyrubberband (the rubberband CLI), one transform per variant as in the paper. Layout:

    <augment.root>/<track>/<variant>/{drums,bass,other,vocals}.wav    variant: 'pitch+1', 'tempo0.9', ...
    <augment.root>/<track>/manifest.json                              written last, atomically

No mixture is stored: the mixture of a variant is the sum of its augmented stems (the sampler sums them), and
all stems of a variant are cropped to the same length. Stems are 16-bit PCM (rubberband's input is already
quantised to 16 bits by pyrubberband). Every wav is written atomically, so an interrupted run leaves only
finished files; a rerun skips them, and a finished manifest that matches the config and the source track's
fingerprint makes the whole call a no-op. A changed source track invalidates the cache of that track.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from mdxnet.atomic import write_json_atomic
from mdxnet.audio import SAMPLE_RATE, write_wav
from mdxnet.data.musdb import is_stem_file, load_track, track_name
from mdxnet.errors import UserError

log = logging.getLogger(__name__)

STEMS = ("drums", "bass", "other", "vocals")
MANIFEST = "manifest.json"
STATE = ".source.json"  # fingerprint of the source the variants were made from
FINGERPRINT_BYTES = 1 << 16


def variants(params: dict) -> dict[str, tuple[str, float]]:
    """{variant name: (kind, value)} for the configured pitch shifts and tempo rates (identity ones skipped)."""
    config = params.augment
    out = {}
    for semitones in config.pitch_semitones:
        if semitones != 0:
            out[f"pitch{semitones:+g}"] = ("pitch", float(semitones))
    for rate in config.tempo_rates:
        if rate <= 0:
            raise UserError(f"augment.tempo_rates holds {rate}: rates must be positive (e.g. 0.9, 1.1)")
        if rate != 1:
            out[f"tempo{rate:g}"] = ("tempo", float(rate))
    return out


def cache_root(params: dict, out_root: str | Path | None = None) -> Path:
    return Path(out_root or params.augment.root)


def fingerprint(track: Path) -> str:
    """Cheap identity of a source track: file names, sizes and the first and last 64 KiB of each file."""
    files = [track] if is_stem_file(track) else [track / f"{s}.wav" for s in STEMS]
    digest = hashlib.sha256()
    for path in files:
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        with open(path, "rb") as handle:
            digest.update(handle.read(FINGERPRINT_BYTES))
            handle.seek(max(0, size - FINGERPRINT_BYTES))
            digest.update(handle.read())
    return digest.hexdigest()[:16]


def read_manifest(folder: Path) -> dict | None:
    return _read_json(Path(folder) / MANIFEST)


def transform(audio: np.ndarray, kind: str, value: float) -> np.ndarray:
    """(2, n) float audio -> pitch-shifted (by `value` semitones) or time-stretched (tempo x `value`)."""
    import pyrubberband

    if shutil.which("rubberband") is None:
        raise UserError("the rubberband CLI is not installed: apt-get install rubberband-cli (scripts/setup.sh)")
    y = np.ascontiguousarray(np.clip(audio.T, -1.0, 1.0), dtype=np.float32)
    if kind == "pitch":
        out = pyrubberband.pitch_shift(y, SAMPLE_RATE, value)
    else:
        out = pyrubberband.time_stretch(y, SAMPLE_RATE, value)
    return np.asarray(out, dtype=np.float32).T


def _render_variant(stems: dict[str, np.ndarray], kind: str, value: float, folder: Path) -> int:
    """Write the missing stems of one variant; all stems are cropped to the shortest one."""
    paths = {name: folder / f"{name}.wav" for name in STEMS}
    if all(p.is_file() for p in paths.values()):
        return min(sf.info(p).frames for p in paths.values())
    # render all stems again (cheap relative to correctness): equal lengths need every stem's output
    outputs = {name: transform(stems[name], kind, value) for name in STEMS}
    frames = min(a.shape[-1] for a in outputs.values())
    peak = max(float(np.abs(a).max()) for a in outputs.values())
    if peak >= 1.0:
        log.warning("%s: rubberband output peaks at %.2f; clipped to 16-bit range", folder, peak)
    for name in STEMS:
        if not paths[name].is_file():
            write_wav(paths[name], np.clip(outputs[name][:, :frames], -1.0, 32767 / 32768), subtype="PCM_16")
    return frames


def _prepare(folder: Path, expected: dict) -> dict | None:
    """Return a finished, matching manifest; otherwise drop a cache made from other source audio and start.

    The source fingerprint lives in STATE, which outlives the manifest: a workflow manager that deletes the
    manifest before rerunning the job must not make stale variant files look reusable.
    """
    manifest = read_manifest(folder)
    if manifest and all(manifest.get(k) == v for k, v in expected.items()):
        return manifest
    state = _read_json(folder / STATE)
    if folder.is_dir() and any(folder.iterdir()) and (state or {}).get("fingerprint") != expected["fingerprint"]:
        log.info("%s was made from other source audio (or cannot be verified): clearing it", folder)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    write_json_atomic(folder / STATE, {"fingerprint": expected["fingerprint"], "track": expected["track"]})
    return None


def _read_json(path: Path) -> dict | None:
    """The JSON at `path`, or None when absent or damaged (an interrupted write never leaves one)."""
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except json.JSONDecodeError:
        return None


def augment_track(track: str | Path, params: dict, out_root: str | Path | None = None,
                  progress: bool = True) -> dict:
    """Cache every configured variant of one track; returns the manifest (already there or just written)."""
    from tqdm import tqdm

    track = Path(track)
    if not track.exists():
        raise UserError(f"track {track} not found: list training tracks with `mdxnet data list`")
    name = track_name(track)
    folder = cache_root(params, out_root) / name
    wanted = variants(params)
    expected = {"track": name, "fingerprint": fingerprint(track),
                "variants_config": {k: list(v) for k, v in wanted.items()}}
    manifest = _prepare(folder, expected)
    if manifest is not None:
        log.info("%s: augmentation cache is complete", folder)
        return manifest
    stems = load_track(track)
    results = {}
    for variant, (kind, value) in tqdm(wanted.items(), desc=f"augment {name}", unit="variant",
                                      disable=not progress):
        frames = _render_variant(stems, kind, value, folder / variant)
        results[variant] = {"kind": kind, "value": value, "frames": frames}
    for stale in folder.iterdir():
        if stale.is_dir() and stale.name not in wanted:
            shutil.rmtree(stale)
    manifest = {**expected, "source": str(track), "folder": str(folder), "sample_rate": SAMPLE_RATE,
                "stems": list(STEMS), "variants": results,
                "seconds": sum(r["frames"] for r in results.values()) / SAMPLE_RATE * len(STEMS)}
    write_json_atomic(folder / MANIFEST, manifest)
    return manifest


def cached_variants(params: dict, name: str, out_root: str | Path | None = None) -> dict[str, Path]:
    """{variant: folder} of a finished cache for track `name` (empty when the manifest is absent)."""
    folder = cache_root(params, out_root) / name
    manifest = read_manifest(folder)
    if manifest is None:
        return {}
    return {variant: folder / variant for variant in manifest["variants"] if variant in variants(params)}
