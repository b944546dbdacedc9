"""Two experiments compared as a reviewer would: did B help over A, by how much, and how sure.

A side is a DVC experiment (by name), a git revision, a results folder, or several of one of these that differ
only in `train.seed` (a seed group). Every side is read from what the pipeline keeps in git: results/table.json
(each run's per-song SDR, the dataset checksum, the scoring settings) and params.yaml (resolved with its recipe
and profile, as the commands read it), so no DVC cache is needed.

Per run and source the comparison gives the median over songs of the per-song difference B - A (paired: an easy
song is easy for both), its percentile-bootstrap interval (songs resampled with their pair), the two-sided
Wilcoxon signed-rank p (both from mdxnet.evaluation.stats) and the number of songs. With seed groups each song's
score is the mean over the group's seeds, and the spread of each seed's median (max - min) is reported beside the
difference: a difference smaller than that spread could be one lucky seed, whatever the songs say.

The two sides must have been scored alike, or the difference measures the scoring: other songs, another dataset
(checksum), or another scoring window/hop/sample rate are refused by name.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdxnet.atomic import write_atomic, write_text_atomic
from mdxnet.config import ParamsError, load_yaml, resolve_profile
from mdxnet.errors import UserError
from mdxnet.evaluation.stats import median_ci, paired_wilcoxon
from mdxnet.evaluation.table_page import render_page

log = logging.getLogger(__name__)

TABLE = "results/table.json"
PARAMS = "params.yaml"
# Resolved params that change what a score means: two sides must agree on these (beside the provenance's
# scoring statement and the dataset checksum) to be compared.
SCORING_KEYS = ("sample_rate", "evaluate.win", "evaluate.hop")
# The key a seed group's members may differ in, and nothing else.
SEED_KEY = "train.seed"


@dataclass(frozen=True)
class Side:
    """One experiment as read back: what it was called, where it was found, its results table and its params."""

    name: str
    where: str
    table: dict
    params: dict | None  # resolved (recipe and profile applied); None when no params.yaml was found beside it


# ---- reading one side ------------------------------------------------------------------------------------------
def _git(repo: Path, *args: str) -> str | None:
    """stdout of a git command in `repo`, None when it fails (not a repository, unknown revision, no file)."""
    try:
        result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def experiment_refs(repo: Path) -> dict[str, list[str]]:
    """{experiment name: [commit, ...]} of the DVC experiments in `repo` (refs/exps/<xx>/<baseline>/<name>)."""
    found: dict[str, list[str]] = {}
    for line in (_git(repo, "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps") or "").splitlines():
        commit, _, ref = line.partition(" ")
        if ref.count("/") >= 4:  # refs/exps/exec/... hold DVC's running state, not experiments
            found.setdefault(ref.rsplit("/", 1)[1], []).append(commit)
    return found


def resolve_revision(spec: str, repo: Path) -> tuple[str, str] | None:
    """(commit, description) of a DVC experiment name or a git revision; None when `spec` names neither."""
    experiments = experiment_refs(repo).get(spec, [])
    if len(experiments) > 1:
        raise UserError(f"experiment name {spec!r} is ambiguous: it names {len(experiments)} experiments "
                        f"({', '.join(c[:7] for c in experiments)}); pass one commit instead")
    if experiments:
        return experiments[0], f"DVC experiment {spec} ({experiments[0][:7]})"
    commit = _git(repo, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
    if commit:
        return commit.strip(), f"git revision {spec} ({commit.strip()[:7]})"
    return None


def resolved_params(text: str, where: str) -> dict:
    """A params file's values with its recipe and profile applied (plain data).

    Not schema-checked: an older revision was valid under its own schema, which may not be today's."""

    try:
        raw = load_yaml(text)
        if not isinstance(raw, dict):
            raise ParamsError("it does not hold a mapping")
        return resolve_profile(raw)
    except Exception as err:  # YAML errors and unknown recipe/profile names alike
        raise UserError(f"{where}: params cannot be read ({err}); fix that params.yaml or compare another "
                        "revision") from None


