"""The augmentation cache: pitch-shifted and time-stretched copies of each training track, rendered once.

Grid (params augment.*): the axes pitch_semitones (0 = unchanged) and tempo_rates (1.0 = unchanged; rate r plays
r times as fast, so the variant lasts 1/r of the track; an empty axis means "unchanged" only), combined by
augment.grid:
- product: every (pitch, rate) pair except the unchanged one. With the base values (-2..+2 semitones x rates
  0.8..1.2) this is the authors' grid, kuielab/mdx-net Leaderboard_A src/utils/data_augmentation.py: 24 variants
  + the original, each made by one soundstretch call `-pitch=p -tempo=t` (t in percent, +10 = 10 % faster =
  rate 1.1, as their shift() docstring says; the comment on their list T says "slower", but the list is
  symmetric, so the set of variants is the same), with `-speech` for vocals;
- axes: each non-zero pitch alone and each non-1 rate alone (mdxnet's own, earlier and cheaper set).

Every stem of a variant is made by ONE rubberband call (through pyrubberband) that changes pitch and tempo
together, as the authors' one soundstretch call does. Deviation from the authors: the tool is rubberband (R2
engine, the CLI's default), not soundstretch (SoundTouch's WSOLA), so the artefacts differ; the sources in
augment.speech_sources get rubberband's short analysis window in place of `-speech` (see `rubberband_args`).
Rubberband 3 also lowers the gain of an output that would clip, where soundstretch clips.

Layout:

    <augment.root>/<track>/<variant>/{drums,bass,other,vocals}.flac   variant: 'p+1_t1.1', 'p-2_t1', ...
    <augment.root>/<track>/<variant>/.render.json                     rubberband arguments of each stem
    <augment.root>/<track>/manifest.json                              written last, atomically

No mixture is stored: the mixture of a variant is the sum of its augmented stems (the sampler sums them), and
all stems of a variant are cropped to the same length. Stems are 16-bit PCM (rubberband's input is already
quantised to 16 bits by pyrubberband, as the authors' input to soundstretch) in FLAC, lossless: the same samples
as a 16-bit wav (the authors write wav) in 0.28-0.47 of its size, read ~3x slower but still at ~1000 s of audio
per second per core (bench/README.md, bench/bench_cache_format.py). Every file is written atomically,
so an interrupted run leaves only finished files; a rerun skips them, and a finished manifest that matches the
grid, the rubberband arguments and the source track's fingerprint makes the whole call a no-op. A changed source
track invalidates the cache of that track; a variant rendered with other arguments is rendered again; a variant
no longer in the grid is deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from mdxnet.atomic import write_atomic, write_json_atomic
from mdxnet.audio import SAMPLE_RATE
from mdxnet.config import Augment
from mdxnet.data import diskspace
from mdxnet.data.musdb import is_stem_file, load_track, track_name, track_seconds
from mdxnet.errors import UserError

log = logging.getLogger(__name__)

STEMS = ("drums", "bass", "other", "vocals")
MANIFEST = "manifest.json"
STATE = ".source.json"  # fingerprint of the source the variants were made from
RENDER = ".render.json"  # per variant: the rubberband arguments its stems were (or are being) made with
# Cached stems are 16-bit FLAC (lossless; bench/README.md "Augmentation cache format"): libsndfile seeks in it to
# the exact sample, so the sampler's random chunk reads are unchanged. Recorded in the manifest, so that a cache
# written as wav by an earlier version is rendered again.
STEM_FORMAT = {"suffix": ".flac", "format": "FLAC", "subtype": "PCM_16"}
FINGERPRINT_BYTES = 1 << 16
# soundstretch -speech (SoundTouch) shortens the WSOLA sequence/seek/overlap windows to 40/15/8 ms: a finer time
# resolution for voice, nothing about formants. Rubberband's matching knob is its analysis window length, so a
# speech source gets --window-short (R2 engine). Not --crisp 6: that adds --no-lamination, which rubberband's
# help recommends for drums; not --formant: formant preservation is an effect soundstretch does not have.
SPEECH_ARGS = {"--window-short": ""}


def variant_name(semitones: float, rate: float) -> str:
    return f"p{semitones:+g}_t{rate:g}"


def variants(augment: Augment) -> dict[str, tuple[float, float]]:
    """{variant name: (semitones, tempo rate)} of the configured grid, pitch-major, without the unchanged pair."""
    pitches = [float(p) for p in augment.pitch_semitones] or [0.0]
    rates = [float(r) for r in augment.tempo_rates] or [1.0]
    if augment.grid == "product":
        pairs = [(p, r) for p in pitches for r in rates]
    else:  # axes
        pairs = [(p, 1.0) for p in pitches] + [(0.0, r) for r in rates]
    return {variant_name(p, r): (p, r) for p, r in pairs if (p, r) != (0.0, 1.0)}


def rubberband_args(semitones: float, rate: float, speech: bool) -> dict[str, str]:
    """The rubberband options of one stem of one variant: pitch and tempo in the same call."""
    args = {"--tempo": f"{rate:g}", "--pitch": f"{semitones:g}"}
    return {**args, **SPEECH_ARGS} if speech else args


def render_plan(augment: Augment, semitones: float, rate: float) -> dict[str, list[str]]:
    """{stem: rubberband options as a flat list} of one variant (stored in RENDER and the manifest)."""
    speech = set(augment.speech_sources)
    return {stem: [s for item in rubberband_args(semitones, rate, stem in speech).items() for s in item if s]
            for stem in STEMS}


def cache_root(augment: Augment, out_root: str | Path | None = None) -> Path:
    return Path(out_root or augment.root)


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


def rubberband_version() -> str:
    """`rubberband --version` (recorded in the manifest: another version renders slightly different audio)."""
    if shutil.which("rubberband") is None:
        raise UserError("the rubberband CLI is not installed: apt-get install rubberband-cli (scripts/setup.sh)")
    done = subprocess.run(["rubberband", "--version"], capture_output=True, text=True)
    return (done.stdout + done.stderr).strip()


def transform(audio: np.ndarray, semitones: float, rate: float, speech: bool) -> np.ndarray:
    """(2, n) float audio -> shifted by `semitones` and played `rate` times as fast, in one rubberband call."""
    import pyrubberband

    y = np.ascontiguousarray(np.clip(audio.T, -1.0, 1.0), dtype=np.float32)
    args = rubberband_args(semitones, rate, speech)
    # pyrubberband's wrappers return the input untouched when their own ratio is the identity, and otherwise pass
    # our rbargs (which already hold both ratios) to a single rubberband call: call the one whose ratio changes.
    if semitones != 0:
        out = pyrubberband.pitch_shift(y, SAMPLE_RATE, semitones, rbargs=args)
    else:
        out = pyrubberband.time_stretch(y, SAMPLE_RATE, rate, rbargs=args)
    return np.asarray(out, dtype=np.float32).T


def _render_variant(stems: dict[str, np.ndarray], semitones: float, rate: float, plan: dict, speech: set,
                    folder: Path) -> int:
    """Write the missing stems of one variant (all of them if made with other arguments); equal lengths."""
    paths = {name: stem_path(folder, name) for name in STEMS}
    if _read_json(folder / RENDER) != plan:  # other arguments, or stems of unknown origin: start this variant over
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        write_json_atomic(folder / RENDER, plan)
    for other_format in (p for p in folder.iterdir() if p.suffix in (".wav", ".flac") and p not in paths.values()):
        other_format.unlink()  # a cache written in the other format
    if all(p.is_file() for p in paths.values()):
        return min(sf.info(p).frames for p in paths.values())
    # render every stem again (cheap relative to correctness): the common length needs every stem's output
    outputs = {name: transform(stems[name], semitones, rate, name in speech) for name in STEMS}
    frames = min(a.shape[-1] for a in outputs.values())
    peak = max(float(np.abs(a).max()) for a in outputs.values())
    if peak >= 1.0:
        log.warning("%s: rubberband output peaks at %.2f; clipped to 16-bit range", folder, peak)
    for name in STEMS:
        if not paths[name].is_file():
            write_stem(paths[name], np.clip(outputs[name][:, :frames], -1.0, 32767 / 32768))
    return frames


def stem_path(variant_folder: Path, stem: str) -> Path:
    """Where a cached variant keeps one stem."""
    return Path(variant_folder) / f"{stem}{STEM_FORMAT['suffix']}"


def write_stem(path: Path, audio: np.ndarray) -> None:
    data = np.asarray(audio, dtype=np.float32).T
    write_atomic(path, lambda tmp: sf.write(tmp, data, SAMPLE_RATE, subtype=STEM_FORMAT["subtype"],
                                            format=STEM_FORMAT["format"]))


def _finished(folder: Path, expected: dict) -> dict | None:
    """The manifest of `folder` when it is finished and matches `expected` (then the cache is complete)."""
    manifest = read_manifest(folder)
    return manifest if manifest and all(manifest.get(k) == v for k, v in expected.items()) else None


def _prepare(folder: Path, expected: dict) -> dict | None:
    """Return a finished, matching manifest; otherwise drop a cache made from other source audio and start.

    The source fingerprint lives in STATE, which outlives the manifest: a workflow manager that deletes the
    manifest before rerunning the job must not make stale variant files look reusable.
    """
    manifest = _finished(folder, expected)
    if manifest is not None:
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


def expected_manifest(track: Path, augment: Augment) -> dict:
    """What a finished cache of `track` records about how it was made: a manifest that differs is redone."""
    plans = {variant: render_plan(augment, *shift) for variant, shift in variants(augment).items()}
    return {"track": track_name(track), "fingerprint": fingerprint(track), "grid": plans,
            "format": STEM_FORMAT["format"]}


def pending_bytes(tracks: Sequence[Path], augment: Augment, out_root: str | Path | None = None) -> tuple[int, int]:
    """(estimated bytes still to write, number of tracks) for those of `tracks` without a finished, matching
    cache; what an unfinished track's folder already holds is counted as written."""
    rates = [rate for _, rate in variants(augment).values()]
    needed, pending = 0, 0
    for track in dict.fromkeys(Path(t) for t in tracks):  # a track given twice is rendered once
        folder = cache_root(augment, out_root) / track_name(track)
        if _finished(folder, expected_manifest(track, augment)) is not None:
            continue
        written = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
        needed += max(0, diskspace.cache_bytes(track_seconds(track), rates) - written)
        pending += 1
    return needed, pending


