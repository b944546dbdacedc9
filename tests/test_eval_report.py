"""`mdxnet report`: reference rows, this run's rows with deltas and intervals, paired tests, loud dataset
statement, CSV/JSON/PNG outputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from mdxnet import recipes
from mdxnet.atomic import write_json_atomic
from mdxnet.cli import main
from mdxnet.errors import UserError
from mdxnet.evaluation.aggregate import aggregate
from mdxnet.evaluation.references import ARXIV, REFERENCE_ROWS, WORKSHOP, paper_row
from mdxnet.evaluation.report import dataset_statement, parse_runs, songs_statement, write_report
from mdxnet.evaluation.stats import median_ci
from mdxnet.evaluation.track_json import METRICS, track_document

SOURCES = ["vocals", "drums", "bass", "other"]


def _write_run(folder, level: float | dict, tracks: int, seed: int, device="cpu"):
    """Per-track files with 9 frames per metric drawn around `level` (+ i dB for the i-th source), or around
    {source: level}."""
    rng = np.random.default_rng(seed)
    levels = level if isinstance(level, dict) else {s: level + i for i, s in enumerate(SOURCES)}
    for t in range(tracks):
        scores = {s: {m: rng.normal(levels[s], 1.0, 9) for m in METRICS} for s in SOURCES}
        metadata = {"track": f"Song {t}", "device": device, "params_hash": "abc", "backend": "museval"}
        write_json_atomic(folder / "test" / f"Song {t}.json", track_document(scores, metadata=metadata))
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    return {
        "no-mixer": _write_run(root / "no-mixer", 3.0, 5, 1),
        "mixer": _write_run(root / "mixer", 3.5, 5, 2),
        "mixture": _write_run(root / "mixture", -4.0, 5, 3),
        "irm": _write_run(root / "irm", 8.0, 5, 4),
    }


def test_report_cli_writes_table_csv_json_and_boxplot(runs, tmp_path, repo_root, params):
    out = tmp_path / "results"
    specs = [f"{name}={folder}" for name, folder in runs.items()]
    check = tmp_path / "data_check.json"
    check.write_text(json.dumps({"tracks": 5, "checksum": "0123abcd", "checksum_method": "sizes+heads"}))
    argv = ["--params", str(repo_root / "params.yaml"), "report", "--runs", *specs, "--data-check", str(check)]
    assert main([*argv, "-o", str(out)]) == 0

    table = (out / "table.md").read_text()
    assert "NOT comparable" in table and "EMBEDDED SYNTHETIC DATASET" in table  # params profile is embedded
    assert "| D3Net (Takahashi & Mitsufuji 2021) | quoted baseline | both | 7.24 | 7.01 | 5.25 | 4.53 |" in table
    assert "| v2 + Mixer | paper | arxiv-2111.12203 | 8.91 | 7.07 | 7.33 | 5.81 |" in table
    assert "dataset checksum: 0123abcd (sizes+heads)" in table
    assert "scoring backend: no-mixer: museval" in table
    assert "note: run `mixer` was scored with params hash abc" in table  # fixtures carry a made-up hash
    assert "params hash: `" in table and "git commit: `" in table and "torch" in table
    results = table.split("## Paired tests")[0]
    table_lines = [line for line in results.splitlines() if line.startswith("|")]
    assert len({line.count("|") for line in table_lines}) == 1  # header, separator and rows line up
    assert "not a git checkout" not in table  # the commit of the checkout holding the package

    document = json.loads((out / "table.json").read_text())
    assert document["provenance"]["comparable_with_paper"] is False
    _check_deviation_section(table, document["provenance"], params, repo_root)
    ours = {row["version"]: row for row in document["rows"] if row["kind"] == "this run"}
    assert set(ours) == set(runs)
    # the run rows are the SiSEC aggregation of their folders, and the deltas are against the version
    # params.yaml names (report.compare_with)
    summary = aggregate([runs["mixer"]])["summary"]
    paper = paper_row("mixer", params.report.compare_with)
    for source in SOURCES:
        assert ours["mixer"]["sdr"][source] == summary[source]["SDR"]
        assert document["sdr"]["mixer"][source] == summary[source]["SDR"]  # flat metrics for `dvc exp show`
        assert ours["mixer"]["delta"][source] == pytest.approx(summary[source]["SDR"] - paper.sdr[source])
    assert ours["mixture"]["delta"]["vocals"] is None  # baselines have no paper counterpart
    assert ours["irm"]["sdr"]["vocals"] > ours["mixer"]["sdr"]["vocals"] > ours["mixture"]["sdr"]["vocals"]
    assert ours["mixer"]["devices"] == ["cpu"]
    _check_intervals(table, document, ours, runs, params)

    with open(out / "table.csv", newline="") as handle:
        records = list(csv.DictReader(handle))
    assert len(records) == len(REFERENCE_ROWS) + 4
    assert float(records[-1]["vocals"]) == pytest.approx(ours["irm"]["sdr"]["vocals"])
    assert float(records[-1]["ci_low_vocals"]) == pytest.approx(ours["irm"]["ci_low"]["vocals"])
    assert records[-1]["ci_level"] == str(params.evaluate.bootstrap.confidence)
    mixer_record = next(r for r in records if r["version"] == "mixer")
    assert mixer_record["paper_in_ci_vocals"] == "False" and records[0]["ci_low_vocals"] == ""

    png = (out / params.report.boxplot).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temp files


def _check_intervals(table: str, document: dict, ours: dict, runs: dict, params):
    """Every run median has its bootstrap interval over songs, every delta its inside/outside mark, and the two
    model runs their paired test; the text says what is compared."""
    settings = params.evaluate.bootstrap
    songs = aggregate([runs["mixer"]])["per_track"]
    for source in SOURCES:
        interval = median_ci([m[source]["SDR"] for m in songs.values()], settings)
        row = ours["mixer"]
        assert (row["ci_low"][source], row["ci_high"][source]) == (interval.low, interval.high)
        assert row["ci_low"][source] <= row["sdr"][source] <= row["ci_high"][source]
        assert document["ci"]["mixer"][source] == {"low": interval.low, "high": interval.high}
        paper = paper_row("mixer", params.report.compare_with).sdr[source]
        assert row["paper_in_ci"][source] == (interval.low <= paper <= interval.high)
        assert row["songs"][source] == 5
    assert ours["mixer"]["ci_level"] == settings.confidence and ours["mixer"]["resamples"] == settings.resamples
    assert ours["mixture"]["paper_in_ci"]["vocals"] is None  # no paper number to place
    mixer_line = next(line for line in table.splitlines() if line.startswith("| this run: with Mixer"))
    low, high = ours["mixer"]["ci_low"]["vocals"], ours["mixer"]["ci_high"]["vocals"]
    assert f"| {ours['mixer']['sdr']['vocals']:.2f} [{low:.2f}, {high:.2f}] |" in mixer_line
    assert "**outside**" in mixer_line  # the synthetic runs sit dB below the paper
    assert "confidence interval of the median over songs" in table and "inside* = the paper's published" in table
    assert "not the paper's test songs" in table  # embedded profile: different songs, said next to the marks

    [test] = document["paired_tests"]  # mixture and irm are reference points, not tested
    assert (test["a"], test["b"]) == ("no-mixer", "mixer")
    assert test["sources"]["vocals"]["songs"] == 5 and test["sources"]["vocals"]["median_difference"] < 0
    assert document["paired_p"]["no-mixer vs mixer"]["drums"] == test["sources"]["drums"]["p_value"]
    assert "| no-mixer − mixer | vocals | 5 |" in table
    assert "Too few songs for these tests" in table  # 5 songs: p can never fall below 0.0625


def test_report_marks_a_planted_paper_number_inside_and_one_outside(tmp_path, params, repo_root):
    """30 songs around the paper's vocals median and 5 dB above its drums one: inside for vocals, outside for
    drums; the same songs 1 dB better in the `mixer` run: a paired test with p < 0.001."""
    paper = paper_row("mixer", params.report.compare_with).sdr
    levels = {"vocals": paper["vocals"], "drums": paper["drums"] + 5.0, "bass": 0.0, "other": 0.0}
    mixer = _write_run(tmp_path / "mixer", levels, 30, seed=8)
    no_mixer = _write_run(tmp_path / "no-mixer", {s: v - 1.0 for s, v in levels.items()}, 30, seed=8)  # same frames
    write_report([("mixer", mixer), ("no-mixer", no_mixer)], params, tmp_path / "out",
                 params_file=repo_root / "params.yaml")
    document = json.loads((tmp_path / "out" / "table.json").read_text())
    row = next(r for r in document["rows"] if r["version"] == "mixer")
    assert row["paper_in_ci"]["vocals"] is True and row["paper_in_ci"]["drums"] is False
    assert row["ci_high"]["vocals"] - row["ci_low"]["vocals"] < 1.0  # 30 songs: a fraction of a dB
    line = next(r for r in (tmp_path / "out" / "table.md").read_text().splitlines() if r.startswith("| this run: with"))
    assert f"| {row['delta']['vocals']:+.2f} inside |" in line and f"{row['delta']['drums']:+.2f} **outside**" in line
    [test] = document["paired_tests"]
    assert (test["a"], test["b"]) == ("mixer", "no-mixer")
    assert test["sources"]["drums"]["p_value"] < 0.001 and test["sources"]["drums"]["songs"] == 30
    assert test["sources"]["drums"]["median_difference"] == pytest.approx(1.0)


def test_report_says_loudly_when_songs_are_few(tmp_path, params, repo_root):
    few = _write_run(tmp_path / "mixer", 3.0, 3, seed=1)
    one = _write_run(tmp_path / "no-mixer", 3.0, 1, seed=2)
    write_report([("mixer", few), ("no-mixer", one)], params, tmp_path / "out", params_file=repo_root / "params.yaml")
    table = (tmp_path / "out" / "table.md").read_text()
    assert "**Few songs (`mixer` 3, `no-mixer` 1; fewer than 5)" in table
    assert "[no interval: 1 song]" in table and "(no interval)" in table  # one song: no interval, no mark
    rows = {r["version"]: r for r in json.loads((tmp_path / "out" / "table.json").read_text())["rows"]}
    assert rows["mixer"]["few_songs"] and rows["no-mixer"]["ci_low"]["vocals"] is None
    assert rows["mixer"]["ci_low"]["vocals"] < rows["mixer"]["ci_high"]["vocals"]  # 3 songs: an interval, wide
    assert "Too few songs for these tests" in table


def _check_deviation_section(table: str, provenance: dict, params, repo_root):
    """The report names the recipe and profile and lists the same rows as `mdxnet params --deviations`."""
    section = table.split("## Recipe and deviations", 1)[1]
    assert f"Recipe `{params.recipe}`, profile `{params.profile}`" in section
    expected = recipes.deviations(params, recipes.read_raw(repo_root / "params.yaml"))
    assert provenance["recipe"] == params.recipe and provenance["deviations"]["profile"] == params.profile
    assert provenance["deviations"]["rows"] == [row.to_dict() for row in expected]
    assert "params.yaml (its recipe and profile overlays)" in provenance["deviations"]["kinds_from"]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    assert len(lines) == len(expected) + 2
    assert len({line.replace("\\|", "").count("|") for line in lines}) == 1
    for line, row in zip(lines[2:], expected, strict=True):
        assert row.key in line and row.kind in line
    assert any("augmentation tool" in line for line in lines)  # the fixed deviation is always listed


def test_dataset_statement_for_full_musdb(params, tmp_path):
    paper = params.replace({"data": {"origin": "existing", "root": str(tmp_path / "musdb18hq")}})
    songs = [str(tmp_path / "musdb18hq" / "test" / f"Song {i}") for i in range(50)]
    # the whole MUSDB18-HQ test set is still not the set the paper's rows were scored on (MUSDB18)
    comparable, text = dataset_statement(paper.data, paper.profile, [{"tracks": 50, "references": songs}])
    assert not comparable and "MUSDB18-HQ" in text and "scored on MUSDB18" in text
    stems = paper.replace({"data": {"dataset": "musdb18"}})
    comparable, text = dataset_statement(stems.data, stems.profile, [{"tracks": 50, "references": songs}])
    assert comparable and text.startswith("MUSDB18 test set")
    comparable, text = dataset_statement(paper.data, paper.profile, [{"tracks": 12, "references": songs[:12]}])
    assert not comparable and "only 12" in text
    extra = songs + ["/elsewhere/Music Delta - Rock.stem.mp4"]
    comparable, text = dataset_statement(paper.data, paper.profile, [{"tracks": 51, "references": extra}])
    assert not comparable and "1 songs from elsewhere" in text
    assert "Music Delta - Rock.stem.mp4" in songs_statement(paper.data, [{"references": extra}])
    # trained on MUSDB18-HQ, scored on MUSDB18's 50 test songs in their own folder: the paper's protocol
    two = paper.replace({"data": {"score": {"dataset": "musdb18", "root": str(tmp_path / "musdb18")}}})
    stem_songs = [str(tmp_path / "musdb18" / "test" / f"Song {i}.stem.mp4") for i in range(50)]
    comparable, text = dataset_statement(two.data, two.profile, [{"tracks": 50, "references": stem_songs}])
    assert comparable and text.startswith("MUSDB18 test set") and "trained on MUSDB18-HQ" in text
    assert songs_statement(two.data, [{"references": stem_songs}]).startswith("50 from data.score.root")
    # the HQ songs are not the scored release's: they count as songs from elsewhere
    comparable, text = dataset_statement(two.data, two.profile, [{"tracks": 50, "references": songs}])
    assert not comparable and "50 songs from elsewhere" in text


def test_reference_rows_hold_the_paper_numbers():
    assert paper_row("no-mixer", ARXIV).sdr == {"vocals": 8.81, "drums": 6.52, "bass": 7.65, "other": 5.70}
    assert paper_row("mixer", ARXIV).sdr == {"vocals": 8.91, "drums": 7.07, "bass": 7.33, "other": 5.81}
    assert paper_row("no-mixer", WORKSHOP).sdr == {"vocals": 8.91, "drums": 6.86, "bass": 7.30, "other": 6.18}
    # the Demucs blends: with the Mixer (both versions' last row), without it (arXiv's "v2 + Demucs" only); a blend
    # with any other second system compares with no paper row
    assert paper_row("blend-demucs", WORKSHOP).sdr == {"vocals": 8.99, "drums": 7.69, "bass": 7.62, "other": 6.56}
    assert paper_row("blend-demucs", ARXIV).sdr == {"vocals": 9.00, "drums": 7.33, "bass": 7.86, "other": 5.95}
    assert paper_row("blend-no-mixer-demucs", ARXIV).sdr == {"vocals": 8.80, "drums": 7.14, "bass": 8.11,
                                                             "other": 5.90}
    assert paper_row("blend-no-mixer-demucs", WORKSHOP) is None and paper_row("blend-mixer-conv", ARXIV) is None
    assert paper_row("mixer", WORKSHOP).sdr == {"vocals": 8.88, "drums": 7.09, "bass": 7.38, "other": 6.29}
    assert all(row.verified for row in REFERENCE_ROWS)


def test_parse_runs_rejects_bad_specs():
    assert parse_runs(["a=x", "b=y"])[1][0] == "b"
    with pytest.raises(UserError, match="NAME=DIR"):
        parse_runs(["just-a-dir"])
    with pytest.raises(UserError, match="twice"):
        parse_runs(["a=x", "a=y"])


def test_report_marks_the_cells_of_a_collapsed_separator_in_the_runs_that_use_it(runs, tmp_path, params,
                                                                                   repo_root):
    """The health verdict stored in a separator's checkpoint (mdxnet.training.health) reaches the table: a loud
    note, and that source's cell marked in the model runs, not in the baselines."""
    import torch

    from mdxnet.checkpoint import init_models, separator_path

    tiny = params.replace({"model": {"dim_f": 64, "dim_t": 16, "num_blocks": 3, "num_convs": 1, "channels": 4,
                                     "growth": 2, "bottleneck": 4, "hop": 128, "n_fft": 256}})
    models = tmp_path / "models"
    init_models(models, tiny)
    path = separator_path(models, "other")
    ckpt = torch.load(path, weights_only=True)
    ckpt.setdefault("extra", {})["health"] = {"metrics": {"valid_level_db": -55.0},
                                              "warnings": ["its estimates are 55.0 dB quieter than the target"]}
    torch.save(ckpt, path)
    write_report(list(runs.items()), params, tmp_path / "out", params_file=repo_root / "params.yaml", models=models)
    table = (tmp_path / "out" / "table.md").read_text()
    assert "WARNING: the `other` separator collapsed in training: its estimates are 55.0 dB quieter" in table
    marked = {line.split(" | ")[2]: line for line in table.splitlines() if line.startswith("| this run")}
    assert set(marked) == {"no-mixer", "mixer", "mixture", "irm"}
    for version, line in marked.items():
        assert line.count("⚠ collapsed") == (0 if version in ("mixture", "irm") else 1), version
    provenance = json.loads((tmp_path / "out" / "table.json").read_text())["provenance"]
    assert list(provenance["separator_health"]) == ["other"]
    write_report(list(runs.items()), params, tmp_path / "healthy", params_file=repo_root / "params.yaml",
                 models=tmp_path / "no-such-models")
    assert "collapsed" not in (tmp_path / "healthy" / "table.md").read_text()


