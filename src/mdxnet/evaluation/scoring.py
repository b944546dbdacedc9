"""Scoring one track with BSS Eval v4 exactly as SiSEC2018 / musdb+museval do it, and museval's per-track JSON.

SiSEC2018 settings: `museval.eval_mus_track` calls `museval.evaluate(references, estimates, win=int(1.0 * rate),
hop=int(1.0 * rate), mode="v4")` with the four targets evaluated jointly (vocals, drums, bass, other), references =
the true stems as float64 (samples, channels), estimates zero-padded or truncated to the reference length. Its
JSON rounds every value to 5 decimals (Decimal quantize) and writes +-inf as NaN. This module reproduces all of
that so its files are interchangeable with published submissions and readable by `museval.EvalStore`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mdxnet.config import Evaluate, Params, params_hash
from mdxnet.data.musdb import load_track, track_name
from mdxnet.errors import UserError
from mdxnet.evaluation import fast_bsseval
from mdxnet.evaluation.baselines import estimates_for
from mdxnet.evaluation.separated import read_checked_estimates
from mdxnet.evaluation.track_json import METRICS, track_document

log = logging.getLogger(__name__)

BACKENDS = ("museval", "fast")


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """museval's pad_or_truncate for one (channels, samples) array: zero-pad or cut the end to `length`."""
    if audio.shape[-1] >= length:
        return audio[..., :length]
    return np.pad(audio, ((0, 0), (0, length - audio.shape[-1])))


def _stack(signals: dict[str, np.ndarray], sources: list[str], length: int, what: str) -> np.ndarray:
    """{source: (2, n)} -> float64 (nsrc, length, 2), the layout and precision museval/musdb use."""
    missing = [s for s in sources if s not in signals]
    if missing:
        raise UserError(f"{what} lack {', '.join(missing)}: every source in params 'sources' must be present")
    return np.stack([fit_length(np.asarray(signals[s], dtype=np.float64), length).T for s in sources])


def _silent(stacked: np.ndarray) -> list[int]:
    """Sources museval calls silent: channel sum zero at every sample."""
    return [i for i, signal in enumerate(stacked) if not np.any(np.sum(signal, axis=-1))]


def bss_eval_v4(
    references: dict[str, np.ndarray],
    estimates: dict[str, np.ndarray],
    sources: list[str],
    sample_rate: int,
    win: float = 1.0,
    hop: float = 1.0,
    backend: str = "museval",
) -> dict[str, dict[str, np.ndarray]]:
    """Framewise BSS Eval v4 (images version, time-invariant filters): {source: {metric: (frames,) float64}}."""
    length = np.asarray(references[sources[0]]).shape[-1]
    refs = _stack(references, sources, length, "the references")
    ests = _stack(estimates, sources, length, "the estimates")
    silent_refs = _silent(refs)
    if silent_refs:
        # museval refuses the whole track; a song without, say, vocals still has three scorable sources, and
        # dropping a zero reference changes no other source's projection.
        log.warning("reference %s is silent: not scored (BSS Eval is undefined for it)",
                    ", ".join(sources[i] for i in silent_refs))
        keep = [i for i in range(len(sources)) if i not in silent_refs]
        if not keep:
            raise UserError("every reference source is silent: nothing to score")
        sources, refs, ests = [sources[i] for i in keep], refs[keep], ests[keep]
    silent_ests = _silent(ests)
    if silent_ests:
        names = ", ".join(sources[i] for i in silent_ests)
        raise UserError(f"the estimated {names} is all zeros: BSS Eval is undefined for a silent estimate "
                        "(museval refuses it too); check the separator's output")
    if backend == "museval":
        import museval

        evaluate = museval.evaluate
    elif backend == "fast":
        evaluate = fast_bsseval.evaluate
    else:
        raise UserError(f"unknown scoring backend {backend!r} in params evaluate.backend; use one of {BACKENDS}")
    sdr, isr, sir, sar = evaluate(refs, ests, win=int(win * sample_rate), hop=int(hop * sample_rate))
    values = dict(zip(("SDR", "ISR", "SIR", "SAR"), (sdr, isr, sir, sar), strict=True))
    return {source: {m: np.asarray(values[m][i], dtype=np.float64) for m in METRICS} for i, source in enumerate(sources)}