def _parse_table(text: str, where: str) -> dict:
    try:
        table = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{where} is not valid JSON ({err}): re-run `snakemake all` there") from None
    if not isinstance(table, dict) or not isinstance(table.get("per_track_sdr"), dict):
        raise UserError(f"{where} holds no per-song scores ('per_track_sdr'): it was written by an older "
                        "`mdxnet report`; re-run `snakemake all` there")
    problem = _scores_problem(table["per_track_sdr"])
    if problem:
        raise UserError(f"{where}: per_track_sdr{problem}: the file is damaged or was edited; re-run "
                        "`snakemake all` there")
    return table


def _scores_problem(scores: dict) -> str | None:
    """Where the per-song scores {run: {song: {source: SDR}}} break that shape, or hold a value that is no score:
    an SDR is a finite number, or null/NaN for "not scored" (a boolean counted as 1 dB, "12.5" was dropped and
    +inf used, each silently); None when they are sound."""
    if not scores or not all(isinstance(songs, dict) and songs for songs in scores.values()):
        return " names no run with scored songs"
    for run, songs in scores.items():
        for song, values in songs.items():
            if not isinstance(values, dict) or not values:
                return f"[{run!r}][{song!r}] is {json.dumps(values)}, not {{source: SDR}}"
            for source, value in values.items():
                number = isinstance(value, (int, float)) and not isinstance(value, bool)
                if value is not None and not (number and not math.isinf(value)):
                    return f"[{run!r}][{song!r}][{source!r}] is {json.dumps(value)}, not a finite SDR in dB (or null)"
    return None


def _folder_side(spec: str, folder: Path) -> Side:
    """A results folder (holding table.json) or a project folder (holding results/table.json)."""
    candidates = [folder] if folder.is_file() else [folder / "table.json", folder / TABLE]
    table_path = next((p for p in candidates if p.is_file()), None)
    if table_path is None:
        raise UserError(f"{folder} holds no results table (looked for {' and '.join(map(str, candidates))}): "
                        "pass a results folder, a project folder, a git revision or a DVC experiment name")
    # the params beside the results: a project folder's own, or the one a level above its results folder
    params_path = next((p for p in (table_path.parent / PARAMS, table_path.parent.parent / PARAMS) if p.is_file()),
                       None)
    params = resolved_params(params_path.read_text(), str(params_path)) if params_path else None
    return Side(spec, f"folder {table_path.parent}", _parse_table(table_path.read_text(), str(table_path)), params)


def load_side(spec: str, repo: str | Path = ".") -> Side:
    """One experiment from a results/project folder, `workspace` (the working tree), a DVC experiment name or a
    git revision of `repo` (folders first: a folder named like a branch is the folder)."""
    repo = Path(repo)
    if spec == "workspace":
        return _folder_side(spec, repo)
    if Path(spec).exists():
        return _folder_side(spec, Path(spec))
    revision = resolve_revision(spec, repo)
    if revision is None:
        raise UserError(f"{spec!r} is neither a folder, a DVC experiment of {repo.resolve()} (`dvc exp list`) nor "
                        "a git revision: pass one of those")
    commit, where = revision
    table_text = _git(repo, "show", f"{commit}:{TABLE}")
    if table_text is None:
        raise UserError(f"{where} has no {TABLE} in git: run the pipeline there (`dvc exp run`) and commit its "
                        "results, or pass a results folder")
    params_text = _git(repo, "show", f"{commit}:{PARAMS}")
    params = resolved_params(params_text, f"{where}:{PARAMS}") if params_text is not None else None
    return Side(spec, where, _parse_table(table_text, f"{where}:{TABLE}"), params)


