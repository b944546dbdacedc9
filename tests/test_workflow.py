"""The Snakemake workflow and its DVC stages, run end to end on the minimal `ci` params profile in a temporary
copy of the project (seconds of audio, a tiny model, a few steps).

The copy holds what the workflow reads (workflow/, dvc.yaml, params.yaml, .gitignore, the DVC config); the
commands come from the installed mdxnet package. The `ci` profile's test songs are its one generated test song plus the real 6 s stem
file shipped with stempeg (a name with spaces, read through `data.extra_test`).
"""

from __future__ import annotations

import base64
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")
DVC = str(BIN / "dvc")
COPIED = ["Snakefile", "workflow", "profiles", "src", "dvc.yaml", "published/dvc.yaml", "params.yaml", ".gitignore", ".dvc/config", ".dvc/.gitignore", ".dvcignore"]


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: float = 900,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command with the project's environment first on PATH (dvc.yaml commands call `snakemake`)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1",
           **(env or {})}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                             f"{result.stderr[-6000:]}")
    return result


def make_copy(dest: Path, edit=None) -> Path:
    """A copy of the workflow files under `dest` with `profile: ci`; `edit(raw_params)` may change values."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    raw = yaml.safe_load((dest / "params.yaml").read_text())
    raw["profile"] = "ci"
    if edit is not None:
        edit(raw)
    write_params(dest, raw)
    return dest


def write_params(folder: Path, raw: dict) -> None:
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def planned_jobs(folder: Path, *targets: str) -> dict[str, list[str]]:
    """{rule: [wildcards, ...]} of the jobs a dry run would run."""
    out = run([SNAKEMAKE, "-n", "--cores", "2", *targets], folder).stdout
    jobs: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=\[[^\n]*\d{4}\]\n)", out):
        rule = re.search(r"^(?:local)?(?:rule|checkpoint) (\w+):", block, re.M)
        if rule:
            wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
            jobs.setdefault(rule.group(1), []).append(wildcards.group(1) if wildcards else "")
    return jobs


def tiny_demucs(folder: Path) -> dict:
    """A random-weight Demucs v2 of the authors' class (demucs.model.Demucs; 4 channels, depth 2, no LSTM) saved
    as a state dict under `folder`: the blend.demucs values that download it (file://) and check its sha256."""
    import hashlib

    import torch
    from demucs.model import Demucs

    torch.manual_seed(0)
    model = Demucs(sources=["drums", "bass", "other", "vocals"], channels=4, depth=2, lstm_layers=0)
    path = folder / "demucs-tiny.th"
    torch.save(model.state_dict(), path)
    return {"url": path.as_uri(), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:8]}


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory, stempeg_clip):
    """The whole chain on the ci profile in a fresh git repository, run once for the tests below. Its second
    systems: the stand-in (the conv Mixer) and Demucs v2, a tiny random-weight one downloaded from a file URL."""
    demucs_model = tiny_demucs(tmp_path_factory.mktemp("demucs"))

    def edit(raw):
        raw["profiles"]["ci"]["data"].update(extra_test=[str(stempeg_clip)])
        raw["blend"]["second"] = {"mixer-conv": "estimates/mixer-conv", "demucs": "estimates/demucs"}
        raw["blend"]["demucs"].update(demucs_model)

    folder = make_copy(tmp_path_factory.mktemp("ci") / "project", edit)
    run(["git", "init", "-q"], folder)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init"], folder)
    run(["git", "add", "-A"], folder)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "workflow"], folder)
    # every mdxnet command of the chain records the params keys it reads (mdxnet.config.TRACE_ENV)
    trace = folder.parent / "params-trace.jsonl"
    start = time.perf_counter()
    result = run([SNAKEMAKE, "--cores", "2", "all"], folder, env={"MDXNET_PARAMS_TRACE": str(trace)})
    return {"folder": folder, "seconds": time.perf_counter() - start, "log": result.stderr, "trace": trace}


# ---- start-up checks -----------------------------------------------------------------------------------------
def test_params_file_is_valid_under_every_profile_and_the_schema_is_closed():
    from mdxnet.config import load_params, schema

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for name in raw["profiles"]:
        load_params(REPO / "params.yaml", profile=name)

    def objects(node, path="schema"):
        if isinstance(node, dict):
            if "properties" in node and path != "schema.properties.profiles":
                yield path, node
            for key, value in node.items():
                yield from objects(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from objects(value, f"{path}.{index}")

    for path, node in objects(schema()):
        assert node.get("additionalProperties") is False, f"{path} accepts unknown keys"
        assert set(node.get("required", [])) == set(node["properties"]) or path == "schema", f"{path} not complete"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda raw: raw["profiles"]["ci"]["train"].update(lr={"vocals": -1.0}), "profiles.ci.train.lr"),
        (lambda raw: raw["mixer"].update(kind="transformer"), "mixer.kind"),
        (lambda raw: raw["data"].update(origin="ftp"), "data.origin"),
        (lambda raw: raw.update(profile="nosuch"), "profile 'nosuch' is not defined"),
        (lambda raw: raw["profiles"]["embedded"].update(trian={"steps": 3}), "profiles.embedded.trian"),
        (lambda raw: raw["profiles"]["ci"]["model"].update(hopp=256), "profiles.ci.model.hopp"),
        (lambda raw: raw["model"].update(hopp=256), "model.hopp"),
        (lambda raw: raw["train"].update(steps=-5), "train.steps"),
        (lambda raw: raw.update(sources=["vocals", "piano"]), "sources.1"),
        (lambda raw: raw.update(sample_rate="abc"), "sample_rate"),
    ],
)
def test_bad_params_stop_the_workflow_at_start_with_the_key(tmp_path, edit, expected):
    folder = make_copy(tmp_path, edit)
    result = run([SNAKEMAKE, "-n", "all"], folder, check=False)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert "params.yaml" in result.stdout + result.stderr


