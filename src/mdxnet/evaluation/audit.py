"""Auditing someone else's separation results.

`run_audit_checks` scores a folder of estimates (musdb layout: <dir>/test/<track>/<source>.wav) against the
reference test set and flags: missing or extra tracks, missing source files, estimates whose length differs from
the reference, NaN/inf samples, NaN scores, claimed numbers (per-track JSON or a table) that differ from ours by
more than a tolerance, and a test set that overlaps the training split (same track name, or the same mixture
audio under another name).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from mdxnet.errors import UserError


def estimate_folders(root: str | Path) -> dict[str, Path]:
    """{track: folder} of an estimates tree: `<root>/test/<track>/` (musdb layout) or `<root>/<track>/`."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"estimates folder {root} does not exist (expected <dir>/test/<track>/<source>.wav)")
    base = root / "test" if (root / "test").is_dir() else root
    return {p.name: p for p in sorted(base.iterdir()) if p.is_dir() and not p.name.startswith(".")}


def _audio_problems(name: str, estimates: dict[str, np.ndarray], length: int) -> list[dict]:
    problems = []
    for source, audio in estimates.items():
        if audio.shape[-1] != length:
            problems.append({"kind": "wrong_length", "track": name, "source": source,
                             "samples": int(audio.shape[-1]), "expected": int(length)})
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        if bad:
            problems.append({"kind": "nan_audio", "track": name, "source": source, "samples": bad})
    return problems


def score_estimate_folder(folder: str | Path, reference: str | Path, params: dict) -> tuple[dict, list[dict]]:
    """Score `<folder>/<source>.wav` against one reference track; returns (per-track document, problems).

    Like museval, estimates of another length are zero-padded or truncated before scoring; NaN/inf samples are
    reported and zeroed so that the other sources can still be scored.
    """
    from mdxnet.config import params_hash
    from mdxnet.evaluation.scoring import read_estimates_folder, score_estimates, track_document
    from mdxnet.evaluation.tracks import load_reference, track_name

    sources = list(params["sources"])
    sample_rate = params.get("sample_rate", 44100)
    track = load_reference(reference, sample_rate)
    length = track["mixture"].shape[-1]
    estimates = read_estimates_folder(folder, sources, sample_rate)
    name = track_name(reference)
    problems = _audio_problems(name, estimates, length)
    estimates = {s: np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0) for s, a in estimates.items()}
    started = time.monotonic()
    scores = score_estimates(track, estimates, params)
    evaluation = params.get("evaluate", {})
    metadata = {
        "track": name,
        "reference": str(reference),
        "estimator": "estimates",
        "estimates": str(folder),
        "params_hash": params_hash(params),
        "samples": int(length),
        "sample_rate": sample_rate,
        "backend": evaluation.get("backend", "museval"),
        "score_seconds": round(time.monotonic() - started, 3),
    }
    return track_document(scores, evaluation.get("win", 1.0), evaluation.get("hop", 1.0), metadata), problems


def mixture_fingerprint(mixture: np.ndarray) -> str:
    """Hash of the mixture quantised to 16-bit PCM: identical audio under another name gives the same value."""
    pcm = np.clip(np.round(np.asarray(mixture, dtype=np.float64) * 32767), -32768, 32767).astype("<i2")
    return hashlib.sha256(pcm.tobytes()).hexdigest()
