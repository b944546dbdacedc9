"""`mdxnet report`: the paper's results table regenerated next to this run's rows, plus SDR box plots.

Writes <out>/table.md, table.csv, table.json and the box plot PNG, each atomically. Run rows are aggregated
from per-track museval JSON exactly like `mdxnet evaluate aggregate` (SiSEC2018 medians). Every run median
carries its bootstrap confidence interval over songs, every delta to the paper says whether the paper's number
lies inside that interval, and every pair of model runs gets a paired Wilcoxon test over songs
(mdxnet.evaluation.stats, settings from params `evaluate.bootstrap`). The provenance names the recipe and profile
and lists every value that differs from the authors' code or the paper's text (mdxnet.recipes, the same table as
`mdxnet params --deviations`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import math
import platform
from pathlib import Path

from mdxnet import recipes
from mdxnet.atomic import write_atomic, write_json_atomic, write_text_atomic
from mdxnet.config import DEFAULT_PARAMS, Data, Params, ParamsError, params_hash, resolve_profile
from mdxnet.digest import file_sha256
from mdxnet.errors import UserError, read_json
from mdxnet.evaluation.aggregate import (
    check_cross_checks,
    medians_of,
    read_documents,
    summarize,
)
from mdxnet.evaluation.references import MUSDB18, REFERENCE_ROWS, RELEASE_NAMES, SOURCES, VERSIONS, paper_row
from mdxnet.evaluation.stats import median_ci, paired_wilcoxon
from mdxnet.gitinfo import git_commit, git_dirty
from mdxnet.recipes import Deviation
from mdxnet.training.health import separator_health

RUN_LABELS = {
    "no-mixer": "this run: without Mixer",
    "mixer": "this run: with Mixer",
    "mixer-conv": "this run: with conv Mixer (mdxnet's own)",
    "mixture": "this run: mixture as estimate (lower bound)",
    "irm": "this run: ideal ratio mask oracle (upper bound)",
}
# Runs that are reference points, not models: no paired test against them (their gap to a model is not a question).
BASELINE_RUNS = ("mixture", "irm")
PACKAGES = ("mdxnet", "torch", "numpy", "scipy", "museval", "musdb", "stempeg", "matplotlib")
CSV_COLUMNS = ["method", "kind", "version", *SOURCES, "mean", *(f"delta_{s}" for s in SOURCES),
               *(f"ci_low_{s}" for s in SOURCES), *(f"ci_high_{s}" for s in SOURCES),
               *(f"paper_in_ci_{s}" for s in SOURCES), "ci_level", "resamples", "tracks", "source",
               "dataset", "comparable"]


def parse_runs(specs: list[str]) -> list[tuple[str, Path]]:
    """["name=DIR", ...] -> [(name, Path)], names unique."""
    runs = []
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            raise UserError(f"--runs entry {spec!r} is not NAME=DIR (e.g. no-mixer=eval/no-mixer)")
        if name in {n for n, _ in runs}:
            raise UserError(f"--runs names {name!r} twice: give every run its own name")
        runs.append((name, Path(folder)))
    return runs


def _mean(values: list[float | None]) -> float | None:
    if any(v is None for v in values):
        return None
    return sum(values) / len(values)


def run_rows(runs: list[tuple[str, Path]], compare_with: str, bootstrap) -> tuple[list[dict], dict]:
    """This run's table rows and {name: {track: {source: SDR}}} (box plot, paired tests). `bootstrap`: params
    `evaluate.bootstrap`, the settings of each median's confidence interval over songs."""
    rows, per_track_sdr = [], {}
    for name, folder in runs:
        documents = read_documents([folder])  # each score file read once: medians and provenance
        per_track = medians_of(documents)
        summary = summarize(per_track)
        sdr = {s: summary.get(s, {}).get("SDR") for s in SOURCES}
        paper = paper_row(name, compare_with)
        delta = {s: (sdr[s] - paper.sdr[s]) if paper and sdr[s] is not None else None for s in SOURCES}
        intervals = {s: median_ci([m[s]["SDR"] for m in per_track.values() if s in m], bootstrap) for s in SOURCES}
        metadata = [document.get("mdxnet", {}) for document in documents.values()]
        blends = sorted({m["blend"]["label"] for m in metadata if m.get("blend")})
        rows.append({
            "method": RUN_LABELS.get(name, f"this run: {'; '.join(blends) or name}"),
            "kind": "this run",
            "version": name,
            "sdr": sdr,
            "mean": _mean(list(sdr.values())),
            "delta": delta,
            "compared_with": paper.method if paper else None,
            "compared_dataset": paper.dataset if paper else None,
            **interval_fields(intervals, paper.sdr if paper else None, bootstrap),
            "tracks": len(per_track),
            "source": str(folder),
            "devices": sorted({str(m.get("device")) for m in metadata if m.get("device")}),
            "params_hashes": sorted({m["params_hash"] for m in metadata if m.get("params_hash")}),
            "backends": sorted({m["backend"] for m in metadata if m.get("backend")}),
            "crosscheck": run_crosscheck(metadata),
            "references": sorted({m["reference"] for m in metadata if m.get("reference")}),
            "summary": summary,
        })
        per_track_sdr[name] = {t: {s: m[s]["SDR"] for s in SOURCES if s in m} for t, m in per_track.items()}
    return rows, per_track_sdr


