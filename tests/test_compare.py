"""`mdxnet compare` (mdxnet.evaluation.compare): paired per-song differences between experiments, their interval
and p, seed groups, and the refusals; `mdxnet metrics`, the compact metrics DVC shows.

The fast tests plant per-song scores; the slow one runs the ci chain twice, differing in one learning rate, and
checks the comparison against a hand computation.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mdxnet.config import load_params
from mdxnet.errors import UserError
from mdxnet.evaluation import compare as cmp

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["bass", "drums", "other", "vocals"]
CHECKSUM = "43db5b30fa30 (sha256 ...)"
SCORING = "BSS Eval v4 as museval computes it (SiSEC2018): win 1.0 s, hop 1.0 s"


@pytest.fixture(scope="module")
def bootstrap():
    return load_params(REPO / "params.yaml").evaluate.bootstrap


def table(per_song: dict[str, dict[str, float]], run: str = "mixer", checksum: str = CHECKSUM,
          scoring: str = SCORING) -> dict:
    """A results/table.json with one run's per-song scores (what `mdxnet compare` reads)."""
    return {"per_track_sdr": {run: per_song},
            "provenance": {"dataset_checksum": checksum, "scoring": scoring}}


def side(name: str, per_song, params: dict | None = None, **kwargs) -> cmp.Side:
    return cmp.Side(name, f"test {name}", table(per_song, **kwargs), params)


def planted(shift: float, songs: int = 20, seed: int = 1, noise: float = 0.3):
    """Per-song scores of A (songs of varied difficulty) and B = A + shift + small per-song noise."""
    rng = np.random.default_rng(seed)
    base = rng.normal(4.0, 2.0, size=songs)  # song difficulty: far larger than the planted shift
    a = {f"song{i:02d}": {s: float(base[i] + k) for k, s in enumerate(SOURCES)} for i in range(songs)}
    b = {song: {s: v + shift + float(rng.normal(0, noise)) for s, v in scores.items()} for song, scores in a.items()}
    return a, b


def test_a_real_difference_is_flagged_and_a_null_one_is_not(bootstrap):
    a, b = planted(shift=0.5)
    result = cmp.compare([side("A", a)], [side("B", b)], bootstrap)
    assert len(result["rows"]) == 4
    for row in result["rows"]:
        assert row["flagged"] and row["verdict"] == "B better"
        assert row["low"] > 0 and row["p_value"] < 0.01 and row["songs"] == 20
        assert row["low"] <= 0.5 <= row["high"]  # the interval holds the planted shift
    worse = cmp.compare([side("A", b)], [side("B", a)], bootstrap)
    assert {r["verdict"] for r in worse["rows"]} == {"B worse"}

    a, b = planted(shift=0.0)
    # a null difference as large as the planted one in the group medians: B's songs are shuffled noise only
    result = cmp.compare([side("A", a)], [side("B", b)], bootstrap)
    for row in result["rows"]:
        assert not row["flagged"] and row["verdict"] == "no clear difference"
        assert row["low"] <= 0 <= row["high"]


def test_the_statistics_are_the_paired_ones(bootstrap):
    """Median of B - A over songs, its bootstrap interval of those differences, the signed-rank p of the pairs."""
    from scipy.stats import wilcoxon

    from mdxnet.evaluation.stats import bootstrap_median_ci

    a, b = planted(shift=0.2, songs=9, noise=0.5)
    b["song03"]["vocals"] = float("nan")  # a song B did not score is left out of that source only
    row = next(r for r in cmp.compare([side("A", a)], [side("B", b)], bootstrap)["rows"] if r["source"] == "vocals")
    songs = [s for s in a if s != "song03"]
    differences = [b[s]["vocals"] - a[s]["vocals"] for s in songs]
    assert row["songs"] == 8
    assert row["median_difference"] == pytest.approx(np.median(differences))
    interval = bootstrap_median_ci(differences, bootstrap.resamples, bootstrap.confidence, bootstrap.seed)
    assert (row["low"], row["high"]) == pytest.approx((interval.low, interval.high))
    assert row["p_value"] == pytest.approx(wilcoxon(differences).pvalue)


