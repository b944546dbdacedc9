"""ONNX Runtime behind our STFT: the session options (`onnx_session`), our own exports (`OnnxChunkModel`) and
imported ONNX separators (`ImportedOnnxSeparator`, the authors' input/output convention)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mdxnet.stft import CutSTFT

INPUT_NAME, OUTPUT_NAME = "spec", "source_spec"  # the names our exports give their input and output


def onnx_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session for an exported separator."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Without the arena each of the four sessions would keep its peak working set (~1.5 GB at the paper size,
    # batch 4) after running; freed buffers go back to the system instead.
    options.enable_cpu_mem_arena = False
    # Idle pool threads yield their core instead of spinning: 1.09x faster end to end at the paper size on 2
    # cores, idle machine (bench/README.md), and kinder to whatever shares the cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxChunkModel(nn.Module):
    """A separator whose spectrogram network runs in ONNX Runtime on the CPU; STFT and iSTFT stay in torch.

    It takes chunks of the frame count the file was exported for (its `frames` metadata): `chunk_samples`.

    Measured here ~2.5x faster than the same net in eager PyTorch (bench/README.md): ORT fuses
    conv + BatchNorm + ReLU and runs the 3x3 convs in a blocked (NCHWc) layout.
    """

    def __init__(self, stft: nn.Module, onnx_path: str | Path, threads: int | None = None):
        super().__init__()
        self.stft = stft
        self.session = onnx_session(onnx_path, threads or torch.get_num_threads())
        self.frames = int(self.session.get_modelmeta().custom_metadata_map["frames"])

    @property
    def chunk_samples(self) -> int:
        return self.stft.hop * (self.frames - 1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.shape[-1] != self.chunk_samples:
            raise ValueError(f"this ONNX separator was exported for chunks of {self.chunk_samples} samples "
                             f"({self.frames} frames), got {wave.shape[-1]}")
        spec = self.stft(wave.cpu()).numpy()
        (out,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: spec})
        return self.stft.inverse(torch.from_numpy(out))


class ImportedOnnxSeparator(nn.Module):
    """An imported ONNX separator behind our STFT: (B, 2, chunk_samples) mixture chunks -> source estimates.

    The STFT runs on the CPU beside ONNX Runtime whatever device the pipeline uses (the result is moved back).
    """

    def __init__(self, onnx_path: str | Path, manifest: dict, threads: int | None = None):
        super().__init__()

        c = manifest["config"]
        self.__dict__["cpu_stft"] = CutSTFT(c["n_fft"], c["hop"], c["dim_f"], c["frames"])  # not moved by .to()
        self.session = onnx_session(onnx_path, threads or torch.get_num_threads())
        self.frames, self.batch = c["frames"], c.get("batch")
        self.input_name, self.output_name = c["input_name"], c["output_name"]

    @property
    def chunk_samples(self) -> int:
        return self.cpu_stft.chunk_samples

    def run_spec(self, spec: torch.Tensor) -> torch.Tensor:
        if self.batch is None:
            (out,) = self.session.run([self.output_name], {self.input_name: spec.numpy()})
            return torch.from_numpy(out)
        parts = []
        for first in range(0, spec.shape[0], self.batch):  # a file exported for a fixed batch: zero-padded
            part = spec[first: first + self.batch]
            padded = nn.functional.pad(part, (0, 0, 0, 0, 0, 0, 0, self.batch - part.shape[0]))
            (out,) = self.session.run([self.output_name], {self.input_name: padded.numpy()})
            parts.append(torch.from_numpy(out)[: part.shape[0]])
        return torch.cat(parts)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.shape[-1] != self.chunk_samples:
            raise ValueError(f"this ONNX separator takes chunks of {self.chunk_samples} samples ({self.frames} "
                             f"frames), got {wave.shape[-1]}")
        spec = self.cpu_stft(wave.float().cpu())
        return self.cpu_stft.inverse(self.run_spec(spec)).to(wave.device)