def run_crosscheck(metadata: list[dict]) -> dict | None:
    """The run's museval cross-check (the largest difference where several tracks were checked), or None."""
    checks = [{"track": m.get("track"), **m["crosscheck"]} for m in metadata if m.get("crosscheck")]
    return max(checks, key=lambda c: c["max_abs_diff_db"]) if checks else None


def check_crosschecks(rows: list[dict]) -> None:
    """Fail loudly when a run's scoring backend differs from museval beyond the tolerance it recorded."""

    for row in rows:
        if row.get("crosscheck"):
            check_cross_checks([row["crosscheck"]], f"run {row['version']} ({row['source']})")


def crosscheck_line(prov: dict) -> str:
    """The provenance line: per run, the largest per-frame difference from museval on its checked track."""
    checks = prov["crosscheck"]
    parts = []
    for run, check in checks.items():
        backends = prov["backends"].get(run, [])
        if check:
            parts.append(f"{run}: {check['max_abs_diff_db']:.2g} dB ({check['track']})")
        elif backends and backends != ["museval"]:
            parts.append(f"{run}: **not cross-checked**")
    tolerance = next((c["tolerance_db"] for c in checks.values() if c), None)
    if not parts:
        return "- museval cross-check: none (every run scored by museval itself)"
    return ("- museval cross-check (one track per run scored by both backends; the largest per-frame SDR "
            "difference over every source and frame" + (f"; the report stops above {tolerance:g} dB" if tolerance
                                                         else "") + "): " + ", ".join(parts))


def interval_fields(intervals: dict, paper_sdr: dict | None, bootstrap) -> dict:
    """A run row's uncertainty: each source's interval, whether the paper's number lies inside it, the songs."""
    return {
        "ci_low": {s: intervals[s].low for s in SOURCES},
        "ci_high": {s: intervals[s].high for s in SOURCES},
        "paper_in_ci": {s: intervals[s].contains(paper_sdr[s]) if paper_sdr else None for s in SOURCES},
        "ci_level": bootstrap.confidence,
        "resamples": bootstrap.resamples,
        "ci_seed": bootstrap.seed,
        "songs": {s: intervals[s].songs for s in SOURCES},
        "few_songs": min(i.songs for i in intervals.values()) < bootstrap.min_songs,
    }


