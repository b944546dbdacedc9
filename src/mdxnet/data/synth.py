"""The embedded default dataset: deterministic multitrack songs rendered with real sampled instruments.

Each song is composed as MIDI (`mdxnet.data.compose`), and each stem is rendered on its own by the fluidsynth
CLI with a General MIDI soundfont (FluidR3_GM from Debian's fluid-soundfont-gm). The vocal stem is a voice patch
(Choir Aahs / Voice Oohs / Synth Voice) singing a melody with vibrato, plus a layer of sung-syllable-like words
from espeak-ng aligned with the phrases, so it carries formants and consonants that no instrument in 'other' has.

Stems are balanced to random levels, quantised to 16-bit PCM (like MUSDB18-HQ) and the mixture is the exact
integer sum of the quantised stems. The layout is MUSDB18-HQ's (data.dataset: musdb18hq) or MUSDB18's
(data.dataset: musdb18: <root>/{train,test}/<track>.stem.mp4, five AAC streams at 256 kbit/s as in the
release, encoded by ffmpeg from the wav tracks kept in <root>/.wav-tracks/, so the AAC mixture matches the sum
of the decoded stems only approximately, as in the real MUSDB18; the stem files written are listed with their
sha256 in `<root>/.synth-stems.json`, and only those are ever removed). The split (train / valid inside train/, test)
is recorded in `<root>/mdxnet_dataset.json`, written last. A song is a pure function of (seed, index, seconds),
so reruns give byte-identical files, and finished tracks (marked by `<track>/.synth.json`) are skipped.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

import numpy as np
import soundfile as sf

from mdxnet.atomic import write_atomic, write_json_atomic
from mdxnet.audio import SAMPLE_RATE, STEM_NAMES, read_audio, resample
from mdxnet.config import Data
from mdxnet.config import Synth as SynthConfig
from mdxnet.data.compose import beat_seconds, compose, to_midi
from mdxnet.data.files import write_pcm16_atomic
from mdxnet.data.musdb import DATASET_FILE, STEM_SUFFIX, list_tracks, pcm16, track_name
from mdxnet.errors import UserError

log = logging.getLogger(__name__)

GENERATOR_VERSION = 2
TRACK_MARKER = ".synth.json"
STEMS = ("drums", "bass", "other", "vocals")
# Loudness of each stem before the song-level peak normalisation: RMS target and a random offset range (dB).
STEM_RMS_DB = -20.0
STEM_GAIN_DB = {"drums": (-4.0, 1.0), "bass": (-5.0, 0.0), "other": (-6.0, 0.0), "vocals": (-2.0, 2.0)}
PEAK = 0.9
FADE_SECONDS = 0.02
SYLLABLES = ["la", "na", "da", "oh", "ah", "yeah", "hey", "love", "you", "me", "go", "so", "no", "my", "night",
             "light", "high", "sky", "fly", "away", "stay", "day", "way", "home", "dream", "heart", "time",
             "run", "fire", "rain", "baby", "shine", "tonight", "alone", "down", "feel", "free", "sun"]
ESPEAK_VOICES = ["en-us", "en", "en-us+f2", "en-us+f3", "en-us+f4", "en+m3", "en+m5", "en-us+m7"]


def track_marker(config: SynthConfig, index: int) -> dict:
    """What a finished track was made from; a track whose marker differs is regenerated."""
    return {"generator_version": GENERATOR_VERSION, "seed": config.seed, "index": index,
            "seconds": config.seconds, "sample_rate": SAMPLE_RATE, "syllables": config.syllables,
            "soundfont": Path(config.soundfont).name}


def synth_config(synth: SynthConfig, **overrides) -> SynthConfig:
    """data.synth values, with CLI overrides (None means: keep the params value)."""
    config = synth.evolve(**{k: v for k, v in overrides.items() if v is not None})
    if config.tracks < 1 or config.seconds <= 0:
        raise UserError("data synth needs --tracks >= 1 and --seconds > 0")
    if config.valid_tracks + config.test_tracks >= config.tracks:
        raise UserError(f"data.synth: valid_tracks ({config.valid_tracks}) + test_tracks ({config.test_tracks}) "
                        f"must leave at least one training track out of {config.tracks}")
    return config


def track_names(config: SynthConfig) -> dict[str, list[str]]:
    """train / valid / test names: the last test_tracks are test, the valid_tracks before them valid."""
    names = [f"synth{i:03d}" for i in range(config.tracks)]
    n_train = config.tracks - config.valid_tracks - config.test_tracks
    return {"train": names[:n_train], "valid": names[n_train:n_train + config.valid_tracks],
            "test": names[n_train + config.valid_tracks:]}


def planned_track_names(data: Data, subset: str) -> list[str]:
    """Track names of a subset known before the dataset exists (for workflow planning, e.g. Snakemake).

    data.origin 'synth': the names the generator will produce (a pure function of data.synth); otherwise the
    dataset must exist and is listed.
    """

    if data.origin == "synth":
        return track_names(synth_config(data.synth))[subset]
    return [track_name(t) for t in list_tracks(data.root, subset, data.valid_split)]


def track_dir(root: Path, config: SynthConfig, index: int) -> Path:
    name = f"synth{index:03d}"
    folder = "test" if name in track_names(config)["test"] else "train"
    return root / folder / name


def check_tools(config: SynthConfig) -> None:
    if shutil.which("fluidsynth") is None:
        raise UserError("fluidsynth is not installed: apt-get install fluidsynth (see scripts/setup.sh)")
    if not Path(config.soundfont).is_file():
        raise UserError(f"soundfont {config.soundfont} not found: apt-get install fluid-soundfont-gm or set "
                        "data.synth.soundfont in params.yaml")
    if config.syllables and shutil.which("espeak-ng") is None:
        raise UserError("espeak-ng is not installed (apt-get install espeak-ng), or set data.synth.syllables: false")


# ------------------------------------------------------------------------------------------------ rendering
def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"{what} failed ({' '.join(cmd[:2])} ...): {result.stderr.strip()[-500:]}")


def _render_stem(parts, song, soundfont: str, tmp: Path, stem: str) -> np.ndarray:
    midi_path, wav_path = tmp / f"{stem}.mid", tmp / f"{stem}.wav"
    to_midi(parts, song.tempo, song.beats_per_bar).save(midi_path)
    _run(["fluidsynth", "-ni", "-q", "-F", str(wav_path), "-r", str(SAMPLE_RATE), "-O", "float", "-T", "wav",
          soundfont, str(midi_path)], f"rendering {stem} with fluidsynth")
    return read_audio(wav_path).astype(np.float64)


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad (2, m) audio to (2, n)."""
    out = np.zeros((2, n))
    m = min(n, audio.shape[-1])
    out[:, :m] = audio[:, :m]
    return out


