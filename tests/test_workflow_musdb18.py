"""MUSDB18 (the .stem.mp4 release) through the same workflow, and a run that trains on one release and scores the
other (params data.score): the ci profile on a generated dataset written in the MUSDB18 layout for training, its
songs generated again in the MUSDB18-HQ layout for scoring, end to end, and the results table naming the set every
row was scored on.

One chain only (the ci profile, ~2 min on 2 cores): what it shows beyond tests/test_workflow.py is that the
per-track wildcards, the data check, training (decoded stems) and validation take <root>/{train,test}/<name>.stem.mp4
files, that the scored release is made, checked, separated and scored from its own folder, and that changing the
scored release retrains nothing. The opposite direction (train on wavs, score .stem.mp4 files, as `profile: paper`
does on the real releases) is the paper rehearsal's (tests/test_rehearsal.py).
"""

from __future__ import annotations

import json
import time

import pytest
import yaml
from tests.test_workflow import SNAKEMAKE, is_declared, make_copy, planned_jobs, run, stage_of, write_params

ROOT = "resources/synth-ci-musdb18"
SCORED = "resources/synth-ci-musdb18hq"


@pytest.mark.slow
def test_ci_profile_trains_on_generated_musdb18_and_scores_generated_musdb18hq_end_to_end(tmp_path):
    def two_releases(raw):
        raw["data"]["dataset"] = "musdb18"
        raw["profiles"]["ci"]["data"]["root"] = ROOT
        raw["profiles"]["ci"]["data"]["score"] = {"dataset": "musdb18hq", "root": SCORED}

    folder = make_copy(tmp_path / "project", two_releases)
    run(["git", "init", "-q"], folder)  # dvclive (training) needs a repository with a commit
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init"], folder)
    trace = tmp_path / "params-trace.jsonl"
    start = time.perf_counter()
    run([SNAKEMAKE, "--cores", "2", "all"], folder, env={"MDXNET_PARAMS_TRACE": str(trace)})
    print(f"ci chain, trained on the MUSDB18 layout, scored on the MUSDB18-HQ layout: "
          f"{time.perf_counter() - start:.0f} s")

    # training: the stem files, each decoded once, by its augment job, for the four trainings to read
    root = folder / ROOT
    assert sorted(p.name for p in (root / "test").iterdir()) == ["synth003.stem.mp4"]
    assert {p.name for p in (root / "train").iterdir()} == {f"synth00{i}.stem.mp4" for i in range(3)}
    check = json.loads((folder / "resources" / "data-check.json").read_text())
    assert check["ok"] and check["subsets"] == {"train": 2, "valid": 1, "test": 1}
    decoded = folder / yaml.safe_load((folder / "params.yaml").read_text())["data"]["decoded_root"]
    assert {p.name for p in decoded.iterdir()} == {"synth000", "synth001"}
    for name in ("synth000", "synth001"):
        assert "decoded for training" in (folder / "logs" / "augment" / f"{name}.log").read_text()
    assert not any("decoding" in log.read_text() for log in (folder / "logs" / "train").glob("*.log"))

    # scoring: the same songs as wav folders in their own folder, checked on their own, and only its test song
    scored = folder / SCORED
    assert sorted(p.name for p in (scored / "test").iterdir()) == ["synth003"]
    assert (scored / "test" / "synth003" / "mixture.wav").is_file()
    score_check = json.loads((folder / "resources" / "score-check.json").read_text())
    assert score_check["ok"] and score_check["root"] == SCORED and score_check["subsets"]["test"] == 1
    for run_name in ("no-mixer", "mixer", "mixture"):
        scores = json.loads((folder / "evaluation" / run_name / "test" / "synth003.json").read_text())
        assert scores["mdxnet"]["reference"].endswith(f"{SCORED}/test/synth003"), run_name
    assert "synth003.json" in {p.name for p in (folder / "evaluation" / "irm" / "test").iterdir()}

    # every row names the set it was scored on: the paper's MUSDB18, this run's generated MUSDB18-HQ layout
    table = json.loads((folder / "results" / "table.json").read_text())
    rows = table["rows"]
    assert rows and all(row.get("dataset") for row in rows)
    ours = [row for row in rows if row["kind"] == "this run"]
    assert ours and all(row["dataset"] == "generated (MUSDB18-HQ layout)" for row in ours)
    assert all(row["dataset"] == "MUSDB18" for row in rows if row["kind"] != "this run")
    assert not any(row.get("comparable") for row in ours)  # a generated set matches no paper row's set
    provenance = table["provenance"]
    assert f"trained on MUSDB18, {ROOT}" in provenance["dataset"] and provenance["scored_dataset_checksum"]
    markdown = (folder / "results" / "table.md").read_text()
    assert markdown.count("| generated (MUSDB18-HQ layout) |") == len(ours)
    assert "- scored dataset checksum: " in markdown

    # each command read only keys its DVC stage declares (`data ... --scored` is the score_data stage's)
    from mdxnet.stages import param_keys

    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert {"data", "score_data"} <= {stage_of(record["argv"])[0] for record in records}
    problems = sorted({f"{stage_of(r['argv'])} reads {key}" for r in records for key in r["keys"]
                       if (declared := param_keys("dvc.yaml", *stage_of(r["argv"]))) is not None
                       and not is_declared(key, declared)})
    assert not problems, problems

    # nothing left to do; then scoring the training release instead retrains nothing, and scores again
    assert planned_jobs(folder, "all") == {}
    raw = yaml.safe_load((folder / "params.yaml").read_text())
    raw["profiles"]["ci"]["data"]["score"] = {"dataset": "same", "root": SCORED}
    write_params(folder, raw)
    jobs = planned_jobs(folder, "all")
    assert not {"data_synth", "data_check", "augment", "train_separator", "train_mixer"} & set(jobs), sorted(jobs)
    assert jobs["separate_track"] and jobs["evaluate_track"] and "report" in jobs
