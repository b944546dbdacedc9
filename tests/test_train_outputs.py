"""A training's dvclive log follows its --out: the project's log dvclive/<name>/ belongs to the project's own
models/<name>.pt (the workflow's training); a smoke run writing elsewhere never replaces it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdxnet.cli import main


@pytest.fixture
def captured(monkeypatch, tmp_path, repo_root):
    """Run `mdxnet train ...` in tmp_path with the training itself replaced by a recorder of its arguments."""
    import mdxnet.training.mixer as mixer
    import mdxnet.training.separator as separator

    seen = {}

    def record(*args, live_dir=None, **kwargs):
        seen["live_dir"] = live_dir
        raise SystemExit(0)

    monkeypatch.setattr(separator, "train_separator", record)
    monkeypatch.setattr(mixer, "train_mixer", record)
    monkeypatch.chdir(tmp_path)
    params = str(repo_root / "params.yaml")

    def run(*argv):
        seen.clear()
        try:
            code = main(["--params", params, "train", *argv])
        except SystemExit as done:
            code = done.code
        return code, seen.get("live_dir")
    return run


def test_smoke_training_elsewhere_logs_beside_its_output(captured):
    code, live = captured("separator", "--source", "vocals", "--out", "elsewhere/vocals.pt", "--steps", "1")
    assert code == 0 and Path(live) == Path("elsewhere/dvclive/vocals")
    code, live = captured("mixer", "--models", "elsewhere", "--steps", "1")
    assert code == 0 and Path(live) == Path("elsewhere/dvclive/mixer")


def test_the_workflow_training_keeps_the_project_log(captured):
    """workflow/rules/train.smk: `--out models/<source>.pt`, and the Mixers' `--live-dir dvclive/<mixer>`."""
    code, live = captured("separator", "--source", "drums", "--out", "models/drums.pt")
    assert code == 0 and Path(live) == Path("dvclive/drums")
    code, live = captured("mixer", "--models", "models", "--kind", "conv", "--live-dir", "dvclive/mixer-conv",
                          "--out", "models/mixer-conv.pt")
    assert code == 0 and Path(live) == Path("dvclive/mixer-conv")


def test_an_explicit_project_log_for_another_output_is_refused(captured, capsys):
    code, live = captured("separator", "--source", "vocals", "--out", "elsewhere/vocals.pt",
                          "--live-dir", "dvclive/vocals")
    assert code == 2 and live is None
    assert "--live-dir dvclive/vocals" in capsys.readouterr().err
