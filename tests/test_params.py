"""The one reading of params.yaml (mdxnet.config): typed sections, the closed schema on every entry point, the
profile overlay, and the trace of which keys a command reads."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mdxnet.cli import main
from mdxnet.config import Params, ParamsError, load_params

REPO = Path(__file__).resolve().parents[1]

# Every subcommand, with arguments that would make it work (or fail later, on its input): a bad params file must
# stop each of them first, naming the key.
COMMANDS = [
    ["params"],
    ["separate", "song.wav", "-o", "out"],
    ["models", "init", "-o", "models"],
    ["export", "onnx", "--models", "models", "-o", "onnx"],
    ["data", "check"],
    ["data", "synth"],
    ["data", "list"],
    ["augment", "--all"],
    ["train", "separator", "--source", "vocals"],
    ["train", "mixer"],
    ["evaluate", "track", "song.wav", "--estimator", "mixture", "-o", "x.json"],
    ["evaluate", "aggregate", "evaluation/mixer", "-o", "x.json"],
    ["report", "--runs", "mixer=evaluation/mixer", "-o", "results"],
    ["audit", "estimates"],
    ["plan"],
    ["compare", "HEAD~1", "HEAD"],
    ["metrics", "results/table.json", "-o", "metrics.json"],
]


def edited_params(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_sections_are_typed_and_frozen(params):
    assert isinstance(params, Params)
    assert params.train.mixer.steps == 100 and params.model.n_fft["bass"] == 4096  # embedded profile applied
    with pytest.raises(AttributeError):
        params.train.steps = 1  # read once, never changed in place
    steps = params.train.steps
    assert steps != 7 and params.replace({"train": {"steps": 7}}).train.steps == 7 and params.train.steps == steps


def test_other_profile_and_standalone_file_resolve_to_the_same_values(tmp_path):
    paper = load_params(REPO / "params.yaml", profile="paper")
    assert paper.train.steps == 300000 and paper.profile == "paper"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(paper.standalone()))
    assert load_params(path).to_dict() == {**paper.to_dict(), "recipe": None, "profile": None}


def test_replace_is_checked_like_a_file(params):
    with pytest.raises(ParamsError, match="train.steps"):
        params.replace({"train": {"steps": 0}})
    with pytest.raises(ParamsError, match="train.stepz"):
        params.replace({"train": {"stepz": 3}})


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_every_command_stops_on_a_typo_inside_a_profile(tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    path = edited_params(tmp_path, lambda raw: raw["profiles"]["embedded"].update(trian={"steps": 3}))
    assert main(["--params", str(path), *command]) == 2
    err = capsys.readouterr().err
    assert "profiles.embedded.trian" in err and "unknown key" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing was started


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda raw: raw["model"].update(hopp=3), "model.hopp"),
        (lambda raw: raw["profiles"]["ci"]["train"]["mixer"].update(stepps=3), "profiles.ci.train.mixer.stepps"),
        (lambda raw: raw["train"].update(steps=-5), "train.steps"),
        (lambda raw: raw.update(sources=["vocals", "piano"]), "sources.1"),
        (lambda raw: raw.update(sample_rate="abc"), "sample_rate"),
        (lambda raw: raw["separate"].pop("backend"), "'backend' is a required property"),
        (lambda raw: raw["profiles"]["embedded"]["train"].update(mixer={"steps": 0}),
         "profiles.embedded.train.mixer.steps"),
        # NaN and infinities passed the schema and ended in a traceback mid-training
        (lambda raw: raw["train"].update(lr_scale=float("nan")), "train.lr_scale: nan is not a finite number"),
        (lambda raw: raw["profiles"]["ci"]["train"].update(lr_scale=float("inf")),
         "profiles.ci.train.lr_scale: inf is not a finite number"),
    ],
)
def test_bad_values_name_their_key(tmp_path, capsys, edit, key):
    path = edited_params(tmp_path, edit)
    assert main(["--params", str(path), "params"]) == 2
    assert key in capsys.readouterr().err


def test_folder_as_params_file_is_named(tmp_path, capsys):
    assert main(["--params", str(tmp_path), "params"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_trace_records_the_keys_a_command_reads(tmp_path):
    trace = tmp_path / "trace.jsonl"
    env = {"MDXNET_PARAMS_TRACE": str(trace), "PATH": str(Path(sys.executable).parent)}
    subprocess.run([str(Path(sys.executable).parent / "mdxnet"), "data", "list", "--planned"], cwd=REPO, env=env,
                   check=True, capture_output=True)
    record = json.loads(trace.read_text().splitlines()[-1])
    assert record["argv"] == ["data", "list", "--planned"]
    assert {"data.origin", "data.synth.tracks", "data.synth.test_tracks"} <= set(record["keys"])
    assert not any(key.startswith(("train", "model")) for key in record["keys"])


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path, capsys):
    """`sample_rate:` twice was accepted silently, the last one winning."""
    text = (REPO / "params.yaml").read_text()
    path = tmp_path / "params.yaml"
    path.write_text(text.replace("sample_rate: 44100\n", "sample_rate: 44100\nsample_rate: 22050\n", 1))
    line = text[: text.index("sample_rate: 44100")].count("\n") + 1
    assert main(["--params", str(path), "params"]) == 2
    err = capsys.readouterr().err
    assert f"found key 'sample_rate' twice (first line {line})" in err and f"line {line + 1}" in err


def test_an_alias_bomb_is_refused_at_once(tmp_path, capsys):
    """Nested anchors expanding to billions of nodes (here 9**9 songs in data.extra_test) ended in
    a MemoryError."""
    bomb = ", ".join(["&a0 [x, x, x, x, x, x, x, x, x]"] + [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]"
                                                           for i in range(1, 9)])
    text = (REPO / "params.yaml").read_text()
    path = tmp_path / "params.yaml"
    path.write_text(text.replace("  extra_test: []\n", f"  extra_test: [{bomb}]\n", 1))
    assert main(["--params", str(path), "params"]) == 2
    assert "aliases expand to" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda raw: raw["data"].update(dataset="musdb18-wav"), "data.dataset: 'musdb18-wav' is not one of"),
        (lambda raw: raw["data"].pop("dataset"), "'dataset' is a required property"),
        (lambda raw: raw["data"]["fetch"]["musdb18"].update(md5="xyz"), "data.fetch.musdb18.md5"),
        (lambda raw: raw["data"]["fetch"]["musdb18"].update(url="ftp://x/musdb18.zip"), "data.fetch.musdb18.url"),
    ],
)
def test_dataset_release_key_is_validated(tmp_path, capsys, edit, key):
    """data.dataset takes musdb18hq or musdb18 only, and MUSDB18's record is checked too."""
    path = edited_params(tmp_path, edit)
    assert main(["--params", str(path), "params"]) == 2
    assert key in capsys.readouterr().err