def score_track(
    track_path: str | Path,
    estimator: str,
    params: Params,
    models_dir: str | Path | None = None,
    use_mixer: bool = True,
    device: str | None = None,
    estimates_dir: str | Path | None = None,
    cross_check: bool = False,
) -> dict:
    """Load one track, build the estimator's estimates (or read them from `estimates_dir`, the run's stored
    estimates of this track), score them; returns the per-track JSON document. `cross_check`: also score with
    museval and record the largest per-frame difference (see `cross_check_scores`)."""
    track = load_track(track_path, params.sample_rate)
    if estimates_dir is not None:
        estimates = read_checked_estimates(estimates_dir, list(params.sources), params.sample_rate,
                                           track["mixture"].shape[-1], f"the {estimator} estimates")
        used_device = None
    else:
        estimates, used_device = estimates_for(estimator, track, params, models_dir, use_mixer, device)
    metadata = {
        "estimator": estimator,
        "use_mixer": bool(use_mixer) if estimator == "model" else None,
        "models": str(models_dir) if estimator == "model" and models_dir is not None else None,
        "estimates": str(estimates_dir) if estimates_dir is not None else None,
        "device": used_device,
    }
    return scored_document(track_path, track, estimates, params, metadata, cross_check)


def scored_document(track_path: str | Path, track: dict[str, np.ndarray], estimates: dict[str, np.ndarray],
                    params: Params, metadata: dict, cross_check: bool = False) -> dict:
    """Score `estimates` against the loaded track: the per-track document with its provenance ("mdxnet")."""
    evaluation = params.evaluate
    scores = score_estimates(track, estimates, evaluation, params.sources, params.sample_rate)
    metadata = {
        "track": track_name(track_path),
        "reference": str(track_path),
        **metadata,
        "dataset": dataset_record(params),
        "params_hash": params_hash(params),
        "samples": int(track["mixture"].shape[-1]),
        "sample_rate": params.sample_rate,
        "backend": evaluation.backend,
    }
    if cross_check:
        metadata["crosscheck"] = cross_check_scores(track, estimates, evaluation, params.sources, params.sample_rate, scores)
    return track_document(scores, evaluation.win, evaluation.hop, metadata)


def dataset_record(params: Params) -> dict:
    """What a score file scored, so that a summary refuses to mix datasets: the profile (which picks the dataset
    of the small profiles) and the scored release as data.score names it, keys every scoring stage declares. No
    time or host goes into a score file: the same estimates score to the same bytes (timings are Snakemake's
    benchmarks/)."""
    return {"profile": params.profile, "score": params.data.score.dataset, "score_root": params.data.score.root}


def largest_difference(a: dict[str, dict[str, np.ndarray]], b: dict[str, dict[str, np.ndarray]],
                       metrics=METRICS) -> dict:
    """The largest |a - b| over every source, metric (of `metrics`) and frame: {"max_abs_diff_db", "where"}. A
    frame NaN (or inf) in one and not the same in the other counts as an infinite difference."""
    worst, where = 0.0, None
    for source in a:
        for metric in metrics:
            x, y = np.asarray(a[source][metric], np.float64), np.asarray(b[source][metric], np.float64)
            if x.shape != y.shape:
                return {"max_abs_diff_db": float("inf"), "where": f"{source} {metric}: frame counts differ"}
            same = (x == y) | (np.isnan(x) & np.isnan(y))
            diff = np.where(same, 0.0, np.abs(x - y))
            diff = np.where(np.isnan(diff), np.inf, diff)
            if diff.size and diff.max() > worst:
                worst, frame = float(diff.max()), int(diff.argmax())
                where = f"{source} {metric} frame {frame}"
    return {"max_abs_diff_db": worst, "where": where}


def cross_check_scores(track: dict[str, np.ndarray], estimates: dict[str, np.ndarray], evaluate: Evaluate,
                       sources: list[str], sample_rate: int, scores: dict[str, dict[str, np.ndarray]]) -> dict:
    """The same estimates scored by museval, the reference implementation, compared frame by frame with
    `scores` (evaluate.backend): what the run's summary and the report record and check.

    The tolerance applies to SDR, the number the tables report. The other metrics' largest difference is
    recorded beside it, not checked: where an estimate lies in the span of the references (the mixture as
    estimate is exactly their sum) SAR reads ~170-190 dB, an artifact energy at rounding level that the two
    implementations round differently (measured: up to 2.6 dB apart on the ci song; SDR there agrees to 1e-4)."""
    reference = score_estimates(track, estimates, evaluate, sources, sample_rate, backend="museval")
    sdr = largest_difference(scores, reference, ("SDR",))
    every = largest_difference(scores, reference)
    return {"against": "museval", "backend": evaluate.backend, "metric": "SDR", **sdr,
            "tolerance_db": float(evaluate.crosscheck_tolerance_db),
            "all_metrics_max_abs_diff_db": every["max_abs_diff_db"], "all_metrics_where": every["where"]}


def score_estimates(
    track: dict[str, np.ndarray], estimates: dict[str, np.ndarray], evaluate: Evaluate, sources: list[str],
    sample_rate: int, backend: str | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """Score estimates of `sources` against a loaded track with evaluate's window, hop and backend (or
    `backend`)."""
    return bss_eval_v4(
        {s: track[s] for s in sources},
        estimates,
        list(sources),
        sample_rate,
        evaluate.win,
        evaluate.hop,
        backend or evaluate.backend,
    )
