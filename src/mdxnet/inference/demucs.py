"""Demucs v2 as the authors ran it beside their models, for the blend rows (params blend.demucs).

What the authors ran (kuielab/mdx-net-submission, branch leaderboard_A): the package `demucs==2.0.3`
(requirements.txt); the pretrained model `demucs`, downloaded by download_demucs.py from
https://dl.fbaipublicfiles.com/demucs/v3.0/demucs-e07c671f.th (the URL demucs 2.0.3's demucs/pretrained.py
builds, `e07c671f` being the prefix of the file's sha256 that torch.hub checks); built in predict_blend.py as
`Demucs(sources=["drums", "bass", "other", "vocals"], channels=64)`, every other argument the class default; and
run by `demix_demucs`: the stereo mixture normalised by its own mean and standard deviation (over both channels),
`apply_model(model, mix, split=True, overlap=0.5)` (no shifts), the outputs scaled back.

Here the model file is downloaded by `fetch_model` (the sha256 prefix checked before the file is moved into
place, so the cache never holds a partial or foreign file) and read with torch.load(weights_only=True): a state
dict of tensors, nothing unpickled beyond that. Its width and depth are read from the tensors' shapes, so a small
model of the same class (the tests') runs through the same code. demucs itself is imported only here, inside the
functions: the package is needed only by runs that blend with Demucs.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from mdxnet.atomic import write_atomic
from mdxnet.errors import UserError

log = logging.getLogger(__name__)

# The output order of the pretrained Demucs v2 models (demucs 2.0.3 demucs/pretrained.py SOURCES; predict_blend.py
# builds the model with the same list).
DEMUCS_SOURCES = ("drums", "bass", "other", "vocals")
CHUNK_BYTES = 1 << 20
INSTALL = ("install it as scripts/setup.sh does: pip install --no-deps -r requirements-demucs.txt (demucs 2.0.3 "
           "declares torchaudio, which it does not need for this)")


def model_file(settings, cache: str | Path | None = None) -> Path:
    """Where the model file of params blend.demucs is kept: `<cache>/<file name of the URL>`."""
    return Path(cache if cache is not None else settings.cache) / Path(urlparse(settings.url).path).name


def fetch_model(url: str, sha256: str, dest: str | Path, timeout: float = 60) -> Path:
    """The model file at `dest`, downloaded from `url` when it is not there yet. Its sha256 must start with
    `sha256` (params blend.demucs.sha256, demucs' signature): a file that does not is refused, named, and
    nothing is left at `dest`."""
    dest = Path(dest)
    if dest.is_file():
        found = _sha256(dest)
        if found.startswith(sha256):
            return dest
        raise UserError(f"{dest} has sha256 {found}, not {sha256}...: it is not the model params blend.demucs "
                        "names; delete it to download it again, or fix blend.demucs.sha256")
    dest.parent.mkdir(parents=True, exist_ok=True)

    def download(tmp: str) -> None:
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                while block := response.read(CHUNK_BYTES):
                    digest.update(block)
                    out.write(block)
        except (urllib.error.URLError, OSError) as err:
            raise UserError(f"cannot download the Demucs model {url} ({err}): check the network or "
                            "params blend.demucs.url, then rerun") from None
        if not digest.hexdigest().startswith(sha256):
            raise UserError(f"the Demucs model downloaded from {url} has sha256 {digest.hexdigest()}, not "
                            f"{sha256}...: refused (nothing kept); check blend.demucs.url and blend.demucs.sha256")

    log.info("downloading the Demucs model %s -> %s", url, dest)
    return write_atomic(dest, download)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def check_version(wanted: str) -> None:
    """Refuse to run unless the installed demucs package is the version params blend.demucs.version names."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("demucs")
    except PackageNotFoundError:
        raise UserError(f"the demucs package is not installed (params blend.demucs.version: {wanted}): "
                        + INSTALL) from None
    if found != wanted:
        raise UserError(f"demucs {found} is installed, params blend.demucs.version asks for {wanted}: install "
                        f"demucs=={wanted} or set blend.demucs.version")


def architecture(state: dict) -> dict:
    """The Demucs constructor arguments a state dict fixes by its shapes (width, depth, LSTM layers); every other
    argument is the class default, as in predict_blend.py."""
    encoders = {int(m.group(1)) for k in state if (m := re.match(r"encoder\.(\d+)\.", k))}
    lstm = [k for k in state if re.fullmatch(r"lstm\.lstm\.weight_ih_l\d+", k)]
    if "encoder.0.0.weight" not in state or not encoders:
        raise KeyError("encoder.0.0.weight")
    return {"channels": int(state["encoder.0.0.weight"].shape[0]), "depth": max(encoders) + 1,
            "lstm_layers": len(lstm)}


def load_model(path: str | Path, sample_rate: int):
    """The Demucs v2 model of a state-dict file (torch.load weights_only), in eval mode."""
    import torch

    try:
        from demucs.model import Demucs
    except ImportError as err:
        raise UserError(f"cannot import demucs ({err}): " + INSTALL) from None
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable or non-tensor content is the same refusal
        raise UserError(f"{path} is not a Demucs state dict torch.load(weights_only=True) can read ({err}): "
                        "delete it and rerun to download it again") from None
    try:
        model = Demucs(sources=list(DEMUCS_SOURCES), **architecture(state))
        model.load_state_dict(state)
    except (KeyError, RuntimeError, TypeError, AttributeError) as err:
        raise UserError(f"{path} is not the state dict of a Demucs v2 model (demucs.model.Demucs, sources "
                        f"{list(DEMUCS_SOURCES)}): {err}") from None
    if model.samplerate != sample_rate:
        raise UserError(f"the Demucs model runs at {model.samplerate} Hz, params sample_rate is {sample_rate}")
    return model.eval()


def separate(model, mixture: np.ndarray, settings) -> dict[str, np.ndarray]:
    """{source: (channels, n) float32} of Demucs v2 on a (channels, n) mixture, run as params blend.demucs says
    (split, overlap, shifts; normalisation `stereo`: the whole mixture's mean and std, predict_blend.py
    demix_demucs; `mono`: those of the mono downmix, demucs 2.0.3 demucs/separate.py; `none`)."""
    import torch
    from demucs.utils import apply_model

    mix = torch.from_numpy(np.ascontiguousarray(mixture, dtype=np.float32))
    if settings.normalise == "stereo":
        mean, std = mix.mean(), mix.std()
    elif settings.normalise == "mono":
        mean, std = mix.mean(0).mean(), mix.mean(0).std()
    else:
        mean, std = torch.tensor(0.0), torch.tensor(1.0)
    random.seed(0)  # apply_model draws its shifts from `random`: the same estimates on every run
    with torch.no_grad():
        out = apply_model(model, (mix - mean) / std, shifts=settings.shifts, split=settings.split,
                          overlap=settings.overlap)
    out = (out * std + mean).numpy()
    return {source: out[index] for index, source in enumerate(DEMUCS_SOURCES)}