def load_group(spec: str, repo: str | Path = ".") -> list[Side]:
    """A comma-separated list of sides: one experiment, or a seed group (members differing only in train.seed)."""
    names = [name.strip() for name in spec.split(",") if name.strip()]
    if not names:
        raise UserError(f"empty experiment {spec!r}: name an experiment, a revision or a folder")
    sides = [load_side(name, repo) for name in names]
    for other in sides[1:]:
        if sides[0].params is None or other.params is None:
            raise UserError(f"seed group {spec!r}: {(other if other.params is None else sides[0]).where} has no "
                            "params.yaml, so it cannot be shown to differ only in train.seed")
        extra = [key for key, _, _ in params_diff(sides[0].params, other.params) if key != SEED_KEY]
        if extra:
            raise UserError(f"seed group {spec!r}: {sides[0].name} and {other.name} differ in {', '.join(extra)}, "
                            f"not only in {SEED_KEY}: compare them as two sides instead")
    return sides


def seed_group(spec: str, repo: str | Path = ".") -> list[Side]:
    """`spec` and every DVC experiment of `repo` whose resolved params equal its own but for train.seed."""
    side = load_side(spec, repo)
    if side.params is None:
        raise UserError(f"{side.where} has no params.yaml beside it: its seed group cannot be found")
    group = [side]
    for name in sorted(experiment_refs(Path(repo))):
        if name == spec:
            continue
        try:
            other = load_side(name, repo)
        except UserError:  # an experiment without results (queued, failed) is no member
            continue
        if other.params is not None and [k for k, _, _ in params_diff(side.params, other.params)] == [SEED_KEY]:
            group.append(other)
    return group


# ---- what differs ----------------------------------------------------------------------------------------------
def flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    """{dotted key: leaf value}; lists are leaves (a list of sources is one value)."""
    if isinstance(values, dict) and values:
        return {k: v for key, value in values.items() for k, v in flatten(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: values} if prefix else {}


def params_diff(a: dict | None, b: dict | None) -> list[tuple[str, Any, Any]]:
    """[(key, A's value, B's value)] of the resolved params both sides have and set differently. A key one side
    lacks is not a difference of values (the code added or removed it between them): see one_sided_keys."""
    if a is None or b is None:
        return []
    flat_a, flat_b = flatten(a), flatten(b)
    return [(k, flat_a[k], flat_b[k]) for k in flat_a if k in flat_b and flat_a[k] != flat_b[k]]


def one_sided_keys(a: dict | None, b: dict | None) -> dict[str, list[str]]:
    """{"new": keys only B has, "gone": keys only A has} of the resolved params (keys the code added or removed
    between the two sides)."""
    if a is None or b is None:
        return {"new": [], "gone": []}
    flat_a, flat_b = flatten(a), flatten(b)
    return {"new": [k for k in flat_b if k not in flat_a], "gone": [k for k in flat_a if k not in flat_b]}


def _songs(side: Side) -> dict[str, set[str]]:
    return {run: set(songs) for run, songs in side.table["per_track_sdr"].items()}


def check_comparable(a: list[Side], b: list[Side]) -> None:
    """Refuse, by name, two sides (or seed members) scored on different songs, datasets or scoring settings."""
    first = a[0]
    for other in [*a[1:], *b]:
        pair = f"{first.name} ({first.where}) and {other.name} ({other.where})"
        prov_a, prov_b = first.table.get("provenance") or {}, other.table.get("provenance") or {}
        if prov_a.get("dataset_checksum") != prov_b.get("dataset_checksum"):
            raise UserError(f"{pair} were scored on different datasets (checksums "
                            f"{str(prov_a.get('dataset_checksum'))[:12]} and {str(prov_b.get('dataset_checksum'))[:12]}"
                            "): score both on the same data (params data.*) before comparing them")
        if prov_a.get("scoring") != prov_b.get("scoring"):
            raise UserError(f"{pair} were scored differently ({prov_a.get('scoring')!r} against "
                            f"{prov_b.get('scoring')!r}): re-score one with the other's evaluate settings")
        if first.params is not None and other.params is not None:
            flat_a, flat_b = flatten(first.params), flatten(other.params)
            keys = [k for k in SCORING_KEYS if flat_a.get(k) != flat_b.get(k)]
            if keys:
                raise UserError(f"{pair} were scored with different settings: "
                                + ", ".join(f"{k} {flat_a.get(k)} against {flat_b.get(k)}" for k in keys)
                                + ": re-score one with the other's values")
        songs_a, songs_b = _songs(first), _songs(other)
        for run in set(songs_a) & set(songs_b):
            if songs_a[run] != songs_b[run]:
                only_a, only_b = sorted(songs_a[run] - songs_b[run]), sorted(songs_b[run] - songs_a[run])
                raise UserError(f"{pair} were scored on different songs in run {run}: only in {first.name}: "
                                f"{only_a or 'none'}; only in {other.name}: {only_b or 'none'}. Score both on the "
                                "same test songs (params data.extra_test, data.root)")


# ---- the statistics --------------------------------------------------------------------------------------------
def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value)


