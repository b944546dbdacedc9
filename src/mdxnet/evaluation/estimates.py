"""Scoring a folder of estimates (anyone's: ours, a published submission's) against reference tracks.

Layout, as musdb writes estimates: `<dir>/test/<track>/{vocals,drums,bass,other}.wav` (or `<dir>/<track>/...`).
Two steps, so that a caller can refuse bad input before any audio is read:

1. `match_estimates` pairs estimates folders with reference tracks by name (`mdxnet.data.musdb.track_index`) and
   names what cannot be scored: a reference track without estimates (missing_track), estimates of a track that
   is not a reference (extra_track), an estimates folder without one of the sources' wav files (missing_source);
2. `score_matched` scores each pair with BSS Eval v4 (`mdxnet.evaluation.scoring`) and names what was scored
   despite a fault: an estimate of another length than the reference (wrong_length: zero-padded or cut, as
   museval does), NaN/inf samples (nan_audio: scored as 0, so that the other sources still get scores) and
   another sample rate (wrong_rate: resampled), and what kept a track from being scored (silent_audio).

Each problem is a dict {"kind", "message", "track", ...details}: `mdxnet evaluate estimates` logs or refuses them,
`mdxnet audit` reports them as flags.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mdxnet.config import Params, params_hash
from mdxnet.data.musdb import load_track, track_index, track_name
from mdxnet.errors import UserError
from mdxnet.evaluation.scoring import score_estimates
from mdxnet.evaluation.separated import read_estimates_folder
from mdxnet.evaluation.track_json import track_document


def problem(kind: str, message: str, **details) -> dict:
    """One named problem (or audit flag): what is wrong, in words, plus the fields a program can filter on."""
    return {"kind": kind, "message": message, **details}


def estimate_folders(root: str | Path) -> dict[str, Path]:
    """{track: folder} of an estimates tree: `<root>/test/<track>/` (musdb layout) or `<root>/<track>/`."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"estimates folder {root} does not exist (expected <dir>/test/<track>/<source>.wav)")
    base = root / "test" if (root / "test").is_dir() else root
    return {p.name: p for p in sorted(base.iterdir()) if p.is_dir() and not p.name.startswith(".")}


@dataclass
class EstimatesMatch:
    """Estimates folders paired with reference tracks, and what keeps the others from being scored."""

    estimates: Path
    references: dict[str, Path]  # reference tracks by name
    pairs: dict[str, tuple[Path, Path]] = field(default_factory=dict)  # track -> (estimates folder, reference)
    problems: list[dict] = field(default_factory=list)  # missing_track, extra_track, missing_source


def match_estimates(estimates: str | Path, references_root: str | Path, sources, tracks=None) -> EstimatesMatch:
    """Pair `<estimates>/test/<track>/` with `<references_root>/test/<track>` by name; check every source's wav.

    `tracks`: only these names (each must then exist on both sides); default every name on either side.
    Reads no audio.
    """
    references = track_index(references_root, "test")
    folders = estimate_folders(estimates)
    match = EstimatesMatch(Path(estimates), references)
    names = list(dict.fromkeys(tracks)) if tracks else sorted(set(references) | set(folders))
    for name in names:
        if name not in folders:
            match.problems.append(problem("missing_track", f"no estimates for reference track {name!r} in "
                                          f"{estimates}", track=name))
        elif name not in references:
            match.problems.append(problem("extra_track", f"estimates for {name!r}, which is not a reference test "
                                          f"track under {references_root}", track=name))
        else:
            missing = [s for s in sources if not (folders[name] / f"{s}.wav").is_file()]
            if missing:
                match.problems.append(problem(
                    "missing_source", f"{folders[name]} lacks {', '.join(m + '.wav' for m in missing)}",
                    track=name, sources=missing))
            else:
                match.pairs[name] = (folders[name], references[name])
    return match


def rate_problems(name: str, folder: Path, sources, sample_rate: int) -> list[dict]:
    """wrong_rate problems: estimates at another rate are resampled to be scored, so their scores are not those
    of the files as submitted (MUSDB estimates are at the references' rate)."""
    import soundfile as sf

    problems = []
    for source in sources:
        rate = sf.info(str(Path(folder) / f"{source}.wav")).samplerate
        if rate != sample_rate:
            problems.append(problem("wrong_rate", f"{name}/{source}.wav is at {rate} Hz, not the references' "
                                    f"{sample_rate} Hz: resampled to be scored", track=name, source=source,
                                    rate=rate))
    return problems