def paired_tests(per_track_sdr: dict[str, dict[str, dict[str, float]]]) -> list[dict]:
    """Wilcoxon signed-rank test per source for every pair of model runs, A - B with A named first in --runs."""
    models = [name for name in per_track_sdr if name not in BASELINE_RUNS]
    tests = []
    for a, b in itertools.combinations(models, 2):
        by_source = {}
        for source in SOURCES:
            values_a = {t: m[source] for t, m in per_track_sdr[a].items() if source in m}
            values_b = {t: m[source] for t, m in per_track_sdr[b].items() if source in m}
            by_source[source] = paired_wilcoxon(values_a, values_b).to_dict()
        tests.append({"a": a, "b": b, "difference": f"{a} - {b}", "sources": by_source})
    return tests


def reference_rows() -> list[dict]:
    return [
        {
            "method": row.method,
            "kind": "paper" if row.role != "baseline" else "quoted baseline",
            "version": row.version,
            "sdr": dict(row.sdr),
            "mean": _mean(list(row.sdr.values())),
            "delta": dict.fromkeys(SOURCES),
            "ci_low": dict.fromkeys(SOURCES),
            "ci_high": dict.fromkeys(SOURCES),
            "paper_in_ci": dict.fromkeys(SOURCES),
            "ci_level": None,
            "resamples": None,
            "tracks": 50,
            "source": row.source,
            "dataset": row.dataset,
            "comparable": None,
        }
        for row in REFERENCE_ROWS
    ]


def _split_songs(data: Data, rows: list[dict]) -> tuple[list[str], list[str]]:
    """Scored songs (from the per-track files' "reference") inside the scored release's folder and elsewhere."""
    root = Path(data.scored_root).resolve()
    songs = sorted({ref for row in rows for ref in row.get("references", [])})
    inside = [s for s in songs if Path(s).resolve().is_relative_to(root)]
    return inside, [s for s in songs if s not in inside]


def run_dataset(data: Data) -> str:
    """The set this run was scored on, as the table's Dataset column names it (data.score's release)."""
    release = RELEASE_NAMES[data.scored_release]
    return f"generated ({release} layout)" if data.origin == "synth" else release


def comparable_row(row: dict, statement_comparable: bool) -> bool | None:
    """Whether a run row may be read against its paper row: the run as a whole is comparable (the whole test
    set, nothing else) and both were scored on the same release. None: the row compares with no paper row."""
    if row.get("compared_with") is None:
        return None
    return bool(statement_comparable and row["dataset"] == row.get("compared_dataset"))


def dataset_statement(data: Data, profile: str | None, rows: list[dict]) -> tuple[bool, str]:
    """(comparable with the paper?, one loud sentence saying what was evaluated). The paper's rows were scored
    on MUSDB18 (mdxnet.evaluation.references), so only a run scored on MUSDB18 can be comparable, whichever
    release it trained on (the authors trained on MUSDB18-HQ)."""
    release = RELEASE_NAMES[data.scored_release]
    root = data.scored_root
    tracks = max((r["tracks"] for r in rows), default=0)
    inside, others = _split_songs(data, rows)
    trained = (f"; trained on {RELEASE_NAMES[data.dataset]}, {data.root}" if data.scores_another_release
               else "")
    if data.origin == "synth":
        return False, (
            f"EMBEDDED SYNTHETIC DATASET ({root}, {release} layout{trained}, profile '{profile}', {tracks} test "
            f"songs incl. any extra real clips): these numbers are NOT comparable with the paper's {MUSDB18} "
            "numbers."
        )
    if others:
        return False, (
            f"{release} ({root}{trained}) plus {len(others)} songs from elsewhere (data.extra_test) in the medians: "
            f"NOT directly comparable with the paper (50 {MUSDB18} test songs only)."
        )
    if tracks != 50:
        return False, (
            f"{release} ({root}{trained}), but only {tracks} test songs were scored (the paper uses all 50): "
            "NOT directly comparable with the paper."
        )
    if release != MUSDB18:
        return False, (
            f"{release} test set ({root}, 50 songs{trained}), but the paper's rows were scored on {MUSDB18} (the "
            "AAC release; see the Dataset column): NOT directly comparable with the paper (data.score.dataset: "
            "musdb18 scores the same set)."
        )
    return True, (f"{release} test set ({root}, 50 songs{trained}): comparable with the paper's numbers (same "
                  "set).")


