"""`mdxnet separate` with bad input: every input is checked before a model is loaded, each refusal is one line
naming the file and the fix, nothing (temp files included) is left behind, NaN never reaches a stem, and
same-named songs never overwrite each other."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from mdxnet.cli import main
from mdxnet.commands.separate import output_folders
from mdxnet.config import load_params
from mdxnet.errors import UserError

SOURCES = ("vocals", "drums", "bass", "other")
RATE = 44100


def write_song(path: Path, seconds: float = 1.0, seed: int = 0, value: float | None = None) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = 0.3 * np.random.default_rng(seed).standard_normal((int(RATE * seconds), 2)).astype(np.float32)
    if value is not None:
        audio[:] = value
    sf.write(path, audio, RATE, subtype="FLOAT", format="WAV")  # format: '...wav' has no extension
    return audio


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, repo_root) -> Path:
    """A params file with the ci profile's tiny model, run in PyTorch (no ONNX export), and random models."""
    from mdxnet.checkpoint import init_models

    root = tmp_path_factory.mktemp("tiny")
    params = load_params(repo_root / "params.yaml", profile="ci").replace(
        {"separate": {"backend": "torch", "device": "cpu"}})
    (root / "params.yaml").write_text(yaml.safe_dump(params.standalone()))
    init_models(root / "models", params)
    (root / "empty-models").mkdir()
    return root


def separate(tiny: Path, *args: str, models: str = "models") -> int:
    return main(["--params", str(tiny / "params.yaml"), "separate", "--models", str(tiny / models), *args])


def all_files(folder: Path) -> list[Path]:
    """Everything under `folder`, hidden temp files included."""
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def refused(tiny, tmp_path, capsys, *args: str) -> str:
    """Run against an EMPTY models folder: the input check must speak before any model is looked for."""
    code = separate(tiny, *args, models="empty-models")
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "checkpoint" not in err  # no model was loaded first
    return err


# ---- refusals before any model is loaded -----------------------------------------------------------------


def test_missing_song_is_named(tiny, tmp_path, capsys):
    write_song(tmp_path / "good.wav")
    out = tmp_path / "out"
    err = refused(tiny, tmp_path, capsys, str(tmp_path / "good.wav"), str(tmp_path / "typo.wav"), "-o", str(out))
    assert "typo.wav does not exist" in err
    assert all_files(out) == []


def test_folder_given_as_song_names_the_file_to_pass(tiny, tmp_path, capsys):
    track = tmp_path / "test" / "Some Track"
    write_song(track / "mixture.wav")
    out = tmp_path / "out"
    err = refused(tiny, tmp_path, capsys, str(track), "-o", str(out))
    assert f"{track} is a folder" in err and f"{track / 'mixture.wav'}" in err
    assert all_files(out) == []


def test_out_pointing_at_a_file_is_refused(tiny, tmp_path, capsys):
    write_song(tmp_path / "song.wav")
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    err = refused(tiny, tmp_path, capsys, str(tmp_path / "song.wav"), "-o", str(target))
    assert f"-o {target} is a file" in err
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "song.wav"]


def test_out_below_a_file_is_refused(tiny, tmp_path, capsys):
    write_song(tmp_path / "song.wav")
    (tmp_path / "notes.txt").write_text("")
    err = refused(tiny, tmp_path, capsys, str(tmp_path / "song.wav"), "-o", str(tmp_path / "notes.txt" / "out"))
    assert "notes.txt is a file" in err


def test_stem_name_taken_by_a_folder_is_refused(tiny, tmp_path, capsys):
    write_song(tmp_path / "song.wav")
    (tmp_path / "out" / "song" / "drums.wav").mkdir(parents=True)
    err = refused(tiny, tmp_path, capsys, str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"))
    assert "drums.wav: a folder has that name" in err
    assert all_files(tmp_path / "out") == []


def test_file_that_is_not_audio_is_named(tiny, tmp_path, capsys):
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"RIFF but nothing else")
    err = refused(tiny, tmp_path, capsys, str(bad), "-o", str(tmp_path / "out"))
    assert "notes.wav is not audio" in err and "convert it to wav or flac" in err
    assert all_files(tmp_path / "out") == []


def test_empty_audio_file_is_named(tiny, tmp_path, capsys):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 2), np.float32), RATE)
    err = refused(tiny, tmp_path, capsys, str(empty), "-o", str(tmp_path / "out"))
    assert "empty.wav holds no audio samples" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_song_is_named(tiny, tmp_path, capsys):
    song = tmp_path / "locked.wav"
    write_song(song)
    song.chmod(0)
    err = refused(tiny, tmp_path, capsys, str(song), "-o", str(tmp_path / "out"))
    assert "cannot read" in err and "locked.wav" in err and "chmod" in err


