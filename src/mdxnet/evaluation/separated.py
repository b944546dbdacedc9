"""The model runs' estimates kept on disk, one separation per evaluated track.

The `no-mixer` run's estimates are the four separators' outputs, and the Mixer's input is exactly those outputs
(plus the mixture): so the workflow separates each test track once (`separate_to_folder`), keeps the estimates
as a musdb-layout folder (`estimates/no-mixer/test/<track>/<source>.wav`), scores that folder as the `no-mixer`
run, and feeds it to each Mixer (`mix_folder`: `estimates/mixer/...`, `estimates/mixer-conv/...`), whose output
is scored as its own run and reused by the blend (mdxnet.evaluation.blend).

The files are 32-bit float WAV: the pipeline's float32 output is stored exactly, so a run scored from its folder
gets the numbers of the same estimates scored in memory, and a Mixer fed from the folder computes what
`mdxnet separate` computes with the Mixer.

Checks before anything is scored or mixed (`read_checked_estimates`): every source's file, the sample rate, the
length of the reference, finite samples; each fault is named with its file and the fix.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from mdxnet.audio import read_audio, write_wavs
from mdxnet.checkpoint import load_mixer
from mdxnet.data.musdb import load_track
from mdxnet.errors import UserError
from mdxnet.inference.separation import SeparationPipeline, apply_mixer, mixer_segment, pick_device
from mdxnet.inference.stitching import stitching_for
from mdxnet.models import mixer_kwargs, with_mixer_kind

log = logging.getLogger(__name__)


def write_estimates(folder: str | Path, estimates: dict[str, np.ndarray], sample_rate: int) -> list[Path]:
    """`<folder>/<source>.wav` for every source, float32, all of them or none (atomic group)."""
    folder = Path(folder)
    files = {folder / f"{source}.wav": audio for source, audio in estimates.items()}
    write_wavs(files, sample_rate, subtype="FLOAT")
    return list(files)


def estimates_faults(folder: str | Path, sources, sample_rate: int, length: int) -> list[str]:
    """What keeps `<folder>/<source>.wav` from being scored against a reference of `length` samples, in words
    (missing file, other sample rate, other length, NaN/inf samples); empty when nothing does."""
    import soundfile as sf

    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder} does not exist (expected <dir>/test/<track>/<source>.wav, musdb layout)"]
    faults = []
    for source in sources:
        path = folder / f"{source}.wav"
        if not path.is_file():
            faults.append(f"{path} is missing")
            continue
        try:
            info = sf.info(path)
        except (sf.LibsndfileError, RuntimeError) as err:
            faults.append(f"{path} cannot be read as audio ({err})")
            continue
        if info.samplerate != sample_rate:
            faults.append(f"{path} is at {info.samplerate} Hz, not {sample_rate} Hz (params sample_rate): "
                          "resample it or write the estimates at that rate")
        elif info.frames != length:
            faults.append(f"{path} has {info.frames} samples, the reference {length}: the estimates must cover "
                          "the whole mixture, sample for sample")
    return faults


def read_estimates_folder(folder: str | Path, sources: list[str], sample_rate: int) -> dict[str, np.ndarray]:
    """{source: (2, n)} from `<folder>/<source>.wav` (musdb estimates layout)."""
    folder = Path(folder)
    missing = [s for s in sources if not (folder / f"{s}.wav").is_file()]
    if missing:
        raise UserError(f"estimates folder {folder} lacks {', '.join(s + '.wav' for s in missing)}")
    return {s: read_audio(folder / f"{s}.wav", sample_rate) for s in sources}


def read_checked_estimates(folder: str | Path, sources, sample_rate: int, length: int,
                           what: str) -> dict[str, np.ndarray]:
    """{source: (2, length) float32} from `<folder>/<source>.wav`, refused with every fault named (UserError)
    when a file is missing, at another rate or length, or holds NaN/inf samples."""
    faults = estimates_faults(folder, sources, sample_rate, length)
    if faults:
        raise UserError(f"cannot use {what} in {folder}: " + "; ".join(faults))
    estimates = read_estimates_folder(folder, list(sources), sample_rate)
    bad = {s: int(np.count_nonzero(~np.isfinite(a))) for s, a in estimates.items()}
    bad = {s: n for s, n in bad.items() if n}
    if bad:
        raise UserError(f"cannot use {what} in {folder}: " + "; ".join(
            f"{Path(folder) / (s + '.wav')} holds {n} NaN/inf samples" for s, n in bad.items())
            + ": regenerate them")
    return estimates


class ForwardCounter:
    """Counts the calls of each separator's forward and the chunks they were given (a forward pre-hook), so
    that a log can say how much separation a job did."""

    def __init__(self, models: dict):
        self.calls = dict.fromkeys(models, 0)
        self.chunks = dict.fromkeys(models, 0)
        self._handles = [model.register_forward_pre_hook(self._hook(name)) for name, model in models.items()]

    def _hook(self, name: str):
        def count(_module, args):
            self.calls[name] += 1
            self.chunks[name] += int(args[0].shape[0])
        return count

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()

    def summary(self) -> dict:
        return {"calls": sum(self.calls.values()), "chunks": sum(self.chunks.values()),
                "per_source_chunks": dict(self.chunks)}


def separate_to_folder(track_path: str | Path, params, models_dir: str | Path, out: str | Path,
                       device: str | None = None) -> dict:
    """The four separators (no Mixer) on one track's mixture, written to `out` (musdb layout, float32).
    Returns what was done: separator forward calls and chunks, seconds, device."""
    track = load_track(track_path, params.sample_rate)
    pipeline = SeparationPipeline.from_dir(models_dir, params, device=device or params.separate.device,
                                           use_mixer=False)
    counter = ForwardCounter(pipeline.separators)
    started = time.monotonic()
    try:
        estimates = pipeline.separate(track["mixture"], progress=False)
    finally:
        counter.close()
    seconds = time.monotonic() - started
    write_estimates(out, {s: estimates[s] for s in params.sources}, params.sample_rate)
    done = {**counter.summary(), "seconds": round(seconds, 3), "device": str(pipeline.device)}
    # one line a log reader (and the workflow test) can count: the separator work of this evaluation job
    log.info("separator forward passes: %d calls, %d chunks (%s) in %.1f s -> %s", done["calls"], done["chunks"],
             ", ".join(f"{s} {n}" for s, n in done["per_source_chunks"].items()), seconds, out)
    return done


def mix_folder(track_path: str | Path, separated: str | Path, params, mixer_file: str | Path, kind: str,
               out: str | Path, device: str | None = None) -> dict:
    """The Mixer of `mixer_file` over the separator estimates in `separated` and the track's mixture, written to
    `out`: what `mdxnet separate` computes with that Mixer, without running the separators again."""
    import torch


    sources = list(params.sources)
    track = load_track(track_path, params.sample_rate)
    mixture = track["mixture"]
    estimates = read_checked_estimates(separated, sources, params.sample_rate, mixture.shape[-1],
                                       "the separators' estimates")
    mixer = load_mixer(mixer_file, mixer_kwargs(with_mixer_kind(params, kind).mixer, params.sources), params.sample_rate)
    torch_device = pick_device(device or params.separate.device)
    mixer = mixer.to(torch_device).eval()
    segment = mixer_segment(stitching_for(params, s) for s in sources)  # as SeparationPipeline applies it
    started = time.monotonic()
    with torch.inference_mode():
        stacked = torch.from_numpy(np.stack([estimates[s] for s in sources]).astype(np.float32))
        mixed = apply_mixer(mixer, stacked, torch.from_numpy(np.asarray(mixture, dtype=np.float32)), segment,
                            torch_device)
    write_estimates(out, {s: mixed[i].numpy() for i, s in enumerate(sources)}, params.sample_rate)
    seconds = time.monotonic() - started
    log.info("%s Mixer (%s) over %s in %.2f s, no separator run -> %s", kind, mixer_file, separated, seconds, out)
    return {"seconds": round(seconds, 3), "device": str(torch_device)}