def songs_statement(data: Data, rows: list[dict]) -> str:
    """Where the scored songs came from, read from the per-track files (not assumed from params)."""
    inside, others = _split_songs(data, rows)
    key = "data.score.root" if data.scores_another_release else "data.root"
    text = f"{len(inside)} from {key} ({data.scored_root})"
    if others:
        text += f", {len(others)} from elsewhere (e.g. data.extra_test real clips): "
        text += ", ".join(Path(s).name for s in others)
    return text


def _git_commit() -> dict:
    """The commit of the code that produced the numbers: the checkout holding the mdxnet package."""

    commit = git_commit()
    return {"commit": commit if commit != "unknown" else "unknown (not a git checkout)", "dirty": git_dirty()}


def _package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def dataset_checksum(data_check: str | Path | None) -> str | None:
    """The checksum recorded by `mdxnet data check --report`; the report file's own sha256 as a fallback."""
    if not data_check:
        return None
    path = Path(data_check)
    if not path.is_file():
        raise UserError(f"data check report {path} not found: run `mdxnet data check --report {path}` first")
    report = read_json(path, "data check report", "regenerate it with `mdxnet data check`")
    for key in ("checksum", "sha256", "md5"):
        if isinstance(report, dict) and report.get(key):
            method = report.get("checksum_method")
            return f"{report[key]} ({method})" if method else str(report[key])
    return "sha256 of report file " + file_sha256(path)


def recipe_deviations(params, params_file=None) -> dict:
    """The deviation table of these params as data. The params file tells a value its profile sets (scale) from
    the recipe's; it is used only when it resolves to exactly these params (else the kinds go by value alone)."""

    path = Path(params_file or DEFAULT_PARAMS)
    raw = recipes.read_raw(path)
    try:
        same = raw is not None and resolve_profile(raw, params.profile, params.recipe) == params.to_dict()
    except ParamsError:
        same = False
    table = recipes.table_data(params, recipes.deviations(params, raw if same else None))
    table["kinds_from"] = (f"{path} (its recipe and profile overlays)" if same else
                           f"values only ({path} does not resolve to these params: scale = epoch-counted keys)")
    table["heading"] = recipes.heading(params)
    return table


def provenance(params: Params, rows: list[dict], data_check=None, params_file=None, score_check=None) -> dict:
    comparable, statement = dataset_statement(params.data, params.profile, rows)
    return {
        "dataset": statement,
        "songs": songs_statement(params.data, rows),
        "comparable_with_paper": comparable,
        "data_origin": params.data.origin,
        "recipe": params.recipe,
        "profile": params.profile,
        "params_hash": params_hash(params),
        "git": _git_commit(),
        "dataset_checksum": dataset_checksum(data_check),
        "scored_dataset_checksum": dataset_checksum(score_check),
        "packages": _package_versions(),
        "devices": {r["version"]: r["devices"] for r in rows},
        "scoring": "BSS Eval v4 as museval computes it (SiSEC2018): win "
                   f"{params.evaluate.win} s, hop {params.evaluate.hop} s; median over "
                   "frames per track (NaN ignored), then median over tracks",
        "backends": {r["version"]: r["backends"] for r in rows},
        "crosscheck": {r["version"]: r["crosscheck"] for r in rows},
        "uncertainty": uncertainty_statement(params.evaluate.bootstrap),
        "compare_with": VERSIONS.get(params.report.compare_with),
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "deviations": recipe_deviations(params, params_file),
    }


