"""Checkpoints: round trip, metadata, weights_only loading, and clear refusals."""

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
from mdxnet.models import Mixer, TFCTDFUNet

TINY = dict(n_fft=512, hop=128, dim_f=64, dim_t=16, num_blocks=3, num_convs=1, channels=4, growth=4,
            kernel=3, bottleneck=4, bias=False)


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
    assert ckpt["model_kwargs"] == TINY
    assert ckpt["params"] == params.to_dict() and ckpt["params_hash"] == params_hash(params)
    assert ckpt["git_commit"] and ckpt["mdxnet_version"]
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
        load_checkpoint(path, kind="separator", source="vocals", expect_kwargs={**TINY, "channels": 8})


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


def test_init_models_writes_every_source_and_mixer(tmp_path, params):
    paths = init_models(tmp_path, params, seed=1)
    assert sorted(p.name for p in paths) == ["bass.pt", "drums.pt", "mixer.pt", "other.pt", "vocals.pt"]
    model = load_separator(separator_path(tmp_path, "bass"), "bass",
                           expect_kwargs=separator_kwargs(params, "bass"))
    assert model.stft.n_fft == params.model.n_fft["bass"]
    assert isinstance(load_mixer(tmp_path / "mixer.pt"), Mixer)


def test_models_init_cli(tmp_path, repo_root):
    out = tmp_path / "models"
    assert main(["--params", str(repo_root / "params.yaml"), "models", "init", "-o", str(out), "--seed", "3"]) == 0
    assert (out / "mixer.pt").is_file() and (out / "other.pt").is_file()
