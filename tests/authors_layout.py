"""Files in the layouts the authors published, written from mdxnet models (tests need no download).

- `write_lightning_separator`: a Lightning checkpoint of their ConvTDFNet (kuielab/mdx-net Leaderboard_A,
  src/models/mdxnet.py + modules.py): their key names, `window` / `freq_pad` tensors, a `hyper_parameters`
  dict (as Lightning's AttributeDict, pickled under its real module name) and the other Lightning fields;
- `write_authors_mixer`: their Mixer (`linear.weight` of Linear(10, 8), sources bass, drums, other, vocals);
- `write_authors_onnx`: an ONNX separator as their onnx_callback.py exports it (input 'input', output 'output',
  dynamic batch, opset 13, the legacy exporter, no metadata);
- `authors_forward`: their ConvTDFNet forward written out over their state dict, to check our renaming against
  their layout independently of our module.
"""

from __future__ import annotations

import re
import sys
import types
import warnings
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F

AUTHORS_ORDER = ["bass", "drums", "other", "vocals"]
OURS_TO_THEIRS = [
    (r"^encoders\.", "encoding_blocks."),
    (r"^decoders\.", "decoding_blocks."),
    (r"^bottleneck\.", "bottleneck_block."),
    (r"^downs\.", "ds."),
    (r"^ups\.", "us."),
    (r"\.tfc\.layers\.", ".tfc.H."),
    (r"\.tdf\.layers\.", ".tdf."),
    (r"^final_conv\.", "final_conv.0."),
]


def authors_state_dict(model) -> OrderedDict:
    state = OrderedDict()
    stft = model.stft
    state["window"] = torch.hann_window(stft.n_fft, periodic=True)
    state["freq_pad"] = torch.zeros(1, 4, stft.num_bins - stft.dim_f, 1)
    for key, value in model.state_dict().items():
        for pattern, replacement in OURS_TO_THEIRS:
            key = re.sub(pattern, replacement, key)
        state[key] = value.clone()
    return state


def hyper_parameters(model, kwargs: dict, target: str) -> dict:
    """ConvTDFNet's __init__ arguments, as save_hyperparameters() records them."""
    return {"target_name": target, "lr": 1e-4, "optimizer": "rmsprop", "dim_c": 4, "dim_f": kwargs["dim_f"],
            "dim_t": kwargs["dim_t"], "n_fft": kwargs["n_fft"], "hop_length": kwargs["hop"],
            "num_blocks": kwargs["num_blocks"], "l": kwargs["num_convs"], "g": kwargs["channels"],
            "k": kwargs["kernel"], "bn": kwargs["bottleneck"], "bias": kwargs["bias"],
            "overlap": kwargs["n_fft"] // 2}


def _attribute_dict_class():
    """Lightning's AttributeDict under its real module name, without Lightning installed."""
    names = ["pytorch_lightning", "pytorch_lightning.utilities", "pytorch_lightning.utilities.parsing"]
    modules = {name: sys.modules.get(name) or types.ModuleType(name) for name in names}
    cls = type("AttributeDict", (dict,), {"__module__": names[-1]})
    modules[names[-1]].AttributeDict = cls
    return cls, modules


def write_lightning_separator(model, kwargs: dict, target: str, path: Path, hparams: dict | None = None,
                              state: dict | None = None) -> Path:
    cls, modules = _attribute_dict_class()
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        checkpoint = {
            "epoch": 2359,
            "global_step": 123456,
            "pytorch-lightning_version": "1.4.9",
            "state_dict": state if state is not None else authors_state_dict(model),
            "callbacks": {"ModelCheckpoint{'monitor': 'val/sdr', 'mode': 'max'}": {
                "monitor": "val/sdr", "best_model_score": torch.tensor(8.1), "best_model_path": "/x/e.ckpt",
                "dirpath": "/x"}},
            "optimizer_states": [{"state": {0: {"step": 3, "square_avg": torch.ones(2)}},
                                  "param_groups": [{"lr": 1e-4, "alpha": 0.99, "params": [0]}]}],
            "lr_schedulers": [],
            "hparams_name": "kwargs",
            "hyper_parameters": cls(hparams if hparams is not None else hyper_parameters(model, kwargs, target)),
        }
        torch.save(checkpoint, path)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return path


def write_authors_mixer(weight_authors_order: torch.Tensor, path: Path, lightning: bool = False) -> Path:
    """Their Mixer: the submission's plain state dict (model/mixer.ckpt), or a Lightning Mixer checkpoint."""
    if not lightning:
        torch.save(OrderedDict([("linear.weight", weight_authors_order)]), path)
        return path
    state = OrderedDict([("separators.bass.window", torch.ones(4)), ("mixing_layer.weight", weight_authors_order)])
    torch.save({"state_dict": state, "hyper_parameters": {
        "separator_configs": {s: f"configs/model/ConvTDFNet_{s}.yaml" for s in AUTHORS_ORDER},
        "lr": 1e-4, "optimizer": "rmsprop", "dim_t": 256, "hop_length": 1024, "overlap": 3072}}, path)
    return path


def authors_mixer_forward(weight: torch.Tensor, estimates: dict, mixture: torch.Tensor) -> dict:
    """Their Mixer.forward: the four estimates in their order and the mixture as (10, T), times the weight."""
    x = torch.cat([*(estimates[s] for s in AUTHORS_ORDER), mixture])  # (10, T)
    out = (weight @ x).reshape(4, 2, -1)
    return dict(zip(AUTHORS_ORDER, out, strict=True))


def write_authors_onnx(model, frames: int, path: Path) -> Path:
    from mdxnet.inference.onnx_export import SpecNet

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(SpecNet(model.eval()), torch.zeros(1, 4, model.stft.dim_f, frames), str(path),
                          dynamo=False, opset_version=13, do_constant_folding=True, input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {0: "batch_size"},
                                                                 "output": {0: "batch_size"}})
    return path


