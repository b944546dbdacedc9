"""`mdxnet audit`: scoring someone's estimates and flagging what is wrong with them or with their claims."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mdxnet.audio import read_stem_file, write_wav
from mdxnet.cli import main
from mdxnet.errors import UserError
from mdxnet.evaluation.aggregate import summarize
from mdxnet.evaluation.audit import claim_intervals, compare_claims, format_audit, load_claims

SOURCES = ["vocals", "drums", "bass", "other"]
SR = 44100


def _segment(stems, start_s: float, seconds: float = 2.0):
    start = int(start_s * SR)
    return {k: v[:, start : start + int(seconds * SR)] for k, v in stems.items()}


def _write(folder, stems, subtype="PCM_16"):
    for name, audio in stems.items():
        write_wav(folder / f"{name}.wav", audio, SR, subtype=subtype)


def _noisy(stems, seed):
    rng = np.random.default_rng(seed)
    return {s: (stems[s] + 0.05 * stems[s].std() * rng.standard_normal(stems[s].shape)).astype(np.float32)
            for s in SOURCES}


@pytest.fixture(scope="module")
def stems(real_clip):
    return read_stem_file(real_clip)


@pytest.fixture(scope="module")
def flawed(stems, tmp_path_factory):
    """A reference set and an estimates tree with one of each problem the audit must find."""
    root = tmp_path_factory.mktemp("audit")
    data, est = root / "data", root / "estimates" / "test"
    a, b, d = _segment(stems, 0.0), _segment(stems, 4.0), _segment(stems, 8.0)
    _write(data / "test" / "A", a)
    _write(data / "test" / "B", b)
    _write(data / "test" / "D", d)  # no estimates for D
    _write(data / "train" / "A", _segment(stems, 10.0))  # same name as a test track
    _write(data / "train" / "Copy of B", b)  # same audio as test track B under another name
    est_a = _noisy(a, 1)
    est_a["vocals"] = est_a["vocals"][:, :-1000]  # wrong length
    est_b = _noisy(b, 2)
    est_b["drums"][0, 100] = np.nan  # NaN sample
    _write(est / "A", est_a, "FLOAT")
    _write(est / "B", est_b, "FLOAT")
    _write(est / "Z", _noisy(a, 3), "FLOAT")  # not a reference track
    claimed = root / "claimed.md"
    claimed.write_text("| Method | vocals | drums | bass | other |\n|---|---|---|---|---|\n| theirs | 99 | 99 | 99 | 99 |\n")
    return {"data": data, "estimates": root / "estimates", "claimed": claimed, "root": root}


def test_audit_flags_every_problem(flawed, fast_eval_params_file, capsys):
    out = flawed["root"] / "audit.json"
    argv = ["--params", str(fast_eval_params_file), "audit", str(flawed["estimates"]),
            "--references", str(flawed["data"]), "--claimed", str(flawed["claimed"]),
            "--train-root", str(flawed["data"]), "-o", str(out)]
    assert main(argv) == 1  # flagged -> non-zero exit
    report = json.loads(out.read_text())
    kinds = {}
    for flag in report["flags"]:
        kinds.setdefault(flag["kind"], []).append(flag)
    assert [f["track"] for f in kinds["missing_track"]] == ["D"]
    assert [f["track"] for f in kinds["extra_track"]] == ["Z"]
    assert [(f["track"], f["source"], f["samples"]) for f in kinds["wrong_length"]] == [("A", "vocals", 2 * SR - 1000)]
    assert [(f["track"], f["source"], f["samples"]) for f in kinds["nan_audio"]] == [("B", "drums", 1)]
    assert sorted(f["source"] for f in kinds["claimed_mismatch"]) == sorted(SOURCES)  # 99 dB claimed, far off
    assert [f["track"] for f in kinds["train_overlap_name"]] == ["A"]
    assert [(f["track"], f["train_track"]) for f in kinds["train_overlap_audio"]] == [("B", "Copy of B")]
    assert report["tracks_scored"] == 2
    assert 10 < report["summary"]["vocals"]["SDR"] < 40  # noise is 26 dB down: the scores are real
    checks = report["claim_checks"]  # the claimed table gives SDR only: one check per source
    assert [(c["source"], c["metric"]) for c in checks] == [(s, "SDR") for s in SOURCES]
    assert all(c["songs"] == 2 and c["few_songs"] and c["inside_ci"] is False and not c["within_tolerance"]
               for c in checks)
    assert report["bootstrap"]["resamples"] > 0
    printed = capsys.readouterr().out
    assert "FLAGGED" in printed and "train_overlap_audio" in printed
    assert "tolerance: BEYOND  interval: OUTSIDE" in printed and "only 2 song(s) scored" in printed


def test_clean_audit_agrees_with_its_own_claims(stems, tmp_path, fast_eval_params_file, capsys):
    """Estimates scored by `mdxnet evaluate estimates` and then audited against those claims: nothing flagged."""
    track = _segment(stems, 2.0, 1.5)
    _write(tmp_path / "data" / "test" / "Song", track)
    _write(tmp_path / "est" / "test" / "Song", _noisy(track, 5), "FLOAT")
    params = ["--params", str(fast_eval_params_file)]
    assert main([*params, "evaluate", "estimates", str(tmp_path / "est"), "--references", str(tmp_path / "data"),
                 "-o", str(tmp_path / "claims")]) == 0
    assert main([*params, "audit", str(tmp_path / "est"), "--references", str(tmp_path / "data"),
                 "--claimed", str(tmp_path / "claims")]) == 0
    report = json.loads((tmp_path / "est" / "audit.json").read_text())
    assert report["flags"] == [] and report["tracks_scored"] == 1
    checks = report["claim_checks"]  # a per-track folder claims all four metrics of every source
    assert len(checks) == 16 and all(c["within_tolerance"] and c["inside_ci"] is None for c in checks)
    printed = capsys.readouterr().out
    assert "OK: nothing flagged" in printed and "[no interval]" in printed  # one song: no interval


def _medians(value):
    return {s: {"SDR": value, "SIR": value, "ISR": value, "SAR": value} for s in SOURCES}


def test_compare_claims_tolerance_nan_and_track_sets():
    ours = {"A": _medians(5.0), "B": _medians(6.0)}
    summary = _medians(5.5)
    within = {"per_track": {"A": _medians(5.04)}, "summary": _medians(5.46)}
    flags = compare_claims(ours, summary, within, tolerance=0.05)
    assert [f["kind"] for f in flags] == ["claimed_missing"]  # B has no claim; all values within 0.05 dB
    beyond = {"per_track": {"A": _medians(5.06), "C": _medians(1.0), "B": _medians(float("nan"))}, "summary": {}}
    kinds = [f["kind"] for f in compare_claims(ours, summary, beyond, tolerance=0.05)]
    assert kinds.count("claimed_mismatch") == 32  # A off by 0.06 and B claimed NaN: 4 sources x 4 metrics each
    assert kinds.count("claimed_unscored") == 1


def test_claims_placed_inside_and_outside_the_interval_of_ours(params):
    """30 songs: a claim 0.1 dB off our median is beyond the 0.05 dB tolerance yet inside the interval over songs;
    one 3 dB off is outside both; an exact claim is within and inside."""
    rng = np.random.default_rng(4)
    per_track = {f"Song {i}": {s: _medians(float(v))[s] for s, v in zip(SOURCES, rng.normal(6.0, 2.0, 4), strict=True)}
                 for i in range(30)}
    summary = summarize(per_track)
    ours = {s: summary[s]["SDR"] for s in SOURCES}
    claimed = {"vocals": ours["vocals"] + 0.1, "drums": ours["drums"] + 3.0, "bass": ours["bass"], "other": None}
    claims = {"per_track": None, "summary": {s: {"SDR": v} for s, v in claimed.items()}}
    bootstrap = params.evaluate.bootstrap
    checks = {c["source"]: c for c in claim_intervals(per_track, summary, claims, 0.05, bootstrap)}
    assert set(checks) == {"vocals", "drums", "bass"}  # no claim for other
    vocals, drums, bass = checks["vocals"], checks["drums"], checks["bass"]
    assert not vocals["within_tolerance"] and vocals["inside_ci"] is True
    assert vocals["ci_low"] < ours["vocals"] < vocals["ci_high"] and vocals["songs"] == 30
    assert not drums["within_tolerance"] and drums["inside_ci"] is False and drums["ci_high"] < claimed["drums"]
    assert bass["within_tolerance"] and bass["inside_ci"] is True and not bass["few_songs"]
    assert drums["difference"] == pytest.approx(-3.0) and vocals["ci_level"] == bootstrap.confidence
    report = {"estimates": "e", "references": "r", "tracks_scored": 30, "summary": {}, "tolerance_db": 0.05,
              "train_overlap_checked": True, "flags": [], "claim_checks": list(checks.values()),
              "bootstrap": {"confidence": bootstrap.confidence, "resamples": bootstrap.resamples, "seed": 0}}
    printed = format_audit(report)
    assert "vocals   SDR" in printed and "tolerance: BEYOND  interval: inside" in printed
    assert "tolerance: BEYOND  interval: OUTSIDE" in printed and "tolerance: within  interval: inside" in printed


def test_load_claims_tables(tmp_path):
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("method,vocals,drums,bass,other\nmine,1,2,3,4\nyours,5,6,7,8\n")
    assert load_claims(csv_path, SOURCES, "yours")["summary"]["bass"]["SDR"] == 7.0
    with pytest.raises(UserError, match="--claimed-row"):
        load_claims(csv_path, SOURCES)
    md_path = tmp_path / "t.md"
    md_path.write_text("| Model | Vocals | Drums | Bass | Other |\n|:--|--:|--:|--:|--:|\n| **x** | **9.00** | 7.33 | 7.86 | 5.95 |\n")
    claims = load_claims(md_path, SOURCES)
    assert claims["summary"]["vocals"]["SDR"] == 9.0 and claims["per_track"] is None
    assert math.isclose(claims["summary"]["other"]["SDR"], 5.95)
    ours = tmp_path / "ours.md"  # `mdxnet report` cells: median [low, high]
    ours.write_text("| Method | vocals | drums | bass | other |\n|---|---|---|---|---|\n"
                    "| this run | 8.74 [8.60, 8.94] | 7.1 [6.9, 7.3] | 7.0 [6.5, 7.5] | 6.0 [5.5, 6.5] |\n")
    assert load_claims(ours, SOURCES)["summary"]["vocals"]["SDR"] == 8.74


BAD_CLAIMS = [
    ("claimed.json", b"{not json", "not valid JSON"),
    ("claimed.json", b"[1, 2]", "not an object"),
    ("claimed.json", b'{"summary": {"vocals": "high"}}', "'summary' is not"),
    ("claimed.json", b'{"summary": {"voice": {"SDR": 9.0}}}', "claim no score for any of vocals"),
    ("claimed.json", b'{"rows": [{"name": "theirs"}]}', "malformed (KeyError"),
    ("claimed.csv", b"\xff\xfe\x81 not text", "cannot read"),
    ("claimed.md", b"no table here\n", "holds no pipe table"),
    ("per-track/Song.json", b'{"targets": [{"name": "vocals", "frames": [{"metrics": {}}]}]}', "malformed"),
    ("missing.json", None, "not found"),
    # a table without a usable row suggested --claimed-row, which cannot help
    ("claimed.csv", b"method,voice,drum\ntheirs,9,7\n", "no row with an SDR number in each of the columns"),
]


@pytest.mark.parametrize(("name", "content", "fragment"), BAD_CLAIMS)
def test_bad_claimed_file_fails_before_scoring_and_leaves_nothing(flawed, tmp_path, fast_eval_params_file, monkeypatch,
                                                                  capsys, name, content, fragment):
    import mdxnet.evaluation.estimates as estimates

    def no_scoring(*args, **kwargs):
        raise AssertionError("estimates were scored before the claimed file was checked")

    monkeypatch.setattr(estimates, "score_track_estimates", no_scoring)
    if content is not None:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    claimed = tmp_path / name.split("/")[0]
    out = tmp_path / "out" / "audit.json"
    argv = ["--params", str(fast_eval_params_file), "audit", str(flawed["estimates"]), "--references",
            str(flawed["data"]), "--claimed", str(claimed), "--train-root", str(flawed["data"]), "-o", str(out)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert str(claimed) in error and fragment in error, error
    assert not (tmp_path / "out").exists() and not (flawed["estimates"] / "audit.json").exists()


# ---- claimed tables without a usable row -----------------------------------------------------------------------------
def test_a_silent_or_all_nan_stem_is_flagged_and_the_other_tracks_are_scored(stems, tmp_path, fast_eval_params_file,
                                                                            capsys):
    """One silent stem aborted the whole audit, with no report and a message naming neither track nor file."""
    good, bad = _segment(stems, 0.0), _segment(stems, 4.0)
    _write(tmp_path / "data" / "test" / "Good", good)
    _write(tmp_path / "data" / "test" / "Bad", bad)
    _write(tmp_path / "est" / "test" / "Good", _noisy(good, 1), "FLOAT")
    broken = _noisy(bad, 2)
    broken["vocals"][:] = 0.0
    broken["drums"][:] = np.nan
    _write(tmp_path / "est" / "test" / "Bad", broken, "FLOAT")
    argv = ["--params", str(fast_eval_params_file), "audit", str(tmp_path / "est"), "--references",
            str(tmp_path / "data")]
    assert main(argv) == 1
    report = json.loads((tmp_path / "est" / "audit.json").read_text())
    assert report["tracks_scored"] == 1 and list(report["per_track"]) == ["Good"]
    silent = [(f["track"], f["source"]) for f in report["flags"] if f["kind"] == "silent_audio"]
    assert silent == [("Bad", "vocals"), ("Bad", "drums")]
    assert "Bad/vocals.wav is silent" in capsys.readouterr().out
    # `mdxnet evaluate estimates` writes the scores of the tracks it can score and names the one it cannot
    assert main(["--params", str(fast_eval_params_file), "evaluate", "estimates", str(tmp_path / "est"),
                 "--references", str(tmp_path / "data"), "-o", str(tmp_path / "scores")]) == 2
    assert [p.name for p in (tmp_path / "scores" / "test").iterdir()] == ["Good.json"]
    assert "not scored (see the warnings above): Bad" in capsys.readouterr().err


def test_estimates_at_another_rate_are_flagged(stems, tmp_path, fast_eval_params_file, capsys):
    """48 kHz estimates gave "OK: nothing flagged" (a warning on stderr only)."""
    from scipy.signal import resample_poly

    track = _segment(stems, 2.0, 1.5)
    _write(tmp_path / "data" / "test" / "Song", track)
    for name, audio in _noisy(track, 5).items():
        write_wav(tmp_path / "est" / "test" / "Song" / f"{name}.wav",
                  resample_poly(audio, 160, 147, axis=-1).astype(np.float32), 48000, subtype="FLOAT")
    argv = ["--params", str(fast_eval_params_file), "audit", str(tmp_path / "est"), "--references",
            str(tmp_path / "data")]
    assert main(argv) == 1
    report = json.loads((tmp_path / "est" / "audit.json").read_text())
    assert sorted(f["source"] for f in report["flags"] if f["kind"] == "wrong_rate") == sorted(SOURCES)
    assert report["tracks_scored"] == 1
    printed = capsys.readouterr().out
    assert "OK: nothing flagged" not in printed and "Song/vocals.wav is at 48000 Hz" in printed


def test_an_estimate_that_is_not_audio_is_flagged_and_the_other_tracks_are_scored(stems, tmp_path,
                                                                                  fast_eval_params_file, capsys):
    """A vocals.wav holding text gave a libsndfile traceback and no report."""
    for index, name in enumerate(("Broken", "Good")):
        track = _segment(stems, 2.0 + index, 1.5)
        _write(tmp_path / "data" / "test" / name, track)
        _write(tmp_path / "est" / "test" / name, _noisy(track, index), subtype="FLOAT")
    (tmp_path / "est" / "test" / "Broken" / "vocals.wav").write_text("not audio at all")
    argv = ["--params", str(fast_eval_params_file), "audit", str(tmp_path / "est"), "--references",
            str(tmp_path / "data")]
    assert main(argv) == 1
    report = json.loads((tmp_path / "est" / "audit.json").read_text())
    assert [(f["kind"], f["track"], f["source"]) for f in report["flags"]] == [("not_audio", "Broken", "vocals")]
    assert report["tracks_scored"] == 1 and "Broken/vocals.wav cannot be read as audio" in capsys.readouterr().out