def uncertainty_statement(bootstrap) -> dict:
    """How the intervals and paired tests were computed, for the JSON and the table's text."""
    return {
        "interval": "percentile bootstrap over songs of the median over songs (songs resampled with replacement, "
                    "median recomputed)",
        "confidence": bootstrap.confidence,
        "resamples": bootstrap.resamples,
        "seed": bootstrap.seed,
        "min_songs": bootstrap.min_songs,
        "paired_test": "two-sided Wilcoxon signed-rank test (scipy.stats.wilcoxon) over the per-song medians of "
                       "the songs both runs scored",
    }


def _fmt(value, signed=False) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    value = round(value, 2) + 0.0  # no "-0.00"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _ref_fmt(row: dict, source: str) -> str:
    value = row["sdr"][source]
    return "not verified" if value is None and row["kind"] != "this run" else _fmt(value)


def stale_params_lines(rows: list[dict], current: str) -> list[str]:
    """A line for every run whose per-track files were scored under other params than the current ones (harmless
    when only keys the scores do not depend on changed, e.g. `report:`; otherwise re-run the evaluation)."""
    return [
        f"- note: run `{row['version']}` was scored with params hash {', '.join(row['params_hashes'])}, not the "
        f"current `{current}`: params changed since (harmless only if the change cannot affect these scores)"
        for row in rows
        if row.get("params_hashes") and row["params_hashes"] != [current]
    ]


def _sdr_cell(row: dict, source: str) -> str:
    """A paper row's number; a run's median with its interval, `median [low, high]`."""
    if row["kind"] != "this run":
        return _ref_fmt(row, source)
    value = _fmt(row["sdr"][source])
    if row["ci_low"][source] is None:
        songs = row["songs"][source]
        return f"{value} [no interval: {songs} song{'s' if songs != 1 else ''}]" if value else ""
    return f"{value} [{_fmt(row['ci_low'][source])}, {_fmt(row['ci_high'][source])}]"


def _comparable_cell(row: dict) -> str:
    """yes / no (why) for a run row with a paper row; empty for the paper rows and the baselines."""
    if row.get("comparable") is None:
        return ""
    if row["comparable"]:
        return "yes"
    if row.get("dataset") != row.get("compared_dataset"):
        return f"no: {row.get('dataset')} vs {row.get('compared_dataset')}"
    return "no: see the banner"


def _delta_cell(row: dict, source: str) -> str:
    """The delta to the paper and whether the paper's number lies inside this run's interval."""
    delta = _fmt(row["delta"][source], signed=True)
    if not delta:
        return ""
    inside = row["paper_in_ci"][source]
    return delta + {True: " inside", False: " **outside**", None: " (no interval)"}[inside]


def uncertainty_lines(rows: list[dict], prov: dict) -> list[str]:
    """What the brackets and the inside/outside marks compare, and a loud warning where songs are few."""
    u = prov["uncertainty"]
    level = f"{100 * u['confidence']:g} %"
    lines = [
        f"This run's cells: median [low, high], the {level} confidence interval of the median over songs "
        f"(percentile bootstrap: the scored songs resampled with replacement {u['resamples']} times and the median "
        f"recomputed, seed {u['seed']}). It shows how far the median could move with another draw of songs; it "
        "does not cover training randomness.",
        f"Δ marks: *inside* = the paper's published median lies inside this run's {level} interval (consistent with "
        f"the paper at that level: the choice of songs alone can explain the difference); **outside** = it does "
        "not. This compares the paper's single number with this run's interval, not the two per song: the "
        "paper's own median has an uncertainty not known here, and when both are scored on the same songs the "
        "choice of songs is shared, so *inside* is a lenient check.",
    ]
    if not prov["comparable_with_paper"]:
        lines.append("These are not the paper's test songs (see above): the marks compare medians over different "
                     "songs.")
    few = [r for r in rows if r.get("few_songs")]
    if few:
        counts = ", ".join(f"`{r['version']}` {min(r['songs'].values())}" for r in few)
        lines.append(f"**Few songs ({counts}; fewer than {u['min_songs']}): an interval from so few songs is wide "
                     "and still covers the true median less often than its level says; no interval at all from "
                     "one song. Read these intervals as rough.**")
    return lines


