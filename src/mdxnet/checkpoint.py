"""Self-describing model checkpoints.

A checkpoint is a plain dict (loadable with `torch.load(weights_only=True)`, so no pickled code runs):

    format, kind ('separator' | 'mixer'), source (None for the mixer), model_kwargs, state_dict,
    params (the resolved params.yaml that built it), params_hash, mdxnet_version, step,
    extra (training-resume state: optimizer/scheduler state dicts, rng tensors, plain numbers).

No commit, time or host goes in: the same training gives the same bytes at every commit, so DVC's cache and
lock keep matching the models (the commit of a run is in the results' provenance block).

A separator's model_kwargs hold its `arch` ('v2' | 'v1', mdxnet.models.SEPARATORS) beside the class's
arguments; checkpoints written before v1 existed lack it and are v2.

Models folder layout: <models>/<source>.pt for each source and <models>/mixer.pt.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from mdxnet import __version__
from mdxnet.atomic import write_atomic
from mdxnet.config import Params, as_plain, params_hash, separator_kwargs
from mdxnet.errors import UserError

# torch and mdxnet.models are imported inside the functions that build or read models: the path helpers here
# serve light commands and the workflow's parsing, which should not pay torch's ~1 s import

FORMAT = 1
KINDS = ("separator", "mixer")
ARCH_BEFORE_V1 = "v2"  # the arch of separator checkpoints that do not record one (only v2 existed then)
HOW_TO_GET = (
    "train it (`mdxnet train separator --source S`, `mdxnet train mixer`) or make random test models with "
    "`mdxnet models init -o DIR`"
)


def require_models_folder(models_dir: str | Path) -> Path:
    """The models folder must exist (checked before anything is loaded, exported or separated)."""
    models_dir = Path(models_dir)
    if models_dir.is_file():
        raise UserError(f"--models {models_dir} is a file: pass the folder that holds it (--models "
                        f"{models_dir.parent}), with <source>.pt for every source")
    if not models_dir.is_dir():
        raise UserError(f"models folder {models_dir} does not exist: {HOW_TO_GET}, or pass --models DIR")
    return models_dir


def separator_path(models_dir: str | Path, source: str) -> Path:
    return Path(models_dir) / f"{source}.pt"


def mixer_path(models_dir: str | Path) -> Path:
    return Path(models_dir) / "mixer.pt"


def save_checkpoint(path, model, *, kind: str, source: str | None, model_kwargs: dict, params: Params | dict,
                    step: int, extra: dict | None = None) -> None:
    """Write a checkpoint atomically: a run killed mid-write keeps the previous file intact."""
    import torch


    if kind not in KINDS:
        raise ValueError(f"checkpoint kind must be one of {KINDS}, not {kind!r}")
    if kind == "separator":
        model_kwargs = with_arch(model, model_kwargs)
    payload = {
        "format": FORMAT,
        "kind": kind,
        "source": source,
        "model_kwargs": dict(model_kwargs),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "params": as_plain(params),
        "params_hash": params_hash(params),
        "mdxnet_version": __version__,
        "step": int(step),
        "extra": extra or {},
    }
    # saved through a buffer: torch.save to a path names the archive's records after the file, here the atomic
    # write's temp name (host, pid, random), which would make every save of the same model differ
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_atomic(path, lambda tmp: Path(tmp).write_bytes(buffer.getvalue()))


def with_arch(model, model_kwargs: dict) -> dict:
    """A separator's kwargs with the arch of the model being saved, so that it rebuilds as that class."""
    arch = getattr(model, "arch", None)
    if arch is None:  # not one of mdxnet's separators (a stand-in model in tests): record what was given
        return dict(model_kwargs)
    if model_kwargs.get("arch", arch) != arch:
        raise ValueError(f"model_kwargs say arch {model_kwargs['arch']!r} but the model is {arch!r}")
    return {"arch": arch, **model_kwargs}


