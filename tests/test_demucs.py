"""Demucs v2 as the second system of the blend rows (mdxnet.inference.demucs): the model download with its sha256
prefix checked (a server on 127.0.0.1), the state-dict-only loading, and the run as the authors' predict_blend.py
runs it, on a tiny random-weight model of the same class (demucs.model.Demucs, 4 channels, depth 2, no LSTM:
an LSTM over a depth-2 model's long sequences would cost seconds per song)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from mdxnet.config import load_params
from mdxnet.errors import UserError
from mdxnet.inference import demucs

pytest.importorskip("demucs.model")

REPO = Path(__file__).resolve().parents[1]


def tiny_demucs_file(path: Path, seed: int = 0, lstm_layers: int = 0) -> str:
    """A random-weight Demucs v2 state dict at `path`; returns its sha256."""
    from demucs.model import Demucs

    torch.manual_seed(seed)
    model = Demucs(sources=list(demucs.DEMUCS_SOURCES), channels=4, depth=2, lstm_layers=lstm_layers)
    torch.save(model.state_dict(), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/served."""
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_the_model_is_downloaded_once_and_a_wrong_hash_is_refused_with_nothing_kept(server, tmp_path):
    served, url = server
    sha = tiny_demucs_file(served / "demucs-tiny.th")
    cache = tmp_path / "cache"
    dest = cache / "demucs-tiny.th"
    with pytest.raises(UserError, match="not 00000000"):
        demucs.fetch_model(f"{url}/demucs-tiny.th", "00000000", dest)
    assert not dest.exists() and list(cache.iterdir()) == []  # no partial or foreign file in the cache
    assert demucs.fetch_model(f"{url}/demucs-tiny.th", sha[:8], dest) == dest
    assert dest.read_bytes() == (served / "demucs-tiny.th").read_bytes()
    (served / "demucs-tiny.th").unlink()  # a second call reads the cache, not the server
    assert demucs.fetch_model(f"{url}/demucs-tiny.th", sha[:8], dest) == dest
    with pytest.raises(UserError, match="delete it to download it again"):
        demucs.fetch_model(f"{url}/demucs-tiny.th", "ffffffff", dest)
    with pytest.raises(UserError, match="cannot download"):
        demucs.fetch_model(f"{url}/absent.th", sha[:8], cache / "absent.th")


class Payload:
    """An object a state dict must not hold (unpickling it would run code of the file's choosing)."""


def test_only_a_demucs_state_dict_of_tensors_is_loaded(tmp_path):
    good = tmp_path / "tiny.th"
    tiny_demucs_file(good)
    model = demucs.load_model(good, 44100)
    assert model.channels == 4 and model.depth == 2 and model.lstm is None
    assert model.sources == list(demucs.DEMUCS_SOURCES)
    with_lstm = tmp_path / "lstm.th"  # the pretrained models' layout: a 2-layer LSTM at the bottom
    tiny_demucs_file(with_lstm, lstm_layers=2)
    assert demucs.architecture(torch.load(with_lstm, weights_only=True)) == {"channels": 4, "depth": 2,
                                                                             "lstm_layers": 2}
    pickled = tmp_path / "pickled.th"
    torch.save({"encoder.0.0.weight": Payload()}, pickled)
    with pytest.raises(UserError, match="weights_only"):
        demucs.load_model(pickled, 44100)
    other = tmp_path / "other.th"
    torch.save({"weight": torch.zeros(3)}, other)
    with pytest.raises(UserError, match="not the state dict of a Demucs v2 model"):
        demucs.load_model(other, 44100)
    with pytest.raises(UserError, match="params sample_rate is 22050"):
        demucs.load_model(good, 22050)


def test_demucs_runs_as_predict_blend_does(tmp_path):
    """stereo normalisation (the whole mixture's mean and std), apply_model(split, overlap 0.5), no shifts: the
    same numbers as a transcription of predict_blend.py demix_demucs, and deterministic."""
    from demucs.utils import apply_model

    path = tmp_path / "tiny.th"
    tiny_demucs_file(path)
    model = demucs.load_model(path, 44100)
    settings = load_params(REPO / "params.yaml").blend.demucs
    rng = np.random.default_rng(0)
    mixture = (0.1 * rng.standard_normal((2, 44100)) + 0.02).astype(np.float32)
    ours = demucs.separate(model, mixture, settings)
    # predict_blend.py demix_demucs, transcribed (its output order drums, bass, other, vocals)
    mix = torch.tensor(mixture, dtype=torch.float32)
    mean, std = mix.mean(), mix.std()
    with torch.no_grad():
        theirs = (apply_model(model, (mix - mean) / std, split=True, overlap=0.5) * std + mean).numpy()
    for index, source in enumerate(demucs.DEMUCS_SOURCES):
        assert ours[source].shape == mixture.shape
        np.testing.assert_allclose(ours[source], theirs[index], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(ours[source], demucs.separate(model, mixture, settings)[source])
    # the normalisation makes the estimates scale with the mixture
    louder = demucs.separate(model, 4 * mixture, settings)
    np.testing.assert_allclose(louder["vocals"], 4 * ours["vocals"], rtol=1e-4, atol=1e-5)
    mono = demucs.separate(model, mixture, settings.evolve(normalise="mono"))
    assert not np.allclose(mono["vocals"], ours["vocals"])


def test_another_installed_version_is_refused():
    demucs.check_version("2.0.3")
    with pytest.raises(UserError, match="blend.demucs.version asks for 4.0.1"):
        demucs.check_version("4.0.1")
