"""The evaluation runs of the workflow: which Mixers it trains and which runs it scores. One home for
workflow/rules/common.smk (its rules) and `mdxnet plan` (their cost), so the plan counts the jobs the workflow makes.

The model runs share one separation per test track; `no-mixer` scores the four separators' estimates, and each
Mixer run feeds those same estimates to its Mixer: `mixer`, the recipe's (params mixer), and `mixer-conv`, the
deeper conv Mixer (mdxnet's own, trained on the same frozen separators). Then the two baselines (lower and upper
bound), and two blend runs per second system of params blend.second (the Mixer's output, and the separators'
output without Mixer, blended with it).
"""

from __future__ import annotations

BASELINE_RUNS = {"mixture": "--estimator mixture", "irm": "--estimator irm"}  # run -> its `evaluate track` args
ESTIMATES = "estimates"  # the folder of the model runs' estimates (under published/ for imported models)
DEMUCS_FOLDER = f"{ESTIMATES}/demucs"  # blend.second's folder for Demucs v2 run by the workflow


def mixer_runs(importing: bool, published_mixer: str | None) -> dict[str, str | None]:
    """{run: the --kind its Mixer is trained with (None: params mixer.kind)}. Imported weights (models.origin
    import): their Mixer where a file is given (params models.published.files.mixer); no conv Mixer is trained."""
    if importing:
        return {"mixer": None} if published_mixer is not None else {}
    return {"mixer": None, "mixer-conv": "conv"}


def model_runs(mixers: dict) -> list[str]:
    """The runs scored from stored estimates: `no-mixer` and one per Mixer."""
    return [run for run in ["mixer", "no-mixer", "mixer-conv"] if run == "no-mixer" or run in mixers]


def blend_runs(second: dict[str, str], models: list[str]) -> dict[str, str]:
    """{run: the second system's folder} of params blend.second: per second system, `blend-<name>` blends the
    Mixer's output with it and `blend-no-mixer-<name>` the separators' (no Mixer). There is none without a
    `mixer` run; a second system that is one of this run's own model runs (estimates/<run>) exists only where
    that run does; `estimates/demucs` is made by the workflow (Demucs v2, params blend.demucs)."""
    if "mixer" not in models:
        return {}
    runs = {}
    for name, folder in second.items():
        folder = folder.rstrip("/")
        if folder.startswith(f"{ESTIMATES}/") and folder != DEMUCS_FOLDER and folder.split("/")[1] not in models:
            continue
        runs[f"blend-{name}"] = folder
        runs[f"blend-no-mixer-{name}"] = folder
    return runs


def blended_run(run: str) -> str:
    """The model run whose estimates a blend run blends: `mixer`, or `no-mixer` for blend-no-mixer-<name>."""
    return "no-mixer" if run.startswith("blend-no-mixer-") else "mixer"


def second_name(run: str) -> str:
    """The params blend.second name of a blend run."""
    return run.removeprefix("blend-no-mixer-") if run.startswith("blend-no-mixer-") else run.removeprefix("blend-")


def scored_runs(models: list[str], blends: dict[str, str]) -> list[str]:
    """Every run the workflow scores (one job per run and test track), in the order of the results table."""
    return [*models, *blends, *BASELINE_RUNS]
