"""The augmentation cache: the pitch x tempo grid, one rubberband call per stem and variant, the speech option,
variants on disk with the manifest last, idempotent, resumable, invalidated by a new source or a new grid."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from mdxnet.cli import main
from mdxnet.data import augment
from mdxnet.data.augment import MANIFEST, augment_track, cached_variants, render_plan, variants

pytestmark = pytest.mark.skipif(shutil.which("rubberband") is None, reason="rubberband-cli is not installed")

SR = 44100
STEM_HZ = {"drums": 330.0, "bass": 110.0, "other": 440.0, "vocals": 660.0}
AUTHORS_GRID = {"pitch_semitones": [-2, -1, 0, 1, 2], "tempo_rates": [0.8, 0.9, 1.0, 1.1, 1.2], "grid": "product"}


def sine_track(folder, seconds: float = 2.0):
    """A track folder whose stems are steady sines (one frequency per stem) and whose mixture is their sum."""
    t = np.arange(int(seconds * SR)) / SR
    folder.mkdir(parents=True)
    stems = {name: np.stack([0.2 * np.sin(2 * np.pi * hz * t)] * 2) for name, hz in STEM_HZ.items()}
    for name, audio in {**stems, "mixture": sum(stems.values())}.items():
        sf.write(folder / f"{name}.wav", audio.T, SR, subtype="PCM_16")
    return folder


def peak_hz(path) -> float:
    """The frequency of the strongest spectral peak of the middle half of a wav (zero-padded FFT)."""
    x = sf.read(path)[0].mean(1)
    middle = x[len(x) // 4: len(x) // 4 + len(x) // 2]
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle)), 1 << 20))
    return float(np.argmax(spectrum)) * SR / (1 << 20)


@pytest.fixture
def setup(tmp_path, params):
    p = params.replace({"augment": {"root": str(tmp_path / "aug"), "pitch_semitones": [2], "tempo_rates": [1.25],
                                    "grid": "product"}})
    return p, sine_track(tmp_path / "track", seconds=1.5)


def test_authors_grid_is_every_pitch_tempo_pair_but_the_unchanged_one(params):
    grid = variants(params.replace({"augment": AUTHORS_GRID}).augment)
    assert len(grid) == 24
    assert set(grid.values()) == {(p, r) for p in (-2, -1, 0, 1, 2) for r in (0.8, 0.9, 1.0, 1.1, 1.2)} - {(0, 1)}
    assert grid["p+1_t1.1"] == (1.0, 1.1) and grid["p-2_t0.8"] == (-2.0, 0.8) and grid["p+0_t1.2"] == (0.0, 1.2)
    assert list(grid)[:5] == ["p-2_t0.8", "p-2_t0.9", "p-2_t1", "p-2_t1.1", "p-2_t1.2"]  # pitch-major, as theirs
    assert len(variants(params.augment)) == 8  # embedded profile: 3 x 3 - 1


def test_axes_grid_is_each_change_alone(params):
    grid = variants(params.replace({"augment": {**AUTHORS_GRID, "grid": "axes"}}).augment)
    assert grid == {"p-2_t1": (-2.0, 1.0), "p-1_t1": (-1.0, 1.0), "p+1_t1": (1.0, 1.0), "p+2_t1": (2.0, 1.0),
                    "p+0_t0.8": (0.0, 0.8), "p+0_t0.9": (0.0, 0.9), "p+0_t1.1": (0.0, 1.1), "p+0_t1.2": (0.0, 1.2)}


def test_an_empty_axis_means_unchanged(params):
    assert variants(params.replace({"augment": {"pitch_semitones": [1], "tempo_rates": []}}).augment) == {
        "p+1_t1": (1.0, 1.0)}
    assert variants(params.replace({"augment": {"pitch_semitones": [], "tempo_rates": [1.0]}}).augment) == {}


def test_speech_sources_get_the_short_window(params):
    plan = render_plan(params.replace({"augment": {"speech_sources": ["vocals"]}}).augment, 1.0, 0.9)
    assert plan["vocals"] == ["--tempo", "0.9", "--pitch", "1", "--window-short"]
    assert plan["drums"] == plan["bass"] == plan["other"] == ["--tempo", "0.9", "--pitch", "1"]
    plan = render_plan(params.replace({"augment": {"speech_sources": []}}).augment, 1.0, 0.9)
    assert "--window-short" not in plan["vocals"]


def test_authors_grid_renders_24_combined_variants_in_one_call_each(tmp_path, params, monkeypatch):
    import pyrubberband.pyrb as pyrb

    from mdxnet.data.sampler import track_variants

    p = params.replace({"augment": {**AUTHORS_GRID, "root": str(tmp_path / "aug"), "speech_sources": ["vocals"]}})
    track = sine_track(tmp_path / "track", seconds=1.0)
    commands = []
    real_call = pyrb.subprocess.check_call

    def record(args, **kwargs):
        commands.append(args)
        return real_call(args, **kwargs)

    monkeypatch.setattr(pyrb.subprocess, "check_call", record)
    manifest = augment_track(track, p.augment, progress=False)
    assert len(commands) == 24 * 4  # one rubberband call per stem and variant, pitch and tempo in it
    assert all("--pitch" in c and "--tempo" in c for c in commands)
    assert sum("--window-short" in c for c in commands) == 24  # the vocals of every variant
    found = track_variants(track, p.sources, p.data.decoded_root, p.augment)
    assert len(manifest["variants"]) == 24 and len(found) == 25  # + the original
    n = sf.info(track / "mixture.wav").frames
    folder = tmp_path / "aug" / "track"
    for variant, entry in manifest["variants"].items():
        semitones, rate = entry["semitones"], entry["rate"]
        infos = [sf.info(folder / variant / f"{s}.flac") for s in STEM_HZ]
        assert {i.frames for i in infos} == {entry["frames"]}, variant  # equal lengths: mixture = sum of stems
        assert entry["frames"] == pytest.approx(n / rate, abs=2), variant
        assert peak_hz(folder / variant / "other.flac") / STEM_HZ["other"] == pytest.approx(
            2 ** (semitones / 12), rel=0.005), variant


def test_idempotent_and_resumes_after_interruption(setup, monkeypatch, params):
    p, track = setup
    p = p.replace({"augment": {"tempo_rates": [1.0, 1.25]}})  # variants p+2_t1 and p+2_t1.25
    calls = []
    real = augment.transform

    def flaky(audio, semitones, rate, speech):
        calls.append(rate)
        if rate == 1.25:
            raise KeyboardInterrupt  # interrupted while rendering the second variant
        return real(audio, semitones, rate, speech)

    monkeypatch.setattr(augment, "transform", flaky)
    with pytest.raises(KeyboardInterrupt):
        augment_track(track, p.augment, progress=False)
    folder = track.parent / "aug" / "track"
    assert not (folder / MANIFEST).exists()
    assert len(list((folder / "p+2_t1").glob("*.flac"))) == 4
    assert not list(folder.rglob("*.tmp"))
    calls.clear()
    monkeypatch.setattr(augment, "transform", lambda a, s, r, v: calls.append(r) or real(a, s, r, v))
    augment_track(track, p.augment, progress=False)
    assert calls == [1.25] * 4  # the finished variant was skipped
    calls.clear()
    augment_track(track, p.augment, progress=False)
    assert calls == []  # complete: nothing to do


def test_a_killed_runs_temp_files_are_removed_by_the_rerun(setup, monkeypatch):
    """SIGKILL runs no cleanup: its .<stem>.flac.<host>-<pid>.XXXXXXXX.tmp files (up to 20 MB each) stayed for good."""
    from mdxnet.atomic import HOST

    p, track = setup
    real = augment.transform
    monkeypatch.setattr(augment, "transform", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):  # the variant folder is started (its render arguments written)
        augment_track(track, p.augment, progress=False)
    monkeypatch.setattr(augment, "transform", real)
    variant = track.parent / "aug" / "track" / "p+2_t1.25"
    assert variant.is_dir()
    killed = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftovers = [variant / f".{stem}.flac.{HOST}-{int(killed.stdout)}.abcd_123.tmp" for stem in STEM_HZ]
    for leftover in leftovers:
        leftover.write_bytes(b"half a flac")
    augment_track(track, p.augment, progress=False)
    assert not list(variant.parent.rglob("*.tmp"))


def test_changed_grid_renders_only_what_changed(setup, monkeypatch):
    p, track = setup
    folder = track.parent / "aug" / "track"
    augment_track(track, p.augment, progress=False)
    calls = []
    real = augment.transform
    monkeypatch.setattr(augment, "transform", lambda a, s, r, v: calls.append((s, r, v)) or real(a, s, r, v))

    wider = p.replace({"augment": {"tempo_rates": [1.25, 0.8]}})
    assert cached_variants(wider.augment, "track") == {"p+2_t1.25": folder / "p+2_t1.25"}  # manifest not yet rebuilt
    manifest = augment_track(track, wider.augment, progress=False)
    assert set(manifest["variants"]) == {"p+2_t1.25", "p+2_t0.8"}
    assert {(s, r) for s, r, _ in calls} == {(2.0, 0.8)}  # the variant already there was kept

    calls.clear()
    speechless = wider.replace({"augment": {"speech_sources": []}})
    assert cached_variants(speechless.augment, "track") == {}  # made with other arguments: not offered to the sampler
    augment_track(track, speechless.augment, progress=False)
    assert len(calls) == 8 and not any(v for _, _, v in calls)  # both variants again, vocals without the option

    calls.clear()
    manifest = augment_track(track, speechless.replace({"augment": {"pitch_semitones": [-1]}}).augment, progress=False)
    assert set(manifest["variants"]) == {"p-1_t1.25", "p-1_t0.8"}
    assert sorted(d.name for d in folder.iterdir() if d.is_dir()) == ["p-1_t0.8", "p-1_t1.25"]  # old ones gone
    assert json.loads((folder / MANIFEST).read_text()) == manifest


@pytest.mark.parametrize("manifest_deleted", [False, True])
def test_changed_source_invalidates_cache(setup, manifest_deleted):
    p, track = setup
    augment_track(track, p.augment, progress=False)
    variant = track.parent / "aug" / "track" / "p+2_t1.25"
    if manifest_deleted:  # what Snakemake does to a job's outputs before rerunning it
        (track.parent / "aug" / "track" / MANIFEST).unlink()
    audio, rate = sf.read(track / "drums.wav", dtype="int16")
    sf.write(track / "drums.wav", audio // 2, rate, subtype="PCM_16")
    before = sf.read(variant / "drums.flac")[0]
    augment_track(track, p.augment, progress=False)
    after = sf.read(variant / "drums.flac")[0]
    assert np.max(np.abs(after)) < np.max(np.abs(before)) * 0.75


def test_cli_augment_by_name(synth_dataset, tmp_path):
    params_file = tmp_path / "params.yaml"
    import yaml

    from mdxnet.config import load_params
    params = load_params("params.yaml").replace({"augment": {"pitch_semitones": [1], "tempo_rates": []}})
    params_file.write_text(yaml.safe_dump(params.standalone()))
    name = sorted((synth_dataset / "train").iterdir())[0].name
    out = tmp_path / "cache"
    assert main(["--params", str(params_file), "augment", "--track", name, "--root", str(synth_dataset),
                 "--out", str(out)]) == 0
    assert set(json.loads((out / name / MANIFEST).read_text())["variants"]) == {"p+1_t1"}
    assert main(["--params", str(params_file), "augment", "--track", "nope", "--root", str(synth_dataset)]) == 2


def test_cached_stems_are_lossless_flac_read_sample_exactly(setup, monkeypatch):
    from mdxnet.data.sampler import _read_chunk

    p, track = setup
    captured = {}
    real_write = augment.write_stem

    def keep(path, audio):  # what the renderer hands to the file, to compare with what the sampler reads back
        captured[path.name] = audio
        real_write(path, audio)

    monkeypatch.setattr(augment, "write_stem", keep)
    augment_track(track, p.augment, progress=False)
    variant = track.parent / "aug" / "track" / "p+2_t1.25"
    assert sorted(f.name for f in variant.glob("*.*") if not f.name.startswith(".")) == \
        sorted(f"{s}.flac" for s in STEM_HZ)
    for name in ("vocals.flac", "bass.flac"):
        assert sf.info(variant / name).format == "FLAC" and sf.info(variant / name).subtype == "PCM_16"
        pcm16 = np.round(np.clip(captured[name], -1, 1) * 32768).clip(-32768, 32767) / 32768
        for offset in (0, 7_777, 30_001):  # random access lands on the exact sample (no lossy codec, no drift)
            np.testing.assert_array_equal(_read_chunk(variant / name, offset, 4096),
                                          np.pad(pcm16, ((0, 0), (0, 4096)))[:, offset: offset + 4096])


def test_a_wav_cache_of_an_earlier_version_is_rendered_again_as_flac(setup):
    p, track = setup
    augment_track(track, p.augment, progress=False)
    folder = track.parent / "aug" / "track"
    variant = folder / "p+2_t1.25"
    for flac in variant.glob("*.flac"):  # what the earlier version left: wav stems, a manifest without a format
        sf.write(flac.with_suffix(".wav"), sf.read(flac)[0], SR, subtype="PCM_16")
        flac.unlink()
    manifest = json.loads((folder / MANIFEST).read_text())
    del manifest["format"]
    (folder / MANIFEST).write_text(json.dumps(manifest))
    assert cached_variants(p.augment, "track") == {}  # not taken for a flac cache
    augment_track(track, p.augment, progress=False)
    assert sorted(f.suffix for f in variant.iterdir() if not f.name.startswith(".")) == [".flac"] * 4
    assert cached_variants(p.augment, "track") == {"p+2_t1.25": variant}