def group_scores(group: list[Side], run: str, source: str) -> dict[str, float]:
    """{song: mean over the group's seeds of its SDR}, over the songs every seed scored (NaN = no score)."""
    per_member = [{song: scores.get(source) for song, scores in side.table["per_track_sdr"][run].items()}
                  for side in group]
    songs = [s for s in per_member[0] if all(_finite(m.get(s)) for m in per_member)]
    return {s: float(np.mean([m[s] for m in per_member])) for s in songs}


def seed_medians(group: list[Side], run: str, source: str) -> list[float]:
    """Each seed's median over songs (NaN skipped), in the group's order."""
    medians = []
    for side in group:
        values = [v.get(source) for v in side.table["per_track_sdr"][run].values()]
        values = [v for v in values if _finite(v)]
        medians.append(float(np.median(values)) if values else float("nan"))
    return medians


def compare_cell(a: list[Side], b: list[Side], run: str, source: str, bootstrap) -> dict:
    """One run and source: the paired statistics of B - A and, for seed groups, the seed spread."""
    scores_a, scores_b = group_scores(a, run, source), group_scores(b, run, source)
    songs = [s for s in scores_a if s in scores_b]
    differences = [scores_b[s] - scores_a[s] for s in songs]
    interval = median_ci(differences, bootstrap)
    test = paired_wilcoxon({s: scores_b[s] for s in songs}, {s: scores_a[s] for s in songs})
    medians_a, medians_b = seed_medians(a, run, source), seed_medians(b, run, source)
    spread_a = max(medians_a) - min(medians_a) if len(a) > 1 else None
    spread_b = max(medians_b) - min(medians_b) if len(b) > 1 else None
    spreads = [s for s in (spread_a, spread_b) if s is not None]
    spread = max(spreads) if spreads else None
    alpha = 1.0 - bootstrap.confidence
    # flagged: both the interval and the signed-rank test say the median difference is not zero
    excludes_zero = interval.low is not None and (interval.low > 0 or interval.high < 0)
    flagged = bool(excludes_zero and test.p_value is not None and test.p_value <= alpha)
    within = None if spread is None or interval.median is None else bool(abs(interval.median) <= spread)
    return {
        "run": run, "source": source, "songs": len(songs),
        "a_median": float(np.median([scores_a[s] for s in songs])) if songs else None,
        "b_median": float(np.median([scores_b[s] for s in songs])) if songs else None,
        "median_difference": interval.median, "low": interval.low, "high": interval.high,
        "p_value": test.p_value, "smallest_p": test.smallest_p, "differing": test.differing,
        "a_seed_medians": medians_a, "b_seed_medians": medians_b,
        "a_seed_spread": spread_a, "b_seed_spread": spread_b, "within_seed_spread": within,
        "flagged": flagged,
        "per_song": {s: {"a": scores_a[s], "b": scores_b[s]} for s in songs},
    }


def verdict(row: dict) -> str:
    if row["median_difference"] is None:
        return "no song to compare"
    if row["differing"] == 0:
        return "identical scores"
    if row["flagged"]:
        text = "B better" if row["median_difference"] > 0 else "B worse"
    elif row["smallest_p"] is not None and row["p_value"] is not None and row["smallest_p"] > row["_alpha"]:
        text = "too few songs"  # the footnote gives the smallest p the test could reach
    else:
        text = "no clear difference"
    if row["within_seed_spread"]:
        text += ", within seed spread"
    return text