def test_same_song_twice_is_refused(tiny, tmp_path, capsys):
    write_song(tmp_path / "a" / "song.wav")
    err = refused(tiny, tmp_path, capsys, str(tmp_path / "a" / "song.wav"), str(tmp_path / "a" / ".." / "a" /
                                                                               "song.wav"), "-o", str(tmp_path / "o"))
    assert "is given twice" in err and "pass each song once" in err


@pytest.mark.parametrize("name", ["...wav", "..wav"])
def test_song_whose_name_is_dots_is_refused_before_writing_outside_out(tiny, tmp_path, capsys, name):
    """'...wav' named the output folder '..': its stems landed beside -o, not in it."""
    write_song(tmp_path / "dA" / name)
    err = refused(tiny, tmp_path, capsys, str(tmp_path / "dA" / name), "-o", str(tmp_path / "out" / "sub"))
    assert f"dA/{name}: its track name would be" in err and "rename the file" in err
    assert not (tmp_path / "out").exists()


# ---- output folders of same-named songs ------------------------------------------------------------------


def touch(*paths: Path) -> list[Path]:
    """Empty files: output_folders names songs that exist (the checks before it make sure of that)."""
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return list(paths)


def test_same_named_songs_keep_as_many_parent_folders_as_tell_them_apart(tmp_path):
    out = Path("out")
    songs = touch(tmp_path / "a" / "song.wav", tmp_path / "b" / "song.wav", tmp_path / "c" / "other.flac")
    assert output_folders(songs, out) == [out / "a" / "song", out / "b" / "song", out / "other"]
    musdb = touch(*(tmp_path / "test" / name / "mixture.wav" for name in ("Track A", "Track B")))
    assert output_folders(musdb, out) == [out / "Track A" / "mixture", out / "Track B" / "mixture"]
    deeper = touch(tmp_path / "x" / "same" / "song.wav", tmp_path / "y" / "same" / "song.mp3")
    assert output_folders(deeper, out) == [out / "x" / "same" / "song", out / "y" / "same" / "song"]
    stems = touch(tmp_path / "s" / "Artist - Title.stem.mp4", tmp_path / "t" / "Artist - Title.stem.mp4")
    assert output_folders(stems, out) == [out / "s" / "Artist - Title", out / "t" / "Artist - Title"]


def test_same_name_in_the_same_folder_is_refused_with_the_fix(tmp_path):
    songs = touch(tmp_path / "song.wav", tmp_path / "song.flac")
    with pytest.raises(UserError, match=r"song\.wav and .*song\.flac would both be written to out/song/: rename"):
        output_folders(songs, Path("out"))


def test_output_folders_are_never_dots_even_when_songs_share_the_name(tmp_path):
    for songs in (touch(tmp_path / "a" / "...wav"), touch(tmp_path / "a" / "..wav", tmp_path / "b" / "..wav")):
        with pytest.raises(UserError, match=r"\.wav: its track name would be '\.\.?'.*rename the file"):
            output_folders(songs, Path("out"))


def test_same_named_songs_are_all_separated(tiny, tmp_path, capsys):
    """The MUSDB18-HQ case: test/*/mixture.wav used to print four times `-> out/mixture/` and keep one."""
    songs = [tmp_path / "test" / name / "mixture.wav" for name in ("One", "Two")]
    inputs = [write_song(song, seed=i) for i, song in enumerate(songs)]
    out = tmp_path / "out"
    assert separate(tiny, *map(str, songs), "-o", str(out), "--no-mixer") == 0
    printed = capsys.readouterr().out
    assert f"-> {out / 'One' / 'mixture'}/" in printed and f"-> {out / 'Two' / 'mixture'}/" in printed
    stems = {}
    for name in ("One", "Two"):
        assert sorted(p.name for p in all_files(out / name / "mixture")) == sorted(f"{s}.wav" for s in SOURCES)
        stems[name] = sf.read(out / name / "mixture" / "vocals.wav", dtype="float32")[0]
    assert not np.allclose(inputs[0], inputs[1])
    assert not np.allclose(stems["One"], stems["Two"])  # two results, not one written twice


# ---- non-finite samples ------------------------------------------------------------------------------------


