"""Published weights into this project's models folder (`mdxnet models import`), so that they are separated and
scored by the same code as the models trained here.

Three kinds of file:
- the authors' Lightning checkpoints of ConvTDFNet (kuielab/mdx-net Leaderboard_A, src/models/mdxnet.py and
  src/models/modules.py): their state dict is ours under other names (`encoding_blocks` -> `encoders`,
  `tfc.H` -> `tfc.layers`, ...); their non-trainable `window` and `freq_pad` tensors are dropped (our CutSTFT
  makes both). Written as an ordinary mdxnet checkpoint `<source>.pt`.
- the authors' Mixer: a bias-free Linear(10, 8) over (source, channel) pairs in the order bass, drums, other,
  vocals, then the mixture (Mixer.training_step in src/models/mdxnet.py; models.py and predict_blend.py
  `demix_base` in kuielab/mdx-net-submission leaderboard_A), either the submission's plain state dict
  (`linear.weight`, model/mixer.ckpt) or a Lightning checkpoint (`mixing_layer.weight`). Reordered to params
  `sources` and written as `mixer.pt`.
- ONNX separators (the authors' exports, src/callbacks/onnx_callback.py: input 'input' of shape (batch, 4,
  dim_f, frames), output 'output' alike, and community files with the same convention): kept as
  `<source>.onnx` and run by ONNX Runtime behind our STFT (`ImportedOnnxSeparator`).

Every import also writes `<name>.import.json` beside the model, last: what the file was (original name,
sha256, size), how it was read and the configuration it runs with. The results table reads these records
(`mdxnet report --imported DIR`). Checkpoints are read with `torch.load(weights_only=True)`; the few pickled
types a Lightning checkpoint holds besides tensors are allowed by name only when harmless (`SAFE_STAND_INS`),
anything else is refused (`UnsafeCheckpoint`).
"""

from __future__ import annotations

import logging
import re
import shutil
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mdxnet import __version__
from mdxnet.atomic import write_atomic, write_json_atomic
from mdxnet.checkpoint import mixer_path, save_checkpoint, separator_path
from mdxnet.config import Params, per_source, separator_kwargs
from mdxnet.digest import file_sha256
from mdxnet.errors import UserError
from mdxnet.inference.imported import MANIFEST_FORMAT, manifest_path
from mdxnet.inference.onnx_runtime import onnx_session
from mdxnet.models import Mixer, mixer_kwargs, separator_from_kwargs

log = logging.getLogger(__name__)

# MUSDB18(-HQ)'s rate, which the authors trained at (kuielab/mdx-net@Leaderboard_A configs/datamodule/
# musdb18_hq.yaml sample_rate: 44100)
PUBLISHED_RATE = 44100
# The authors' ConvTDFNet hyper-parameters (their __init__ arguments, saved by `save_hyperparameters`) and ours.
AUTHORS_STFT_KEYS = {"n_fft": "n_fft", "hop_length": "hop", "dim_t": "dim_t"}
AUTHORS_NET_KEYS = {"dim_f": "dim_f", "num_blocks": "num_blocks", "l": "num_convs", "g": "channels",
                    "k": "kernel", "bn": "bottleneck", "bias": "bias"}
# Their module names -> ours (mdxnet.models.TFCTDFUNet); applied in this order to every key.
AUTHORS_RENAMES = [
    (r"^encoding_blocks\.", "encoders."),
    (r"^decoding_blocks\.", "decoders."),
    (r"^bottleneck_block\.", "bottleneck."),
    (r"^ds\.", "downs."),
    (r"^us\.", "ups."),
    (r"\.tfc\.H\.", ".tfc.layers."),
    (r"\.tdf\.", ".tdf.layers."),
    (r"^final_conv\.0\.", "final_conv."),
]
AUTHORS_BUFFERS = ("window", "freq_pad")  # STFT constants of AbstractMDXNet, not weights
MIXER_WEIGHT_KEYS = ("linear.weight", "mixing_layer.weight")  # submission models.py / Lightning Mixer


