"""The reference table (mdxnet.recipes): each recipe's deviations from the authors' code and the paper's text,
every params key covered, `mdxnet params --deviations`. Checked against params.yaml and the table's own values,
not against how the code behaves."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mdxnet import recipes
from mdxnet.cli import main
from mdxnet.config import from_resolved, load_params

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"
MIRRORS = Path("/work/.mirror")
RAW = recipes.read_raw(PARAMS)
GOVERNED = {row.key: row for row in recipes.GOVERNED}
SCALE_KINDS = ("scale (", "network (")


def _deviations(recipe: str, profile: str = "paper") -> list[recipes.Deviation]:
    return recipes.deviations(load_params(PARAMS, profile=profile, recipe=recipe), RAW)


def _recipe_kind(row: recipes.Deviation) -> bool:
    """A deviation the recipe decides (not the scale, not a fixed one, not a bug, not the stand-in second system
    of the base values)."""
    return row.key in GOVERNED and not row.kind.startswith(SCALE_KINDS) and row.kind != recipes.KIND_STAND_IN


def _governed_keys_set_by(overlay: dict) -> set[str]:
    """The GOVERNED keys an overlay of params.yaml sets (a per-source dict counts as its key)."""
    leaves = recipes._overlay_keys(overlay)
    return {key for key in GOVERNED if any(leaf == key or leaf.startswith(key + ".") for leaf in leaves)}


def test_authors_recipe_deviates_from_the_authors_only_where_no_param_can_follow():
    rows = _deviations("authors")
    assert not [row for row in rows if _recipe_kind(row) and row.from_authors]
    fixed = {row.key for row in rows if row.from_authors and row.kind == recipes.KIND_FIXED}
    assert "augmentation tool" in fixed
    assert {row.key for row in rows if row.kind == recipes.KIND_FIXED} == {r.key for r in recipes.FIXED
                                                                          if r.kind == recipes.KIND_FIXED}
    # the only rows against the paper are where the paper's text and the authors' code disagree
    speaks_otherwise = {key for key, row in GOVERNED.items()
                        if row.paper and not recipes.matches(row.paper.value, row.authors.value, ["vocals"])}
    assert {row.key for row in rows if _recipe_kind(row) and row.from_paper} == speaks_otherwise
    assert all(row.kind == recipes.KIND_AUTHORS for row in rows if row.key in speaks_otherwise)


def test_paper_recipe_differs_from_the_authors_by_the_loss_only_and_never_from_the_paper():
    rows = _deviations("paper")
    assert not [row for row in rows if _recipe_kind(row) and row.from_paper]
    against_authors = {row.key for row in rows if _recipe_kind(row) and row.from_authors}
    assert against_authors == _governed_keys_set_by(RAW["recipes"]["paper"]) == {"train.loss"}
    loss = next(row for row in rows if row.key == "train.loss")
    assert loss.kind == recipes.KIND_PAPER and loss.paper_source.startswith("paper §")
    assert loss.value == "l1" and loss.authors == "mse"


DEMUCS_SETTINGS = ("version", "model", "sha256", "split", "overlap", "shifts", "normalise")


def test_every_demucs_setting_and_the_second_system_are_compared_with_the_authors_submission():
    params = load_params(PARAMS, profile="paper", recipe="authors")
    rows = {row.key: row for row in recipes.deviations(params, RAW, equal=True)}
    for name in DEMUCS_SETTINGS:
        row = rows[f"blend.demucs.{name}"]
        assert row.kind == recipes.KIND_EQUAL and row.authors_source.startswith(recipes.SUBMISSION), name
    # the base values blend with a stand-in: listed as such, against the authors' Demucs
    second = rows["blend.second"]
    assert second.kind == recipes.KIND_STAND_IN and second.from_authors
    assert second.value == "mixer-conv: estimates/mixer-conv" and "Demucs v2" in second.authors
    # the authors' second system, Demucs run here, leaves no row; a changed setting is one, named
    values = params.to_dict()
    values["blend"]["second"] = {"demucs": "estimates/demucs"}  # replaced, not merged
    edited = from_resolved(values, "test").replace({"blend": {"demucs": {"overlap": 0.25, "shifts": 1,
                                                                         "normalise": "mono"}}})
    rows = {row.key: row for row in recipes.deviations(edited, RAW)}
    assert "blend.second" not in rows
    assert {key for key in rows if key.startswith("blend.")} == {"blend.demucs.overlap", "blend.demucs.shifts",
                                                                 "blend.demucs.normalise"}
    assert rows["blend.demucs.normalise"].value == "mono" and rows["blend.demucs.normalise"].authors == "stereo"


def test_mdxnet_recipe_lists_its_opt_ins():
    params = load_params(PARAMS, profile="paper", recipe="mdxnet")
    rows = {row.key: row for row in recipes.deviations(params, RAW)}
    values = params.to_dict()
    overlay_keys = _governed_keys_set_by(RAW["recipes"]["mdxnet"])
    sources = list(params.sources)
    off_both = {key for key in overlay_keys
                if not recipes.matches(GOVERNED[key].authors.value, recipes.lookup(values, key), sources)
                and not recipes.matches(GOVERNED[key].paper_reference.value, recipes.lookup(values, key), sources)}
    assert off_both, "the mdxnet recipe sets values of its own"
    assert {key for key, row in rows.items() if row.kind == recipes.KIND_OPT_IN} == off_both
    for key in overlay_keys - off_both:  # the recipe's values that one reference holds (the paper's loss)
        assert key not in rows or rows[key].kind in (recipes.KIND_PAPER, recipes.KIND_AUTHORS)


def uncovered_keys(params) -> list[str]:
    """Leaf keys neither governed (a row of GOVERNED) nor declared not compared (itself or its section) nor opt-in."""
    return sorted(key for key in recipes.leaf_keys(params)
                  if key not in GOVERNED and not recipes.ignored(key) and key not in recipes.opt_ins())


def test_every_params_key_is_governed_not_compared_or_opt_in():
    params = load_params(PARAMS)
    uncovered = uncovered_keys(params)
    assert not uncovered, (f"cite these params keys' references in mdxnet.recipes GOVERNED, or declare them "
                           f"not_compared (with why) or opt_in (with the neutral value) in mdxnet.config: {uncovered}")
    # a governed key declares no second treatment, and no row of the table names a key the params do not have
    # (a renamed key would go unnoticed)
    keys = set(recipes.leaf_keys(params))
    twice = sorted(key for key in GOVERNED if recipes.ignored(key) or key in recipes.opt_ins())
    assert not twice, f"governed keys also declared not_compared or opt_in in mdxnet.config: {twice}"
    stale = sorted(key for key in GOVERNED if key not in keys and key not in recipes.FORMER_KEYS)
    assert not stale, f"mdxnet.recipes GOVERNED names keys params.yaml does not have: {stale}"


def test_an_undeclared_key_is_uncovered(monkeypatch):
    # a key declared with a type and a doc only: the coverage check above must name it
    params = load_params(PARAMS)
    reasons = recipes.ignored_reasons()
    del reasons["train.log_every"]
    monkeypatch.setattr(recipes, "ignored_reasons", lambda: reasons)
    assert uncovered_keys(params) == ["train.log_every"]


def test_scale_is_told_from_the_recipe():
    rows = {row.key: row for row in _deviations("mdxnet", "embedded")}
    # embedded sets the batch size: scale, with the recipe's own value named
    assert rows["train.batch_size"].kind.startswith("scale (profile embedded)")
    # a profile's choice of method is this project's opt-in, not a size (the paper recipe's Mixer init is random)
    paper = {row.key: row for row in _deviations("paper", "embedded")}
    assert paper["mixer.init"].kind == "mdxnet opt-in (profile embedded)"
    assert f"recipe mdxnet: {recipes.show(RAW['recipes']['mdxnet']['train']['batch_size'])}" in \
        rows["train.batch_size"].kind
    # at full size the run counts the authors' epochs: no step count is read or listed, the epoch keys are equal
    full = {row.key: row for row in _deviations("authors", "paper")}
    assert not {"train.unit", "train.max_epochs", "train.valid_every_epochs", "train.steps", "train.valid_every",
                "train.mixer.max_epochs", "train.mixer.steps"} & set(full)
    # a step count is scale wherever the run counts steps (never equal to the authors' epochs); counting steps is
    # the profile's scale, or the mdxnet recipe's own choice (its fixed step budget)
    assert paper["train.steps"].kind.startswith("scale (profile embedded)")
    assert paper["train.unit"].kind.startswith("scale (profile embedded)")
    assert rows["train.unit"].kind == "mdxnet opt-in"


def test_a_base_value_changed_away_from_the_authors_is_called_edited(tmp_path):
    raw = yaml.safe_load(PARAMS.read_text())
    raw["train"]["lr"]["vocals"] = 3.0e-4  # what `dvc exp run -S train.lr.vocals=3e-4` writes
    edited = tmp_path / "params.yaml"
    edited.write_text(yaml.safe_dump(raw, sort_keys=False))
    rows = {row.key: row for row in recipes.deviations(load_params(edited, profile="paper", recipe="paper"),
                                                       recipes.read_raw(edited))}
    assert rows["train.lr"].kind == recipes.KIND_EDITED
    assert rows["train.lr"].value == "vocals 0.0003, drums 0.0001, bass 0.0001, other 0.0001"


def test_matches_compares_per_source_values_with_shared_ones():
    sources = ["vocals", "drums", "bass", "other"]
    assert recipes.matches({"vocals": 8, "drums": 8, "bass": 8, "other": 8}, 8, sources)
    assert not recipes.matches({"vocals": 16, "drums": 8, "bass": 8, "other": 8}, 8, sources)
    assert recipes.matches(2e-4, 0.0002, sources) and not recipes.matches(0, False, sources)
    assert recipes.matches([0.8, 1.0], [0.8, 1], sources) and not recipes.matches([1], [1, 2], sources)
    assert not recipes.matches(recipes.NO_PARAMS_VALUE, 300000, sources)
    assert recipes.matches(recipes.AnyOf(("fetch", "existing")), "existing", sources)


def test_params_deviations_cli(capsys):
    assert main(["--params", str(PARAMS), "params", "--deviations", "--recipe", "authors", "--profile", "paper"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Recipe `authors`, profile `paper`")
    lines = [line for line in out.splitlines() if line.startswith("|")]
    assert len({line.replace("\\|", "").count("|") for line in lines}) == 1
    assert any(line.startswith("| augmentation tool | rubberband") for line in lines)
    assert any(line.startswith("| `train.loss` | mse |") for line in lines)
    # the default combination: the file's own recipe and profile
    assert main(["--params", str(PARAMS), "params", "--deviations"]) == 0
    assert f"Recipe `{RAW['recipe']}`, profile `{RAW['profile']}`" in capsys.readouterr().out
    assert main(["--params", str(PARAMS), "params", "--recipe", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_all_shows_the_values_equal_to_both_references(capsys):
    """The authors' validation chunks, early stopping and determinism are compared, and equal under the
    authors' recipe; --all shows them with nothing in "Differs from", and only --all shows them."""
    argv = ["--params", str(PARAMS), "params", "--deviations", "--recipe", "authors", "--profile", "paper"]
    assert main(argv) == 0
    plain = capsys.readouterr().out
    assert main([*argv, "--all"]) == 0
    every = capsys.readouterr().out
    rows = {line.split(" | ")[0].strip("| `"): line for line in every.splitlines() if line.startswith("| `")}
    for key, value in (("train.valid_chunks", "training"), ("train.early_stopping.patience", "50"),
                       ("train.early_stopping.min_delta", "0.05"), ("train.deterministic", "true")):
        cells = [cell.strip() for cell in rows[key].split(" | ")]
        assert cells[1].lower() == value and cells[4] == "" and cells[5].rstrip(" |") == "equal to both", rows[key]
        assert f"`{key}`" not in plain
    # every row of the plain table is in the full one, unchanged
    assert {line for line in plain.splitlines() if line.startswith("| ")} <= set(every.splitlines())