def compare(a: list[Side], b: list[Side], bootstrap, runs: list[str] | None = None) -> dict:
    """The whole comparison as data (what `mdxnet compare -o` writes)."""
    check_comparable(a, b)
    shared = [r for r in a[0].table["per_track_sdr"] if all(r in s.table["per_track_sdr"] for s in [*a, *b])]
    if runs:
        unknown = [r for r in runs if r not in shared]
        if unknown:
            raise UserError(f"run(s) {', '.join(unknown)} not scored by both sides; both have: {', '.join(shared)}")
        shared = [r for r in shared if r in runs]
    rows = []
    for run in shared:
        sources = list(next(iter(a[0].table["per_track_sdr"][run].values()), {}))
        for source in sources:
            row = compare_cell(a, b, run, source, bootstrap)
            row["_alpha"] = 1.0 - bootstrap.confidence
            row["verdict"] = verdict(row)
            del row["_alpha"]
            rows.append(row)
    provenance = a[0].table.get("provenance") or {}
    member = lambda s: {"name": s.name, "where": s.where, "seed": flatten(s.params or {}).get(SEED_KEY)}  # noqa: E731
    return {
        "a": [member(s) for s in a], "b": [member(s) for s in b],
        "difference": "B - A, per song (paired), then the median over songs",
        "params_diff": [{"key": k, "a": va, "b": vb} for k, va, vb in params_diff(a[0].params, b[0].params)
                        if not (len(a) > 1 or len(b) > 1) or k != SEED_KEY],
        "params_known": a[0].params is not None and b[0].params is not None,
        "params_one_sided": one_sided_keys(a[0].params, b[0].params),
        "scored_on": {"dataset_checksum": provenance.get("dataset_checksum"), "scoring": provenance.get("scoring")},
        "bootstrap": {"resamples": bootstrap.resamples, "confidence": bootstrap.confidence, "seed": bootstrap.seed,
                      "interval": "percentile bootstrap over songs of the median per-song difference (paired)"},
        "test": "two-sided Wilcoxon signed-rank over songs (scipy.stats.wilcoxon)",
        "flag_rule": f"flagged when the interval excludes 0 and p <= {1.0 - bootstrap.confidence:.2g}",
        "seed_spread": "max - min of the seeds' medians over songs, per group; 'within seed spread' when "
                       "|median difference| <= the larger group's spread",
        "rows": rows,
    }