def unreadable_problems(name: str, folder: Path, sources) -> list[dict]:
    """not_audio problems: an estimate libsndfile cannot read (not audio, cut short in its header) leaves its track
    unscored, named, instead of stopping every other track's scoring with a traceback."""
    import soundfile as sf

    problems = []
    for source in sources:
        path = folder / f"{source}.wav"
        try:
            sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError, TypeError) as err:
            problems.append(problem("not_audio", f"{name}/{source}.wav cannot be read as audio ({err}): track "
                                    f"{name!r} is not scored", track=name, source=source))
    return problems


def silent_problems(name: str, estimates: dict[str, np.ndarray]) -> list[dict]:
    """silent_audio problems: BSS Eval v4 is undefined for an all-zero estimate (museval refuses it), so a track
    with one is not scored; it is named instead of stopping every other track's scoring."""
    return [problem("silent_audio", f"{name}/{source}.wav is silent (all zeros, or NaN/inf only, scored as 0): "
                    f"BSS Eval is undefined for a silent estimate, so track {name!r} is not scored",
                    track=name, source=source)
            for source, audio in estimates.items() if not np.any(audio)]


def audio_problems(name: str, estimates: dict[str, np.ndarray], length: int) -> list[dict]:
    """wrong_length and nan_audio problems of one track's estimates (`length`: the reference's samples)."""
    problems = []
    for source, audio in estimates.items():
        if audio.shape[-1] != length:
            problems.append(problem(
                "wrong_length", f"{name}/{source}.wav has {audio.shape[-1]} samples, the reference {length} "
                "(scored after zero-padding/truncating, as museval does)",
                track=name, source=source, samples=int(audio.shape[-1]), expected=int(length)))
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        if bad:
            problems.append(problem("nan_audio", f"{name}/{source}.wav holds {bad} NaN/inf samples (scored as 0)",
                                    track=name, source=source, samples=bad))
    return problems


def score_track_estimates(folder: str | Path, reference: str | Path,
                          params: Params) -> tuple[dict | None, list[dict]]:
    """Score `<folder>/<source>.wav` against one reference track: (museval per-track document, problems).

    Problems (wrong_rate, wrong_length, nan_audio) are also recorded in the document's "mdxnet" metadata. A track
    with a silent estimate is not scored: (None, problems with its silent_audio).
    """
    sample_rate = params.sample_rate
    name = track_name(reference)
    unreadable = unreadable_problems(name, Path(folder), params.sources)
    if unreadable:
        return None, unreadable
    track = load_track(reference, sample_rate)
    length = track["mixture"].shape[-1]
    problems = rate_problems(name, Path(folder), params.sources, sample_rate)
    estimates = read_estimates_folder(folder, list(params.sources), sample_rate)
    problems += audio_problems(name, estimates, length)
    estimates = {s: np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0) for s, a in estimates.items()}
    silent = silent_problems(name, estimates)
    if silent:
        return None, problems + silent
    evaluation = params.evaluate
    scores = score_estimates(track, estimates, evaluation, params.sources, sample_rate)
    metadata = {
        "track": name,
        "reference": str(reference),
        "estimator": "estimates",
        "estimates": str(folder),
        "params_hash": params_hash(params),
        "samples": int(length),
        "sample_rate": sample_rate,
        "backend": evaluation.backend,
        "problems": problems,
    }
    return track_document(scores, evaluation.win, evaluation.hop, metadata), problems


def score_matched(match: EstimatesMatch, params: Params,
                  desc: str = "scoring estimates") -> Iterator[tuple[str, dict | None, list]]:
    """(track, per-track document, problems) for every matched pair, in name order, as each is scored (document
    None: the track could not be scored, its problems say why)."""
    from tqdm import tqdm

    for name in tqdm(sorted(match.pairs), desc=desc, unit="track", disable=len(match.pairs) < 2):
        folder, reference = match.pairs[name]
        document, problems = score_track_estimates(folder, reference, params)
        yield name, document, problems
