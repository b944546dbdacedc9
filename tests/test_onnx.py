"""ONNX export of the spectrogram network: ONNX Runtime matches torch on CPU."""

import numpy as np
import pytest
import torch

from mdxnet.cli import main
from mdxnet.inference.onnx_export import export_separator
from mdxnet.inference.onnx_runtime import onnx_session
from mdxnet.models import TFCTDFUNet

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
    from mdxnet.inference.onnx_runtime import OnnxChunkModel

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

    from mdxnet.inference import onnx_export

    checkpoint, model = tmp_path / "vocals.pt", trained_looking(TFCTDFUNet(**TINY))
    checkpoint.write_bytes(b"weights")
    exports = []
    real_export = onnx_export.export_separator

    def slow_export(*args, **kwargs):
        exports.append(args[1])
        time.sleep(0.5)  # long enough for the other jobs to find no file and ask for the lock
        return real_export(*args, **kwargs)

    monkeypatch.setattr(onnx_export, "export_separator", slow_export)
    found = []
    jobs = [threading.Thread(target=lambda: found.append(onnx_export.cached_export(checkpoint, model, "vocals",
                                                                                     tmp_path / "cache", 32)))
            for _ in range(3)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    assert len(exports) == 1 and len(set(found)) == 1 and found[0].is_file()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [found[0].name]  # no lock file left


def _cached(tmp_path, source="vocals", weights=b"vocals weights", seed=0):
    torch.manual_seed(seed)
    checkpoint = tmp_path / f"{source}.pt"
    checkpoint.write_bytes(weights)
    model = trained_looking(TFCTDFUNet(**TINY))
    return checkpoint, model


def test_a_cache_entry_is_used_only_when_its_metadata_names_its_checkpoint(tmp_path, caplog):
    """the cache was trusted by file name. A file of another source (drums' export copied to
    vocals' name) or of another checkpoint is exported again, with a warning; the right one is used as it is."""
    from mdxnet.inference import onnx_export

    cache = tmp_path / "cache"
    drums_ckpt, drums = _cached(tmp_path, "drums", b"drums weights", seed=1)
    vocals_ckpt, vocals = _cached(tmp_path, "vocals", b"vocals weights", seed=2)
    drums_file = onnx_export.cached_export(drums_ckpt, drums, "drums", cache, 32)
    vocals_file = onnx_export.cached_export(vocals_ckpt, vocals, "vocals", cache, 32)
    before = vocals_file.stat().st_mtime_ns
    assert onnx_export.cached_export(vocals_ckpt, vocals, "vocals", cache, 32) == vocals_file
    assert vocals_file.stat().st_mtime_ns == before  # a good entry is not exported again
    vocals_file.write_bytes(drums_file.read_bytes())  # drums' net in vocals' place
    with caplog.at_level("WARNING", logger="mdxnet.inference.onnx_export"):
        onnx_export.cached_export(vocals_ckpt, vocals, "vocals", cache, 32)
    assert "exporting it again" in caplog.text and "source 'drums' where 'vocals' is expected" in caplog.text
    session = onnx_session(vocals_file)
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["source"] == "vocals" and meta["checkpoint_sha256"] == onnx_export.file_sha256(vocals_ckpt)
    spec = torch.randn(1, 4, TINY["dim_f"], 32)
    (out,) = session.run(None, {session.get_inputs()[0].name: spec.numpy()})
    np.testing.assert_allclose(out, vocals.spec_forward(spec).detach().numpy(), atol=1e-4)


def test_a_truncated_cache_entry_is_exported_again(tmp_path, caplog):
    """a cut-short cache file raised InvalidProtobuf on every later run until deleted by hand."""
    from mdxnet.inference import onnx_export

    checkpoint, model = _cached(tmp_path)
    path = onnx_export.cached_export(checkpoint, model, "vocals", tmp_path / "cache", 32)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with caplog.at_level("WARNING", logger="mdxnet.inference.onnx_export"):
        assert onnx_export.cached_export(checkpoint, model, "vocals", tmp_path / "cache", 32) == path
    assert "does not load" in caplog.text
    onnx_session(path)  # loads again


def test_a_cache_entry_with_forged_metadata_is_exported_again(tmp_path, caplog):
    """Metadata alone was trusted: drums' net carrying vocals' source and checkpoint sha256 made vocals.wav the
    drums. The entry's network is now run on a probe input against the checkpoint's."""
    import onnx

    from mdxnet.inference import onnx_export

    cache = tmp_path / "cache"
    drums_ckpt, drums = _cached(tmp_path, "drums", b"drums weights", seed=1)
    vocals_ckpt, vocals = _cached(tmp_path, "vocals", b"vocals weights", seed=2)
    drums_file = onnx_export.cached_export(drums_ckpt, drums, "drums", cache, 32)
    vocals_file = onnx_export.cached_export(vocals_ckpt, vocals, "vocals", cache, 32)
    forged = onnx.load(str(drums_file))
    vocals_meta = {p.key: p.value for p in onnx.load(str(vocals_file)).metadata_props}
    del forged.metadata_props[:]
    onnx.helper.set_model_props(forged, vocals_meta)
    onnx.save(forged, str(vocals_file))
    with caplog.at_level("WARNING", logger="mdxnet.inference.onnx_export"):
        assert onnx_export.cached_export(vocals_ckpt, vocals, "vocals", cache, 32) == vocals_file
    assert "is not this checkpoint's" in caplog.text and "exporting it again" in caplog.text
    spec = torch.randn(1, 4, TINY["dim_f"], 32)
    (out,) = onnx_session(vocals_file).run(None, {"spec": spec.numpy()})
    np.testing.assert_allclose(out, vocals.spec_forward(spec).detach().numpy(), atol=1e-4)


def test_a_folder_in_a_cache_entrys_place_is_named_before_any_export(tmp_path, monkeypatch):
    from mdxnet.errors import UserError
    from mdxnet.inference import onnx_export

    checkpoint, model = _cached(tmp_path)
    slot = onnx_export.cache_path(tmp_path / "cache", "vocals", onnx_export.file_sha256(checkpoint), 32)
    (slot / "inside").mkdir(parents=True)
    monkeypatch.setattr(onnx_export, "export_separator", lambda *a, **k: pytest.fail("exported"))
    for check in (lambda: onnx_export.require_writable_cache(tmp_path / "cache", [slot]),
                  lambda: onnx_export.cached_export(checkpoint, model, "vocals", tmp_path / "cache", 32)):
        with pytest.raises(UserError, match=f"{slot.name} is a folder: remove it"):
            check()


def test_a_killed_exports_temp_folder_is_removed_by_the_next_export(tmp_path):
    """`kill -9` during an export left its temp folder (model.onnx inside) in the cache for good."""
    import subprocess
    import sys

    from mdxnet.atomic import HOST
    from mdxnet.inference import onnx_export

    checkpoint, model = _cached(tmp_path)
    cache = tmp_path / "cache"
    slot = onnx_export.cache_path(cache, "vocals", onnx_export.file_sha256(checkpoint), 32)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftovers = [cache / f".{slot.name}.{HOST}-{int(dead.stdout)}.abcd1234.tmp", cache / "tmpk3j_9x2a"]
    for folder in leftovers:
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(b"half an export")
    mine = cache / "tmp-notes"
    mine.mkdir()
    assert onnx_export.cached_export(checkpoint, model, "vocals", cache, 32) == slot
    assert sorted(p.name for p in cache.iterdir()) == sorted([slot.name, mine.name])