# ---- the authors' values, read again from their repositories (where the mirrors are on this machine) ----------
def _git_show(repo: str, ref: str, path: str) -> str:
    git_dir = MIRRORS / repo.replace("/", "+") / "repo"
    if not git_dir.is_dir() or shutil.which("git") is None:
        pytest.skip(f"no mirror of {repo} at {git_dir}")
    done = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{ref}:{path}"], capture_output=True, text=True)
    assert done.returncode == 0, f"{repo}@{ref}:{path}: {done.stderr}"
    return done.stdout


def _authors_yaml(path: str) -> dict:
    return yaml.safe_load(_git_show("kuielab/mdx-net", "Leaderboard_A", path))


def test_every_cited_file_exists_in_the_authors_repositories():
    cited = [row.authors.source for row in recipes.GOVERNED] + [row.authors_source for row in recipes.FIXED]
    for source in cited:
        repo_ref, _, rest = source.partition(":")
        repo, _, ref = repo_ref.partition("@")
        for path in re.findall(r"[\w./{},-]+\.(?:py|yaml|md)", rest):
            head, brace, tail = path.partition("{")
            options, _, after = tail.partition("}")
            for option in options.split(",") if brace else [""]:
                _git_show(repo, ref, f"{head}{option}{after}")


def test_the_authors_values_are_those_of_their_configs():
    expect = {"n_fft": "model.n_fft", "lr": "train.lr", "overlap": "separate.overlap"}
    for source in ("vocals", "drums", "bass", "other"):
        config = _authors_yaml(f"configs/model/ConvTDFNet_{source}.yaml")
        for theirs, ours in expect.items():
            assert config[theirs] == GOVERNED[ours].authors.value[source], (source, theirs)
        shared = {"dim_f": "model.dim_f", "dim_t": "model.dim_t", "hop_length": "model.hop",
                  "num_blocks": "model.num_blocks", "l": "model.num_convs", "g": "model.growth",
                  "k": "model.kernel", "bn": "model.bottleneck", "bias": "model.bias", "optimizer": "train.optimizer"}
        for theirs, ours in shared.items():
            assert config[theirs] == GOVERNED[ours].authors.value, (source, theirs)
        assert config["g"] == GOVERNED["model.channels"].authors.value
        experiment = _authors_yaml(f"configs/experiment/multigpu_{source}.yaml")
        assert experiment["datamodule"]["batch_size"] == GOVERNED["train.batch_size"].authors.value[source]
    mixer = _authors_yaml("configs/model/Mixer.yaml")
    assert mixer["lr"] == GOVERNED["train.mixer.lr"].authors.value
    assert mixer["overlap"] == GOVERNED["train.mixer.edge_trim"].authors.value
    assert _authors_yaml("configs/experiment/mixer.yaml")["datamodule"]["batch_size"] == \
        GOVERNED["train.mixer.batch_size"].authors.value
    assert _authors_yaml("configs/trainer/minimal.yaml")["precision"] == 16
    datamodule = _authors_yaml("configs/datamodule/musdb18_hq.yaml")
    assert datamodule["aug_params"] == [max(GOVERNED["augment.pitch_semitones"].authors.value),
                                        round(100 * (max(GOVERNED["augment.tempo_rates"].authors.value) - 1))]
    from mdxnet.data.musdb import musdb_validation_names

    assert list(datamodule["validation_set"]) == list(musdb_validation_names())  # valid_split musdb = theirs