def _sung_ssml(words: list[str], offsets: list[float]) -> str:
    """SSML for espeak-ng: a flat intonation (range x-low) moved per word by the melody's semitone steps.

    espeak compresses requested steps to about 0.8 of their size; the 1.25 factor restores the contour.
    """
    sung = " ".join(f'<prosody pitch="{1.25 * st:+.1f}st">{word}</prosody>' for word, st in zip(words, offsets, strict=True))
    return f'<speak><prosody range="x-low">{sung}</prosody></speak>'


def _espeak(ssml: str, voice: str, pitch: int, speed: int, tmp: Path) -> np.ndarray:
    wav = tmp / "words.wav"
    _run(["espeak-ng", "-m", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(wav), ssml], "espeak-ng")
    data, rate = sf.read(wav, dtype="float64", always_2d=True)
    return resample(data.T[:1], rate, SAMPLE_RATE)[0]


def _syllable_layer(rng, phrases, tempo: float, n: int, tmp: Path) -> np.ndarray:
    """espeak-ng words, one per sung note, following the phrase's melody contour, fitted into each phrase."""
    layer = np.zeros(n)
    voice = ESPEAK_VOICES[int(rng.integers(len(ESPEAK_VOICES)))]
    for start_beat, beats, notes in phrases:
        start = int(start_beat * beat_seconds(tempo) * SAMPLE_RATE)
        if not notes or start >= n:
            continue
        length = int(beats * beat_seconds(tempo) * SAMPLE_RATE)
        words = [SYLLABLES[int(rng.integers(len(SYLLABLES)))] for _ in notes]
        mean_pitch = float(np.mean([note.pitch for note in notes]))
        pitch = int(np.clip((mean_pitch - 52) * 3, 10, 90))
        speed = int(np.clip(60 * len(notes) / (length / SAMPLE_RATE), 90, 320))
        ssml = _sung_ssml(words, [note.pitch - mean_pitch for note in notes])
        speech = _espeak(ssml, voice, pitch, speed, tmp)[:length]
        fade = min(len(speech), int(0.03 * SAMPLE_RATE))
        speech[len(speech) - fade:] *= np.linspace(1, 0, fade)
        end = min(n, start + len(speech))
        layer[start:end] += speech[: end - start]
    return layer


def _rms_db(audio: np.ndarray) -> float:
    return 10 * np.log10(np.mean(audio**2) + 1e-12)


