"""Scoring one track with BSS Eval v4 exactly as SiSEC2018 / musdb+museval do it, and museval's per-track JSON.

SiSEC2018 settings: `museval.eval_mus_track` calls `museval.evaluate(references, estimates, win=int(1.0 * rate),
hop=int(1.0 * rate), mode="v4")` with the four targets evaluated jointly (vocals, drums, bass, other), references =
the true stems as float64 (samples, channels), estimates zero-padded or truncated to the reference length. Its
JSON rounds every value to 5 decimals (Decimal quantize) and writes +-inf as NaN. This module reproduces all of
that so its files are interchangeable with published submissions and readable by `museval.EvalStore`.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

from mdxnet.errors import UserError

log = logging.getLogger(__name__)

METRICS = ("SDR", "SIR", "ISR", "SAR")
# Key order museval writes inside each frame's "metrics".
JSON_METRIC_ORDER = ("SDR", "SIR", "SAR", "ISR")
BACKENDS = ("museval", "fast")
_QUANTUM = Decimal(".00001")


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
        from mdxnet.evaluation.fast_bsseval import evaluate
    else:
        raise UserError(f"unknown scoring backend {backend!r} in params evaluate.backend; use one of {BACKENDS}")
    sdr, isr, sir, sar = evaluate(refs, ests, win=int(win * sample_rate), hop=int(hop * sample_rate))
    values = dict(zip(("SDR", "ISR", "SIR", "SAR"), (sdr, isr, sir, sar), strict=True))
    return {source: {m: np.asarray(values[m][i], dtype=np.float64) for m in METRICS} for i, source in enumerate(sources)}


def museval_round(value: float) -> float:
    """museval's TrackStore quantisation: 5 decimals, +-inf stored as NaN."""
    value = float(value)
    if np.isinf(value):
        return float("nan")
    return float(Decimal(value).quantize(_QUANTUM))


def track_document(
    scores: dict[str, dict[str, np.ndarray]], win: float = 1.0, hop: float = 1.0, metadata: dict | None = None
) -> dict:
    """museval's per-track JSON structure; our provenance goes under an extra "mdxnet" key (schema allows it)."""
    import museval.version

    targets = []
    for source, metrics in scores.items():
        frames = [
            {
                "time": i * hop,
                "duration": win,
                "metrics": {m: museval_round(metrics[m][i]) for m in JSON_METRIC_ORDER},
            }
            for i in range(len(metrics["SDR"]))
        ]
        targets.append({"name": source, "frames": frames})
    document = {"targets": targets, "museval_version": museval.version._version}
    if metadata:
        document["mdxnet"] = metadata
    return document


def frame_values(document: dict) -> dict[str, dict[str, np.ndarray]]:
    """Inverse of track_document: {target: {metric: (frames,) array}} from a per-track JSON document."""
    return {
        target["name"]: {
            m: np.array([frame["metrics"][m] for frame in target["frames"]], dtype=np.float64) for m in METRICS
        }
        for target in document["targets"]
    }


def score_track(
    track_path: str | Path,
    estimator: str,
    params: dict,
    models_dir: str | Path | None = None,
    use_mixer: bool = True,
    device: str | None = None,
) -> dict:
    """Load one track, build the estimator's estimates, score them; returns the per-track JSON document."""
    from mdxnet.config import params_hash
    from mdxnet.data.musdb import load_track, track_name
    from mdxnet.evaluation.baselines import estimates_for

    evaluation = params.evaluate
    sample_rate = params.sample_rate
    track = load_track(track_path, sample_rate)
    started = time.monotonic()
    estimates, used_device = estimates_for(estimator, track, params, models_dir, use_mixer, device)
    separated = time.monotonic()
    scores = score_estimates(track, estimates, params)
    metadata = {
        "track": track_name(track_path),
        "reference": str(track_path),
        "estimator": estimator,
        "use_mixer": bool(use_mixer) if estimator == "model" else None,
        "models": str(models_dir) if estimator == "model" else None,
        "device": used_device,
        "params_hash": params_hash(params),
        "samples": int(track["mixture"].shape[-1]),
        "sample_rate": sample_rate,
        "backend": evaluation.backend,
        "separate_seconds": round(separated - started, 3),
        "score_seconds": round(time.monotonic() - separated, 3),
    }
    return track_document(scores, evaluation.win, evaluation.hop, metadata)


def score_estimates(
    track: dict[str, np.ndarray], estimates: dict[str, np.ndarray], params: dict
) -> dict[str, dict[str, np.ndarray]]:
    """Score estimates against a loaded track with the params' window, hop and backend."""
    evaluation = params.evaluate
    return bss_eval_v4(
        {s: track[s] for s in params.sources},
        estimates,
        list(params.sources),
        params.sample_rate,
        evaluation.win,
        evaluation.hop,
        evaluation.backend,
    )


def read_estimates_folder(folder: str | Path, sources: list[str], sample_rate: int) -> dict[str, np.ndarray]:
    """{source: (2, n)} from `<folder>/<source>.wav` (musdb estimates layout)."""
    from mdxnet.audio import read_audio

    folder = Path(folder)
    missing = [s for s in sources if not (folder / f"{s}.wav").is_file()]
    if missing:
        raise UserError(f"estimates folder {folder} lacks {', '.join(s + '.wav' for s in missing)}")
    return {s: read_audio(folder / f"{s}.wav", sample_rate) for s in sources}