def _p_fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2g}"


def paired_lines(tests: list[dict], prov: dict) -> list[str]:
    """The "Paired tests" section: per pair of model runs and source, songs, median difference and p."""
    u = prov["uncertainty"]
    lines = ["## Paired tests between runs", ""]
    if not tests:
        return [*lines, "No pair of model runs to compare (the mixture and IRM rows are reference points).", ""]
    lines += [
        f"{u['paired_test'][0].upper()}{u['paired_test'][1:]}; per song the difference A − B. A small p says the "
        "runs differ by more than the song-to-song spread of their difference explains. Four sources per pair, "
        "not corrected for multiple tests. (SiSEC2018 compared its 30 systems with a pair-wise post-hoc "
        "Conover-Inman test, Stöter, Liutkus & Ito 2018, §4.2; for two runs scored on the same songs the "
        "signed-rank test is the plain paired test.)",
        "",
        "| A − B | source | songs | median of A − B per song (dB) | p |",
        "|---|---|---|---|---|",
    ]
    for test in tests:
        for source, result in test["sources"].items():
            cells = [f"{test['a']} − {test['b']}", source, str(result["songs"]),
                     _fmt(result["median_difference"], signed=True), _p_fmt(result["p_value"])]
            lines.append("| " + " | ".join(cells) + " |")
    results = [r for test in tests for r in test["sources"].values() if r["songs"]]
    weakest = max(results, key=lambda r: r["smallest_p"], default=None)
    if weakest is not None and weakest["smallest_p"] > 0.05:
        n = weakest["differing"]
        lines += ["", f"**Too few songs for these tests: with {n} song{'s' if n != 1 else ''} that differ, the "
                      f"smallest p the test can give is {_p_fmt(weakest['smallest_p'])} (2 / 2^songs), so no "
                      "difference can reach p < 0.05.**"]
    return [*lines, ""]


COLLAPSED_MARK = " ⚠ collapsed"


def health_lines(prov: dict) -> list[str]:
    """A loud note per separator whose training ended collapsed (mdxnet.training.health), above the table."""
    lines = []
    for source, warnings in prov.get("separator_health", {}).items():
        lines += [f"> **WARNING: the `{source}` separator collapsed in training: " + "; ".join(warnings)
                  + f". Every row that uses it marks its `{source}` cell" + COLLAPSED_MARK + ".**", ""]
    return lines


def _marked(row: dict, source: str, prov: dict) -> str:
    """A run's cell, marked when the run's estimates come from a separator that collapsed."""
    cell = _sdr_cell(row, source)
    uses_separators = row["kind"] == "this run" and row["version"] not in BASELINE_RUNS
    return cell + COLLAPSED_MARK if uses_separators and source in prov.get("separator_health", {}) else cell