def _balance(rng, stems: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each stem to a random level around STEM_RMS_DB, then one gain so no stem or the mixture exceeds PEAK."""
    out = {}
    for name, audio in stems.items():
        low, high = STEM_GAIN_DB[name]
        target = STEM_RMS_DB + rng.uniform(low, high)
        out[name] = audio * 10 ** ((target - _rms_db(audio)) / 20) if _rms_db(audio) > -100 else audio
    peak = max(np.abs(sum(out.values())).max(), *(np.abs(a).max() for a in out.values()), 1e-9)
    return {name: audio * (PEAK / peak) for name, audio in out.items()}


def render_track(config: SynthConfig, index: int, out_dir: Path) -> dict:
    """Compose and render song `index` into `out_dir` (5 wavs + marker); returns its description."""
    rng = np.random.default_rng([config.seed, index])
    song, phrases = compose(rng, config.seconds)
    n = int(round(config.seconds * SAMPLE_RATE))
    with tempfile.TemporaryDirectory(prefix="mdxnet-synth-") as tmp:
        stems = {name: _fit(_render_stem(song.stems[name], song, config.soundfont, Path(tmp), name), n)
                 for name in STEMS}
        if config.syllables:
            words = _syllable_layer(rng, phrases, song.tempo, n, Path(tmp))
            level = rng.uniform(-9, -4) + _rms_db(stems["vocals"]) - _rms_db(words)
            stems["vocals"] += words * 10 ** (level / 20)
    stems = _balance(rng, stems)
    fade = np.linspace(1.0, 0.0, int(FADE_SECONDS * SAMPLE_RATE))
    quantised = {}
    for name, audio in stems.items():
        audio[:, n - len(fade):] *= fade
        quantised[name] = pcm16(audio)
    mixture = sum(q.astype(np.int32) for q in quantised.values())
    if np.abs(mixture).max() > 32767:
        raise RuntimeError(f"mixture of {out_dir.name} clips after quantisation")  # cannot happen with PEAK < 1
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, samples in {**quantised, "mixture": mixture.astype(np.int16)}.items():
        write_pcm16_atomic(out_dir / f"{name}.wav", samples)
    write_json_atomic(out_dir / TRACK_MARKER, track_marker(config, index))
    return song.description


def _is_finished(path: Path, config: SynthConfig, index: int) -> bool:
    marker = path / TRACK_MARKER
    if not marker.is_file() or not all((path / f"{s}.wav").is_file() for s in (*STEMS, "mixture")):
        return False
    try:
        return json.loads(marker.read_text()) == track_marker(config, index)
    except json.JSONDecodeError:
        return False


def _remove_stale(root: Path, keep: set[Path]) -> None:
    """Generated tracks (those with a marker) that the current config does not produce any more."""
    for folder in ("train", "test"):
        if not (root / folder).is_dir():
            continue
        for path in (root / folder).iterdir():
            if (path / TRACK_MARKER).is_file() and path not in keep:
                log.info("removing stale generated track %s", path)
                shutil.rmtree(path)


def generate_dataset(root: str | Path, config: SynthConfig, progress: bool = True, layout: str = "musdb18hq") -> dict:
    """Make (or complete) the dataset at `root` in `layout` (params data.dataset); returns the dataset
    description written to DATASET_FILE."""
    from tqdm import tqdm

    check_tools(config)
    root = Path(root)
    if layout == "musdb18":
        return _generate_stem_dataset(root, config, progress)
    if (root / WAV_STAGING).is_dir():  # an earlier MUSDB18-layout generation at the same root: its files go
        _remove_generated_stems(root, keep=set())
        shutil.rmtree(root / WAV_STAGING)
    for folder in ("train", "test"):  # both exist even when a subset is empty
        (root / folder).mkdir(parents=True, exist_ok=True)
    dirs = {index: track_dir(root, config, index) for index in range(config.tracks)}
    todo = [i for i, path in dirs.items() if not _is_finished(path, config, i)]
    descriptions = _load_descriptions(root)
    (root / DATASET_FILE).unlink(missing_ok=True)  # the dataset is incomplete until the file is rewritten
    with ProcessPoolExecutor(max_workers=max(1, min(config.jobs, len(todo) or 1))) as pool:
        futures = {pool.submit(render_track, config, i, dirs[i]): i for i in todo}
        bar = tqdm(total=len(todo), desc="synth tracks", unit="track", disable=not progress or not todo)
        for future in as_completed(futures):
            descriptions[dirs[futures[future]].name] = future.result()
            bar.update()
        bar.close()
    _remove_stale(root, set(dirs.values()))
    names = track_names(config)
    info = {"kind": "mdxnet-synth", "config": asdict(config) | {"generator_version": GENERATOR_VERSION},
            "split": names, "tracks": {name: descriptions.get(name, {}) for split in names.values()
                                       for name in split}}
    info["config"].pop("jobs")
    info["config"]["soundfont"] = Path(config.soundfont).name
    write_json_atomic(root / DATASET_FILE, info)
    return info


# ------------------------------------------------------------------------------------------------ MUSDB18 layout
WAV_STAGING = ".wav-tracks"  # hidden: track listings skip it; it keeps reruns from rendering again
# The marker of the generated stem files: {path under the root: sha256 of the file as encoded}. A stem file is
# removed as stale only when it is listed there and still holds those bytes: a file of the user's in the same
# folder, whatever its name, is never touched.
STEM_RECORD = ".synth-stems.json"
STEM_BITRATE = "256k"  # MUSDB18's streams are AAC at 256 kbit/s (sigsep.github.io/datasets/musdb.html)


def encode_stem_file(track: Path, out: Path) -> None:
    """Encode a wav track folder into a MUSDB18-style stem file: streams mixture, drums, bass, other, vocals,
    each AAC (ffmpeg's native encoder), written atomically (the format named, as the temp name has no .mp4)."""

    if shutil.which("ffmpeg") is None:
        raise UserError("ffmpeg is not installed: apt-get install ffmpeg (needed for the MUSDB18 .stem.mp4 layout)")
    inputs = [arg for name in STEM_NAMES for arg in ("-i", str(track / f"{name}.wav"))]
    maps = [arg for i in range(len(STEM_NAMES)) for arg in ("-map", str(i))]
    write_atomic(out, lambda tmp: _run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", *inputs, *maps,
                                        "-c:a", "aac", "-aac_pns", "0", "-b:a", STEM_BITRATE, "-f", "mp4", tmp],
                                       f"encoding {out.name} with ffmpeg"))