def require_room(tracks: Sequence[Path], augment: Augment, out_root: str | Path | None = None) -> None:
    """Refuse (UserError, nothing written) when the cache of the unfinished ones of `tracks` would not fit on the
    disk of the cache folder: one `mdxnet augment --track` job per track, so the first job must see them all."""
    needed, pending = pending_bytes(tracks, augment, out_root)
    what = f"{pending} track(s) still to render x {len(variants(augment))} variants"
    diskspace.require_room(cache_root(augment, out_root), needed, what)


def augment_track(track: str | Path, augment: Augment, out_root: str | Path | None = None, progress: bool = True,
                  cohort: Sequence[Path] = ()) -> dict:
    """Cache every configured variant of one track; returns the manifest (already there or just written).

    `cohort`: the other tracks whose caches go to the same folder (the split's training tracks): before anything
    is rendered, the unfinished caches of the track and of its cohort must fit on the disk (else UserError).
    """
    from tqdm import tqdm

    track = Path(track)
    if not track.exists():
        raise UserError(f"track {track} not found: list training tracks with `mdxnet data list`")
    name = track_name(track)
    folder = cache_root(augment, out_root) / name
    wanted = variants(augment)
    expected = expected_manifest(track, augment)
    plans = expected["grid"]
    if _finished(folder, expected) is None:
        require_room([track, *cohort], augment, out_root)
    manifest = _prepare(folder, expected)
    if manifest is not None:
        log.info("%s: augmentation cache is complete", folder)
        return manifest
    version = rubberband_version()
    speech = set(augment.speech_sources)
    stems = load_track(track)
    results = {}
    try:
        for variant, (semitones, rate) in tqdm(wanted.items(), desc=f"augment {name}", unit="variant",
                                               disable=not progress):
            frames = _render_variant(stems, semitones, rate, plans[variant], speech, folder / variant)
            results[variant] = {"semitones": semitones, "rate": rate, "frames": frames}
    except (OSError, sf.LibsndfileError) as err:
        # The room check estimates FLAC at FLAC_RATIO of WAV; audio that compresses worse (noise) can still fill
        # the disk. This track's cache goes whole (no partial cache, and its space back), named.
        shutil.rmtree(folder, ignore_errors=True)
        raise UserError(f"writing the augmentation cache of {name} in {folder} failed ({err}; "
                        f"{diskspace.gigabytes(diskspace.free_bytes(folder))} free now): its partial cache was "
                        f"removed. Free space there or put the cache on a larger disk (augment.root), then rerun "
                        f"(audio that compresses worse than the estimate's FLAC ratio needs up to twice its room)") \
            from None
    for stale in folder.iterdir():
        if stale.is_dir() and stale.name not in wanted:
            shutil.rmtree(stale)
    manifest = {**expected, "source": str(track), "folder": str(folder), "sample_rate": SAMPLE_RATE,
                "rubberband": version, "stems": list(STEMS), "variants": results,
                "seconds": sum(r["frames"] for r in results.values()) / SAMPLE_RATE * len(STEMS)}
    write_json_atomic(folder / MANIFEST, manifest)
    return manifest


def cached_variants(augment: Augment, name: str, out_root: str | Path | None = None) -> dict[str, Path]:
    """{variant: folder} of a finished cache for track `name`: the variants of the configured grid it holds, made
    with the configured arguments (empty when the manifest is absent)."""
    folder = cache_root(augment, out_root) / name
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("format") != STEM_FORMAT["format"]:
        return {}
    recorded = manifest.get("grid", {})
    return {variant: folder / variant for variant, shift in variants(augment).items()
            if variant in manifest["variants"] and recorded.get(variant) == render_plan(augment, *shift)}