def test_the_mixer_trains_on_the_test_set_only_off_leaderboard_a():
    """Not a deviation of the recipe: the Mixer config of kuielab/mdx-net main adds MUSDB's test set (the
    leaderboard B recipe), Leaderboard_A's does not, and 97ea1df, which removed it, is an ancestor of Leaderboard_A
    only."""
    assert not [row for row in recipes.FIXED if "test set" in row.value + row.authors]
    path = "configs/experiment/mixer.yaml"
    assert yaml.safe_load(_git_show("kuielab/mdx-net", "main", path))["datamodule"]["external_datasets"] == ["test"]
    assert "external_datasets" not in _authors_yaml(path)["datamodule"]
    git_dir = MIRRORS / "kuielab+mdx-net" / "repo"
    for branch, ancestor in [("Leaderboard_A", 0), ("main", 1)]:
        done = subprocess.run(["git", f"--git-dir={git_dir}", "merge-base", "--is-ancestor", "97ea1df", branch])
        assert done.returncode == ancestor, branch


# ---- the paper rehearsal: the paper's values except its declared scale ----------------------------------------
REHEARSAL_SCALE = {"data.origin", "data.root", "data.score.root", "data.extra_test", "data.synth",
                   "train.batch_size", "train.unit", "train.steps", "train.device", "train.gpus",
                   "train.mixer.batch_size", "train.mixer.steps"}


