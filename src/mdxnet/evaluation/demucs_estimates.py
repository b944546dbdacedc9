"""The second system the authors blended with, on one test song: Demucs v2 (mdxnet.inference.demucs, params
blend.demucs) written as a musdb-layout estimates folder (estimates/demucs/test/<track>/<source>.wav), made once
per song and read by both blend runs (mdxnet.evaluation.blend)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mdxnet.data.musdb import load_track
from mdxnet.evaluation.separated import write_estimates
from mdxnet.inference import demucs

log = logging.getLogger(__name__)


def demucs_to_folder(track_path: str | Path, params, model_path: str | Path, out: str | Path) -> dict:
    """Demucs v2 on one track's mixture, run as params blend.demucs says, written to `out` (float32 wav)."""
    settings = params.blend.demucs
    demucs.check_version(settings.version)
    model = demucs.load_model(model_path, params.sample_rate)
    track = load_track(track_path, params.sample_rate)
    started = time.monotonic()
    estimates = demucs.separate(model, track["mixture"], settings)
    write_estimates(out, {s: estimates[s] for s in params.sources}, params.sample_rate)
    seconds = time.monotonic() - started
    log.info("Demucs %s (%s) in %.1f s -> %s", settings.model, model_path, seconds, out)
    return {"seconds": round(seconds, 3)}