def test_an_extra_test_song_whose_name_cannot_name_a_folder_stops_the_workflow_at_start(tmp_path):
    """A `...stem.mp4` in data.extra_test was refused only once the
    data check had run, inside an input function (an InputFunctionException and Snakemake's traceback); a fresh
    project's dry run planned it. Its name is known from params alone."""
    song = tmp_path / "...stem.mp4"
    folder = make_copy(tmp_path / "project", lambda raw: raw["profiles"]["ci"]["data"].update(extra_test=[str(song)]))
    result = run([SNAKEMAKE, "-n", "all"], folder, check=False)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"params data.extra_test: {song}: its track name would be '..'" in out and "rename the file" in out
    assert "InputFunctionException" not in out


def test_numbers_as_dvc_exp_run_writes_them_are_numbers(tmp_path):
    """`dvc exp run -S train.lr.vocals=5e-5` writes `5e-05`, which plain PyYAML reads as a string."""
    folder = make_copy(tmp_path)
    text = (folder / "params.yaml").read_text()
    (folder / "params.yaml").write_text(re.sub(r"(\n  lr:\n    vocals:) [^\n]+", r"\1 5e-05", text, count=1))
    assert "vocals: 5e-05" in (folder / "params.yaml").read_text()
    run([SNAKEMAKE, "-n", "all"], folder)


def test_params_as_dvc_exp_run_rewrites_them_still_load(tmp_path):
    """`dvc exp run -S` writes the whole file back through ruamel (YAML 1.2), dropping quotes that only YAML 1.1
    needs: a value such as "off" came back as off, which PyYAML reads as false, and every experiment stopped at
    the schema check."""
    from ruamel.yaml import YAML

    from mdxnet.config import load_params

    yaml12 = YAML()
    document = yaml12.load((REPO / "params.yaml").read_text())
    with (tmp_path / "params.yaml").open("w") as file:
        yaml12.dump(document, file)
    assert load_params(tmp_path / "params.yaml").to_dict() == load_params(REPO / "params.yaml").to_dict()


def test_values_given_outside_params_yaml_are_refused(tmp_path):
    folder = make_copy(tmp_path)
    result = run([SNAKEMAKE, "-n", "all", "--config", "sample_rate=22050"], folder, check=False)
    assert result.returncode != 0
    assert "only home of values" in result.stdout + result.stderr


def _gpus(vocals: int, device: str = "auto"):
    def edit(raw):
        raw["profiles"]["ci"]["train"].update(gpus={"vocals": vocals, "drums": 1, "bass": 1, "other": 1},
                                              device=device)
    return edit


def _train_job(folder: Path, source: str, *profiles: str) -> tuple[str, dict[str, str]]:
    """The shell command and resources of the dry-run job training `source`."""
    out = run([SNAKEMAKE, "-n", "-p", *profiles, "-f", f"models/{source}.pt"], folder).stdout
    job = re.search(r"rule train_separator:.*?resources: ([^\n]*)\n.*?Shell command: ([^\n]*)", out, re.S)
    return job.group(2), dict(item.split("=", 1) for item in job.group(1).split(", "))


def test_a_separator_on_several_gpus_is_launched_by_torchrun_asking_for_them(tmp_path):
    """train.gpus N > 1: the rule starts `mdxnet train separator` through torchrun with N processes, and the job
    asks for N GPUs where train.device is cuda (the SLURM plugin turns gpu=N into --gpus=N); N = 1 runs mdxnet."""
    folder = make_copy(tmp_path, _gpus(2, "cuda"))
    command, resources = _train_job(folder, "vocals", "--workflow-profile", "profiles/slurm")
    assert command.startswith("torchrun --standalone --nproc_per_node 2 --no-python mdxnet --params params.yaml "
                              "train separator --source vocals ")
    assert resources["gpu"] == "2"
    command, resources = _train_job(folder, "drums", "--workflow-profile", "profiles/slurm")
    assert command.startswith("mdxnet --params params.yaml train separator") and resources["gpu"] == "1"
    raw = yaml.safe_load((folder / "params.yaml").read_text())
    raw["profiles"]["ci"]["train"]["device"] = "auto"
    write_params(folder, raw)
    assert _train_job(folder, "vocals")[1]["gpu"] == "0"  # auto: no GPU request, still two processes


@pytest.mark.slow  # data, augmentation and a 4-step training on 2 CPU processes (~1 min)
def test_the_workflow_trains_a_separator_in_two_gloo_processes(tmp_path):
    folder = make_copy(tmp_path, _gpus(2))
    run([SNAKEMAKE, "--cores", "2", "models/vocals.pt"], folder, env={"OMP_NUM_THREADS": "1"})
    log = (folder / "logs" / "train" / "vocals.log").read_text()
    assert log.count("training in 2 processes (torchrun)") == 1, log[-2000:]  # rank 0 alone says it
    assert "asks for" not in log  # the process count is the one params asks for (mdxnet.training.ddp)
    model = torch.load(folder / "models" / "vocals.pt", weights_only=True)
    assert model["step"] == 4 and model["kind"] == "separator"
    rows = (folder / "dvclive" / "vocals" / "plots" / "metrics" / "loss.tsv").read_text().split()
    assert rows[:2] == ["step", "loss"] and [int(s) for s in rows[2::2]] == [2, 4]  # rank 0 alone logged


def test_the_paper_profile_fetches_checks_and_scores_both_releases_each_in_its_folder(tmp_path):
    """`profile: paper` trains on MUSDB18-HQ and scores MUSDB18 (data.score): both are downloaded and each data
    check reads its own folder (a downloaded folder is the rule's input itself: its dirname, the folder above,
    was checked before)."""
    folder = make_copy(tmp_path, lambda raw: raw.update(profile="paper"))
    out = run([SNAKEMAKE, "-n", "-p", "--cores", "2", "score_data", "resources/data-check.json"], folder).stdout
    commands = sorted(line.split("mdxnet --params params.yaml ")[1].split(" >")[0] for line in out.splitlines()
                      if line.startswith("Shell command: mdxnet"))
    assert commands == ["data check resources/musdb18 --scored --report resources/score-check.json",
                        "data check resources/musdb18hq --report resources/data-check.json",
                        "data fetch", "data fetch --scored"]


