"""The workflow with `models.origin: import` on the ci profile: published files (ci-sized models written in the
authors' layouts: ONNX separators, a Lightning checkpoint, their Mixer) are imported, separated and scored; no
augmentation or training runs, and the table (under published/) labels the model rows as published weights with
the files' sha256. DVC runs the same path as its own pipeline, published/dvc.yaml."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

from authors_layout import write_authors_mixer, write_authors_onnx, write_lightning_separator
from test_workflow import DVC, SNAKEMAKE, make_copy, planned_jobs, run

FILES = {"vocals": "vocals.onnx", "drums": "drums-epoch=599.ckpt", "bass": "bass.onnx", "other": "other.onnx",
         "mixer": "mixer.ckpt"}


def write_published(folder, params) -> dict[str, str]:
    """ci-sized separators and a Mixer in the authors' published layouts; {name: sha256}."""
    from mdxnet.config import per_source, separator_kwargs
    from mdxnet.models import separator_from_kwargs
    from mdxnet.weights_import import file_sha256

    folder.mkdir(parents=True)
    for index, source in enumerate(params.sources):
        torch.manual_seed(index)
        kwargs = separator_kwargs(params, source)
        model = separator_from_kwargs(**{**kwargs, "growth": kwargs["channels"]}).eval()
        path = folder / FILES[source]
        if path.suffix == ".onnx":
            write_authors_onnx(model, int(per_source(params.separate.chunk_frames, source)), path)
        else:
            write_lightning_separator(model, {**kwargs, "growth": kwargs["channels"]}, source, path)
    write_authors_mixer(torch.eye(8, 10) * 0.5, folder / FILES["mixer"])
    return {name: file_sha256(folder / file) for name, file in FILES.items()}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth is not installed")
def test_imported_models_are_separated_scored_and_labelled(tmp_path):
    from mdxnet.config import load_params
    from mdxnet.weights_import import file_sha256

    def edit(raw):
        raw["models"]["origin"] = "import"
        raw["models"]["published"].update(dir="downloads", files=FILES)

    folder = make_copy(tmp_path / "project", edit)
    params = load_params(folder / "params.yaml")
    assert params.model.channels == params.model.growth  # the authors' layout: channels grow by g from g
    checksums = write_published(folder / "downloads", params)

    jobs = planned_jobs(folder, "all")
    assert not {"augment", "train_separator", "train_mixer"} & set(jobs)
    assert sorted(jobs["import_onnx"]) == ["name=bass", "name=other", "name=vocals"]
    assert sorted(jobs["import_checkpoint"]) == ["name=drums", "name=mixer"]

    run([SNAKEMAKE, "--cores", "2", "all"], folder)
    assert not (folder / "resources/augmented").exists() and not (folder / "models/vocals.pt").exists()
    assert not (folder / "results").exists() and not (folder / "evaluation").exists()  # the trained path's
    assert sorted(p.name for p in (folder / "models/imported").iterdir()) == sorted(
        ["vocals.onnx", "bass.onnx", "other.onnx", "drums.pt", "mixer.pt",
         *(f"{name}.import.json" for name in FILES)])
    document = json.loads((folder / "published/results/table.json").read_text())
    recorded = {r["name"]: r["sha256"] for r in document["provenance"]["imported_weights"]}
    assert recorded == checksums
    table = (folder / "published/results/table.md").read_text()
    assert "| published weights (imported): with Mixer |" in table
    assert "| published weights (imported): without Mixer |" in table
    assert "PUBLISHED WEIGHTS imported" in table and all(sha in table for sha in checksums.values())
    assert "this run: mixture as estimate" in table  # the baselines keep their labels
    assert planned_jobs(folder, "all") == {}

    # a published file replaced by another: its import, the scoring and the table rerun
    write_authors_mixer(torch.eye(8, 10) * 0.4, folder / "downloads" / FILES["mixer"])
    jobs = planned_jobs(folder, "all")
    assert jobs["import_checkpoint"] == ["name=mixer"] and "import_onnx" not in jobs

    # DVC: published/dvc.yaml runs the import path (no augmentation or training stage), here the new Mixer file
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    run(["git", "init", "-q"], folder)
    run(["git", "add", "-A"], folder)
    run([*git, "commit", "-q", "-m", "import"], folder)
    result = run([DVC, "repro", "published/dvc.yaml"], folder)
    ran = sorted(re.findall(r"Running stage '([^']+)'", result.stdout))
    assert ran == ["data", *(f"published/dvc.yaml:{stage}" for stage in ("evaluate", "import", "report"))]
    assert planned_jobs(folder, "all") == {}
    mixer_record = json.loads((folder / "models/imported/mixer.import.json").read_text())
    assert mixer_record["sha256"] == file_sha256(folder / "downloads" / FILES["mixer"])
    assert "Running stage" not in run([DVC, "repro", "published/dvc.yaml"], folder).stdout
    # the training pipeline under import stops at its first training stage and names the way out
    result = run([DVC, "repro"], folder, check=False)
    assert result.returncode != 0 and "published/dvc.yaml" in result.stdout + result.stderr
    assert not (folder / "resources/augmented").exists()
