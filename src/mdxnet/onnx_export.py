"""Export the separators' spectrogram networks to ONNX, as the original KUIELAB system shipped them.

Only `spec_forward` (the (B, 4, dim_f, dim_t) -> (B, 4, dim_f, dim_t) network) is exported: the STFT and
iSTFT stay in the host program, as in the authors' submission. The STFT settings a host needs are stored in
the ONNX file's metadata (n_fft, hop, dim_f, dim_t, source).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

INPUT_NAME, OUTPUT_NAME = "spec", "source_spec"


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


def export_separator(model, path: str | Path, source: str = "", batch: int = 1) -> Path:
    """Write `model.spec_forward` as ONNX (dynamic batch axis) atomically; returns the path."""
    import onnx

    model = model.eval()
    stft = model.stft
    example = torch.zeros(batch, 4, stft.dim_f, stft.dim_t)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        raw = Path(tmp) / "model.onnx"
        with quiet_exporter():
            torch.onnx.export(
                SpecNet(model).eval(), (example,), str(raw), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes={"spec": {0: torch.export.Dim("batch", min=1, max=64)}}, dynamo=True,
                external_data=False, verbose=False,
            )
        proto = onnx.load(str(raw))
        meta = {"source": source, "n_fft": stft.n_fft, "hop": stft.hop, "dim_f": stft.dim_f, "dim_t": stft.dim_t}
        onnx.helper.set_model_props(proto, {k: str(v) for k, v in meta.items()})
        onnx.save(proto, str(raw))
        os.replace(raw, path)
    return path


def export_models(models_dir, out_dir, params: dict) -> list[Path]:
    """<models_dir>/<source>.pt -> <out_dir>/<source>.onnx for every source."""
    from tqdm import tqdm

    from mdxnet.checkpoint import load_separator, separator_path

    written = []
    for source in tqdm(params.sources, desc="exporting", unit="model"):
        model = load_separator(separator_path(models_dir, source), source)
        written.append(export_separator(model, Path(out_dir) / f"{source}.onnx", source))
    return written


def onnx_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session for an exported separator."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Without the arena each of the four sessions would keep its peak working set (~1.5 GB at the paper size,
    # batch 4) after running; freed buffers go back to the system instead.
    options.enable_cpu_mem_arena = False
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def file_digest(path: str | Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def cached_export(checkpoint: str | Path, model, source: str, cache_dir: str | Path) -> Path:
    """The ONNX file of a checkpoint, exported once and cached under `cache_dir` by checkpoint content hash."""
    path = Path(cache_dir) / f"{source}-{file_digest(checkpoint)}.onnx"
    if not path.is_file():
        log.info("exporting %s to ONNX (once; cached as %s)", checkpoint, path)
        export_separator(model, path, source)
    return path


class OnnxChunkModel(nn.Module):
    """A separator whose spectrogram network runs in ONNX Runtime on the CPU; STFT and iSTFT stay in torch.

    Measured here ~2.5x faster than the same net in eager PyTorch (bench/README.md): ORT fuses
    conv + BatchNorm + ReLU and runs the 3x3 convs in a blocked (NCHWc) layout.
    """

    def __init__(self, stft: nn.Module, onnx_path: str | Path, threads: int | None = None):
        super().__init__()
        self.stft = stft
        self.session = onnx_session(onnx_path, threads or torch.get_num_threads())

    @property
    def chunk_samples(self) -> int:
        return self.stft.chunk_samples

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = self.stft(wave.cpu()).numpy()
        (out,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: spec})
        return self.stft.inverse(torch.from_numpy(out))
