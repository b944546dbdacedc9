"""ONNX export of the spectrogram network: ONNX Runtime matches torch on CPU."""

import numpy as np
import pytest
import torch

from mdxnet.cli import main
from mdxnet.models import TFCTDFUNet
from mdxnet.onnx_export import export_separator, onnx_session

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TINY = dict(n_fft=512, hop=128, dim_f=64, dim_t=16, num_blocks=5, num_convs=2, channels=8, growth=4,
            kernel=3, bottleneck=4, bias=False)


def trained_looking(model):
    """Non-trivial BatchNorm statistics, so eval-mode BN folding is actually exercised."""
    gen = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2, generator=gen)
            module.running_var.uniform_(0.5, 2.0, generator=gen)
    return model.eval()


@pytest.mark.parametrize("frames", [16, 32])  # dim_t (the training chunk) and 2 * dim_t (the authors' inference)
def test_onnx_runtime_matches_torch(tmp_path, frames):
    import onnx

    torch.manual_seed(0)
    model = trained_looking(TFCTDFUNet(**TINY))
    path = export_separator(model, tmp_path / "vocals.onnx", frames, source="vocals")
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta == {"source": "vocals", "n_fft": "512", "hop": "128", "dim_f": "64", "dim_t": "16",
                    "frames": str(frames)}
    session = onnx_session(path)
    for batch in (1, 3):  # the batch axis is dynamic
        spec = torch.randn(batch, 4, 64, frames)
        (ours,) = session.run(None, {"spec": spec.numpy()})
        with torch.no_grad():
            reference = model.spec_forward(spec).numpy()
        assert ours.shape == reference.shape
        np.testing.assert_allclose(ours, reference, atol=1e-4)
    assert not list(tmp_path.glob("tmp*"))


def test_onnx_chunk_model_runs_the_exported_chunk_only(tmp_path):
    from mdxnet.onnx_export import OnnxChunkModel

    torch.manual_seed(0)
    model = trained_looking(TFCTDFUNet(**TINY))
    chunk = OnnxChunkModel(model.stft, export_separator(model, tmp_path / "v.onnx", 32))
    assert chunk.chunk_samples == 128 * 31 != model.chunk_samples
    wave = torch.randn(2, 2, chunk.chunk_samples)
    with torch.no_grad():
        np.testing.assert_allclose(chunk(wave).numpy(), model(wave).numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="exported for chunks of 3968 samples"):
        chunk(torch.randn(1, 2, model.chunk_samples))
    with pytest.raises(ValueError, match="not a multiple"):
        export_separator(model, tmp_path / "w.onnx", 30)


def test_export_cli_writes_one_file_per_source(tmp_path, repo_root):
    import yaml

    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    raw["sources"] = ["vocals", "bass"]  # two exports are enough to test the loop; each takes seconds
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw))
    models = tmp_path / "models"
    assert main(["--params", str(params_file), "models", "init", "-o", str(models)]) == 0
    assert main(["--params", str(params_file), "export", "onnx", "--models", str(models),
                 "-o", str(tmp_path / "onnx")]) == 0
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == ["bass.onnx", "vocals.onnx"]


def test_jobs_exporting_the_same_checkpoint_at_once_export_it_once(tmp_path, monkeypatch):
    """Found by the paper rehearsal: two separation jobs started together each exported all four nets. The export
    is now made under a lock on the cache folder; the job that waited finds the file and uses it."""
    import threading
    import time

    from mdxnet import onnx_export

    checkpoint = tmp_path / "vocals.pt"
    checkpoint.write_bytes(b"weights")
    exports = []

    def slow_export(model, path, frames, source="", batch=1):
        exports.append(path)
        time.sleep(0.5)  # long enough for the other job to find no file and ask for the lock
        path.write_bytes(b"onnx")
        return path

    monkeypatch.setattr(onnx_export, "export_separator", slow_export)
    found = []
    jobs = [threading.Thread(target=lambda: found.append(onnx_export.cached_export(checkpoint, None, "vocals",
                                                                                     tmp_path / "cache", 512)))
            for _ in range(3)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    assert len(exports) == 1 and len(set(found)) == 1 and found[0].read_bytes() == b"onnx"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [found[0].name]  # no lock file left
