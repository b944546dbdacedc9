"""Health of a trained separator: is it separating anything, or has it collapsed towards silence?

A separator that outputs (near) silence scores about 0 dB SDR on the validation tracks (both `train.valid_sdr`
formulas give 10 log10(1) for a silent estimate), and a Mixer on top can hide it. Two signs, thresholds in
params `train.health` (this project's own check; the authors have none):
- level: the estimates' energy over all validation tracks, relative to the target's, below `min_level_db`
  (a collapsed separator sits tens of dB below its target);
- score: the validation SDR within `min_sdr_db` of 0 dB, the score of a silent estimate.
The verdict of the published (best) model is stored in its checkpoint (`extra["health"]`); the training log
and dvclive (`collapsed` in metrics.json) say it, and the results table marks the source
(`separator_health`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from mdxnet.checkpoint import load_checkpoint, separator_path

log = logging.getLogger(__name__)


def level_db(references: list[np.ndarray], estimates: list[np.ndarray]) -> float:
    """Energy of the estimates relative to the references', pooled over tracks, in dB (floored at -300 dB for
    silent estimates, so that logs and JSON stay finite)."""
    target = sum(float(np.sum(np.asarray(r, dtype=np.float64) ** 2)) for r in references)
    found = sum(float(np.sum(np.asarray(e, dtype=np.float64) ** 2)) for e in estimates)
    if target == 0.0:
        return math.nan  # silent references: nothing to compare with
    return 10 * math.log10(max(found / target, 1e-30))


def warnings_for(metrics: dict | None, health) -> list[str]:
    """What is wrong with a separator whose validation metrics are `metrics` (params `train.health`)."""
    if not metrics:
        return []
    found = []
    level = metrics.get("valid_level_db")
    if level is not None and not math.isnan(level) and level < health.min_level_db:
        found.append(f"its estimates are {-level:.1f} dB quieter than the target on the validation tracks "
                     f"(threshold {-health.min_level_db:g} dB): it has collapsed towards silence")
    score = metrics.get("valid_sdr")
    if score is not None and abs(score) < health.min_sdr_db:
        found.append(f"its validation SDR {score:.3f} dB is within {health.min_sdr_db:g} dB of 0 dB, the score "
                     f"of a silent estimate")
    return found


def verdict(metrics: dict | None, health) -> dict:
    """The record stored with a checkpoint: the metrics judged and the warnings (empty = healthy)."""
    return {"metrics": {k: float(v) for k, v in (metrics or {}).items()}, "warnings": warnings_for(metrics, health)}


def announce(name: str, warnings: list[str]) -> str | None:
    """The loud message of an unhealthy model, logged as a warning; None when healthy."""
    if not warnings:
        return None
    bar = "!" * 78
    lines = [bar, f"SEPARATOR '{name}' IS NOT HEALTHY:", *(f"  - {w}" for w in warnings),
             "  Its results will be marked in the results table. Train longer or with a larger learning rate",
             "  (train.max_epochs or train.steps, train.lr_scale in params.yaml).", bar]
    message = "\n".join(lines)
    log.warning("%s", message)
    return message


def separator_health(models_dir: str | Path, sources: list[str]) -> dict[str, list[str]]:
    """{source: warnings} stored in the separators' checkpoints of `models_dir` (no checkpoint, or one from before
    the check: none). An unreadable or foreign file is the checkpoint loader's named error."""
    found = {}
    for source in sources:
        path = separator_path(models_dir, source)
        if not path.is_file():
            continue
        ckpt = load_checkpoint(path, kind="separator", source=source)
        warnings = ckpt.get("extra", {}).get("health", {}).get("warnings", [])
        if warnings:
            found[source] = list(warnings)
    return found