def _stem_record(root: Path) -> dict[str, str]:
    try:
        record = json.loads((root / STEM_RECORD).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return {k: v for k, v in record.items() if isinstance(k, str) and isinstance(v, str)} \
        if isinstance(record, dict) else {}


def _remove_generated_stems(root: Path, keep: set[Path]) -> None:
    """The stem files this generator wrote (STEM_RECORD) outside `keep`, each only if unchanged since."""
    from mdxnet.digest import file_sha256

    record = _stem_record(root)
    for name, sha256 in sorted(record.items()):
        path = root / name
        if path in keep or ".." in Path(name).parts or Path(name).is_absolute():
            continue
        if path.is_file() and not path.is_symlink() and file_sha256(path) == sha256:
            log.info("removing stale generated stem file %s", path)
            path.unlink()
        elif path.exists():
            log.warning("keeping %s: it changed since it was generated", path)
        del record[name]
    if record:
        write_json_atomic(root / STEM_RECORD, record)
    else:
        (root / STEM_RECORD).unlink(missing_ok=True)


def _generate_stem_dataset(root: Path, config: SynthConfig, progress: bool) -> dict:
    """The MUSDB18 layout: render (or reuse) the wav tracks in the staging folder, then encode every track whose
    stem file is missing or older than its wav track's marker."""

    info = generate_dataset(root / WAV_STAGING, config, progress=progress)
    _remove_stale(root, set())  # wav track folders of an earlier wav-layout generation at the same root
    (root / DATASET_FILE).unlink(missing_ok=True)  # incomplete until rewritten, as in the wav layout
    from mdxnet.digest import file_sha256

    wanted = set()
    for subset in ("train", "test"):
        (root / subset).mkdir(parents=True, exist_ok=True)
        staged = root / WAV_STAGING / subset
        for track in sorted(p for p in staged.iterdir() if p.is_dir() and not p.name.startswith(".")):
            out = root / subset / f"{track.name}{STEM_SUFFIX}"
            wanted.add(out)
            if not out.is_file() or out.stat().st_mtime_ns < (track / TRACK_MARKER).stat().st_mtime_ns:
                encode_stem_file(track, out)
                # recorded as soon as it exists, so that a run killed later still knows the file is generated
                record = _stem_record(root) | {f"{subset}/{out.name}": file_sha256(out)}
                write_json_atomic(root / STEM_RECORD, record)
    record = _stem_record(root)  # the current songs' files, made by an earlier run that wrote no record
    unrecorded = {f"{out.parent.name}/{out.name}": out for out in wanted if f"{out.parent.name}/{out.name}" not in record}
    if unrecorded:
        write_json_atomic(root / STEM_RECORD, record | {k: file_sha256(out) for k, out in unrecorded.items()})
    _remove_generated_stems(root, keep=wanted)  # generated songs the current config no longer makes
    info = {**info, "layout": "musdb18"}
    write_json_atomic(root / DATASET_FILE, info)
    return info


def _load_descriptions(root: Path) -> dict:
    """Song descriptions from a previous run (kept for tracks that are skipped this time)."""
    path = root / DATASET_FILE
    try:
        return json.loads(path.read_text()).get("tracks", {}) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}
