"""`mdxnet data check`: passes on good data, reports each kind of broken file with its name."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from mdxnet.cli import main
from mdxnet.data.check import check_dataset


@pytest.fixture
def broken_copy(synth_dataset, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(synth_dataset, root)
    track = sorted((root / "train").iterdir())[0]
    return root, track


def test_passes_on_generated_dataset_with_report(synth_dataset, tmp_path, params):
    report = tmp_path / "out" / "check.json"
    assert main(["data", "check", str(synth_dataset), "--report", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["ok"] and data["problems"] == [] and data["tracks"] == 4
    assert data["seconds"] == pytest.approx(12.0)
    assert data["subsets"] == {"train": 2, "test": 1, "valid": 1}
    assert len(data["checksum"]) == 64
    assert check_dataset(synth_dataset, params.data, progress=False).checksum == data["checksum"]


def test_passes_on_real_stem_clip(real_clip, params):
    for target in (real_clip, real_clip.parent):
        result = check_dataset(target, params.data, progress=False)
        assert result.ok, result.problems
        assert result.tracks >= 1 and result.seconds > 12


def test_stem_file_whose_name_is_dots_is_a_problem_naming_the_fix(real_clip, tmp_path, params, capsys):
    odd = tmp_path / "extra" / "...stem.mp4"
    odd.parent.mkdir()
    shutil.copyfile(real_clip, odd)
    for target in (odd, odd.parent):
        assert main(["data", "check", str(target)]) == 2
        out = capsys.readouterr().out
        assert f"PROBLEM {odd}: its track name would be '..'" in out and "rename the file" in out, out


def _assert_fails(root, params, *fragments):
    result = check_dataset(root, params.data, progress=False)
    text = "\n".join(result.problems)
    assert not result.ok
    for fragment in fragments:
        assert fragment in text, text
    return result


def test_missing_stem(broken_copy, params, capsys):
    root, track = broken_copy
    (track / "bass.wav").unlink()
    _assert_fails(root, params, str(track / "bass.wav"), "missing stem")
    assert main(["data", "check", str(root)]) == 2
    assert str(track / "bass.wav") in capsys.readouterr().out


def test_48k_stem(broken_copy, params):
    root, track = broken_copy
    audio, _ = sf.read(track / "drums.wav")
    sf.write(track / "drums.wav", audio, 48000)
    _assert_fails(root, params, str(track / "drums.wav"), "48000 Hz")


def test_mono_stem(broken_copy, params):
    root, track = broken_copy
    audio, rate = sf.read(track / "vocals.wav")
    sf.write(track / "vocals.wav", audio[:, 0], rate)
    _assert_fails(root, params, str(track / "vocals.wav"), "1 channel")


def test_truncated_file(broken_copy, params):
    root, track = broken_copy
    path = track / "other.wav"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _assert_fails(root, params, str(path), "truncated")


def test_corrupt_file(broken_copy, params):
    root, track = broken_copy
    path = track / "mixture.wav"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    _assert_fails(root, params, str(path), "unreadable")


def test_mixture_not_sum_of_stems(broken_copy, params):
    root, track = broken_copy
    audio, rate = sf.read(track / "mixture.wav", dtype="int16")
    sf.write(track / "mixture.wav", audio // 2, rate, subtype="PCM_16")
    _assert_fails(root, params, str(track / "mixture.wav"), "sum of the stems")


def test_every_problem_is_reported(broken_copy, params):
    root, track = broken_copy
    other = sorted((root / "train").iterdir())[1]
    (track / "bass.wav").unlink()
    audio, rate = sf.read(other / "vocals.wav")
    sf.write(other / "vocals.wav", audio[:, 0], rate)
    result = _assert_fails(root, params, str(track / "bass.wav"), str(other / "vocals.wav"))
    assert len(result.problems) >= 2


def test_absent_dataset_exits_2(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nope")]) == 2
    assert "mdxnet data synth" in capsys.readouterr().err


# ---- links that lead nowhere -----------------------------------------------------------------------------------------


def test_stem_that_is_a_symlink_loop_is_a_problem_not_a_traceback(broken_copy, params, capsys):
    root, track = broken_copy
    stem = track / "bass.wav"
    stem.unlink()
    stem.symlink_to("bass.wav")  # itself: the checksum's stat raised ELOOP
    _assert_fails(root, params, f"{stem}: a symlink loop")
    assert main(["data", "check", str(root)]) == 2
    captured = capsys.readouterr()
    assert f"PROBLEM {stem}: a symlink loop" in captured.out and "Traceback" not in captured.err


def test_dangling_stem_symlink_is_in_the_problem_list_with_the_others(broken_copy, params, capsys):
    root, track = broken_copy
    stem = track / "vocals.wav"
    stem.unlink()
    stem.symlink_to(root / "gone" / "vocals.wav")  # stopped the check with a bare '[Errno 2]'
    other = sorted((root / "train").iterdir())[1]
    audio, rate = sf.read(other / "drums.wav")
    sf.write(other / "drums.wav", audio[:, 0], rate)
    assert main(["data", "check", str(root)]) == 2
    captured = capsys.readouterr()
    assert f"PROBLEM {stem}: a symlink to {root / 'gone' / 'vocals.wav'}, which does not exist" in captured.out
    assert f"PROBLEM {other / 'drums.wav'}: 1 channel" in captured.out and "Errno" not in captured.err


def test_a_track_that_is_a_broken_link_is_a_problem(broken_copy, params):
    """A track folder linked from elsewhere whose target is gone was skipped without a word."""
    root, _ = broken_copy
    (root / "test" / "Linked Track").symlink_to(root / "elsewhere" / "Linked Track")
    (root / "train" / "Looped Track").symlink_to("Looped Track")
    _assert_fails(root, params, f"{root / 'test' / 'Linked Track'}: a symlink to", "which does not exist",
                  f"{root / 'train' / 'Looped Track'}: a symlink loop")


def test_stem_files_are_held_to_their_own_aac_tolerance(synth_dataset, tmp_path, params):
    """MUSDB18 layout: AAC streams sum to the mixture only approximately, so stem files meet
    data.check.stem_mix_snr_db, not the wav threshold; a stricter tolerance fails naming its key."""
    from mdxnet.data.synth import encode_stem_file

    root = tmp_path / "musdb18"
    for subset in ("train", "test"):
        (root / subset).mkdir(parents=True)
        for track in (synth_dataset / subset).iterdir():
            encode_stem_file(track, root / subset / f"{track.name}.stem.mp4")
    shutil.copy(synth_dataset / "mdxnet_dataset.json", root)
    p = params.replace({"data": {"dataset": "musdb18"}})
    result = check_dataset(root, p.data, progress=False)
    assert result.ok, result.problems
    assert result.subsets == {"train": 2, "valid": 1, "test": 1}
    strict = p.replace({"data": {"check": {"stem_mix_snr_db": 60}}})
    _assert_fails(root, strict, "mixture differs from the sum of the stems", "data.check.stem_mix_snr_db = 60 dB")