def test_seed_groups_report_the_spread_and_say_when_a_difference_is_within_it(bootstrap):
    a, _ = planted(shift=0.0)
    # three seeds of A and three of B: B's seeds move every song by +0.1 dB, the seeds by -1, 0, +1 dB
    a_seeds = [side(f"a{k}", {s: {src: v + d for src, v in sc.items()} for s, sc in a.items()}, {"train": {"seed": k}})
               for k, d in enumerate((-1.0, 0.0, 1.0))]
    b_seeds = [side(f"b{k}", {s: {src: v + d + 0.1 for src, v in sc.items()} for s, sc in a.items()},
                    {"train": {"seed": k}}) for k, d in enumerate((-0.5, 0.0, 0.5))]
    result = cmp.compare(a_seeds, b_seeds, bootstrap)
    for row in result["rows"]:
        assert row["median_difference"] == pytest.approx(0.1)  # means over the seeds, per song
        assert row["a_seed_spread"] == pytest.approx(2.0) and row["b_seed_spread"] == pytest.approx(1.0)
        assert row["within_seed_spread"] is True and "within seed spread" in row["verdict"]
    text = cmp.render_markdown(result)
    assert "3 seeds: a0 (seed 0)" in text and "2.00/1.00" in text
    assert result["params_diff"] == []  # the seeds are what a group differs in: not listed as a params change


def test_seed_group_members_must_differ_only_in_the_seed(tmp_path):
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    for name, edit in (("s0", {}), ("s1", {"seed": 1}), ("l1", {"seed": 2, "loss": "l1"})):
        folder = tmp_path / name
        (folder / "results").mkdir(parents=True)
        raw = json.loads(json.dumps(base))
        raw["train"].update(edit)
        raw["recipe"] = "authors"  # the recipe paper would set train.loss back to l1: the values are resolved
        (folder / "params.yaml").write_text(yaml.safe_dump(raw))
        (folder / "results/table.json").write_text(json.dumps(table({"x": {"vocals": 1.0}})))
    assert len(cmp.load_group(f"{tmp_path}/s0,{tmp_path}/s1")) == 2
    with pytest.raises(UserError, match="differ in train.loss, not only in train.seed"):
        cmp.load_group(f"{tmp_path}/s0,{tmp_path}/l1")


def test_different_songs_datasets_or_scoring_are_refused_by_name(bootstrap):
    a, b = planted(shift=0.0, songs=5)
    with pytest.raises(UserError, match=r"different songs in run mixer: only in A: \['song04'\]"):
        cmp.compare([side("A", a)], [side("B", {k: v for k, v in b.items() if k != "song04"})], bootstrap)
    with pytest.raises(UserError, match="different datasets"):
        cmp.compare([side("A", a)], [side("B", b, checksum="ffff")], bootstrap)
    with pytest.raises(UserError, match="scored differently"):
        cmp.compare([side("A", a)], [side("B", b, scoring=SCORING.replace("hop 1.0", "hop 0.5"))], bootstrap)
    with pytest.raises(UserError, match="evaluate.win 1.0 against 2.0"):
        cmp.compare([side("A", a, {"evaluate": {"win": 1.0}})], [side("B", b, {"evaluate": {"win": 2.0}})],
                    bootstrap)


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=folder, check=True,
                          capture_output=True, text=True).stdout