def load_checkpoint(path, *, kind: str, source: str | None = None, expect_kwargs: dict | None = None,
                    sample_rate: int | None = None) -> dict[str, Any]:
    """Read and validate a checkpoint: right kind, right source, and (if given) the expected model config and the
    sample rate the model is about to run at."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found: {HOW_TO_GET}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch refuses a pickled type outside its allow-list with a text that advises weights_only=False, the one
        # thing not to do with a file that pickles code: name the type instead, and say that nothing of it ran
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if not found:  # not a pickle at all, or cut short
            raise UserError(f"checkpoint {path} cannot be read ({str(err).splitlines()[0]}): {HOW_TO_GET}") from err
        raise UserError(f"checkpoint {path} pickles the type {found.group(1)}, which could run code when loaded, so "
                        f"it was not loaded (an mdxnet checkpoint holds tensors and plain values only): do not use "
                        f"this file; {HOW_TO_GET}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise UserError(f"checkpoint {path} cannot be read ({str(err).splitlines()[0]}): {HOW_TO_GET}") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "state_dict" not in ckpt:
        raise UserError(f"{path} is not an mdxnet checkpoint (format {FORMAT}): {HOW_TO_GET}")
    if ckpt["kind"] != kind:
        raise UserError(f"checkpoint {path} holds a {ckpt['kind']}, not a {kind}: check the file name")
    if source is not None and ckpt["source"] != source:
        raise UserError(f"checkpoint {path} is the {ckpt['source']} separator, not {source}: "
                        f"expected it at {path.parent / (ckpt['source'] + '.pt')}")
    if kind == "separator":
        ckpt["model_kwargs"] = {"arch": ARCH_BEFORE_V1, **ckpt["model_kwargs"]}
    if expect_kwargs is not None:
        check_config(path, ckpt["model_kwargs"], expect_kwargs)
    if sample_rate is not None:
        check_rate(path, ckpt, sample_rate)
    return ckpt


def check_rate(path: Path, ckpt: dict, sample_rate: int) -> None:
    """A model learnt its filters at one rate: run at another (params sample_rate edited, e.g. 22050) it
    separates the wrong frequencies, silently. The rate is the one of the params it was trained (or imported)
    with; a checkpoint that does not record one is not judged."""
    trained = (ckpt.get("params") or {}).get("sample_rate")
    if trained is not None and int(trained) != int(sample_rate):
        raise UserError(f"checkpoint {path} was trained at {trained} Hz, but params sample_rate is {sample_rate} "
                        f"Hz: set sample_rate: {trained} in params.yaml (audio at other rates is resampled to it), "
                        "or train models at the new rate")


def check_config(path: Path, found: dict, expected: dict) -> None:
    diff = {k: (found.get(k), expected.get(k)) for k in sorted(set(found) | set(expected))
            if found.get(k) != expected.get(k)}
    if diff:
        shown = ", ".join(f"{k}: checkpoint {a!r} vs params {b!r}" for k, (a, b) in diff.items())
        raise UserError(f"checkpoint {path} was built with another model config ({shown}): pass the params "
                        f"file it was trained with (--params) or retrain it")


def _build(path: Path, ckpt: dict, factory):
    try:
        model = factory(**ckpt["model_kwargs"])
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, ValueError, RuntimeError) as err:
        raise UserError(f"checkpoint {path} does not match the model code ({str(err).splitlines()[0]}): "
                        f"{HOW_TO_GET}") from err
    return model.eval()


def load_separator(path, source: str, expect_kwargs: dict | None = None, sample_rate: int | None = None):
    """The separator for `source` in eval mode, of the class its recorded arch names (v2 if none), built
    from the checkpoint's own kwargs; `expect_kwargs` (mdxnet.config.separator_kwargs) includes the arch;
    `sample_rate`: the rate it will run at (params sample_rate), checked against its training's."""
    # mdxnet.models imports torch: only where a network is built (reading a checkpoint's record needs none)
    from mdxnet.models import separator_from_kwargs
    ckpt = load_checkpoint(path, kind="separator", source=source, expect_kwargs=expect_kwargs,
                           sample_rate=sample_rate)
    return _build(Path(path), ckpt, separator_from_kwargs)


def load_mixer(path, expect_kwargs: dict | None = None, sample_rate: int | None = None):
    """The Mixer in eval mode (`sample_rate`: as for load_separator)."""
    from mdxnet.models import Mixer  # torch, only where a network is built
    ckpt = load_checkpoint(path, kind="mixer", expect_kwargs=expect_kwargs, sample_rate=sample_rate)
    return _build(Path(path), ckpt, Mixer)


def init_models(models_dir, params: Params, seed: int = 0) -> list[Path]:
    """Randomly initialised checkpoints (step 0) for every source and the Mixer: for tests and benchmarks."""
    import torch

    from mdxnet.models import Mixer, mixer_kwargs, separator_from_kwargs  # torch, as above


    written = []
    for index, source in enumerate(params.sources):
        torch.manual_seed(seed + index)
        kwargs = separator_kwargs(params, source)
        path = separator_path(models_dir, source)
        save_checkpoint(path, separator_from_kwargs(**kwargs), kind="separator", source=source,
                        model_kwargs=kwargs, params=params, step=0)
        written.append(path)
    kwargs = mixer_kwargs(params.mixer, params.sources)
    torch.manual_seed(seed + len(params.sources))
    save_checkpoint(mixer_path(models_dir), Mixer(**kwargs), kind="mixer", source=None, model_kwargs=kwargs,
                    params=params, step=0)
    return written + [mixer_path(models_dir)]
