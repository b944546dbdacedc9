"""MUSDB18 (the .stem.mp4 release) through the same workflow (issue 23 item 1): the ci profile on a generated
dataset written in the MUSDB18 layout, end to end, and the results table naming the set every row was scored on.

One chain only (the ci profile, ~2 min on 2 cores): what it shows beyond tests/test_workflow.py is that the
per-track wildcards, the data check, training (decoded stems), validation, separation and scoring all take
<root>/{train,test}/<name>.stem.mp4 files.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml
from tests.test_workflow import SNAKEMAKE, make_copy, run

ROOT = "resources/synth-ci-musdb18"


@pytest.mark.slow
def test_ci_profile_on_a_generated_musdb18_dataset_end_to_end(tmp_path):
    def musdb18(raw):
        raw["data"]["dataset"] = "musdb18"
        raw["profiles"]["ci"]["data"]["root"] = ROOT

    folder = make_copy(tmp_path / "project", musdb18)
    run(["git", "init", "-q"], folder)  # dvclive (training) needs a repository with a commit
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init"], folder)
    start = time.perf_counter()
    run([SNAKEMAKE, "--cores", "2", "all"], folder)
    print(f"ci chain on the MUSDB18 layout: {time.perf_counter() - start:.0f} s")

    root = folder / ROOT
    assert sorted(p.name for p in (root / "test").iterdir()) == ["synth003.stem.mp4"]
    assert {p.name for p in (root / "train").iterdir()} == {f"synth00{i}.stem.mp4" for i in range(3)}
    check = json.loads((folder / "resources" / "data-check.json").read_text())
    assert check["ok"] and check["subsets"] == {"train": 2, "valid": 1, "test": 1}
    # each training stem file was decoded once, by its augment job, for the four trainings to read
    decoded = folder / yaml.safe_load((folder / "params.yaml").read_text())["data"]["decoded_root"]
    assert {p.name for p in decoded.iterdir()} == {"synth000", "synth001"}
    for name in ("synth000", "synth001"):
        assert "decoded for training" in (folder / "logs" / "augment" / f"{name}.log").read_text()
    assert not any("decoding" in log.read_text() for log in (folder / "logs" / "train").glob("*.log"))

    table = json.loads((folder / "results" / "table.json").read_text())
    rows = table["rows"]
    assert rows and all(row.get("dataset") for row in rows)
    ours = [row for row in rows if row["kind"] == "this run"]
    assert ours and all(row["dataset"] == "generated (MUSDB18 layout)" for row in ours)
    assert all(row["dataset"] == "MUSDB18" for row in rows if row["kind"] != "this run")
    # a generated set matches no paper row's set: no comparability is claimed
    assert not any(row.get("comparable") for row in ours)
    markdown = (folder / "results" / "table.md").read_text()
    assert "| Dataset |" in markdown
    assert markdown.count("| generated (MUSDB18 layout) |") == len(ours)