def _leaves(node, prefix=""):
    if isinstance(node, dict) and node:
        return {key: value for k, v in node.items() for key, value in _leaves(v, f"{prefix}{k}.").items()}
    return {prefix[:-1]: node}


def test_the_rehearsal_differs_from_the_paper_profile_only_in_its_declared_scale():
    for recipe in RAW["recipes"]:
        paper = _leaves(load_params(PARAMS, profile="paper", recipe=recipe).to_dict())
        rehearsal = _leaves(load_params(PARAMS, profile="rehearsal", recipe=recipe).to_dict())
        missing = object()  # a per-source dict against a shared value: their keys differ, so do the values
        differ = {key for key in paper.keys() | rehearsal.keys()
                  if key != "profile" and paper.get(key, missing) != rehearsal.get(key, missing)}
        covering = {next(s for s in REHEARSAL_SCALE if key == s or key.startswith(s + ".")) for key in differ
                    if any(key == s or key.startswith(s + ".") for s in REHEARSAL_SCALE)}
        # the mdxnet recipe counts steps itself (its fixed step budget): the rehearsal's train.unit is its own
        same_unit = {"train.unit"} if RAW["recipes"][recipe].get("train", {}).get("unit") == "steps" else set()
        assert covering == REHEARSAL_SCALE - same_unit, f"recipe {recipe}: declared scale keys that do not differ"
        undeclared = sorted(key for key in differ if not any(key == s or key.startswith(s + ".")
                                                             for s in REHEARSAL_SCALE))
        assert not undeclared, f"recipe {recipe}: the rehearsal changes {undeclared} beyond its declared scale"
        # the paper-size network and the values the rehearsal exists to run are the paper's
        assert rehearsal["model.dim_t"] == 256 and rehearsal["model.n_fft.bass"] == 16384
        assert rehearsal["train.amp"] is True and rehearsal["train.num_workers"] == 4
        assert rehearsal["train.mixer.edge_trim"] == (0 if recipe == "mdxnet" else 8192)


def test_deviations_list_every_key_the_rehearsal_changes_as_scale():
    rows = {row.key: row for row in _deviations("paper", "rehearsal")}
    for key in REHEARSAL_SCALE:
        assert rows[key].kind.startswith("scale (profile rehearsal)"), (key, rows[key].kind)
    # nothing else is put down to the profile (the epoch-counted keys are scale at the paper size too)
    paper_scale = {row.key for row in _deviations("paper", "paper") if row.kind.startswith(SCALE_KINDS)}
    by_profile = {key for key, row in rows.items() if row.kind.startswith(SCALE_KINDS)}
    # the step intervals are read, so listed, once the rehearsal counts steps (train.unit), though it sets neither
    assert by_profile == REHEARSAL_SCALE | paper_scale | {"train.valid_every", "train.mixer.valid_every"}
    # and the rest of the table is the paper profile's
    others = {(r.key, r.value, r.kind) for r in rows.values() if r.key not in by_profile}
    assert others == {(r.key, r.value, r.kind) for r in _deviations("paper", "paper")
                      if not r.kind.startswith(SCALE_KINDS)}