class WeightsImportError(UserError):
    """A file that cannot be imported; each subclass names what was wrong and what was expected."""


class WrongFileKind(WeightsImportError):
    """Not the kind of file asked for (e.g. a Mixer given as a separator, not a checkpoint at all)."""


class UnsafeCheckpoint(WeightsImportError):
    """A checkpoint that pickles types other than tensors, containers and the harmless allow-list."""


class KeysMismatch(WeightsImportError):
    """A state dict whose names are not the authors' ConvTDFNet / Mixer layout."""


class ShapeMismatch(WeightsImportError):
    """Weights or an ONNX input shape that contradict the given n_fft / dim_f / frames (or each other)."""


class MixerSourcesMismatch(WeightsImportError):
    """A Mixer over other sources than params `sources`."""


# ---- reading files safely --------------------------------------------------------------------------------------
def _stand_ins() -> list[tuple[Any, str]]:
    import numpy as np

    core = np._core if hasattr(np, "_core") else np.core  # numpy 2 renamed it
    scalar = core.multiarray.scalar
    return [
        # Lightning's AttributeDict (a dict with attribute access; hyper-parameters in some versions): read as an
        # OrderedDict, one of the containers the weights-only unpickler fills
        *((OrderedDict, name) for name in (
            "pytorch_lightning.utilities.parsing.AttributeDict",
            "lightning_fabric.utilities.data.AttributeDict",
            "lightning.fabric.utilities.data.AttributeDict",
        )),
        # numpy scalars in callback states (a monitored score): a number rebuilt from its dtype and bytes
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        (np.dtype, "numpy.dtype"),
        *((type(np.dtype(t)), f"numpy.dtypes.{type(np.dtype(t)).__name__}") for t in ("float64", "float32", "int64")),
    ]


SAFE_STAND_INS = tuple(name for _, name in _stand_ins())


