"""The committed dvc.lock records the committed code and params (mdxnet.lockcheck): `dvc status` on a fresh clone
reports no changed dependency, and a commit that changes a stage's code or params without regenerating its outputs
and lock fails here, naming the stage and the file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from mdxnet.lockcheck import expanded_stages, lock_problems, lookup, md5_of

REPO = Path(__file__).resolve().parents[1]


def test_the_committed_lock_records_the_committed_tree():
    result = subprocess.run([sys.executable, "-m", "mdxnet.cli", "stages", "--check-lock"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _project_with_a_matching_lock(folder: Path) -> set[str]:
    """A copy of the project's pipeline whose lock records exactly its files and params; its tracked files."""
    for name in ("src", "dvc.yaml", "params.yaml"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy2)(REPO / name, folder / name)
    params = yaml.safe_load((folder / "params.yaml").read_text())
    tracked = {p.relative_to(folder).as_posix() for p in (folder / "src").rglob("*.py")} | {"params.yaml"}
    stages = {}
    for name, stage in expanded_stages(yaml.safe_load((folder / "dvc.yaml").read_text()), params).items():
        deps = [{"path": p, "hash": "md5", "md5": md5_of(folder / p)} for p in stage["deps"] if p in tracked]
        values = params if stage["params"] is None else {k: lookup(params, k) for k in stage["params"]}
        stages[name] = {"deps": deps, "params": {"params.yaml": values}}
    (folder / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}))
    return tracked


def test_a_planted_code_or_params_change_names_its_stages(tmp_path):
    tracked = _project_with_a_matching_lock(tmp_path)
    assert lock_problems(tmp_path, tracked) == []

    stft = tmp_path / "src/mdxnet/stft.py"
    stft.write_text(stft.read_text() + "\n# a planted change\n")
    problems = lock_problems(tmp_path, tracked)
    named = {line.split(":")[0] for line in problems}
    assert {"train@vocals", "train@bass", "mixer", "evaluate"} <= named and "data" not in named, problems
    assert all("src/mdxnet/stft.py modified" in line for line in problems)

    stft.write_text(stft.read_text().removesuffix("\n# a planted change\n"))
    text = (tmp_path / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(text.replace("vocals: 2.0e-4", "vocals: 3.0e-4", 1))
    # the report records the whole params file (its provenance block), every other stage its own keys
    assert lock_problems(tmp_path, tracked) == ["train@vocals: params train.lr.vocals modified",
                                                "report: params.yaml modified"]