def test_nan_sample_is_replaced_by_silence_with_a_notice(tiny, tmp_path, capsys, caplog):
    song = tmp_path / "glitch.wav"
    audio = write_song(song)
    audio[int(0.5 * RATE), 1] = np.nan
    audio[int(0.75 * RATE), 0] = np.inf
    sf.write(song, audio, RATE, subtype="FLOAT")
    clean = tmp_path / "clean.wav"
    repaired = np.where(np.isfinite(audio), audio, 0)
    sf.write(clean, repaired, RATE, subtype="FLOAT")
    out = tmp_path / "out"
    with caplog.at_level("WARNING", logger="mdxnet.audio"):
        assert separate(tiny, str(song), str(clean), "-o", str(out)) == 0
    assert "glitch.wav has 2 NaN/inf samples (the first at 0.500 s): replaced by 0" in caplog.text
    for source in SOURCES:
        stem, rate = sf.read(out / "glitch" / f"{source}.wav", dtype="float32")
        assert rate == RATE and stem.shape == audio.shape and np.isfinite(stem).all(), source
        # exactly what the repaired song gives: the repair is zeros, nothing else
        np.testing.assert_array_equal(stem, sf.read(out / "clean" / f"{source}.wav", dtype="float32")[0])
    assert not [p for p in all_files(out) if p.name.startswith(".")]


