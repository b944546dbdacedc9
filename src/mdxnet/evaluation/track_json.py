"""museval's per-track JSON document (the format SiSEC2018 published its scores in): written from per-frame
scores with museval's own rounding, and read back into arrays. Every scored track is stored this way, so the
aggregation and the report read it without the scoring code (or the separation code behind it)."""

from __future__ import annotations

import importlib.metadata
from decimal import Decimal

import numpy as np

METRICS = ("SDR", "SIR", "ISR", "SAR")
# Key order museval writes inside each frame's "metrics".
JSON_METRIC_ORDER = ("SDR", "SIR", "SAR", "ISR")
_QUANTUM = Decimal(".00001")


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
    document = {"targets": targets, "museval_version": importlib.metadata.version("museval")}
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
