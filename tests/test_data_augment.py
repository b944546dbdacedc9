"""The augmentation cache: variants on disk, manifest last, idempotent, resumable, invalidated by a new source."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from mdxnet.cli import main
from mdxnet.data import augment
from mdxnet.data.augment import MANIFEST, augment_track, cached_variants, variants

pytestmark = pytest.mark.skipif(shutil.which("rubberband") is None, reason="rubberband-cli is not installed")


@pytest.fixture
def setup(synth_dataset, tmp_path, params):
    p = params.replace({"augment": {"root": str(tmp_path / "aug"), "pitch_semitones": [2], "tempo_rates": [1.25]}})
    track = tmp_path / "track"
    shutil.copytree(sorted((synth_dataset / "train").iterdir())[0], track)
    return p, track


def test_variant_names(params):
    p = params.replace({"augment": {"pitch_semitones": [-2, 0, 1], "tempo_rates": [0.8, 1, 1.2]}})
    assert variants(p) == {"pitch-2": ("pitch", -2.0), "pitch+1": ("pitch", 1.0), "tempo0.8": ("tempo", 0.8),
                           "tempo1.2": ("tempo", 1.2)}


def test_cache_layout_lengths_and_manifest(setup):
    p, track = setup
    manifest = augment_track(track, p, progress=False)
    folder = track.parent / "aug" / "track"
    assert json.loads((folder / MANIFEST).read_text()) == manifest
    assert set(manifest["variants"]) == {"pitch+2", "tempo1.25"}
    n = sf.info(track / "mixture.wav").frames
    for variant, entry in manifest["variants"].items():
        infos = [sf.info(folder / variant / f"{s}.wav") for s in ("drums", "bass", "other", "vocals")]
        assert {i.frames for i in infos} == {entry["frames"]}
        assert all(i.samplerate == 44100 and i.channels == 2 for i in infos)
    assert manifest["variants"]["pitch+2"]["frames"] == pytest.approx(n, abs=64)
    assert manifest["variants"]["tempo1.25"]["frames"] == pytest.approx(n / 1.25, rel=0.01)
    # pitch shift by +2 semitones really moves the spectrum up: spectral centroid of bass rises
    def centroid(path):
        x = sf.read(path)[0].mean(1)
        spec = np.abs(np.fft.rfft(x))
        return (spec * np.arange(len(spec))).sum() / spec.sum()
    assert centroid(folder / "pitch+2" / "bass.wav") > centroid(track / "bass.wav") * 1.05
    assert cached_variants(p, "track") == {v: folder / v for v in ("pitch+2", "tempo1.25")}


def test_idempotent_and_resumes_after_interruption(setup, monkeypatch):
    p, track = setup
    calls = []
    real = augment.transform

    def flaky(audio, kind, value):
        calls.append(kind)
        if kind == "tempo":
            raise KeyboardInterrupt  # interrupted while rendering the second variant
        return real(audio, kind, value)

    monkeypatch.setattr(augment, "transform", flaky)
    with pytest.raises(KeyboardInterrupt):
        augment_track(track, p, progress=False)
    folder = track.parent / "aug" / "track"
    assert not (folder / MANIFEST).exists()
    assert len(list((folder / "pitch+2").glob("*.wav"))) == 4
    assert not list(folder.rglob("*.tmp"))
    calls.clear()
    monkeypatch.setattr(augment, "transform", lambda a, k, v: calls.append(k) or real(a, k, v))
    augment_track(track, p, progress=False)
    assert calls == ["tempo"] * 4  # the finished variant was skipped
    calls.clear()
    augment_track(track, p, progress=False)
    assert calls == []  # complete: nothing to do


@pytest.mark.parametrize("manifest_deleted", [False, True])
def test_changed_source_invalidates_cache(setup, manifest_deleted):
    p, track = setup
    augment_track(track, p, progress=False)
    if manifest_deleted:  # what Snakemake does to a job's outputs before rerunning it
        (track.parent / "aug" / "track" / MANIFEST).unlink()
    audio, rate = sf.read(track / "drums.wav", dtype="int16")
    sf.write(track / "drums.wav", audio // 2, rate, subtype="PCM_16")
    before = sf.read(track.parent / "aug" / "track" / "pitch+2" / "drums.wav")[0]
    augment_track(track, p, progress=False)
    after = sf.read(track.parent / "aug" / "track" / "pitch+2" / "drums.wav")[0]
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
    assert (out / name / MANIFEST).is_file()
    assert main(["--params", str(params_file), "augment", "--track", "nope", "--root", str(synth_dataset)]) == 2