def test_song_that_separates_to_nan_is_refused_and_the_others_kept(tiny, tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.setattr("mdxnet.audio.MAX_PEAK", float("inf"))  # past the check before the models load
    huge, good = tmp_path / "huge.wav", tmp_path / "good.wav"
    write_song(huge, value=3e38)  # finite, but the STFT's sums overflow float32
    write_song(good)
    out = tmp_path / "out"
    assert separate(tiny, str(huge), str(good), "-o", str(out), "--no-mixer") == 2
    assert "huge.wav gave NaN/inf" in caplog.text and "scale it down" in caplog.text
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("mdxnet separate: error: 1 of 2 songs not separated")
    assert not (out / "huge").exists()
    assert sorted(p.name for p in all_files(out)) == sorted(f"{s}.wav" for s in SOURCES)  # good's four stems


def test_a_truncated_flac_among_several_songs_is_reported_and_the_later_songs_separated(tiny, tmp_path, capsys,
                                                                                     caplog):
    """Its header reads, so the checks before the models load pass; decoding it fails midway (libsndfile's "flac
    decoder lost sync"): that song is named and skipped, the songs after it are still separated."""
    whole, cut, good = tmp_path / "whole.flac", tmp_path / "cut.flac", tmp_path / "good.wav"
    sf.write(whole, 0.3 * np.random.default_rng(1).standard_normal((RATE * 4, 2)), RATE, subtype="PCM_16")
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    write_song(good)
    out = tmp_path / "out"
    assert separate(tiny, str(cut), str(good), "-o", str(out), "--no-mixer") == 2
    assert "cut.flac cannot be decoded" in caplog.text and "re-export it" in caplog.text
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("mdxnet separate: error: 1 of 2 songs not separated")
    assert not (out / "cut").exists()
    assert sorted(p.name for p in all_files(out)) == sorted(f"{s}.wav" for s in SOURCES)  # good's four stems


def test_a_rerun_removes_a_killed_runs_temp_files_and_keeps_a_live_writers(tiny, tmp_path, capsys):
    """SIGKILL runs no cleanup: a killed run's .vocals.wav.<host>-<pid>.XXXXXXXX.tmp files stayed for good."""
    from mdxnet.atomic import HOST

    song, folder = tmp_path / "song.wav", tmp_path / "out" / "song"
    write_song(song)
    folder.mkdir(parents=True)
    killed = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftovers = [folder / f".{source}.wav.{HOST}-{int(killed.stdout)}.abcd_123.tmp" for source in SOURCES]
    live = folder / f".vocals.wav.{HOST}-{os.getpid()}.live_123.tmp"  # a writer still running
    for tmp in [*leftovers, live]:
        tmp.write_bytes(b"half a wav")
    assert separate(tiny, str(song), "-o", str(tmp_path / "out"), "--no-mixer") == 0
    assert sorted(p.name for p in all_files(folder)) == sorted([live.name, *(f"{s}.wav" for s in SOURCES)])


# ---- songs far above full scale ------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [RATE, 48000])  # streamed, and read whole (resampled)
def test_song_far_above_full_scale_is_refused_before_any_model_loads(tiny, tmp_path, capsys, rate):
    """Samples around 1e5 separated with exit 0 into stems peaking at 1e13."""
    song = tmp_path / "loud.wav"
    audio = 1e5 * write_song(song)
    sf.write(song, audio, rate, subtype="FLOAT")
    err = refused(tiny, tmp_path, capsys, str(song), "-o", str(tmp_path / "out"))
    peak = f"{np.abs(audio).max():.3g}"
    assert f"loud.wav peaks at {peak}, over 100 times full scale" in err and "pass --normalize" in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("rate", [RATE, 48000])  # FileSong (streamed), ArraySong (read whole)
def test_open_song_refuses_or_scales_a_song_far_above_full_scale(tmp_path, rate):
    """The check where a song is read, for formats that only ffmpeg decodes (none is scanned before)."""
    from mdxnet.audio import open_song

    song = tmp_path / "loud.wav"
    sf.write(song, 1e5 * write_song(song), rate, subtype="FLOAT")
    with pytest.raises(UserError, match=r"loud\.wav peaks at .*over 100 times full scale"):
        open_song(song)
    with open_song(song, normalize=True) as opened:
        assert opened.peak() == pytest.approx(1.0, rel=1e-6)


def test_normalize_separates_the_scaled_down_song_and_scales_the_stems_back(tiny, tmp_path, capsys, caplog):
    loud, quiet = tmp_path / "loud.wav", tmp_path / "quiet.wav"
    audio = 1e5 * write_song(loud)
    sf.write(loud, audio, RATE, subtype="FLOAT")
    peak = float(np.abs(audio).max())
    sf.write(quiet, audio * np.float32(1 / peak), RATE, subtype="FLOAT")
    out = tmp_path / "out"
    with caplog.at_level("WARNING", logger="mdxnet.audio"):
        assert separate(tiny, str(loud), "-o", str(out), "--normalize") == 0
        assert separate(tiny, str(quiet), "-o", str(out)) == 0
    assert f"loud.wav peaks at {peak:.3g}, above full scale (1.0): scaled to peak 1.0" in caplog.text
    assert "quiet.wav" not in caplog.text
    for source in SOURCES:
        stem = sf.read(out / "loud" / f"{source}.wav", dtype="float32")[0]
        expected = sf.read(out / "quiet" / f"{source}.wav", dtype="float32")[0] * peak
        np.testing.assert_allclose(stem, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


def test_a_song_within_range_is_separated_as_stored_with_or_without_normalize(tiny, tmp_path, caplog):
    song = tmp_path / "hot.wav"
    sf.write(song, 2.0 * write_song(song), RATE, subtype="FLOAT")  # over full scale, as float mixes can be
    normal = tmp_path / "normal.wav"
    audio = write_song(normal, seed=1)
    sf.write(normal, 0.9 * audio / np.abs(audio).max(), RATE, subtype="FLOAT")  # within full scale
    with caplog.at_level("WARNING", logger="mdxnet.audio"):
        assert separate(tiny, str(song), str(normal), "-o", str(tmp_path / "plain")) == 0
        assert separate(tiny, str(normal), "-o", str(tmp_path / "normalized"), "--normalize") == 0
    assert "peaks at" not in caplog.text
    for source in SOURCES:
        np.testing.assert_array_equal(sf.read(tmp_path / "plain" / "normal" / f"{source}.wav")[0],
                                      sf.read(tmp_path / "normalized" / "normal" / f"{source}.wav")[0])


def test_failed_group_write_leaves_no_file_and_no_folder(tmp_path, monkeypatch):
    from mdxnet import audio as audio_module

    real_write, calls = sf.write, []

    def failing_write(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(audio_module.sf, "write", failing_write)
    folder = tmp_path / "out" / "song"
    stems = {folder / f"{s}.wav": np.zeros((2, 100), np.float32) for s in SOURCES}
    with pytest.raises(OSError, match="No space left"):
        audio_module.write_wavs(stems, RATE)
    assert len(calls) == 3 and not (tmp_path / "out").exists()
    (tmp_path / "out2" / "song").mkdir(parents=True)  # an existing folder is kept, its old stems untouched
    old = tmp_path / "out2" / "song" / "vocals.wav"
    old.write_bytes(b"previous result")
    calls.clear()
    with pytest.raises(OSError):
        audio_module.write_wavs({tmp_path / "out2" / "song" / f"{s}.wav": np.zeros((2, 100), np.float32)
                                 for s in SOURCES}, RATE)
    assert all_files(tmp_path / "out2") == [old] and old.read_bytes() == b"previous result"


# ---- late checks and tracebacks --------------------------------------------------------------------------------------


def test_six_channel_96k_song_is_refused_before_any_model_loads(tiny, tmp_path, capsys):
    """It was refused only once the models had loaded (with a cold cache, after four ONNX exports)."""
    song = tmp_path / "surround.wav"
    sf.write(song, np.zeros((9600, 6), np.float32), 96000, subtype="FLOAT")
    err = refused(tiny, tmp_path, capsys, str(song), "-o", str(tmp_path / "out"))
    assert "surround.wav has 6 channels" in err and "downmix it to stereo" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg makes the AAC file")
def test_six_channel_file_only_ffmpeg_reads_is_refused_before_any_model_loads(tiny, tmp_path, capsys):
    song = tmp_path / "surround.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.5", "-ac", "6", "-c:a", "aac",
                    str(song)], check=True)
    err = refused(tiny, tmp_path, capsys, str(song), "-o", str(tmp_path / "out"))
    assert "surround.m4a has 6 channels" in err


def test_truncated_wav_is_refused_before_any_model_loads(tiny, tmp_path, capsys):
    """It separated silently into stems of its first half, although `data check` calls it truncated."""
    song = tmp_path / "cut.wav"
    write_song(song)
    song.write_bytes(song.read_bytes()[: song.stat().st_size // 2])
    err = refused(tiny, tmp_path, capsys, str(song), "-o", str(tmp_path / "out"))
    assert "cut.wav is truncated (header declares" in err and "copy it again" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("make_out", [
    lambda tmp: tmp / ("x" * 300) / "out",  # one name over NAME_MAX (255 bytes)
    lambda tmp: tmp.joinpath(*["y" * 250] * 17),  # each name fits, the whole path is over PATH_MAX (4096)
], ids=["long-name", "long-path"])
def test_over_long_out_is_refused_before_any_model_loads(tiny, tmp_path, capsys, make_out):
    """Both gave an OSError 'File name too long' traceback."""
    write_song(tmp_path / "song.wav")
    err = refused(tiny, tmp_path, capsys, str(tmp_path / "song.wav"), "-o", str(make_out(tmp_path)))
    assert "over the" in err and "pass a shorter -o" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.wav"]


def messages(err: str) -> list[str]:
    """stderr without tqdm's progress bar (redrawn with carriage returns)."""
    lines = err.replace("\r", "\n").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("separating:")]


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), sf.LibsndfileError(2)],
                         ids=["ENOSPC", "libsndfile"])
