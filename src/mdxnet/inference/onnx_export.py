"""Export the separators' spectrogram networks to ONNX, as the original KUIELAB system shipped them.

Only `spec_forward` (the (B, 4, dim_f, frames) -> (B, 4, dim_f, frames) network) is exported: the STFT and
iSTFT stay in the host program, as in the authors' submission. The time axis is fixed at export to the chunk
the host will run (`separate.chunk_frames`; the authors exported at 2 * dim_t frames, kuielab/mdx-net
Leaderboard_A src/callbacks/onnx_callback.py `inference_chunk_shape`), the batch axis is dynamic. The STFT
settings a host needs are stored in the ONNX file's metadata (source, n_fft, hop, dim_f, dim_t the net was
built with, frames of its input).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import warnings
from pathlib import Path

import torch
from torch import nn

from mdxnet.atomic import temp_dir_beside
from mdxnet.checkpoint import load_separator, separator_path
from mdxnet.config import Params, separator_kwargs
from mdxnet.digest import file_sha256
from mdxnet.errors import UserError
from mdxnet.inference.onnx_runtime import INPUT_NAME, OUTPUT_NAME
from mdxnet.inference.stitching import checked_chunk_frames

log = logging.getLogger(__name__)


class SpecNet(nn.Module):
    """The separator minus its STFT: what gets exported."""

    def __init__(self, separator: nn.Module):
        super().__init__()
        self.separator = separator

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.separator.spec_forward(spec)


@contextlib.contextmanager
def quiet_exporter():
    """The dynamo exporter and its graph optimiser log hundreds of lines (optional torchvision ops, every
    folded initializer) that do not concern a user: only errors get through while exporting."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export_separator(model, path: str | Path, frames: int, source: str = "", batch: int = 1,
                     provenance: dict | None = None) -> Path:
    """Write `model.spec_forward` for inputs of `frames` STFT frames as ONNX (dynamic batch axis) atomically;
    returns the path. Its metadata says what it is (source, STFT, frames) and `provenance` (e.g. the checkpoint's
    sha256) adds to it."""
    import onnx

    model = model.eval()
    stft = model.stft
    if frames % 2**model.num_scales:
        raise ValueError(f"frames={frames} is not a multiple of the net's time downsampling {2**model.num_scales}")
    example = torch.zeros(batch, 4, stft.dim_f, frames)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with temp_dir_beside(path) as tmp:  # a kill -9 leftover is removed by the next export of the same file
        raw = tmp / "model.onnx"
        with quiet_exporter():
            torch.onnx.export(
                SpecNet(model).eval(), (example,), str(raw), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes={"spec": {0: torch.export.Dim("batch", min=1, max=64)}}, dynamo=True,
                external_data=False, verbose=False,
            )
        proto = onnx.load(str(raw))
        meta = {"source": source, "n_fft": stft.n_fft, "hop": stft.hop, "dim_f": stft.dim_f, "dim_t": stft.dim_t,
                "frames": frames, **(provenance or {})}
        onnx.helper.set_model_props(proto, {k: str(v) for k, v in meta.items()})
        onnx.save(proto, str(raw))
        os.replace(raw, path)
    return path


def export_models(models_dir, out_dir, params: Params) -> list[Path]:
    """<models_dir>/<source>.pt -> <out_dir>/<source>.onnx for every source, for chunks of
    separate.chunk_frames frames (checked against the params' networks before any export)."""
    from tqdm import tqdm


    frames = {source: checked_chunk_frames(params, source) for source in params.sources}
    written = []
    for source in tqdm(params.sources, desc="exporting", unit="model"):
        model = load_separator(separator_path(models_dir, source), source, separator_kwargs(params, source))
        written.append(export_separator(model, Path(out_dir) / f"{source}.onnx", frames[source], source))
    return written


def cached_export(checkpoint: str | Path, model, source: str, cache_dir: str | Path, frames: int) -> Path:
    """The ONNX file of a checkpoint for `frames`-frame chunks, exported once and cached under `cache_dir` by
    checkpoint content hash and frame count. A cached file is used only when its own metadata says it was made
    from this checkpoint (sha256), for this source, architecture and chunk, and its network gives the
    checkpoint's output on a probe input (`content_problem`: metadata can be copied onto another net): a file put
    there by other means, made from another checkpoint or cut short is exported again, with a warning."""
    digest = file_sha256(checkpoint)
    path = cache_path(cache_dir, source, digest, frames)
    require_file_slot(path)
    expected = entry_metadata(model, source, frames, digest)
    if path.is_file() and entry_problem(path, expected, model) is None:
        return path
    # The workflow separates several test songs at once, each job with the same checkpoints: without the lock
    # every job exported every net (seen in the paper rehearsal: two jobs, eight paper-size exports for four).
    with locked_folder(path.parent):
        remove_legacy_temps(path.parent)
        if not path.is_file():
            log.info("exporting %s to ONNX (once; cached as %s)", checkpoint, path)
        else:
            problem = entry_problem(path, expected, model)
            if problem is None:  # another job exported it while this one waited
                return path
            log.warning("the cached ONNX file %s is not the export of %s (%s): exporting it again", path,
                        checkpoint, problem)
        export_separator(model, path, frames, source, provenance={"arch": model.arch, "checkpoint_sha256": digest})
    return path