def test_revisions_experiments_and_folders_are_read_from_git_with_resolved_params(tmp_path, bootstrap):
    """A git revision, a DVC experiment (refs/exps/...) and a folder; the params diff is recipe-resolved:
    switching the recipe from paper to authors shows as train.loss l1 -> mse."""
    repo = tmp_path / "repo"
    (repo / "results").mkdir(parents=True)
    git(repo, "init", "-q")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    a, b = planted(shift=0.5)
    raw["recipe"] = "paper"
    (repo / "params.yaml").write_text(yaml.safe_dump(raw))
    (repo / "results/table.json").write_text(json.dumps(table(a)))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "A")
    raw["recipe"] = "authors"
    (repo / "params.yaml").write_text(yaml.safe_dump(raw))
    (repo / "results/table.json").write_text(json.dumps(table(b)))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "B")
    head = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "update-ref", f"refs/exps/{head[:2]}/{head[2:]}/loss-mse", head)  # as `dvc exp run -n loss-mse`

    result = cmp.compare([cmp.load_side("HEAD~1", repo)], [cmp.load_side("loss-mse", repo)], bootstrap)
    assert {(d["key"], d["a"], d["b"]) for d in result["params_diff"]} == {("recipe", "paper", "authors"),
                                                                         ("train.loss", "l1", "mse")}
    assert "DVC experiment loss-mse" in result["b"][0]["where"]
    assert all(r["verdict"] == "B better" for r in result["rows"])
    folder = cmp.load_side(str(repo / "results"), repo)  # a results folder: params.yaml a level above
    assert folder.params["train"]["loss"] == "mse"
    with pytest.raises(UserError, match="neither a folder, a DVC experiment"):
        cmp.load_side("no-such-thing", repo)

    # the command: markdown on stdout, JSON with -o, the paired plot
    out, plot = tmp_path / "compare.json", tmp_path / "compare.png"
    done = subprocess.run([sys.executable, "-m", "mdxnet.cli", "--params", str(REPO / "params.yaml"), "compare",
                           "HEAD~1", "loss-mse", "--repo", str(repo), "-o", str(out), "--plot", str(plot)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "| train.loss | l1 | mse |" in done.stdout and "| mixer | vocals |" in done.stdout
    assert json.loads(out.read_text())["rows"][0]["flagged"] is True
    assert plot.read_bytes()[:4] == b"\x89PNG"
    # the HTML report's comparison page of the same two experiments
    done = subprocess.run([sys.executable, "-m", "mdxnet.cli", "--params", str(REPO / "params.yaml"), "report",
                           "--compare", "HEAD~1", "loss-mse", "-o", str(tmp_path / "report")], cwd=repo,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "report/compare.html").read_text()
    assert "train.loss</td>" in page and 'src="compare.png"' in page
    assert (tmp_path / "report/compare.png").is_file()


def test_compact_metrics_hold_a_median_and_interval_per_run_and_source():
    document = json.loads((REPO / "results/table.json").read_text())
    metrics = cmp.compact_metrics(document)
    scored = metrics.pop("scored")  # what the numbers were scored on, shown by DVC beside them
    provenance = document["provenance"]
    assert scored["profile"] == provenance["profile"] and scored["data"].startswith(provenance["data_origin"])
    assert scored["songs"] == max(r["tracks"] for r in document["rows"] if r["kind"] == "this run")
    assert set(metrics) == set(document["sdr"])
    for run, values in metrics.items():
        for source in SOURCES:
            assert values[source] == round(document["sdr"][run][source], 3)
            assert values["lo"][source] <= values[source] <= values["hi"][source]
    leaves = len(cmp.flatten(metrics))
    assert leaves == 12 * len(document["sdr"]) and leaves < len(cmp.flatten(document)) / 3


@pytest.mark.parametrize("edit, named", [
    (lambda t: t["sdr"].update(mixer="high"), "sdr['mixer'] is \"high\""),
    (lambda t: t["sdr"]["mixer"].update(vocals="12.5"), "sdr['mixer']['vocals'] is \"12.5\""),
    (lambda t: t["sdr"]["mixer"].update(vocals=float("inf")), "sdr['mixer']['vocals'] is Infinity"),
    (lambda t: t["ci"]["mixer"].update(vocals=[1, 2]), "ci['mixer']['vocals'] is [1, 2]"),
    (lambda t: t["ci"]["mixer"]["vocals"].update(low=True), "ci['mixer']['vocals']['low'] is true"),
])
def test_metrics_of_a_table_with_malformed_values_is_refused_with_the_key(tmp_path, capsys, edit, named):
    from mdxnet.cli import main

    document = json.loads((REPO / "results/table.json").read_text())
    edit(document)
    (tmp_path / "table.json").write_text(json.dumps(document))
    assert main(["--params", str(REPO / "params.yaml"), "metrics", str(tmp_path / "table.json"), "-o",
                 str(tmp_path / "metrics.json")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'table.json'}: {named}" in err and not (tmp_path / "metrics.json").exists()


# ---- the ci chain: two experiments differing in one learning rate -----------------------------------------------
def exact_signed_rank_p(differences: list[float]) -> float:
    """Two-sided exact Wilcoxon signed-rank p by enumerating every sign pattern (no ties, no zeros): the hand
    computation scipy's must match."""
    from itertools import product

    ranks = [int(r) for r in np.argsort(np.argsort(np.abs(differences))) + 1]
    positive = [d > 0 for d in differences]

    def statistic(signs) -> int:  # the smaller of the rank sums of the positive and the negative differences
        plus = sum(r for r, s in zip(ranks, signs, strict=True) if s)
        return min(plus, sum(ranks) - plus)

    patterns = list(product((False, True), repeat=len(ranks)))
    as_extreme = sum(statistic(p) <= statistic(positive) for p in patterns)
    return min(1.0, as_extreme / len(patterns))


def song_medians(folder: Path, source: str) -> dict[str, float]:
    """{song: median over frames of its SDR (NaN frames ignored)} straight from museval's per-track files."""
    medians = {}
    for path in sorted((folder / "test").glob("*.json")):
        document = json.loads(path.read_text())
        target = next(t for t in document["targets"] if t["name"] == source)
        values = np.array([frame["metrics"]["SDR"] for frame in target["frames"]], dtype=float)
        medians[path.stem] = float(np.nanmedian(values))
    return medians


@pytest.mark.slow  # the ci chain, then one separator, the Mixers and the scoring again (~3 min on 2 idle cores)
@pytest.mark.timeout(2400)  # two chains in one test: on cores shared with other work each took ~12 min
def test_two_ci_experiments_differing_in_one_learning_rate(tmp_path, stempeg_clip, bootstrap):
    """Experiment A: the ci chain as it is; B: a copy with the vocals separator's learning rate changed, rerun
    (Snakemake reruns that separator, the Mixers and the scoring). `mdxnet compare A B` is checked against the
    per-song scores read straight from museval's per-track files, by hand."""
    from test_workflow import SNAKEMAKE, make_copy, run, write_params

    folder_a = make_copy(tmp_path / "a",
                         lambda raw: raw["profiles"]["ci"]["data"].update(extra_test=[str(stempeg_clip)]))
    run(["git", "init", "-q"], folder_a)
    # dvclive needs a commit to stand on
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init"], folder_a)
    run([SNAKEMAKE, "--cores", "2", "all"], folder_a)
    folder_b = tmp_path / "b"
    shutil.copytree(folder_a, folder_b, symlinks=True)
    raw = yaml.safe_load((folder_b / "params.yaml").read_text())
    lr_a = raw["train"]["lr"]["vocals"]
    raw["train"]["lr"]["vocals"] = 0.02
    write_params(folder_b, raw)
    run([SNAKEMAKE, "--cores", "2", "all"], folder_b)

    mdxnet = str(Path(sys.executable).parent / "mdxnet")
    result = run([mdxnet, "--params", str(folder_a / "params.yaml"), "compare", str(folder_a), str(folder_b),
                  "--runs", "no-mixer", "mixer",
                  "-o", "compare.json", "--plot", "compare.png"], tmp_path)
    print(result.stdout)
    document = json.loads((tmp_path / "compare.json").read_text())
    assert [(d["key"], d["a"], d["b"]) for d in document["params_diff"]] == [("train.lr.vocals", lr_a, 0.02)]
    assert (tmp_path / "compare.png").read_bytes()[:4] == b"\x89PNG"

    rows = {(r["run"], r["source"]): r for r in document["rows"]}
    for run_name in ("no-mixer", "mixer"):
        a = song_medians(folder_a / "evaluation" / run_name, "vocals")
        b = song_medians(folder_b / "evaluation" / run_name, "vocals")
        differences = [b[song] - a[song] for song in a]
        row = rows[(run_name, "vocals")]
        assert row["songs"] == len(a) == 2
        assert row["median_difference"] == pytest.approx(np.median(differences), abs=1e-9)
        # two songs: a resample's median is one song's difference or their mean, each song alone with odds 1/4,
        # so the 2.5 % and 97.5 % quantiles of 10000 resamples are the smaller and the larger difference
        assert (row["low"], row["high"]) == pytest.approx((min(differences), max(differences)), abs=1e-9)
        assert row["p_value"] == pytest.approx(exact_signed_rank_p(differences))
        assert row["verdict"].startswith("too few songs")  # 2 songs: p can never reach 0.05
    # the separators not retrained score the same in the no-mixer run: nothing to report there
    for source in ("drums", "bass", "other"):
        assert rows[("no-mixer", source)]["verdict"] == "identical scores"


def test_seeds_gathers_each_sides_seed_group_from_the_dvc_experiments(tmp_path, bootstrap):
    """As after `dvc exp run --queue -S train.seed=0,1,2` for A and for B: --seeds finds each side's three."""
    repo = tmp_path / "repo"
    (repo / "results").mkdir(parents=True)
    git(repo, "init", "-q")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    a, _ = planted(shift=0.0)
    for lr, shift in ((1e-3, 0.0), (2e-3, 0.3)):
        for seed in (0, 1, 2):
            raw["train"]["lr"]["vocals"], raw["train"]["seed"] = lr, seed
            (repo / "params.yaml").write_text(yaml.safe_dump(raw))
            scores = {s: {src: v + shift + 0.1 * seed for src, v in sc.items()} for s, sc in a.items()}
            (repo / "results/table.json").write_text(json.dumps(table(scores)))
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", f"lr {lr} seed {seed}")
            commit = git(repo, "rev-parse", "HEAD").strip()
            git(repo, "update-ref", f"refs/exps/{commit[:2]}/{commit[2:]}/lr{lr:g}-s{seed}", commit)
    group = cmp.seed_group("lr0.001-s0", repo)
    assert sorted(s.name for s in group) == ["lr0.001-s0", "lr0.001-s1", "lr0.001-s2"]
    done = subprocess.run([sys.executable, "-m", "mdxnet.cli", "--params", str(REPO / "params.yaml"), "compare",
                           "--seeds", "lr0.001-s0", "lr0.002-s1", "--repo", str(repo), "--runs", "mixer"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "| train.lr.vocals | 0.001 | 0.002 |" in done.stdout and "3 seeds" in done.stdout
    assert "| +0.30 |" in done.stdout and "0.20/0.20 |" in done.stdout  # the difference and both seed spreads


def test_a_key_new_since_a_is_not_a_difference_of_value():
    """A key the code added between two revisions (A never had it) is listed apart, not as `None -> value`."""
    a = {"train": {"lr": 1e-3, "steps": 10}}
    b = {"train": {"lr": 2e-3, "steps": 10, "unit": "epochs"}}
    assert cmp.params_diff(a, b) == [("train.lr", 1e-3, 2e-3)]
    assert cmp.one_sided_keys(a, b) == {"new": ["train.unit"], "gone": []}


@pytest.mark.parametrize("per_song, named", [
    ({"song": {"vocals": float("inf")}}, "['mixer']['song']['vocals'] is Infinity"),
    ({"song": {"vocals": True}}, "['mixer']['song']['vocals'] is true"),
    ({"song": {"vocals": "12.5"}}, "['mixer']['song']['vocals'] is \"12.5\""),
    ({"song": None}, "['mixer']['song'] is null"),
    ({}, "names no run with scored songs"),
])
def test_scores_that_are_no_sdr_are_refused_with_the_file_and_key(tmp_path, per_song, named):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "table.json").write_text(json.dumps(table(per_song)))
    with pytest.raises(UserError, match="per_track_sdr") as err:
        cmp.load_side(str(folder))
    assert str(folder / "table.json") in str(err.value) and named in str(err.value)


def test_seed_groups_sharing_an_experiment_are_refused(tmp_path, bootstrap, caplog):
    """B differing from A only in a key A's profile overrides has A's resolved params: `--seeds` then put A's seed
    experiment on both sides. That is refused; --seeds finding no seed-mates says so."""
    repo = tmp_path / "repo"
    (repo / "results").mkdir(parents=True)
    git(repo, "init", "-q")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["profiles"][raw["profile"]].setdefault("train", {})["log_every"] = 3  # the profile's value wins
    a, _ = planted(shift=0.0)
    edits = {"a": {}, "b": {"log_every": 7}, "c": {"seed": 5}, "d": {"lr": {**raw["train"]["lr"], "vocals": 5e-4}}}
    for name, edit in edits.items():
        edited = yaml.safe_load(yaml.safe_dump(raw))
        edited["train"].update(edit)
        (repo / "params.yaml").write_text(yaml.safe_dump(edited))
        (repo / "results/table.json").write_text(json.dumps(table(a)))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", name)
        commit = git(repo, "rev-parse", "HEAD").strip()
        git(repo, "update-ref", f"refs/exps/{commit[:2]}/{commit[2:]}/{name}", commit)
    assert cmp.compare_named("a", "b", bootstrap, repo=repo)["rows"]  # equal params, e.g. two code revisions
    with pytest.raises(UserError, match="is on both sides"):  # c is the seed-mate of a and of b
        cmp.compare_named("a", "b", bootstrap, seeds=True, repo=repo)
    with caplog.at_level("WARNING", logger="mdxnet.evaluation.compare"):
        result = cmp.compare_named("a", "d", bootstrap, seeds=True, repo=repo)
    assert "no DVC experiment differs from d only in train.seed" in caplog.text
    assert result["rows"]