# ---- showing it ------------------------------------------------------------------------------------------------
def _num(value: float | None, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _side_line(members: list[dict]) -> str:
    if len(members) == 1:
        return f"{members[0]['name']} ({members[0]['where']})"
    return f"{len(members)} seeds: " + ", ".join(f"{m['name']} (seed {m['seed']})" for m in members)


def render_markdown(result: dict) -> str:
    grouped = len(result["a"]) > 1 or len(result["b"]) > 1
    lines = ["# Comparison: B - A", "", f"- A: {_side_line(result['a'])}", f"- B: {_side_line(result['b'])}",
             f"- scored on: dataset {str(result['scored_on']['dataset_checksum'])[:12]}, "
             f"{result['rows'][0]['songs'] if result['rows'] else 0} songs; {result['flag_rule']}", ""]
    if not result["params_known"]:
        lines += ["Params: not known for both sides (no params.yaml beside a results folder).", ""]
    elif result["params_diff"]:
        lines += ["Params that differ (recipe and profile applied):", "", "| key | A | B |", "|---|---|---|"]
        lines += [f"| {d['key']} | {_show(d['a'])} | {_show(d['b'])} |" for d in result["params_diff"]]
        lines.append("")
    else:
        lines += ["Params: the same (recipe and profile applied)" + (" but for the seeds." if grouped else "."), ""]
    one_sided = result.get("params_one_sided") or {}
    for kind, side in (("new", "B only (added since A)"), ("gone", "A only (removed since A)")):
        if one_sided.get(kind):
            lines += [f"Keys in {side}, not differences of value: {', '.join(one_sided[kind])}", ""]
    head = "| run | source | A | B | B-A | 95% CI | p | n |"
    rule = "|---|---|--:|--:|--:|--:|--:|--:|"
    if grouped:
        head, rule = head + " seeds A/B |", rule + "--:|"
    lines += [head.replace("95%", f"{result['bootstrap']['confidence']:.0%}") + " verdict |", rule + "---|"]
    for r in result["rows"]:
        cells = [r["run"], r["source"], _num(r["a_median"]), _num(r["b_median"]), _num(r["median_difference"], True),
                 f"[{_num(r['low'], True)}, {_num(r['high'], True)}]" if r["low"] is not None else "-",
                 f"{r['p_value']:.3g}" if r["p_value"] is not None else "-", str(r["songs"])]
        if grouped:
            cells.append(f"{_num(r['a_seed_spread'])}/{_num(r['b_seed_spread'])}")
        lines.append("| " + " | ".join([*cells, r["verdict"]]) + " |")
    lines += ["", "A, B: median over songs" + (" of the seeds' mean per song" if grouped else "")
              + "; B-A: median over songs of the per-song difference;",
              "CI: its bootstrap interval (songs resampled in pairs); p: two-sided signed-rank"
              + ("; seeds A/B: max - min of each side's seed medians." if grouped else ".")]
    few = [r for r in result["rows"] if r["verdict"].startswith("too few songs")]
    if few:
        alpha = 1.0 - result["bootstrap"]["confidence"]
        lines += [f"too few songs: with {few[0]['differing']} differing songs the signed-rank p cannot go below "
                  f"{few[0]['smallest_p']:.3g},", f"above the {alpha:.2g} a flag needs: score more songs."]
    return "\n".join(lines) + "\n"


def write_plot(result: dict, path: str | Path) -> Path:
    """The paired per-song plot: per run (rows) and source (columns), one line per song from A to B."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    runs = list(dict.fromkeys(r["run"] for r in result["rows"]))
    sources = list(dict.fromkeys(r["source"] for r in result["rows"]))
    if not runs:
        raise UserError("nothing to plot: the two sides share no run")
    fig, axes = plt.subplots(len(runs), len(sources), figsize=(2.4 * len(sources), 2.2 * len(runs)),
                             squeeze=False, sharex=True)
    cells = {(r["run"], r["source"]): r for r in result["rows"]}
    for i, run in enumerate(runs):
        for j, source in enumerate(sources):
            ax, row = axes[i][j], cells.get((run, source))
            if row is None:
                ax.axis("off")
                continue
            for song, scores in row["per_song"].items():
                # green: the song scored higher in B; red: lower (the reader sees the sign at a glance)
                color = "tab:green" if scores["b"] > scores["a"] else "tab:red" if scores["b"] < scores["a"] else "grey"
                ax.plot([0, 1], [scores["a"], scores["b"]], "-o", color=color, alpha=0.7, markersize=3)
                ax.annotate(song[:18], (1, scores["b"]), xytext=(3, 0), textcoords="offset points", fontsize=5,
                            va="center", color=color)  # each line names its song
            ax.set_title(f"{run} / {source}: {_num(row['median_difference'], True)} dB", fontsize=8)
            ax.set_xticks([0, 1], ["A", "B"])
            ax.set_xlim(-0.2, 1.9)  # room for the song names right of B
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.set_ylabel("SDR (dB)", fontsize=8)
    fig.suptitle(f"per-song SDR, A = {_side_line(result['a'])[:60]}\nB = {_side_line(result['b'])[:60]}", fontsize=8)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return Path(path)


def write_page(result: dict, path: str | Path, plot_name: str | None = None) -> Path:
    """The comparison as an HTML page (the results table's styling), with the paired plot beside it by name."""
    markdown = render_markdown(result)
    if plot_name:
        markdown += f"\n![paired per-song SDR]({plot_name})\n"
    return write_text_atomic(path, render_page(markdown, "comparison"))


def compare_named(a: str, b: str, bootstrap, seeds: bool = False, runs: list[str] | None = None,
                  repo: str | Path = ".") -> dict:
    """`mdxnet compare A B`: each side read by name (experiment, revision, folder; a,b,c a seed group, or with
    `seeds` the experiments differing from it only in train.seed), then compared."""
    if seeds and ("," in a or "," in b):
        raise UserError("--seeds gathers the seed groups itself: name one experiment per side, not a list")
    side_a = seed_group(a, repo) if seeds else load_group(a, repo)
    side_b = seed_group(b, repo) if seeds else load_group(b, repo)
    if seeds:
        for name, group in ((a, side_a), (b, side_b)):
            if len(group) == 1:
                log.warning("--seeds: no DVC experiment differs from %s only in %s: its side is that one "
                            "experiment", name, SEED_KEY)
    require_distinct_sides(side_a, side_b)
    return compare(side_a, side_b, bootstrap, runs)


def require_distinct_sides(a: list[Side], b: list[Side]) -> None:
    """Two sides that share an experiment compare it with itself: refused, named (with --seeds, B differing from A
    only in a key A's profile overrides resolves to A's params, and A's seed-mates joined both sides). Sides with
    equal params stay comparable: the same params under two revisions of the code is a comparison of the code."""
    shared = {side.where for side in a} & {side.where for side in b}
    if shared:
        raise UserError(f"{', '.join(sorted(shared))} is on both sides of the comparison: its params (recipe and "
                        f"profile applied) make it a seed-mate of both; name two experiments whose resolved params "
                        f"differ beyond {SEED_KEY}, or list each side's seeds yourself (A1,A2 B1,B2)")


def write_comparison_page(result: dict, out: Path) -> list[Path]:
    """`mdxnet report --compare A B`: compare.html and its plot compare.png in the folder `out`."""
    out.mkdir(parents=True, exist_ok=True)
    plot = write_plot(result, out / "compare.png")
    return [write_page(result, out / "compare.html", plot.name), plot]


# ---- the compact metrics DVC shows -----------------------------------------------------------------------------
def compact_metrics(table: dict) -> dict:
    """{run: {source: median SDR, "lo": {source: low}, "hi": {source: high}}}: each run's median SDR per source
    and its bootstrap interval, from results/table.json (whose ~380 values would fill `dvc exp show` with "…").

    The medians sit one level deep so that DVC names their columns `mixer.vocals` (12 characters: four sources
    and the experiment fit in 80 columns); rounded to 0.001 dB, finer than BSS Eval's numbers mean anything."""
    def rounded(value):
        return None if value is None else round(float(value), 3)

    metrics: dict[str, dict] = {}
    for run, values in (table.get("sdr") or {}).items():
        intervals = (table.get("ci") or {}).get(run) or {}
        sources = [source for source in values if source != "mean"]
        metrics[run] = {source: rounded(values[source]) for source in sources}
        metrics[run]["lo"] = {source: rounded((intervals.get(source) or {}).get("low")) for source in sources}
        metrics[run]["hi"] = {source: rounded((intervals.get(source) or {}).get("high")) for source in sources}
    metrics["scored"] = scored_set(table)
    return metrics


def scored_set(table: dict) -> dict:
    """What the numbers were scored on, as DVC shows it beside them (`scored.profile`, `scored.data`,
    `scored.songs`), so that `dvc metrics diff` and `dvc exp show` never set two datasets' numbers side by side
    unmarked: the profile, the dataset's origin and checksum prefix, and the test songs of the model runs."""
    provenance = table.get("provenance") or {}
    songs = [row.get("tracks") for row in table.get("rows") or [] if row.get("kind") == "this run"]
    return {
        "profile": provenance.get("profile"),
        "data": f"{provenance.get('data_origin')}:{(provenance.get('dataset_checksum') or 'unchecked')[:8]}",
        "songs": max((n for n in songs if isinstance(n, int)), default=None),
    }