def test_dataset_release_is_typed(params):
    assert params.data.dataset in ("musdb18hq", "musdb18")
    assert params.data.fetch.musdb18.url.endswith("/records/1117372/files/musdb18.zip")


def test_printed_schema_checks_a_params_file(capsys):
    import jsonschema

    assert main(["--params", str(REPO / "params.yaml"), "params", "--schema"]) == 0
    validator = jsonschema.Draft202012Validator(json.loads(capsys.readouterr().out))
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert not list(validator.iter_errors(raw))
    raw["train"]["stpes"] = raw["train"].pop("steps")
    assert {error.validator for error in validator.iter_errors(raw)} == {"required", "additionalProperties"}


@pytest.fixture
def grad_clip_declared(monkeypatch):
    """A new key declared once, in its section only: train.grad_clip, an opt-in whose neutral value is 0.0."""
    from mdxnet import config

    @dataclasses.dataclass(frozen=True)
    class ClippedTrain(config.Train):
        grad_clip: float = config.key({"type": "number", "minimum": 0}, opt_in=0.0,
                                      doc="clip the gradient norm; 0: off, as the authors")

    caches = (config.schema, config._validators)  # generated from the declarations once per process
    monkeypatch.setattr(config, "Train", ClippedTrain)
    for cache in caches:
        cache.cache_clear()
    yield
    monkeypatch.undo()
    for cache in caches:
        cache.cache_clear()


def test_a_new_key_declared_once_is_checked_and_compared(tmp_path, capsys, grad_clip_declared):
    with pytest.raises(ParamsError, match="train: 'grad_clip' is a required property"):
        load_params(edited_params(tmp_path, lambda raw: None))
    with pytest.raises(ParamsError, match=r"profiles\.ci\.train\.grad_clip: -1 is less than the minimum of 0"):
        load_params(edited_params(tmp_path, lambda raw: raw["train"].update(grad_clip=0.0)
                                  or raw["profiles"]["ci"]["train"].update(grad_clip=-1)))

    def deviations(value: float) -> str:
        path = edited_params(tmp_path, lambda raw: raw["train"].update(grad_clip=value))
        assert load_params(path).train.grad_clip == value
        assert main(["--params", str(path), "params", "--deviations"]) == 0
        return capsys.readouterr().out

    assert "grad_clip" not in deviations(0.0)  # the neutral value: as the authors
    row = next(line for line in deviations(1.0).splitlines() if "`train.grad_clip`" in line)
    assert row.startswith("| `train.grad_clip` | 1 | 0 (") and row.endswith("| authors, paper | mdxnet opt-in |")


def test_the_scored_release_is_the_training_one_or_lives_in_a_folder_of_its_own(params):
    """data.score: `same` (the generated-data profiles) scores data.root; another release is scored from
    data.score.root, and the same folder for two releases is refused at start."""
    assert params.data.score.dataset == "same" and not params.data.scores_another_release
    assert params.data.scored_release == params.data.dataset and params.data.scored_root == params.data.root
    assert params.data.scored() == params.data
    paper = load_params(REPO / "params.yaml", profile="paper")
    assert (paper.data.dataset, paper.data.scored_release) == ("musdb18hq", "musdb18")
    assert paper.data.scores_another_release and paper.data.scored_root == paper.data.score.root != paper.data.root
    scored = paper.data.scored()
    assert (scored.dataset, scored.root, scored.scored_root) == ("musdb18", paper.data.score.root, paper.data.score.root)
    assert paper.data.synth == scored.synth and paper.data.origin == scored.origin
    # naming the training release itself is `same`
    hq = paper.replace({"data": {"score": {"dataset": "musdb18hq"}}})
    assert not hq.data.scores_another_release and hq.data.scored_root == paper.data.root
    with pytest.raises(ParamsError, match=r"data\.score\.root is data\.root"):
        paper.replace({"data": {"score": {"root": paper.data.root}}})