def _conv_bn_relu(state, prefix, x, relu=True, transpose=False, stride=1, padding=0):
    conv = F.conv_transpose2d if transpose else F.conv2d
    x = conv(x, state[f"{prefix}.0.weight"], state.get(f"{prefix}.0.bias"), stride=stride, padding=padding)
    x = F.batch_norm(x, state[f"{prefix}.1.running_mean"], state[f"{prefix}.1.running_var"],
                     state[f"{prefix}.1.weight"], state[f"{prefix}.1.bias"], False, 0.0, 1e-5)
    return F.relu(x) if relu else x


def _tfc_tdf(state, prefix, x, convs, kernel):
    for j in range(convs):
        x = _conv_bn_relu(state, f"{prefix}.tfc.H.{j}", x, padding=kernel // 2)
    y = x
    for first in (0, 3):
        y = F.linear(y, state[f"{prefix}.tdf.{first}.weight"], state.get(f"{prefix}.tdf.{first}.bias"))
        bn = f"{prefix}.tdf.{first + 1}"
        y = F.relu(F.batch_norm(y, state[f"{bn}.running_mean"], state[f"{bn}.running_var"], state[f"{bn}.weight"],
                                state[f"{bn}.bias"], False, 0.0, 1e-5))
    return x + y


def authors_forward(state: dict, spec: torch.Tensor, num_blocks: int, convs: int, kernel: int) -> torch.Tensor:
    """ConvTDFNet.forward (eval mode) over their state dict."""
    n = num_blocks // 2
    x = _conv_bn_relu(state, "first_conv", spec).transpose(-1, -2)
    skips = []
    for i in range(n):
        x = _tfc_tdf(state, f"encoding_blocks.{i}", x, convs, kernel)
        skips.append(x)
        x = _conv_bn_relu(state, f"ds.{i}", x, stride=2)
    x = _tfc_tdf(state, "bottleneck_block", x, convs, kernel)
    for i in range(n):
        x = _conv_bn_relu(state, f"us.{i}", x, transpose=True, stride=2) * skips[-i - 1]
        x = _tfc_tdf(state, f"decoding_blocks.{i}", x, convs, kernel)
    x = x.transpose(-1, -2)
    return F.conv2d(x, state["final_conv.0.weight"], state["final_conv.0.bias"])
