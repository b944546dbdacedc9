"""Checkpoints: round trip, metadata, weights_only loading, and clear refusals."""

import os

import pytest
import torch

from mdxnet.checkpoint import (
    init_models,
    load_checkpoint,
    load_mixer,
    load_separator,
    save_checkpoint,
    separator_path,
)
from mdxnet.cli import main
from mdxnet.config import params_hash, separator_kwargs
from mdxnet.errors import UserError
from mdxnet.models import Mixer, TFCTDFUNet, TFCTDFUNetV1

TINY = dict(n_fft=512, hop=128, dim_f=64, dim_t=16, num_blocks=3, num_convs=1, channels=4, growth=4,
            kernel=3, bottleneck=4, bias=False)
TINY_V1 = {**TINY, "num_convs": 3, "growth": 0, "bias": True}


@pytest.fixture
def saved(tmp_path, params):
    torch.manual_seed(0)
    model = TFCTDFUNet(**TINY)
    path = tmp_path / "vocals.pt"
    extra = {"optimizer": torch.optim.RMSprop(model.parameters()).state_dict(), "rng": torch.get_rng_state()}
    save_checkpoint(path, model, kind="separator", source="vocals", model_kwargs=TINY, params=params,
                    step=123, extra=extra)
    return path, model


def test_round_trip_keeps_weights_and_metadata(saved, params):
    path, model = saved
    ckpt = torch.load(path, weights_only=True)  # plain data only: no pickled code
    assert ckpt["kind"] == "separator" and ckpt["source"] == "vocals" and ckpt["step"] == 123
    assert ckpt["model_kwargs"] == {"arch": "v2", **TINY}  # the arch is recorded from the model saved
    assert ckpt["params"] == params.to_dict() and ckpt["params_hash"] == params_hash(params)
    assert ckpt["mdxnet_version"] and "git_commit" not in ckpt  # bytes that do not change with the commit
    assert ckpt["extra"]["rng"].dtype == torch.uint8 and "param_groups" in ckpt["extra"]["optimizer"]
    loaded = load_separator(path, "vocals")
    assert not loaded.training
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert not list(path.parent.glob("*.tmp"))  # atomic write left no temp file


def test_wrong_source_or_kind_is_refused(saved):
    path, _ = saved
    with pytest.raises(UserError, match=r"vocals\.pt.*vocals separator, not bass"):
        load_separator(path, "bass")
    with pytest.raises(UserError, match="holds a separator, not a mixer"):
        load_mixer(path)


def test_mismatched_config_is_refused(saved):
    path, _ = saved
    with pytest.raises(UserError, match=r"another model config \(channels: checkpoint 4 vs params 8"):
        load_checkpoint(path, kind="separator", source="vocals",
                        expect_kwargs={"arch": "v2", **TINY, "channels": 8})


def test_v1_round_trip_loads_as_v1(tmp_path, params):
    torch.manual_seed(0)
    model = TFCTDFUNetV1(**TINY_V1).eval()
    path = tmp_path / "bass.pt"
    save_checkpoint(path, model, kind="separator", source="bass", model_kwargs=TINY_V1, params=params, step=5)
    assert torch.load(path, weights_only=True)["model_kwargs"] == {"arch": "v1", **TINY_V1}
    loaded = load_separator(path, "bass", expect_kwargs={"arch": "v1", **TINY_V1})
    assert type(loaded) is TFCTDFUNetV1
    wave = torch.randn(1, 2, model.chunk_samples)
    with torch.no_grad():
        torch.testing.assert_close(loaded(wave), model(wave), rtol=0, atol=0)
    # Params asking for v2 with otherwise identical values are told the checkpoint is v1.
    with pytest.raises(UserError, match=r"another model config \(arch: checkpoint 'v1' vs params 'v2'\)"):
        load_separator(path, "bass", expect_kwargs={"arch": "v2", **TINY_V1})


def test_checkpoint_without_arch_is_v2(saved):
    path, model = saved
    old = torch.load(path, weights_only=True)
    del old["model_kwargs"]["arch"]  # as written before v1 existed
    torch.save(old, path)
    loaded = load_separator(path, "vocals", expect_kwargs={"arch": "v2", **TINY})
    assert type(loaded) is TFCTDFUNet
    with pytest.raises(UserError, match=r"arch: checkpoint 'v2' vs params 'v1'"):
        load_separator(path, "vocals", expect_kwargs={"arch": "v1", **TINY})


def test_arch_that_contradicts_the_model_is_refused(tmp_path, params):
    with pytest.raises(ValueError, match="arch 'v1' but the model is 'v2'"):
        save_checkpoint(tmp_path / "x.pt", TFCTDFUNet(**TINY), kind="separator", source="vocals",
                        model_kwargs={"arch": "v1", **TINY}, params=params, step=0)
    assert not (tmp_path / "x.pt").exists()


def test_kwargs_that_do_not_build_are_refused(tmp_path, params):
    path = tmp_path / "drums.pt"
    save_checkpoint(path, TFCTDFUNet(**TINY), kind="separator", source="drums",
                    model_kwargs={**TINY, "channels": 6}, params=params, step=0)
    with pytest.raises(UserError, match=r"drums\.pt does not match the model code"):
        load_separator(path, "drums")