def _unsafe_globals(path: Path) -> list[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - legacy (pre-zip) files cannot be listed; torch.load below still refuses
        return []


def read_torch_file(path: str | Path) -> Any:
    """A PyTorch / Lightning file read with weights_only=True; only the SAFE_STAND_INS types besides tensors."""
    import pickle
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise WeightsImportError(f"{path} not found: download it first (README, 'Auditing the published models')")
    refused = [name for name in _unsafe_globals(path) if name not in SAFE_STAND_INS]
    if refused:
        raise UnsafeCheckpoint(
            f"{path} pickles types that could run code when loaded ({', '.join(sorted(refused))}); only tensors, "
            f"containers, Lightning's AttributeDict and numpy scalars are read. Re-save its weights alone where you trust "
            f"it (torch.save(torch.load(f)['state_dict'], 'weights.pt')) and import that")
    try:
        with torch.serialization.safe_globals(_stand_ins()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if not found and not zipfile.is_zipfile(path):  # not a pickle at all ("Unsupported operand", bad key)
            raise WrongFileKind(f"{path} is not a PyTorch/Lightning checkpoint{_onnx_hint(path)}") from None
        what = f"the type {found.group(1)}" if found else "a construct that is not allowed"
        raise UnsafeCheckpoint(f"{path} pickles {what}, which is not read (it could run code); re-save its "
                               f"weights alone (torch.save(state_dict, 'weights.pt')) and import that") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise WrongFileKind(f"{path} is not a PyTorch/Lightning checkpoint{_onnx_hint(path)}: "
                            f"{str(err).splitlines()[0]}") from None


def _onnx_hint(path: Path) -> str:
    try:
        import onnx

        onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - any failure means "not ONNX"
        return ""
    return " (it is an ONNX model: give it a .onnx name)"


def state_dict_of(path: Path, loaded: Any) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """(state dict, hyper-parameters, other Lightning fields worth recording) of a loaded checkpoint."""
    if not isinstance(loaded, dict):
        raise WrongFileKind(f"{path} holds a {type(loaded).__name__}, not a state dict or Lightning checkpoint")
    if loaded.get("format") is not None and "kind" in loaded and "model_kwargs" in loaded:
        raise WrongFileKind(f"{path} is already an mdxnet checkpoint ({loaded['kind']}): copy it into the models "
                            "folder instead of importing it")
    if "state_dict" in loaded:  # Lightning: {'state_dict', 'hyper_parameters', 'epoch', 'global_step', ...}
        state = loaded["state_dict"]
        hparams = dict(loaded.get("hyper_parameters") or {})
        meta = {k: loaded[k] for k in ("epoch", "global_step", "pytorch-lightning_version") if k in loaded}
    else:
        state, hparams, meta = loaded, {}, {}
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WrongFileKind(f"{path} has no state dict of tensors")
    return dict(state), hparams, meta


# ---- the authors' ConvTDFNet -> TFCTDFUNet ---------------------------------------------------------------------
def rename_authors_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Their ConvTDFNet names -> ours; `window` and `freq_pad` dropped."""
    renamed = {}
    for key, value in state.items():
        if key in AUTHORS_BUFFERS:
            continue
        new = key
        for pattern, replacement in AUTHORS_RENAMES:
            new = re.sub(pattern, replacement, new)
        renamed[new] = value
    return renamed


def _shape(state: dict, key: str, path: Path) -> tuple[int, ...]:
    if key not in state:
        raise KeysMismatch(f"{path} has no {key!r}: not the authors' ConvTDFNet layout (first_conv, "
                           f"encoding_blocks, ds, bottleneck_block, us, decoding_blocks, final_conv)")
    return tuple(state[key].shape)


def network_from_weights(state: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """The network's hyper-parameters as the weights' shapes fix them (in our names)."""
    if any(key.startswith(MIXER_WEIGHT_KEYS) for key in state) and "first_conv.0.weight" not in state:
        raise WrongFileKind(f"{path} is a Mixer, not a separator: import it as the mixer (--as mixer)")
    channels, spec_channels = _shape(state, "first_conv.0.weight", path)[:2]
    if spec_channels != 4:
        raise ShapeMismatch(f"{path}: first_conv takes {spec_channels} channels, not 4 (stereo x real/imaginary): "
                            f"not a one-source ConvTDFNet")
    scales = len({k.split(".")[1] for k in state if k.startswith("encoding_blocks.")})
    convs = len({k.split(".")[4] for k in state if k.startswith("encoding_blocks.0.tfc.H.")})
    kernel = _shape(state, "encoding_blocks.0.tfc.H.0.0.weight", path)[-1]
    if "encoding_blocks.0.tdf.0.weight" not in state:
        raise KeysMismatch(f"{path}: the blocks have no TDF (bn None in the authors' code), which "
                           f"mdxnet.models.TFCTDFUNet always has")
    if "encoding_blocks.0.tdf.3.weight" not in state:
        raise KeysMismatch(f"{path}: the TDF is a single f -> f layer (bn 0 in the authors' code); "
                           f"mdxnet.models.TFCTDFUNet has the f -> f/bn -> f bottleneck")
    hidden, dim_f = _shape(state, "encoding_blocks.0.tdf.0.weight", path)
    grown = _shape(state, "ds.0.0.weight", path) if scales else (2 * channels, channels)
    return {"dim_f": dim_f, "num_blocks": 2 * scales + 1, "num_convs": convs, "channels": channels,
            "growth": grown[0] - grown[1], "kernel": kernel, "bottleneck": dim_f // hidden,
            "bias": "encoding_blocks.0.tdf.0.bias" in state}


def _pick(name: str, found: Any, given: Any, fallback: Any, where: str, path: Path) -> Any:
    """A value from the file when it has one (a contradicting command-line value is an error), else the given
    one, else the params' (logged)."""
    if found is not None:
        if given is not None and given != found:
            raise ShapeMismatch(f"{path}: {where} says {name} {found!r}, the command line {given!r}: drop the "
                                f"option or import another file")
        return found
    if given is not None:
        return given
    log.info("%s: %s not in the file and not given: params value %r", path.name, name, fallback)
    return fallback


def separator_config(path: Path, state: dict, hparams: dict, given: dict, params: Params,
                     source: str) -> dict[str, Any]:
    """Our separator kwargs for the authors' weights: shapes from the weights, checked against their
    hyper-parameters; n_fft, hop and dim_t (not in the weights) from the hyper-parameters, else `given`, else
    params `model` for `source`."""
    from_weights = network_from_weights(state, path)
    for theirs, ours in AUTHORS_NET_KEYS.items():
        if theirs in hparams and hparams[theirs] != from_weights[ours]:
            raise ShapeMismatch(f"{path}: hyper_parameters say {theirs}={hparams[theirs]!r} but the weights have "
                                f"{ours} {from_weights[ours]!r}: the file is inconsistent")
        if given.get(ours) is not None and given[ours] != from_weights[ours]:
            raise ShapeMismatch(f"{path}: the weights have {ours} {from_weights[ours]!r}, not the given "
                                f"{given[ours]!r}")
    if "dim_c" in hparams and hparams["dim_c"] != 4:
        raise ShapeMismatch(f"{path}: dim_c {hparams['dim_c']} (stereo x real/imaginary is 4)")
    defaults = separator_kwargs(params, source)
    config = {"arch": "v2", **{k: v for k, v in from_weights.items()}}
    for theirs, ours in AUTHORS_STFT_KEYS.items():
        config[ours] = _pick(ours, hparams.get(theirs), given.get(ours), defaults[ours], "hyper_parameters", path)
    bins = config["n_fft"] // 2 + 1
    if config["dim_f"] > bins:
        raise ShapeMismatch(f"{path}: the weights take dim_f {config['dim_f']} frequency bins, more than n_fft "
                            f"{config['n_fft']} gives ({bins}): give the n_fft the model was trained with (--n-fft)")
    return config


def build_imported_separator(path: Path, config: dict, state: dict):

    try:
        model = separator_from_kwargs(**config)
    except ValueError as err:
        raise ShapeMismatch(f"{path}: {err}") from None
    ours = model.state_dict()
    renamed = rename_authors_keys(state)
    missing, unexpected = sorted(set(ours) - set(renamed)), sorted(set(renamed) - set(ours))
    if missing or unexpected:
        raise KeysMismatch(f"{path}: keys do not match the authors' ConvTDFNet of this size (missing "
                           f"{missing[:4]}{'...' if len(missing) > 4 else ''}, unexpected {unexpected[:4]}"
                           f"{'...' if len(unexpected) > 4 else ''})")
    wrong = [f"{k} {tuple(renamed[k].shape)} (expected {tuple(v.shape)})" for k, v in ours.items()
             if renamed[k].shape != v.shape]
    if wrong:
        raise ShapeMismatch(f"{path}: tensors of the wrong shape for dim_f {config['dim_f']}: {', '.join(wrong[:3])}")
    model.load_state_dict(renamed)
    return model.eval()


# The largest gain an imported linear Mixer may apply (max over its outputs of the sum of |weights|: the peak of an
# output whose ten inputs are within full scale): a Mixer refines estimates that already sum to the mixture, so
# its gain stays near 1; weights of ~1e38 (finite) wrote stems peaking at ~1e38.
MAX_MIXER_GAIN = 100.0


# ---- the authors' Mixer ----------------------------------------------------------------------------------------
def reorder_mixer_weight(weight: torch.Tensor, file_sources: list[str], sources: list[str]) -> torch.Tensor:
    """(2S, 2S+2) weight over (source, channel) pairs in `file_sources` order (mixture last) -> `sources` order."""
    index = [2 * file_sources.index(s) + c for s in sources for c in (0, 1)]
    rows = weight[index]
    return torch.cat([rows[:, index], rows[:, 2 * len(sources):]], dim=1)


def mixer_weight(path: Path, state: dict, hparams: dict, file_sources: list[str], sources: list[str]):
    keys = [k for k in MIXER_WEIGHT_KEYS if k in state]
    if not keys:
        if "first_conv.0.weight" in state:
            raise WrongFileKind(f"{path} is a separator, not a Mixer: import it --as <source>")
        raise KeysMismatch(f"{path} has none of {MIXER_WEIGHT_KEYS}: not the authors' Mixer")
    configs = hparams.get("separator_configs")
    if isinstance(configs, dict) and sorted(configs) != sorted(file_sources):
        raise MixerSourcesMismatch(f"{path} was trained over {sorted(configs)}, not {sorted(file_sources)}")
    if sorted(file_sources) != sorted(sources):
        raise MixerSourcesMismatch(f"the Mixer's sources {file_sources} are not params sources {sources}: a Mixer "
                                   f"refines all four estimates together and cannot be used with other sources")
    weight = state[keys[0]]
    expected = (2 * len(file_sources), 2 * len(file_sources) + 2)
    if tuple(weight.shape) != expected:
        raise MixerSourcesMismatch(f"{path}: {keys[0]} has shape {tuple(weight.shape)}, not {expected} (a Mixer "
                                   f"over {len(file_sources)} sources and the mixture, stereo)")
    gain = float(weight.float().abs().sum(dim=1).max())
    if not gain <= MAX_MIXER_GAIN:
        raise WeightsImportError(f"{path}: its Mixer can scale audio within full scale up to {gain:.3g} times "
                                 f"({keys[0]}'s largest row sum of |weights|; a Mixer refining estimates stays near 1, "
                                 f"at most {MAX_MIXER_GAIN:g} is accepted): the file is damaged or not a trained "
                                 f"Mixer; download it again")
    return keys[0], reorder_mixer_weight(weight.float(), file_sources, sources)


# ---- ONNX separators -------------------------------------------------------------------------------------------
def onnx_signature(path: Path):
    """(session, input, output) of a one-input, one-output ONNX model, or WrongFileKind."""
    try:
        session = onnx_session(path, threads=1)
    except Exception as err:  # noqa: BLE001 - ORT raises its own exception types for unreadable files
        raise WrongFileKind(f"{path} is not an ONNX model ONNX Runtime can run: {str(err).splitlines()[0]}") \
            from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1 or len(inputs[0].shape) != 4:
        raise ShapeMismatch(f"{path}: expected one input of shape (batch, 4, dim_f, frames) and one output, got "
                            f"inputs {[(i.name, i.shape) for i in inputs]}, outputs {[o.name for o in outputs]}")
    return session, inputs[0], outputs[0]


def _fixed(value) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def onnx_config(path: Path, given: dict, params: Params, source: str) -> dict[str, Any]:
    """n_fft, hop, dim_f, dim_t, frames of an ONNX separator: dim_f and frames from its input shape where fixed
    (and its metadata when mdxnet exported it), else given, else params."""
    session, spec_in, spec_out = onnx_signature(path)
    batch, channels, dim_f, frames = spec_in.shape
    if _fixed(channels) not in (None, 4):
        raise ShapeMismatch(f"{path}: input has {channels} channels, not 4 (stereo x real/imaginary)")
    meta = {k: int(v) for k, v in session.get_modelmeta().custom_metadata_map.items()
            if k in ("n_fft", "hop", "dim_f", "dim_t", "frames")}
    defaults = {**separator_kwargs(params, source), "frames": int(per_source(params.separate.chunk_frames, source))}
    config = {}
    for key in ("n_fft", "hop", "dim_t"):
        config[key] = _pick(key, meta.get(key), given.get(key), defaults[key], "its metadata", path)
    config["dim_f"] = _pick("dim_f", _fixed(dim_f) or meta.get("dim_f"), given.get("dim_f"), defaults["dim_f"],
                            "its input shape", path)
    config["frames"] = _pick("frames", _fixed(frames) or meta.get("frames"), given.get("frames"),
                             defaults["frames"], "its input shape", path)
    bins = config["n_fft"] // 2 + 1
    if config["dim_f"] > bins:
        raise ShapeMismatch(f"{path}: the input has dim_f {config['dim_f']} bins, more than n_fft {config['n_fft']} "
                            f"gives ({bins}): give the n_fft the model was trained with (--n-fft)")
    config.update(batch=_fixed(batch), input_name=spec_in.name, output_name=spec_out.name)
    _trial_run(path, session, config)
    return config


def _trial_run(path: Path, session, config: dict) -> None:
    """One all-zero input: the output must have the input's shape (a wrong dim_f fails here, not mid-song)."""
    import numpy as np

    shape = (config["batch"] or 1, 4, config["dim_f"], config["frames"])
    try:
        (out,) = session.run([config["output_name"]], {config["input_name"]: np.zeros(shape, np.float32)})
    except Exception as err:  # noqa: BLE001 - ORT's own exception types
        raise ShapeMismatch(f"{path} does not run on an input of shape {shape} (dim_f {config['dim_f']}, "
                            f"frames {config['frames']}): {str(err).splitlines()[0][:300]}") from None
    if tuple(out.shape) != shape:
        raise ShapeMismatch(f"{path}: output shape {tuple(out.shape)} differs from its input's {shape}: not a "
                            f"spectrogram-to-spectrogram separator")


# ---- the records and the command's work ------------------------------------------------------------------------


@dataclass(frozen=True)
class Imported:
    model: Path
    manifest: Path


def _record(path: Path, name: str, kind: str, runtime: str, model_file: str, config: dict, read_as: str,
            extra: dict | None = None) -> dict:
    return {
        "format": MANIFEST_FORMAT,
        "name": name,
        "kind": kind,
        "runtime": runtime,
        "file": model_file,
        "original_file": path.name,
        "sha256": file_sha256(path),
        "size": path.stat().st_size,
        "read_as": read_as,
        "config": config,
        "mdxnet_version": __version__,
        **(extra or {}),
    }


def import_separator_checkpoint(path: Path, source: str, out_dir: Path, params: Params, given: dict) -> Imported:

    state, hparams, meta = state_dict_of(path, read_torch_file(path))
    require_finite(path, state.items())
    config = separator_config(path, state, hparams, given, params, source)
    target = hparams.get("target_name")
    if target is not None and target != source:
        log.warning("%s was trained for %r (its target_name) but is imported as %s", path, target, source)
    model = build_imported_separator(path, config, state)
    record = _record(path, source, "separator", "torch", f"{source}.pt", config,
                     "ConvTDFNet state dict (kuielab/mdx-net)", {"lightning": meta, "target_name": target})
    out = separator_path(out_dir, source)
    save_checkpoint(out, model, kind="separator", source=source, model_kwargs=config, params=params,
                    step=int(meta.get("global_step", 0)), extra={"imported": record})
    return Imported(out, write_json_atomic(manifest_path(out_dir, source), record))


def import_mixer(path: Path, out_dir: Path, params: Params, file_sources: list[str]) -> Imported:

    if params.mixer.kind != "linear":
        raise MixerSourcesMismatch(f"the published Mixer is the linear one; params mixer.kind is "
                                   f"{params.mixer.kind!r}: set mixer.kind: linear to import it")
    state, hparams, meta = state_dict_of(path, read_torch_file(path))
    require_finite(path, state.items())
    key, weight = mixer_weight(path, state, hparams, list(file_sources), list(params.sources))
    kwargs = mixer_kwargs(params.mixer, params.sources)
    mixer = Mixer(**kwargs)
    with torch.no_grad():
        mixer.linear.weight.copy_(weight[..., None])
    record = _record(path, "mixer", "mixer", "torch", "mixer.pt", {"file_sources": list(file_sources),
                     "sources": list(params.sources)}, f"Mixer {key} (kuielab/mdx-net)", {"lightning": meta})
    out = mixer_path(out_dir)
    save_checkpoint(out, mixer, kind="mixer", source=None, model_kwargs=kwargs, params=params,
                    step=int(meta.get("global_step", 0)), extra={"imported": record})
    return Imported(out, write_json_atomic(manifest_path(out_dir, "mixer"), record))


def require_finite(path: Path, tensors) -> None:
    """Weights holding NaN or an infinity (a damaged download, a diverged training) are refused at import: imported,
    they made every song fail later with a message about the audio's level."""
    for key, tensor in tensors:
        tensor = torch.as_tensor(tensor)
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise WeightsImportError(f"{path}: its weights {key} hold NaN or infinite values: the file is damaged "
                                     "or comes from a diverged training; download it again")


def onnx_weights(path: Path) -> None:
    """An ONNX file must hold its weights itself (only the .onnx is copied: external weight files were left
    behind and `separate` then failed), and they must be finite."""
    import onnx
    from onnx import numpy_helper

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - protobuf and onnx raise their own types for unreadable files
        raise WrongFileKind(f"{path} is not an ONNX model: {str(err).splitlines()[0]}") from None
    external = [t.name for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise WeightsImportError(f"{path} keeps its weights in separate files ({len(external)} tensors, e.g. "
                                 f"{external[0]!r}): import a self-contained file (re-save it with onnx.save(model, "
                                 "path, save_as_external_data=False))")
    require_finite(path, ((t.name, numpy_helper.to_array(t).copy()) for t in proto.graph.initializer))


def import_onnx(path: Path, source: str, out_dir: Path, params: Params, given: dict) -> Imported:
    onnx_weights(path)
    config = onnx_config(path, given, params, source)
    out = Path(out_dir) / f"{source}.onnx"
    record = _record(path, source, "separator", "onnx", out.name, config,
                     "ONNX spectrogram network (batch, 4, dim_f, frames)")
    write_atomic(out, lambda tmp: shutil.copyfile(path, tmp))
    return Imported(out, write_json_atomic(manifest_path(out_dir, source), record))


def import_file(path: str | Path, name: str, out_dir: str | Path, params: Params, given: dict | None = None,
                mixer_sources: list[str] | None = None) -> Imported:
    """Import one downloaded file as `name` (a source of params `sources`, or 'mixer') into `out_dir`."""
    path, out_dir, given = Path(path), Path(out_dir), dict(given or {})
    if not path.is_file():
        raise WeightsImportError(f"{path} not found: download it first (README, 'Auditing the published models')")
    if params.sample_rate != PUBLISHED_RATE:  # an import records the params' rate as the one it was trained at
        raise WeightsImportError(f"params sample_rate is {params.sample_rate} Hz, but the published models were "
                                 f"trained at {PUBLISHED_RATE} Hz: set sample_rate: {PUBLISHED_RATE} in params.yaml "
                                 "before importing them")
    if name == "mixer":
        if path.suffix == ".onnx":
            raise WrongFileKind(f"{path}: the published Mixer is a PyTorch checkpoint (model/mixer.ckpt), not ONNX")
        sources = mixer_sources if mixer_sources is not None else params.models.published.mixer_sources
        return import_mixer(path, out_dir, params, sources)
    if name not in params.sources:
        raise WeightsImportError(f"--as {name!r}: use one of {list(params.sources)} or mixer")
    if path.suffix == ".onnx":
        return import_onnx(path, name, out_dir, params, given)
    return import_separator_checkpoint(path, name, out_dir, params, given)


# ---- loading (separation) and reading the records (report) ------------------------------------------------------