def test_lint_is_clean():
    result = run([SNAKEMAKE, "--lint"], REPO)
    assert "in a good condition" in result.stdout + result.stderr


@pytest.mark.slow  # the ci chain first (~1.5 min)
def test_slurm_profile_dry_run(ci_run, tmp_path):
    """The SLURM profile parses and applies its resources (a dry run needs no cluster; tests/test_slurm.py runs
    one); a GPU is requested only where params.yaml says cuda, and profiles/slurm-small shrinks the sizes."""
    folder = tmp_path / "copy"
    shutil.copytree(ci_run["folder"], folder, symlinks=True)

    def training_resources(*profiles: str) -> dict[str, str]:
        result = run([SNAKEMAKE, "-n", *profiles, "-f", "models/vocals.pt"], folder)
        assert "profiles/slurm" in result.stderr
        job = re.search(r"rule train_separator:.*?resources: ([^\n]*)", result.stdout, re.S)
        return dict(item.split("=", 1) for item in job.group(1).split(", "))

    resources = training_resources("--workflow-profile", "profiles/slurm")
    assert resources["gpu"] == "0"  # ci profile: train.device auto, so no --gpus for a CPU-only cluster
    assert resources["runtime"] == "4320" and resources["cpus_per_task"] == "8"
    small = training_resources("--profile", "profiles/slurm", "--workflow-profile", "profiles/slurm-small")
    assert small["cpus_per_task"] == "1" and int(small["mem_mb"]) <= 2000
    raw = yaml.safe_load((folder / "params.yaml").read_text())
    raw["profiles"]["ci"]["train"]["device"] = "cuda"
    write_params(folder, raw)
    assert training_resources("--workflow-profile", "profiles/slurm")["gpu"] == "1"


# ---- DVC and Snakemake agree ---------------------------------------------------------------------------------
PIPELINES = ["dvc.yaml", "published/dvc.yaml"]  # trained models | models.origin: import


def dvc_stages(pipeline: str = "dvc.yaml") -> dict:
    return yaml.safe_load((REPO / pipeline).read_text())["stages"]


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_every_dvc_stage_runs_snakemake_targets_only(pipeline):
    for name, stage in dvc_stages(pipeline).items():
        stage = stage.get("do", stage)
        # no options: the cores and the rest come from profiles/default, so changing them there does
        # not change every stage's command (which DVC would take as a reason to rerun them all); a blend stage
        # names its two runs' summaries
        assert re.fullmatch(r"snakemake( [^-\s]\S*)+", stage["cmd"]), f"stage {name}: {stage['cmd']}"


def test_dvc_yaml_is_generated_from_the_stage_declaration(tmp_path):
    """dvc.yaml's code deps and params lists are mdxnet.stages' (`mdxnet stages --check` passes here); an import
    added to a module makes the stages whose commands reach it stale, named with the fix, and `--write` changes
    exactly those lines."""
    mdxnet = [sys.executable, "-m", "mdxnet.cli"]
    run([*mdxnet, "stages", "--check"], REPO)
    folder = tmp_path / "project"
    for name in ("src", "dvc.yaml", "published/dvc.yaml", "params.yaml"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, folder / name)
    module = folder / "src/mdxnet/training/mixer.py"
    module.write_text(module.read_text() + "\n\ndef _later():\n    from mdxnet.evaluation import stats  # noqa\n")
    result = run([*mdxnet, "stages", "--check"], folder, check=False)
    assert result.returncode == 1
    stale = [line.split(":")[:2] for line in result.stderr.splitlines() if line.startswith(("dvc.yaml", "published"))]
    assert stale == [["dvc.yaml", " stage mixer"]], result.stderr
    assert "src/mdxnet/evaluation/stats.py" in result.stderr and "mdxnet stages --write" in result.stderr

    before = (folder / "dvc.yaml").read_text().splitlines(keepends=True)
    run([*mdxnet, "stages", "--write"], folder)
    run([*mdxnet, "stages", "--check"], folder)
    after = (folder / "dvc.yaml").read_text().splitlines(keepends=True)
    changed = [line for line in difflib.unified_diff(before, after, n=0) if line[0] in "+-"]
    assert changed[2:] == ["+      - src/mdxnet/evaluation/stats.py\n"], changed  # after the ---/+++ header
    mixer = yaml.safe_load("".join(after))["stages"]["mixer"]["deps"]
    assert mixer.index("src/mdxnet/evaluation/stats.py") < mixer.index("resources/data-check.json")
    assert (folder / "published/dvc.yaml").read_text() == (REPO / "published/dvc.yaml").read_text()