@pytest.mark.parametrize(("dataset", "score", "origin", "label", "comparable"), [
    ("musdb18", "same", "existing", "MUSDB18", True),
    ("musdb18hq", "same", "existing", "MUSDB18-HQ", False),
    ("musdb18", "same", "synth", "generated (MUSDB18 layout)", False),
    # the authors' protocol: trained on MUSDB18-HQ, scored on MUSDB18 (data.score)
    ("musdb18hq", "musdb18", "existing", "MUSDB18", True),
    ("musdb18", "musdb18hq", "existing", "MUSDB18-HQ", False),
    ("musdb18hq", "musdb18", "synth", "generated (MUSDB18 layout)", False),
])
def test_every_row_names_its_dataset_and_comparable_needs_the_same_set(tmp_path, params, repo_root, dataset,
                                                                       score, origin, label, comparable):
    """Each paper row names the set it was scored on (MUSDB18, references.py), the run names
    its own (the scored release, whichever it trained on), and a run row is marked comparable only when its set
    is its paper row's and it scored all 50 songs."""
    p = params.replace({"data": {"dataset": dataset, "origin": origin, "root": str(tmp_path / "data"),
                                 "extra_test": [], "score": {"dataset": score, "root": str(tmp_path / "scored")}}})
    root = Path(p.data.scored_root)
    levels = {"vocals": 8.0, "drums": 6.0, "bass": 6.0, "other": 5.0}
    mixer = _write_run(tmp_path / "mixer", levels, 50, seed=3)
    for path in (mixer / "test").iterdir():  # the scored songs are the scored release's own
        document = json.loads(path.read_text())
        document["mdxnet"]["reference"] = str(root / "test" / f"{path.stem}.stem.mp4")
        path.write_text(json.dumps(document))
    write_report([("mixer", mixer), ("mixture", runs_mixture(tmp_path))], p, tmp_path / "out",
                 params_file=repo_root / "params.yaml")
    document = json.loads((tmp_path / "out" / "table.json").read_text())
    assert all(row["dataset"] for row in document["rows"])
    assert {row["dataset"] for row in document["rows"] if row["kind"] != "this run"} == {"MUSDB18"}
    ours = {row["version"]: row for row in document["rows"] if row["kind"] == "this run"}
    assert ours["mixer"]["dataset"] == label and ours["mixer"]["comparable"] is comparable
    assert ours["mixture"]["comparable"] is None  # a baseline compares with no paper row
    assert document["provenance"]["comparable_with_paper"] is comparable
    table = (tmp_path / "out" / "table.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| Method"))
    assert header.endswith("| tracks | Dataset | Comparable |")
    lines = table.splitlines()
    start = lines.index(header) + 2
    rows = lines[start: lines.index("", start)]  # the results table ends at the first blank line
    assert len(rows) == len(document["rows"])
    for line, row in zip(rows, document["rows"][: len(rows)], strict=True):
        assert f"| {row['dataset']} |" in line
    mixer_line = next(line for line in rows if line.startswith("| this run: with Mixer"))
    assert mixer_line.endswith("| yes |") if comparable else "| no: " in mixer_line
    assert "dataset,comparable" in (tmp_path / "out" / "table.csv").read_text().splitlines()[0]


def runs_mixture(tmp_path):
    return _write_run(tmp_path / "mixture", -4.0, 50, seed=4)