def test_missing_and_corrupt_files_name_the_file_and_fix(tmp_path):
    with pytest.raises(UserError, match=r"nothere\.pt not found.*models init"):
        load_separator(tmp_path / "nothere.pt", "vocals")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"bad\.pt cannot be read"):
        load_separator(bad, "vocals")


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("exit 0",))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_a_checkpoint_pickling_code_is_refused_naming_the_type(tmp_path, zip_format):
    """refused unread, but the message was torch's, advising `weights_only=False` (which would
    run the file's code) and never saying what the file holds."""
    evil = tmp_path / "vocals.pt"
    torch.save({"model": _RunsCode()}, evil, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(UserError, match=r"vocals\.pt pickles the type (posix|os)\.system, which could run code") as err:
        load_separator(evil, "vocals")
    assert "weights_only" not in str(err.value) and "do not use this file" in str(err.value)


def test_init_models_writes_every_source_and_mixer(tmp_path, params):
    paths = init_models(tmp_path, params, seed=1)
    assert sorted(p.name for p in paths) == ["bass.pt", "drums.pt", "mixer.pt", "other.pt", "vocals.pt"]
    model = load_separator(separator_path(tmp_path, "bass"), "bass",
                           expect_kwargs=separator_kwargs(params, "bass"))
    assert model.stft.n_fft == params.model.n_fft["bass"]
    assert isinstance(load_mixer(tmp_path / "mixer.pt"), Mixer)


def test_init_models_follows_model_arch(tmp_path, params):
    v1 = params.replace({"model": {"arch": "v1", "growth": 0}})
    init_models(tmp_path, v1, seed=0)
    for source in v1.sources:
        path = separator_path(tmp_path, source)
        model = load_separator(path, source, expect_kwargs=separator_kwargs(v1, source))
        assert type(model) is TFCTDFUNetV1
    with pytest.raises(UserError, match="arch: checkpoint 'v1' vs params 'v2'"):
        load_separator(separator_path(tmp_path, "drums"), "drums", separator_kwargs(params, "drums"))


def test_models_init_cli(tmp_path, repo_root):
    out = tmp_path / "models"
    assert main(["--params", str(repo_root / "params.yaml"), "models", "init", "-o", str(out), "--seed", "3"]) == 0
    assert (out / "mixer.pt").is_file() and (out / "other.pt").is_file()


def test_regenerated_results_do_not_make_the_checkout_dirty(tmp_path, monkeypatch):
    """results/ and dvclive/ are tracked in git: a run rewriting them must not be reported as uncommitted code."""
    import subprocess

    from mdxnet import gitinfo

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for name in ("results/table.md", "dvclive/vocals/metrics.json", "dvc.lock", "src/code.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("v1\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=tmp_path, check=True)

    def in_checkout(*args):
        result = subprocess.run(["git", *args], cwd=tmp_path / "src", capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else None

    monkeypatch.setattr(gitinfo, "_git", in_checkout)
    for name in ("results/table.md", "dvclive/vocals/metrics.json", "dvc.lock"):
        (tmp_path / name).write_text("v2\n")
    assert gitinfo.git_dirty() is False
    (tmp_path / "src/code.py").write_text("v2\n")
    assert gitinfo.git_dirty() is True


def test_a_model_is_refused_at_another_rate_than_it_was_trained_at(saved, params, tmp_path):
    """`sample_rate: 22050` in params ran the 44.1 kHz models at that rate, exit 0. The rate of
    the params a checkpoint was trained with is compared with the rate it is about to run at, before anything
    is separated or exported."""
    from mdxnet.inference.separation import SeparationPipeline

    path, _ = saved
    assert params.sample_rate == 44100
    load_separator(path, "vocals", sample_rate=44100)
    with pytest.raises(UserError, match=r"trained at 44100 Hz, but params sample_rate is 22050 Hz: set "
                                        r"sample_rate: 44100"):
        load_separator(path, "vocals", sample_rate=22050)
    models = tmp_path / "models"
    init_models(models, params)
    other_rate = params.replace({"sample_rate": 22050, "separate": {"onnx_cache": str(tmp_path / "onnx")}})
    for use_mixer in (True, False):
        with pytest.raises(UserError, match="22050"):
            SeparationPipeline.from_dir(models, other_rate, device="cpu", use_mixer=use_mixer)
    assert not (tmp_path / "onnx").exists()  # refused before any export


def test_published_weights_are_not_imported_at_another_rate(tmp_path, params):
    from mdxnet.weights_import import WeightsImportError, import_file

    weights = tmp_path / "vocals.onnx"
    weights.write_bytes(b"not looked at")
    with pytest.raises(WeightsImportError, match="trained at 44100 Hz: set sample_rate: 44100"):
        import_file(weights, "vocals", tmp_path / "imported", params.replace({"sample_rate": 22050}))
    assert not (tmp_path / "imported").exists()


def test_checkpoint_bytes_depend_only_on_the_model(tmp_path, params, monkeypatch):
    """The same weights and params give the same file at any commit (DVC's cache and lock keep matching)."""
    import mdxnet.checkpoint
    import mdxnet.gitinfo

    torch.manual_seed(0)
    model = TFCTDFUNet(**TINY)
    save_checkpoint(tmp_path / "a.pt", model, kind="separator", source="vocals", model_kwargs=TINY, params=params,
                    step=5)
    for module in (mdxnet.gitinfo, mdxnet.checkpoint):  # another commit checked out
        monkeypatch.setattr(module, "git_commit", lambda: "0" * 40, raising=False)
    save_checkpoint(tmp_path / "b.pt", model, kind="separator", source="vocals", model_kwargs=TINY, params=params,
                    step=5)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