def render_markdown(rows: list[dict], prov: dict, tests: list[dict]) -> str:
    banner = ("> **" + prov["dataset"] + "**") if not prov["comparable_with_paper"] else ("> " + prov["dataset"])
    lines = [
        "# KUIELAB-MDX-Net: results table",
        "",
        banner,
        "",
        *health_lines(prov),
        "SDR in dB, " + prov["scoring"] + ". Paper rows: median over the 50 test songs as published, on the set "
        "the Dataset column names.",
        f"Deltas: this run minus the paper ({prov['compare_with']}); *Comparable* says whether a run row may be "
        "read against its paper row: yes only when the run scored the whole test set of the same release.",
        *uncertainty_lines(rows, prov),
        "",
        "| Method | Kind | Version | " + " | ".join(SOURCES) + " | mean | "
        + " | ".join(f"Δ {s}" for s in SOURCES) + " | tracks | Dataset | Comparable |",
        "|" + "---|" * (3 + 2 * len(SOURCES) + 4),
    ]
    for row in rows:
        cells = [row["method"], row["kind"], row["version"]]
        cells += [_marked(row, s, prov) for s in SOURCES] + [_fmt(row["mean"])]
        cells += [_delta_cell(row, s) for s in SOURCES] + [str(row["tracks"])]
        cells += [row.get("dataset") or "", _comparable_cell(row)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *paired_lines(tests, prov), "## Provenance", ""]
    git = prov["git"]
    lines += [
        f"- dataset: {prov['dataset']}",
        f"- songs scored: {prov['songs']}",
        f"- params hash: `{prov['params_hash']}` (recipe `{prov['recipe']}`, profile `{prov['profile']}`, "
        f"data.origin `{prov['data_origin']}`)",
        *imported_lines(prov.get("imported_weights")),
        *stale_params_lines(rows, prov["params_hash"]),
        f"- git commit: `{git['commit']}`" + (" (uncommitted changes present)" if git["dirty"] else ""),
        f"- dataset checksum: {prov['dataset_checksum'] or 'not given (pass --data-check REPORT.json)'}",
        *([f"- scored dataset checksum: {prov['scored_dataset_checksum']}"]
          if prov.get("scored_dataset_checksum") else []),
        "- devices: " + ", ".join(f"{k}: {'/'.join(v) or 'n/a'}" for k, v in prov["devices"].items()),
        "- scoring backend: " + ", ".join(f"{k}: {'/'.join(v) or 'n/a'}" for k, v in prov["backends"].items())
        + " (museval = the reference implementation; fast = tested equal to it within 1e-3 dB)",
        crosscheck_line(prov),
        "- packages: " + ", ".join(f"{k} {v}" for k, v in prov["packages"].items()),
        f"- generated: {prov['generated']}",
        "",
        "Sources of the paper rows: " + "; ".join(f"`{k}` = {v}" for k, v in VERSIONS.items())
        + "; `both` = the five earlier systems, quoted identically by both versions (not checked against their own papers).",
        "",
        *deviations_markdown(prov["deviations"]),
    ]
    return "\n".join(lines)


def deviations_markdown(table: dict) -> list[str]:
    """The "Recipe and deviations" section: the recipe, the profile and every value off the two references."""
    rows = [Deviation(**row) for row in table["rows"]]
    return ["## Recipe and deviations", "", table["heading"], "", f"Kinds read from: {table['kinds_from']}.", "",
            recipes.render_markdown(rows)]


def render_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        record = {"method": row["method"], "kind": row["kind"], "version": row["version"], "mean": row["mean"],
                  "tracks": row["tracks"], "source": row["source"], "dataset": row.get("dataset"),
                  "comparable": row.get("comparable")}
        record.update({s: row["sdr"][s] for s in SOURCES})
        record.update({f"delta_{s}": row["delta"][s] for s in SOURCES})
        record.update({f"ci_low_{s}": row["ci_low"][s] for s in SOURCES})
        record.update({f"ci_high_{s}": row["ci_high"][s] for s in SOURCES})
        record.update({f"paper_in_ci_{s}": row["paper_in_ci"][s] for s in SOURCES})
        record.update({"ci_level": row["ci_level"], "resamples": row["resamples"]})
        writer.writerow({k: ("" if v is None else v) for k, v in record.items()})
    return buffer.getvalue()