def test_disk_full_while_writing_stems_is_one_line_and_keeps_nothing_of_that_song(tiny, tmp_path, capsys,
                                                                                 monkeypatch, failure):
    """A full disk gave a LibsndfileError traceback. The run stops there: the songs before are kept."""
    write_song(tmp_path / "first.wav")
    write_song(tmp_path / "second.wav", seed=1)
    write_song(tmp_path / "third.wav", seed=2)
    real_write = sf.SoundFile.write

    def full_for_second(self, data):
        if "second" in str(self.name):
            raise failure
        return real_write(self, data)

    monkeypatch.setattr(sf.SoundFile, "write", full_for_second)
    out = tmp_path / "out"
    songs = [str(tmp_path / f"{name}.wav") for name in ("first", "second", "third")]
    assert separate(tiny, *songs, "-o", str(out)) == 2
    err = capsys.readouterr().err
    assert len(messages(err)) == 1, err
    assert f"cannot write {out / 'second'}/" in err and "MB free on its disk" in err, err
    assert "nothing new was kept" in err and "rerun it and the 1 song after it" in err
    assert [p.relative_to(out) for p in all_files(out)] == [Path("first") / f"{s}.wav" for s in sorted(SOURCES)]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting a tmpfs needs root")
def test_a_really_full_disk_is_one_line_and_leaves_nothing(tiny, tmp_path, capsys):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        write_song(tmp_path / "long.wav", seconds=5)  # 4 stems x 1.7 MB of float32
        assert separate(tiny, str(tmp_path / "long.wav"), "-o", str(disk / "out")) == 2
        err = capsys.readouterr().err
        assert len(messages(err)) == 1 and f"cannot write {disk / 'out' / 'long'}/" in err, err
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_callers_own_error_inside_the_writer_is_not_called_a_write_failure(tmp_path):
    """A song that fails to read mid-way (libsndfile raises for reading too) is the song's fault, not the disk's."""
    from mdxnet.audio import wav_group_writer

    with pytest.raises(sf.LibsndfileError), wav_group_writer([tmp_path / "o" / "vocals.wav"], RATE) as write:
        write({tmp_path / "o" / "vocals.wav": np.zeros((2, 10), np.float32)})
        raise sf.LibsndfileError(2)
    assert not (tmp_path / "o").exists()