def test_the_published_pipeline_needs_no_training():
    published = dvc_stages("published/dvc.yaml")
    assert all(not dep.startswith(("models/vocals", "resources/augmented", "dvclive"))
               for stage in published.values() for dep in stage.get("deps", [])), "imports need no training"


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_every_declared_key_exists_where_dvc_reads_it(pipeline):
    """DVC reads params.yaml as it is (no recipe or profile applied): a declared `key.${item}` needs a
    per-source mapping in the base values, or DVC refuses to run the stage."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for name, stage in dvc_stages(pipeline).items():
        stage = stage.get("do", stage)
        for entry in stage["params"]:
            if isinstance(entry, dict):
                continue
            # foreach items: the sources (train), the second systems of blend.second (blend)
            for item in raw["sources"] if "${item}" in entry else raw["blend"]["second"]:
                node = raw
                for part in entry.replace("${item}", item).replace("${key}", item).split("."):
                    assert isinstance(node, dict) and part in node, f"stage {name}: {entry} is not in params.yaml"
                    node = node[part]


TRAINING_STAGES = ("data", "augment", "train", "mixer")


def test_keys_declared_without_effect_on_training_are_no_training_stages_dependency():
    """A key whose declaration says it has no effect on training (data.extra_test) is in no params list of the
    stages that make the dataset and the models: changing it reruns no data step and no training."""
    from mdxnet.config import declarations
    from mdxnet.stages import param_keys

    inert = [key for key, meta in declarations() if "no effect on training" in (meta["not_compared"] or "")]
    assert "data.extra_test" in inert
    for stage in TRAINING_STAGES:
        for item in (["vocals"] if stage == "train" else [None]):
            declared = param_keys("dvc.yaml", stage, item)
            assert not [key for key in inert if any(key == d or key.startswith(d + ".") for d in declared)], stage


def test_dvc_paths_are_the_workflows_paths():
    from mdxnet.config import load_params

    params = load_params(REPO / "params.yaml")
    stages = dvc_stages()
    assert stages["augment"]["outs"][0] == {"${augment.root}": {"persist": True}}
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert raw["augment"]["root"] == params.augment.root, "DVC reads augment.root without the profile"
    mixer_deps = [d for d in stages["mixer"]["deps"] if d.startswith("models/")]
    assert mixer_deps == [f"models/{source}.pt" for source in params.sources]


# ---- the keys each stage reads are the keys mdxnet.stages declares for it -----------------------------------------
MODEL_RUNS = ("mixer", "no-mixer", "mixer-conv")
BLENDS = ("blend-mixer-conv", "blend-no-mixer-mixer-conv", "blend-demucs", "blend-no-mixer-demucs")


def stage_of(argv: list[str]) -> tuple[str, str | None]:
    """The dvc.yaml stage (and foreach item) that a recorded `mdxnet` command line belongs to."""
    while argv and argv[0].startswith("--"):  # global options: --params FILE
        argv = argv[2:]
    command, rest = argv[0], argv[1:]
    if command == "data":  # --scored: the scored release, where it is not the training one
        return ("score_data" if "--scored" in rest else "data"), None
    if command == "augment":
        return "augment", None
    if command == "train":
        return ("train", rest[rest.index("--source") + 1]) if rest[0] == "separator" else ("mixer", None)
    if command == "evaluate" and rest[0] in ("separate", "mix"):  # the model runs' estimates
        return "evaluate", None
    if command == "evaluate" and rest[0] == "blend":
        return "blend", rest[rest.index("--name") + 1]
    if command == "evaluate" and rest[0] in ("demucs", "demucs-model"):
        return "demucs", None
    if command == "evaluate" and rest[0] in ("track", "aggregate"):
        from mdxnet.runs import second_name

        out = Path(rest[rest.index("-o") + 1])  # <run>/test/<track>.json or <run>/summary.json
        run = out.parents[1].name if rest[0] == "track" else out.parent.name
        if run.startswith("blend-"):
            return "blend", second_name(run)
        return ("evaluate" if run in MODEL_RUNS else "baselines"), None
    if command in ("report", "render", "metrics"):  # `mdxnet render` and `mdxnet metrics` run in the report rule
        return "report", None
    raise AssertionError(f"no dvc.yaml stage known for `mdxnet {' '.join(argv)}`: add it to stage_of")


def is_declared(key: str, declared: list[str]) -> bool:
    # a declared section covers its keys; a read of a per-source value (`model.n_fft`) or of a section object
    # (`train`) is covered by its declared parts (`model.n_fft.vocals`)
    return any(key == d or key.startswith(d + ".") or d.startswith(key + ".") for d in declared)


@pytest.mark.slow  # the ci chain first (~1.5 min)
def test_every_command_reads_only_keys_its_stage_declares(ci_run):
    from mdxnet.stages import param_keys

    records = [json.loads(line) for line in ci_run["trace"].read_text().splitlines()]
    stages = {stage_of(record["argv"])[0] for record in records}
    assert {"data", "augment", "train", "mixer", "evaluate", "demucs", "blend", "baselines", "report"} <= stages
    problems = []
    for record in records:
        stage, item = stage_of(record["argv"])
        declared = param_keys("dvc.yaml", stage, item)
        if declared is None:
            continue
        problems += [f"stage {stage}{'@' + item if item else ''} reads {key} (mdxnet {' '.join(record['argv'])})"
                     for key in record["keys"] if not is_declared(key, declared)]
    assert not sorted(set(problems)), "mdxnet.stages does not declare:\n" + "\n".join(sorted(set(problems)))


# ---- the chain, end to end on the ci profile -----------------------------------------------------------------
@pytest.mark.slow  # the ci chain first (~1.5 min)
def test_ci_chain_ends_with_the_results_table(ci_run):
    folder = ci_run["folder"]
    print(f"ci chain: {ci_run['seconds']:.0f} s")
    table = (folder / "results/table.md").read_text()
    for name in ("table.csv", "table.json", "sdr_boxplot.png"):
        assert (folder / "results" / name).stat().st_size > 0
    # auditability: params hash, commit, dataset checksum and environment are recorded
    check = json.loads((folder / "resources/data-check.json").read_text())
    provenance = json.loads((folder / "results/table.json").read_text())["provenance"]
    commit = provenance["git"]["commit"]  # of the mdxnet code that ran: this checkout's
    assert re.fullmatch(r"[0-9a-f]{40}", commit) and commit in table
    run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], REPO)
    assert check["checksum"] in provenance["dataset_checksum"] and check["checksum"] in table
    assert provenance["profile"] == "ci" and provenance["params_hash"] in table
    assert "torch" in provenance["packages"]
    # one evaluation job per test song and run: the generated song and the extra real stem file
    for run_name in ("mixer", "no-mixer", "mixer-conv", *BLENDS, "mixture", "irm"):
        names = sorted(p.stem for p in (folder / "evaluation" / run_name / "test").glob("*.json"))
        assert names == ["The Easton Ellises - Falcon 69", "synth003"]
        summary = json.loads((folder / "evaluation" / run_name / "summary.json").read_text())
        assert summary["tracks"] == 2 and set(summary["summary"]) == {"vocals", "drums", "bass", "other"}
    # every job left a log and a benchmark
    assert len(list((folder / "benchmarks").rglob("*.tsv"))) == len(list((folder / "logs").rglob("*.log")))


@pytest.mark.slow  # the ci chain first (~1.5 min)
def test_each_test_song_is_separated_once_for_every_model_run(ci_run):
    """The evaluation runs the separators once per test song. Before, the
    `mixer` and `no-mixer` jobs each ran them: twice the separator forward passes counted here."""
    from mdxnet.config import load_params
    from mdxnet.data.musdb import load_track
    from mdxnet.inference.stitching import ChunkPlan, stitching_for

    folder = ci_run["folder"]
    params = load_params(folder / "params.yaml")
    passes = re.compile(r"separator forward passes: (\d+) calls, (\d+) chunks")
    counted = {}
    for log in sorted((folder / "logs").rglob("*.log")):
        found = [tuple(map(int, m)) for m in passes.findall(log.read_text())]
        if found:
            counted[log.relative_to(folder / "logs").as_posix()] = found
    songs = json.loads((folder / "evaluation/no-mixer/summary.json").read_text())["per_track"]
    assert sorted(counted) == sorted(f"separate/{song}.log" for song in songs)  # no other job separates
    for song, reference in ((s, json.loads((folder / f"evaluation/no-mixer/test/{s}.json").read_text())
                             ["mdxnet"]["reference"]) for s in songs):
        length = load_track(folder / reference if not Path(reference).is_absolute() else reference)["mixture"]
        one_separation = sum(len(ChunkPlan.make(length.shape[-1], stitching_for(params, s)).starts)
                             for s in params.sources)
        [(calls, chunks)] = counted[f"separate/{song}.log"]
        assert chunks == one_separation and calls >= len(params.sources)
    total = sum(chunks for found in counted.values() for _, chunks in found)
    print(f"separator chunks in the evaluation: {total} (two model runs separating each: {2 * total})")
    for mixed in (folder / "logs/mix").rglob("*.log"):
        assert "no separator run" in mixed.read_text()
    # the conv Mixer and the blend are rows of their own; the table says how the scores were checked
    table = (folder / "results/table.md").read_text()
    assert "| this run: with conv Mixer (mdxnet's own) |" in table
    assert "blend: this run's Mixer x b + mixer-conv x (1 - b), b = vocals 0.9, drums 0.5, bass 0.5, other 0.7" in table
    crosscheck = json.loads((folder / "results/table.json").read_text())["provenance"]["crosscheck"]
    assert set(crosscheck) == {"mixer", "no-mixer", "mixer-conv", *BLENDS, "mixture", "irm"}
    assert all(c["max_abs_diff_db"] <= 1e-3 for c in crosscheck.values())
    assert "museval cross-check" in table
    for run_name in crosscheck:
        assert json.loads((folder / "evaluation" / run_name / "summary.json").read_text())["crosscheck"]


@pytest.mark.slow  # the ci chain first (~1.5 min)
def test_demucs_runs_once_per_song_and_both_demucs_blends_are_rows(ci_run, capsys):
    """Demucs v2 (a tiny random one here) is downloaded once (sha256 prefix checked), run once per test song as
    params blend.demucs says, and blended with the Mixer's output (the paper's row) and with the separators'
    (arXiv's "v2 + Demucs"); each Demucs setting is a row of the deviations table."""
    folder = ci_run["folder"]
    params = yaml.safe_load((folder / "params.yaml").read_text())["blend"]["demucs"]
    assert [p.name for p in (folder / "resources/demucs").iterdir()] == ["demucs-tiny.th"]
    songs = ["The Easton Ellises - Falcon 69", "synth003"]
    assert sorted(p.name for p in (folder / "estimates/demucs/test").iterdir()) == songs
    assert sorted(p.name for p in (folder / "logs/demucs").iterdir()) == sorted(["model.log", *(f"{s}.log" for s in songs)])
    document = json.loads((folder / "results/table.json").read_text())
    rows = {row["version"]: row for row in document["rows"] if row["kind"] == "this run"}
    assert rows["blend-demucs"]["method"].startswith("this run: blend: this run's Mixer x b + demucs x (1 - b)")
    assert rows["blend-no-mixer-demucs"]["method"].startswith(
        "this run: blend: this run's separators (no Mixer) x b + demucs x (1 - b)")
    assert rows["blend-demucs"]["compared_with"] == "KUIELAB-MDX-Net + Demucs v2 (blend)"  # the workshop paper's
    assert rows["blend-no-mixer-demucs"]["compared_with"] is None  # a row of the arXiv version only
    assert rows["blend-mixer-conv"]["compared_with"] is None  # a stand-in is compared with no paper row
    table = (folder / "results/table.md").read_text()
    shown = [line for line in table.splitlines() if "demucs" in line.lower()]
    deviations = {row["key"]: row for row in document["provenance"]["deviations"]["rows"]}
    for key in ("version", "model", "split", "overlap", "shifts", "normalise"):
        assert f"blend.demucs.{key}" not in deviations  # the authors' values (--all lists them as equal)
    assert deviations["blend.demucs.sha256"]["value"] == params["sha256"]  # the tiny model is not the authors'
    assert deviations["blend.second"]["kind"].startswith("mdxnet default")
    with capsys.disabled():
        print("\nci chain, the Demucs rows of results/table.md:\n" + "\n".join(shown))


@pytest.mark.slow  # the ci chain first (~1.5 min)
def test_second_run_does_nothing(ci_run):
    folder = ci_run["folder"]
    start = time.perf_counter()
    result = run([SNAKEMAKE, "--cores", "2", "all"], folder)
    seconds = time.perf_counter() - start
    print(f"second snakemake run: {seconds:.1f} s")
    assert "Nothing to be done" in result.stderr + result.stdout


@pytest.mark.slow  # the ci chain first (~1.5 min)
def test_a_lost_score_file_is_rebuilt_then_its_summary_and_the_table(ci_run, tmp_path):
    """A per-track score file gone (deleted, or removed by Snakemake for a scoring job that was
    then killed) was never rebuilt: `snakemake all` said "Nothing to be done" while the summary and the table
    made without it stood. A model run's, a baseline's and a blend run's, each rebuilt, then only what reads it."""
    folder = tmp_path / "copy"
    shutil.copytree(ci_run["folder"], folder, symlinks=True)
    for lost in ["mixer/test/synth003.json", "irm/test/synth003.json",
                 "blend-mixer-conv/test/The Easton Ellises - Falcon 69.json"]:
        (folder / "evaluation" / lost).unlink()
    jobs = planned_jobs(folder, "all")
    assert sorted(jobs.pop("evaluate_track", [])) == ["run=irm, track=synth003", "run=mixer, track=synth003"]
    assert jobs.pop("blend_track", []) == ["run=blend-mixer-conv, track=The Easton Ellises - Falcon 69"]
    assert sorted(jobs.pop("aggregate", [])) == ["run=blend-mixer-conv", "run=irm", "run=mixer"]
    assert sorted(jobs) == ["all", "report"]


@pytest.mark.slow  # the ci chain first (~1.5 min)
def test_one_learning_rate_reruns_its_separator_the_mixer_and_evaluation_only(ci_run, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(ci_run["folder"], folder, symlinks=True)
    raw = yaml.safe_load((folder / "params.yaml").read_text())
    raw["train"]["lr"]["vocals"] = 5.0e-5
    write_params(folder, raw)
    jobs = planned_jobs(folder, "all")
    assert jobs.pop("train_separator") == ["source=vocals"]
    assert sorted(jobs.pop("train_mixer")) == ["mixer=mixer", "mixer=mixer-conv"]
    assert len(jobs.pop("separate_track")) == 2  # once per test song, for every model run
    assert sorted(w.split(",")[0] for w in jobs.pop("mix_track")) == ["mixer=mixer"] * 2 + ["mixer=mixer-conv"] * 2
    evaluated = sorted(w.split(",")[0] for w in jobs.pop("evaluate_track"))
    assert evaluated == ["run=mixer"] * 2 + ["run=mixer-conv"] * 2 + ["run=no-mixer"] * 2
    # every blend reads the Mixer's or the separators' estimates; Demucs' own estimates stand (no demucs_track)
    assert sorted(w.split(",")[0] for w in jobs.pop("blend_track")) == sorted(f"run={b}" for b in BLENDS * 2)
    assert sorted(jobs.pop("aggregate")) == sorted(f"run={r}" for r in (*BLENDS, "mixer", "mixer-conv", "no-mixer"))
    assert sorted(jobs) == ["all", "report"]
    # a value of another profile changes nothing that this profile uses
    raw["train"]["lr"]["vocals"] = 2.0e-4
    raw["profiles"]["embedded"]["train"]["lr_scale"] = 3.0
    write_params(folder, raw)
    assert planned_jobs(folder, "all") == {}


@pytest.mark.slow  # the ci chain first (~1.5 min)
def test_one_more_extra_test_song_is_scored_and_nothing_is_trained(ci_run, tmp_path, stempeg_clip):
    folder = tmp_path / "copy"
    shutil.copytree(ci_run["folder"], folder, symlinks=True)
    shutil.copyfile(stempeg_clip, folder / "one more.stem.mp4")
    raw = yaml.safe_load((folder / "params.yaml").read_text())
    raw["profiles"]["ci"]["data"]["extra_test"].append("one more.stem.mp4")
    write_params(folder, raw)
    jobs = planned_jobs(folder, "all")
    assert not {"data_synth", "data_fetch", "data_check", "augment", "train_separator", "train_mixer"} & set(jobs)
    assert "track=one more" in jobs["separate_track"]  # the scoring stages read data.extra_test: they rerun


@pytest.mark.slow  # the ci chain first (~1.5 min)
def test_blend_second_systems_add_runs_and_bad_folders_stop_before_scoring(ci_run, tmp_path):
    """blend.second: {} removes the blend run (nothing else reruns but the report); a second system's folder that
    lacks a test track or a source file stops the workflow, named, before any job; a profile may not set it."""
    folder = tmp_path / "copy"
    shutil.copytree(ci_run["folder"], folder, symlinks=True)
    raw = yaml.safe_load((folder / "params.yaml").read_text())
    raw["blend"]["second"] = {}
    write_params(folder, raw)
    assert sorted(planned_jobs(folder, "all")) == ["all", "report"]

    other = tmp_path / "other-system"
    shutil.copytree(folder / "estimates/no-mixer", other)
    (other / "test/synth003/bass.wav").unlink()
    shutil.rmtree(other / "test/The Easton Ellises - Falcon 69")
    raw["blend"]["second"] = {"other": str(other)}
    write_params(folder, raw)
    result = run([SNAKEMAKE, "-n", "all"], folder, check=False)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "blend.second.other" in message and "synth003 lacks bass.wav" in message
    assert "no estimates for test track 'The Easton Ellises - Falcon 69'" in message

    shutil.copy(folder / "estimates/no-mixer/test/synth003/bass.wav", other / "test/synth003/bass.wav")
    shutil.copytree(folder / "estimates/no-mixer/test/The Easton Ellises - Falcon 69",
                    other / "test/The Easton Ellises - Falcon 69")
    jobs = planned_jobs(folder, "all")
    assert sorted(jobs.pop("blend_track")) == [f"run={r}, track={t}" for r in ("blend-no-mixer-other", "blend-other")
                                               for t in ("The Easton Ellises - Falcon 69", "synth003")]
    assert sorted(jobs.pop("aggregate")) == ["run=blend-no-mixer-other", "run=blend-other"]
    assert sorted(jobs) == ["all", "report"]

    raw["profiles"]["ci"]["blend"] = {"second": {"x": "elsewhere"}}
    write_params(folder, raw)
    result = run([SNAKEMAKE, "-n", "all"], folder, check=False)
    assert result.returncode != 0 and "not in a profile" in result.stdout + result.stderr


@pytest.mark.slow  # the ci chain first (~1.5 min)
def test_files_restored_with_new_times_do_not_rerun(ci_run, tmp_path):
    """What `dvc checkout` does to a lost file: same content, new modification time."""
    folder = tmp_path / "copy"
    shutil.copytree(ci_run["folder"], folder, symlinks=True)
    for path in ["models/vocals.pt", "resources/data-check.json", "resources/synth-ci/test/synth003/mixture.wav"]:
        data = (folder / path).read_bytes()
        (folder / path).unlink()
        time.sleep(0.01)
        (folder / path).write_bytes(data)
    assert planned_jobs(folder, "all") == {}
    # without Snakemake's records (a fresh clone + `dvc pull`), `snakemake --touch` adopts the files
    shutil.rmtree(folder / ".snakemake")
    for path in sorted((folder / "models").glob("*.pt")):
        os.utime(path)
    assert planned_jobs(folder, "all")
    run([SNAKEMAKE, "--touch", "--cores", "1", "all"], folder)
    assert planned_jobs(folder, "all") == {}


@pytest.mark.slow
def test_dvc_repro_and_experiments(ci_run, tmp_path):
    """`dvc commit` adopts the Snakemake run as `make` does (its outputs into DVC's cache), dvc repro then does
    nothing, an experiment on one learning rate reruns exactly that separator's stage, the Mixer, evaluation and the
    report, and the way back to the committed run restores its models and results from the cache."""
    folder = tmp_path / "copy"
    shutil.copytree(ci_run["folder"], folder, symlinks=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    (folder / "estimates/demucs").mkdir(exist_ok=True)  # the end of `make`: the demucs stage's (empty) output ...
    run([DVC, "commit", "--force", "--quiet", "dvc.yaml"], folder)  # ... and the outputs into DVC's cache
    run(["git", "add", "-A"], folder)
    run([*git, "commit", "-q", "-m", "results"], folder)
    committed = {path: (folder / path).read_bytes() for path in
                 ["models/vocals.pt", "models/mixer.pt", "evaluation/mixer/summary.json", "results/table.json"]}

    start = time.perf_counter()
    result = run([DVC, "repro"], folder)
    print(f"second dvc repro: {time.perf_counter() - start:.1f} s")
    assert "Running stage" not in result.stdout

    result = run([DVC, "exp", "run", "-S", "train.lr.vocals=5e-05"], folder)
    ran = sorted(re.findall(r"Running stage '([^']+)'", result.stdout))
    assert ran == ["blend@demucs", "blend@mixer-conv", "evaluate", "mixer", "report", "train@vocals"]
    shown = json.loads(run([DVC, "exp", "show", "--json"], folder).stdout)
    experiments = [rev for entry in shown for exp in (entry.get("experiments") or []) for rev in exp["revs"]]
    lrs = [rev["data"]["params"]["params.yaml"]["data"]["train"]["lr"]["vocals"] for rev in experiments]
    assert lrs == [5e-05]
    assert "dvclive/vocals/metrics.json" in experiments[0]["data"]["metrics"]
    assert (folder / "models/vocals.pt").read_bytes() != committed["models/vocals.pt"]

    # the way back (README "Comparing experiments"): the committed params, lock and git-tracked results, then the
    # DVC outputs from the cache
    run(["git", "checkout", "--", "."], folder)
    start = time.perf_counter()
    run([DVC, "checkout", "--force"], folder)
    print(f"way back: dvc checkout {time.perf_counter() - start:.1f} s")
    assert {path: (folder / path).read_bytes() for path in committed} == committed
    assert "Running stage" not in run([DVC, "repro"], folder).stdout


@pytest.mark.slow
def test_dvc_remote_round_trip_to_a_fresh_clone(ci_run, tmp_path):
    """Results shared between machines: `dvc push` to a remote, then a fresh clone gets the trained models and
    the table back with `dvc pull`, and Snakemake adopts them without recomputing (the generated dataset is not in
    the remote: it is regenerated, deterministically, on the other machine)."""
    folder = tmp_path / "machine-a"
    shutil.copytree(ci_run["folder"], folder, symlinks=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    run([DVC, "repro"], folder)
    run([DVC, "remote", "add", "-d", "shared", str(tmp_path / "remote")], folder)
    run(["git", "add", "-A"], folder)
    run([*git, "commit", "-q", "-m", "results and remote"], folder)
    run([DVC, "push"], folder)

    clone = tmp_path / "machine-b"
    run(["git", "clone", "-q", str(folder), str(clone)], tmp_path)
    assert not (clone / "models").exists()  # models come through the remote ...
    assert (clone / "results/table.md").is_file()  # ... the table and the curves through git (cache: false)
    # metrics compare across commits with no DVC cache at all
    diff = json.loads(run([DVC, "metrics", "diff", "HEAD~1", "--json"], clone).stdout)
    assert "results/metrics.json" in diff and "dvclive/mixer/metrics.json" in diff
    run([DVC, "pull"], clone)
    for path in ["models/vocals.pt", "models/mixer.pt", "results/table.md", "results/table.json",
                 "evaluation/mixer/summary.json", "resources/data-check.json"]:
        assert (clone / path).read_bytes() == (folder / path).read_bytes(), path

    # the dataset comes back by regeneration: same checksum as the pulled data check
    data = json.loads((clone / "resources/data-check.json").read_text())
    run([SNAKEMAKE, "--cores", "2", "resources/synth-ci/mdxnet_dataset.json"], clone)
    regenerated = run([str(BIN / "mdxnet"), "data", "check", "resources/synth-ci"], clone).stdout
    assert data["checksum"] in regenerated

    # Snakemake has no records in a fresh clone: --touch adopts the pulled files, then nothing is left to do
    models_before = {p.name: p.read_bytes() for p in (clone / "models").glob("*.pt")}
    run([SNAKEMAKE, "--touch", "--cores", "1", "all"], clone)
    assert planned_jobs(clone, "all") == {}
    assert {p.name: p.read_bytes() for p in (clone / "models").glob("*.pt")} == models_before
    assert "Running stage" not in run([DVC, "repro"], clone).stdout


@pytest.mark.slow
def test_a_code_change_reruns_exactly_the_steps_it_can_affect(ci_run, tmp_path):
    """Code is a dependency: editing the Mixer's training code reruns the Mixer, the scoring of the run that uses
    it and the report (not the separators, not the no-mixer or baseline scoring); editing the report code reruns
    the report alone; both orchestrators agree."""
    folder = tmp_path / "copy"
    shutil.copytree(ci_run["folder"], folder, symlinks=True)
    run([DVC, "repro"], folder)
    # the trained path's pipeline (published/dvc.yaml, never run here, is listed by a plain `dvc status`)
    assert json.loads(run([DVC, "status", "--json", "dvc.yaml"], folder).stdout) == {}

    def edited(module: str) -> tuple[dict, list[str]]:
        path = folder / "src/mdxnet" / module
        original = path.read_text()
        path.write_text(original + "\n# an edit\n")
        try:
            return planned_jobs(folder, "all"), sorted(json.loads(run([DVC, "status", "--json", "dvc.yaml"], folder).stdout))
        finally:
            path.write_text(original)

    jobs, stages = edited("training/mixer.py")
    assert sorted(jobs.pop("train_mixer")) == ["mixer=mixer", "mixer=mixer-conv"]
    # the Mixers rerun over the stored separator estimates: no separation, no no-mixer or baseline scoring
    assert "separate_track" not in jobs
    assert len(jobs.pop("mix_track")) == 4
    assert sorted(w.split(",")[0] for w in jobs.pop("evaluate_track")) == ["run=mixer"] * 2 + ["run=mixer-conv"] * 2
    # the blends of the Mixers' outputs (the conv Mixer's is a second system); not the separators' with Demucs
    assert sorted(w.split(",")[0] for w in jobs.pop("blend_track")) == sorted(
        f"run={b}" for b in ("blend-mixer-conv", "blend-no-mixer-mixer-conv", "blend-demucs") * 2)
    assert sorted(jobs.pop("aggregate")) == ["run=blend-demucs", "run=blend-mixer-conv", "run=blend-no-mixer-mixer-conv",
                                             "run=mixer", "run=mixer-conv"]
    assert sorted(jobs) == ["all", "report"]
    assert stages == ["mixer"]  # DVC: the stage whose own deps changed (the rest follows from its outputs)

    jobs, stages = edited("evaluation/report.py")
    assert sorted(jobs) == ["all", "report"] and stages == ["report"]

    jobs, stages = edited("data/augment.py")
    assert sorted(jobs["augment"]) == [f"track={name}" for name in ("synth000", "synth001")]
    assert len(jobs["train_separator"]) == 4 and "train_mixer" in jobs
    # the training stages read the augmentation cache through augment.py too
    assert stages == ["augment", "mixer", "train@bass", "train@drums", "train@other", "train@vocals"]


@pytest.mark.slow  # the ci chain first (~1.5 min)
def test_html_report_holds_the_table_the_box_plot_and_the_training_curves(ci_run, tmp_path):
    """`snakemake --report results/report.html` after a finished run: one self-contained HTML file (every
    result embedded, nothing loaded from elsewhere) showing the results table as a page, the box plot and the
    training curves of every model, each with its caption; the report changes nothing the workflow would rerun."""
    folder = tmp_path / "copy"
    shutil.copytree(ci_run["folder"], folder, symlinks=True)
    run([SNAKEMAKE, "--report", "results/report.html"], folder)
    report = (folder / "results/report.html").read_text()
    assert report.lstrip().lower().startswith("<!doctype html>")
    assert not re.search(r"""<(script|link|img|iframe)\b[^>]*\b(src|href)=["']?(https?:)?//""", report, re.I)

    def script_data(name):  # the report's data are JSON in <script id="NAME">var NAME = ...;</script>
        found = re.search(rf'<script id="{name}">\s*var {name} = (.*?);\s*</script>', report, re.S)
        return json.loads(found.group(1))

    results = script_data("results")
    embedded = {path: base64.b64decode(entry["data_uri"].split(";base64,", 1)[1])
                for path, entry in results.items()}
    models = ["vocals", "drums", "bass", "other", "mixer", "mixer-conv"]
    assert sorted(embedded) == sorted(["results/table.html", "results/sdr_boxplot.png",
                                       *(f"results/curves/{name}.png" for name in models)])
    assert embedded["results/sdr_boxplot.png"] == (folder / "results/sdr_boxplot.png").read_bytes()
    for name in models:
        assert embedded[f"results/curves/{name}.png"].startswith(b"\x89PNG"), name
        assert "dvclive" in results[f"results/curves/{name}.png"]["caption"]

    # the table page shows every row of results/table.md, with this run's numbers
    table = (folder / "results/table.md").read_text()
    page = embedded["results/table.html"].decode()
    rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| this run: ")]
    assert len(rows) == 9
    for cells in rows:
        assert f"<td>{cells[0].strip()}</td>" in page
        assert cells[3].strip() in page  # the vocals cell, e.g. `0.05 [-0.57, 0.66]`
    assert "Provenance" in page and "Provenance" in results["results/table.html"]["caption"]
    assert set(script_data("categories")) == {"SDR scores", "Training curves"}
    assert planned_jobs(folder, "all") == {}
