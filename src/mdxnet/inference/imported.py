"""The records `mdxnet models import` writes beside each imported model (`<name>.import.json`), read when
separating (`imported_onnx_separator`) and by the results table (`imported_records`)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from mdxnet.config import Params, per_source, separator_kwargs
from mdxnet.digest import file_sha256
from mdxnet.errors import UserError, read_json
from mdxnet.inference.onnx_runtime import ImportedOnnxSeparator

MANIFEST_FORMAT = 1


MANIFEST_SUFFIX = ".import.json"


def manifest_path(models_dir: str | Path, name: str) -> Path:
    return Path(models_dir) / f"{name}{MANIFEST_SUFFIX}"


def read_manifest(path: str | Path) -> dict:
    record = read_json(path, "import record", "import the file again")
    if not isinstance(record, dict) or record.get("format") != MANIFEST_FORMAT:
        raise UserError(f"{path} is not an mdxnet import record (format {MANIFEST_FORMAT}): import the file again")
    return record


def imported_onnx_separator(models_dir: str | Path, source: str, params: Params,
                            threads: int | None = None) -> nn.Module | None:
    """The ONNX separator imported for `source` into `models_dir` (None when it holds no such import), checked
    against the file's checksum and against params (the STFT and the chunk the pipeline cuts); its session runs
    `threads` intra-op threads (default torch's)."""
    record_path = manifest_path(models_dir, source)
    if not record_path.is_file():
        return None
    record = read_manifest(record_path)
    if record.get("runtime") != "onnx":
        return None
    onnx_path = Path(models_dir) / record["file"]
    if not onnx_path.is_file() or file_sha256(onnx_path) != record["sha256"]:
        raise UserError(f"{onnx_path} is missing or is not the file imported ({record['original_file']}, sha256 "
                        f"{record['sha256'][:16]}...): import it again with `mdxnet models import`")
    config, model = record["config"], separator_kwargs(params, source)
    wanted = {"n_fft": ("model.n_fft", model["n_fft"]), "hop": ("model.hop", model["hop"]),
              "dim_f": ("model.dim_f", model["dim_f"]),
              "frames": ("separate.chunk_frames", int(per_source(params.separate.chunk_frames, source)))}
    differ = {k: (key, value) for k, (key, value) in wanted.items() if config[k] != value}
    if differ:
        fix = ", ".join(f"{key}{'' if key == 'model.hop' else '.' + source}: {config[k]} (params: {value})"
                        for k, (key, value) in differ.items())
        raise UserError(f"the imported {source} separator {onnx_path} runs with other settings than params: set "
                        f"{fix} in the params file")
    return ImportedOnnxSeparator(onnx_path, record, threads)


def imported_records(models_dir: str | Path) -> list[dict]:
    """Every import record in a models folder, by name."""
    paths = sorted(Path(models_dir).glob(f"*{MANIFEST_SUFFIX}"))
    if not paths:
        raise UserError(f"{models_dir} holds no import records (*{MANIFEST_SUFFIX}): run `mdxnet models import` "
                        f"first")
    return [read_manifest(path) for path in paths]
