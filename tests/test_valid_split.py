"""params data.valid_split is honoured by every consumer of the split: training validation, the sampler, the data
check's counts, `mdxnet data list` and the workflow's augmentation jobs. With `none` nothing validates (and
training says so); with `musdb` musdb's 14 official validation tracks validate and are never trained on."""

from __future__ import annotations

import logging
import re

import pytest
import torch
import yaml

from mdxnet.cli import main
from mdxnet.data.check import check_dataset
from mdxnet.data.musdb import musdb_validation_names, split_tracks, track_name
from mdxnet.data.sampler import build_train_dataset
from mdxnet.training.validation import load_valid_tracks

ALL_TRAIN = 16  # the musdb_like fixture: 14 official validation tracks + 2 others in train/


@pytest.fixture(params=["musdb", "none"])
def split(request, musdb_like, params):
    """(valid_split, params on the musdb_like dataset, expected {subset: count})."""
    p = params.replace({"data": {"root": str(musdb_like), "valid_split": request.param},
                        "sampler": {"use_augmented": False}})
    valid = 14 if request.param == "musdb" else 0
    return request.param, p, {"train": ALL_TRAIN - valid, "valid": valid, "test": 1}


def _sampler_track_names(p) -> list[str]:
    dataset = build_train_dataset(p, 1024, seed=0, length=4)
    return sorted(variants[0].track for variants in dataset.tracks)


def test_validation_and_sampler_share_the_split(split, caplog):
    valid_split, p, counts = split
    with caplog.at_level(logging.WARNING, logger="mdxnet.training.validation"):
        valid = [t.name for t in load_valid_tracks(p, ["vocals"])]
    train = _sampler_track_names(p)
    assert len(train) == counts["train"] and len(valid) == counts["valid"]
    assert not set(train) & set(valid)  # nothing validates that is trained on
    assert valid == [track_name(t) for t in split_tracks(p, "valid")]
    if valid_split == "musdb":
        assert valid == sorted(musdb_validation_names())
        assert caplog.text == ""
    else:
        assert "no validation tracks" in caplog.text and "valid_split: none" in caplog.text


def test_data_check_counts_the_split(split):
    _, p, counts = split
    result = check_dataset(p.data.root, p.data, progress=False)
    assert result.ok, result.problems
    assert result.subsets == counts and result.tracks == ALL_TRAIN + 1


def test_data_list_prints_the_split(split, tmp_path, repo_root, capsys):
    valid_split, p, counts = split
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    raw["data"]["valid_split"] = valid_split
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    for subset, count in counts.items():
        capsys.readouterr()
        assert main(["--params", str(params_file), "data", "list", "--subset", subset, "--root", p.data.root]) == 0
        assert len([name for name in capsys.readouterr().out.splitlines() if name]) == count, subset


def test_workflow_augments_exactly_the_sampler_tracks(split, repo_root):
    """`train_tracks` of workflow/rules/common.smk, run as Snakemake runs it (P = the params, the data check
    done): one augmentation job per track the sampler draws from."""
    _, p, _ = split
    text = (repo_root / "workflow" / "rules" / "common.smk").read_text()
    source = re.search(r"^def train_tracks\(\):\n(?:(?:    .*)?\n)+", text, re.MULTILINE).group(0)
    namespace = {"P": p, "checked_dataset": lambda: None}
    exec(source, namespace)
    assert sorted(namespace["train_tracks"]()) == _sampler_track_names(p)


def test_training_without_validation_tracks_skips_validation_and_says_so(musdb_like, params, caplog):
    from mdxnet.training.separator import SeparatorTask

    p = params.replace({"data": {"root": str(musdb_like), "valid_split": "none"},
                        "sampler": {"use_augmented": False}})
    task = SeparatorTask(p, "vocals", seed=0, items=4)
    with caplog.at_level(logging.WARNING, logger="mdxnet.training.validation"):
        assert task.validate(task.model, torch.device("cpu")) is None
    assert "validation is skipped" in caplog.text