def write_boxplot(path: Path, per_track_sdr: dict[str, dict[str, dict[str, float]]], title: str) -> Path:
    """Per-source boxes of the per-track median SDR, one box per run (like museval's sisec plots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_track_sdr)
    fig, axes = plt.subplots(1, len(SOURCES), figsize=(3.2 * len(SOURCES), 4.2), sharey=True, squeeze=False)
    for ax, source in zip(axes[0], SOURCES, strict=True):
        data = [[v[source] for v in per_track_sdr[n].values() if source in v and not math.isnan(v[source])]
                for n in names]
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right")
        ax.set_title(source)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("SDR per track (dB, median over 1 s frames)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        plt.close(fig)


IMPORTED_PREFIX = "published weights (imported): "


def imported_weights(models_dir) -> list[dict]:
    """What `mdxnet models import` recorded for each file in `models_dir`: name, original file, sha256, how read."""
    # imports torch (the imported networks' classes): only here, not for every report module user
    from mdxnet.inference.imported import imported_records

    keys = ("name", "kind", "runtime", "original_file", "sha256", "size", "read_as")
    return [{k: record.get(k) for k in keys} for record in imported_records(models_dir)]


def label_imported(rows: list[dict]) -> None:
    """The model rows of a run on imported weights say so (the baselines use no model)."""
    for row in rows:
        if row["version"] not in BASELINE_RUNS:
            row["method"] = IMPORTED_PREFIX + row["method"].removeprefix("this run: ")


def imported_lines(records: list[dict] | None) -> list[str]:
    if not records:
        return []
    files = "; ".join(f"{r['name']} = `{r['original_file']}` ({r['runtime']}, sha256 `{r['sha256']}`)"
                      for r in records)
    return [f"- models: PUBLISHED WEIGHTS imported with `mdxnet models import` (not trained in this run): {files}"]


def write_report(runs: list[tuple[str, Path]], params: Params, out: str | Path, data_check=None,
                 params_file=None, imported=None, models=None, score_check=None) -> list[Path]:
    """Write table.md/.csv/.json and the box plot into `out`; returns the written paths. `params_file`: the file
    `params` were read from (default params.yaml), for the deviation table's kinds. `imported`: the models folder
    of imported published weights the model runs used (their rows and the provenance say so). `models`: the
    folder of the separators the runs used, whose health (mdxnet.training.health) marks the table. `score_check`:
    the data check report of the scored release where it is not the training one (params data.score)."""
    if not runs:
        raise UserError("mdxnet report needs at least one --runs NAME=DIR")
    report_params = params.report
    compare_with = report_params.compare_with
    if compare_with not in VERSIONS:
        raise UserError(f"params report.compare_with is {compare_with!r}; use one of {sorted(VERSIONS)}")
    ours, per_track_sdr = run_rows(runs, compare_with, params.evaluate.bootstrap)
    check_crosschecks(ours)
    records = imported_weights(imported) if imported else None
    if records:
        label_imported(ours)
    rows = reference_rows() + ours
    tests = paired_tests(per_track_sdr)
    prov = provenance(params, ours, data_check, params_file, score_check)
    for row in ours:
        row["dataset"] = run_dataset(params.data)
        row["comparable"] = comparable_row(row, prov["comparable_with_paper"])
    prov["imported_weights"] = records
    if models is not None:

        prov["separator_health"] = separator_health(models, list(params.sources))
    out = Path(out)
    # `sdr`, `ci` and `paired_p` are plain nested numbers so that `dvc exp show` / `dvc metrics diff` can show
    # them as columns.
    sdr = {row["version"]: {**row["sdr"], "mean": row["mean"]} for row in ours}
    ci = {row["version"]: {s: {"low": row["ci_low"][s], "high": row["ci_high"][s]} for s in SOURCES} for row in ours}
    paired_p = {f"{t['a']} vs {t['b']}": {s: r["p_value"] for s, r in t["sources"].items()} for t in tests}
    document = {"sdr": sdr, "ci": ci, "paired_p": paired_p, "provenance": prov, "rows": rows,
                "paired_tests": tests, "per_track_sdr": per_track_sdr}
    short = prov["dataset"].split(":")[0]
    return [
        write_text_atomic(out / "table.md", render_markdown(rows, prov, tests)),
        write_text_atomic(out / "table.csv", render_csv(rows)),
        write_json_atomic(out / "table.json", document),
        write_boxplot(out / report_params.boxplot, per_track_sdr, short),
    ]