def entry_problem(path: Path, expected: dict[str, str], model) -> str | None:
    """Why the cache entry at `path` cannot stand for the export of `model` `expected` describes: its metadata
    first, then its content."""
    return cache_problem(path, expected) or content_problem(path, model, int(expected["frames"]))


# A probe's output through the cached file differs from the checkpoint's by float32 rounding (ORT fuses and
# reorders the convolutions): 1e-4 of the output's scale on the nets measured here. Another net (another source,
# another checkpoint) differs by the output's own scale.
PROBE_TOLERANCE = 1e-3


def content_problem(path: Path, model, frames: int) -> str | None:
    """Why the network in the ONNX file at `path` is not `model`'s spectrogram network: both run on one fixed
    pseudo-random input; None when their outputs agree to PROBE_TOLERANCE of the output's scale."""
    import numpy as np

    from mdxnet.inference.onnx_runtime import onnx_session

    probe = torch.randn(1, 4, model.stft.dim_f, frames, generator=torch.Generator().manual_seed(0))
    try:
        (ours,) = onnx_session(path, threads=torch.get_num_threads()).run([OUTPUT_NAME], {INPUT_NAME: probe.numpy()})
    except Exception as err:  # noqa: BLE001 - any failure to run means the entry cannot be used
        return f"it does not run: {type(err).__name__}"
    with torch.inference_mode():
        reference = SpecNet(model)(probe.to(next(model.parameters()).device)).float().cpu().numpy()
    if ours.shape != reference.shape:
        return f"its output has shape {ours.shape} where {reference.shape} is expected"
    error = float(np.abs(ours - reference).max()) / max(float(np.abs(reference).max()), 1e-6)
    if not error <= PROBE_TOLERANCE:
        return f"its network is not this checkpoint's (output differs by {error:.3g} of its scale on a probe)"
    return None


def require_file_slot(path: Path) -> None:
    """A cache entry's name taken by a folder (or anything but a file) is refused, named, before any export (an
    export cannot replace it: IsADirectoryError after the work)."""
    if (path.exists() or path.is_symlink()) and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise UserError(f"the ONNX cache entry {path} is {kind}: remove it (the export is written there), or set "
                        f"separate.onnx_cache in params.yaml to another folder")


# Exports before the temp folders were named like temp files (`temp_dir_beside`) used tempfile's `tmpXXXXXXXX`
# folder holding `model.onnx`; one a kill left behind is removed under the cache lock (no live export uses it).
_LEGACY_TEMP = re.compile(r"tmp[a-z0-9_]{8}")


def remove_legacy_temps(folder: Path) -> None:
    for tmp in folder.iterdir():
        if _LEGACY_TEMP.fullmatch(tmp.name) and tmp.is_dir() and not tmp.is_symlink() \
                and {p.name for p in tmp.iterdir()} <= {"model.onnx"}:
            log.info("removing %s, left by an interrupted ONNX export", tmp)
            shutil.rmtree(tmp, ignore_errors=True)


def cache_path(cache_dir: str | Path, source: str, digest: str, frames: int) -> Path:
    """Where the export of the checkpoint whose sha256 is `digest` lives in the cache, for `frames`-frame chunks."""
    return Path(cache_dir) / f"{source}-{digest[:16]}-t{frames}.onnx"


def require_writable_cache(cache_dir: str | Path, entries: list[Path]) -> None:
    """Before any model loads: when one of the cache `entries` is still to be exported, the cache folder must be
    one the export can be written into (an unwritable one gave a traceback after the models had loaded)."""
    for entry in entries:
        require_file_slot(entry)
    missing = [entry for entry in entries if not entry.is_file()]
    if not missing:
        return  # a read-only cache that holds every export is fine
    folder = Path(cache_dir).absolute()
    fix = "set separate.onnx_cache in params.yaml to a folder you can write to, or pass --backend torch"
    existing = next(p for p in (folder, *folder.parents) if p.exists())  # made by the export, not by this check
    if not existing.is_dir():
        raise UserError(f"the ONNX cache folder {folder} cannot be made ({existing} is a file), and "
                        f"{missing[0].name} must be exported into it: {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"the ONNX cache folder {folder} is not writable ({existing}), and {missing[0].name} must "
                        f"be exported into it: {fix}")


def entry_metadata(model, source: str, frames: int, digest: str) -> dict[str, str]:
    """The metadata an ONNX cache entry of `model` must carry (as export_separator writes it: strings)."""
    stft = model.stft
    values = {"source": source, "arch": model.arch, "checkpoint_sha256": digest, "n_fft": stft.n_fft,
              "hop": stft.hop, "dim_f": stft.dim_f, "frames": frames}
    return {key: str(value) for key, value in values.items()}


def cache_problem(path: Path, expected: dict[str, str]) -> str | None:
    """Why the ONNX file at `path` cannot stand for the export `expected` describes; None when it can."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError) as err:  # cut short by a full disk or a kill, or not ONNX at all
        return f"it does not load: {type(err).__name__}"
    found = {prop.key: prop.value for prop in proto.metadata_props}
    differ = [f"{key} {found.get(key)!r} where {value!r} is expected" for key, value in expected.items()
              if found.get(key) != value]
    return "its metadata gives " + ", ".join(differ) if differ else None


@contextlib.contextmanager
def locked_folder(folder: Path):
    """An exclusive lock on a folder (flock on the folder itself: no lock file is left behind), shared by the
    processes and threads that use it; released when the block ends, or by the OS when the holder dies."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


