"""`mdxnet models import`: the authors' Lightning checkpoints, their Mixer and ONNX separators in their published
layouts (written here from tiny models, tests/authors_layout.py) give the same outputs once imported, and bad
files stop with a named error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from authors_layout import (
    AUTHORS_ORDER,
    authors_forward,
    authors_mixer_forward,
    authors_state_dict,
    hyper_parameters,
    write_authors_mixer,
    write_authors_onnx,
    write_lightning_separator,
)
from mdxnet.checkpoint import load_checkpoint, load_mixer, load_separator, save_checkpoint
from mdxnet.cli import main
from mdxnet.models import TFCTDFUNet, separator_from_kwargs
from mdxnet.weights_import import (
    KeysMismatch,
    MixerSourcesMismatch,
    ShapeMismatch,
    UnsafeCheckpoint,
    WeightsImportError,
    WrongFileKind,
    file_sha256,
    import_file,
    read_torch_file,
)

# the authors' structure: channels grow by g, starting at g (ConvTDFNet: first_conv -> g, ds -> c + g)
TINY = dict(n_fft=512, hop=128, dim_f=64, dim_t=16, num_blocks=5, num_convs=2, channels=8, growth=8, kernel=3,
            bottleneck=4, bias=False)


def trained_looking(model, seed=0):
    """Non-trivial BatchNorm statistics and affine parameters, so every tensor's mapping matters."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2, generator=gen)
            module.running_var.uniform_(0.5, 2.0, generator=gen)
            module.weight.data.uniform_(0.5, 1.5, generator=gen)
            module.bias.data.uniform_(-0.1, 0.1, generator=gen)
    return model.eval()


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return trained_looking(TFCTDFUNet(**TINY))


def imported(tmp_path, params, *argv):
    out = tmp_path / "imported"
    params_file = tmp_path / "p.yaml"
    if not params_file.exists():
        params_file.write_text(yaml.safe_dump(params.standalone()))
    assert main(["--params", str(params_file), "models", "import", *map(str, argv), "-o", str(out)]) == 0
    return out


# ---- the authors' Lightning checkpoints ----------------------------------------------------------------------
def test_lightning_checkpoint_imports_to_the_same_separator(tmp_path, params, tiny):
    ckpt = write_lightning_separator(tiny, TINY, "vocals", tmp_path / "vocals-epoch=2359.ckpt")
    assert torch.serialization.get_unsafe_globals_in_checkpoint(ckpt) == [
        "pytorch_lightning.utilities.parsing.AttributeDict"]
    raw = read_torch_file(ckpt)  # weights_only, with Lightning's AttributeDict read as a plain dict
    assert {"window", "freq_pad", "encoding_blocks.0.tfc.H.1.0.weight", "final_conv.0.bias"} <= set(raw["state_dict"])
    assert raw["hyper_parameters"]["n_fft"] == 512

    out = imported(tmp_path, params, ckpt, "--as", "vocals")
    model = load_separator(out / "vocals.pt", "vocals")  # the plain loader of separate and evaluation
    wave = torch.randn(2, 2, model.chunk_samples)
    with torch.no_grad():
        np.testing.assert_allclose(model(wave).numpy(), tiny(wave).numpy(), atol=1e-6)
        spec = tiny.stft(wave)
        # their forward over their key names: the renaming is checked against their layout, not our inverse
        theirs = authors_forward(raw["state_dict"], spec, TINY["num_blocks"], TINY["num_convs"], TINY["kernel"])
        np.testing.assert_allclose(model.spec_forward(spec).numpy(), theirs.numpy(), atol=1e-5)

    ckpt_record = load_checkpoint(out / "vocals.pt", kind="separator")
    assert ckpt_record["model_kwargs"] == {"arch": "v2", **TINY}
    assert ckpt_record["step"] == 123456
    record = json.loads((out / "vocals.import.json").read_text())
    assert ckpt_record["extra"]["imported"] == record
    assert record["original_file"] == "vocals-epoch=2359.ckpt" and record["sha256"] == file_sha256(ckpt)
    assert record["runtime"] == "torch" and record["lightning"]["epoch"] == 2359


def test_weights_alone_take_n_fft_from_the_command_line_else_params(tmp_path, params, tiny):
    path = tmp_path / "weights.pt"
    torch.save(authors_state_dict(tiny), path)
    given = import_file(path, "drums", tmp_path / "a", params, {"n_fft": 512, "hop": 128, "dim_t": 16})
    assert load_checkpoint(given.model, kind="separator")["model_kwargs"] == {"arch": "v2", **TINY}
    # n_fft, hop, dim_t are not in the weights: params `model` for drums (the embedded profile's)
    fallback = import_file(path, "drums", tmp_path / "b", params)
    config = json.loads(fallback.manifest.read_text())["config"]
    expected = (params.model.n_fft["drums"], params.model.hop, params.model.dim_t)
    assert expected != (512, 128, 16) and (config["n_fft"], config["hop"], config["dim_t"]) == expected
    assert config["dim_f"] == 64  # always from the weights


# ---- bad input: named errors ---------------------------------------------------------------------------------
class Evil:
    def __reduce__(self):
        return (print, ("ran code",))


def test_bad_separator_files_are_refused_by_name(tmp_path, params, tiny):
    good = write_lightning_separator(tiny, TINY, "vocals", tmp_path / "good.ckpt")
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    with pytest.raises(WrongFileKind, match="not a PyTorch/Lightning checkpoint"):
        import_file(text, "vocals", tmp_path / "o", params)
    mixer = write_authors_mixer(torch.randn(8, 10), tmp_path / "mixer.ckpt")
    with pytest.raises(WrongFileKind, match="is a Mixer, not a separator"):
        import_file(mixer, "vocals", tmp_path / "o", params)
    with pytest.raises(WrongFileKind, match="is a separator, not a Mixer"):
        import_file(good, "mixer", tmp_path / "o", params)
    ours = tmp_path / "ours.pt"
    save_checkpoint(ours, tiny, kind="separator", source="vocals", model_kwargs=TINY, params=params, step=0)
    with pytest.raises(WrongFileKind, match="already an mdxnet checkpoint"):
        import_file(ours, "vocals", tmp_path / "o", params)

    state = authors_state_dict(tiny)
    del state["decoding_blocks.1.tdf.4.running_var"]
    state["decoding_blocks.1.tdf.9.weight"] = torch.ones(1)
    broken = write_lightning_separator(tiny, TINY, "vocals", tmp_path / "keys.ckpt", state=state)
    with pytest.raises(KeysMismatch, match=r"missing \['decoders.1.tdf.layers.4.running_var'\]"):
        import_file(broken, "vocals", tmp_path / "o", params)

    lying = write_lightning_separator(tiny, TINY, "vocals", tmp_path / "hp.ckpt",
                                      hparams={**hyper_parameters(tiny, TINY, "vocals"), "dim_f": 128})
    with pytest.raises(ShapeMismatch, match="hyper_parameters say dim_f=128 but the weights have dim_f 64"):
        import_file(lying, "vocals", tmp_path / "o", params)
    weights = tmp_path / "weights.pt"
    torch.save(authors_state_dict(tiny), weights)
    with pytest.raises(ShapeMismatch, match="dim_f 64 frequency bins, more than n_fft 64 gives"):
        import_file(weights, "vocals", tmp_path / "o", params, {"n_fft": 64})

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": authors_state_dict(tiny), "hyper_parameters": Evil()}, evil)
    with pytest.raises(UnsafeCheckpoint, match=r"could run code when loaded \(builtins.print\)"):
        import_file(evil, "vocals", tmp_path / "o", params)
    legacy = tmp_path / "legacy.ckpt"  # the pre-1.6 format cannot be listed: torch.load itself refuses
    torch.save({"hyper_parameters": Evil()}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeCheckpoint):
        import_file(legacy, "vocals", tmp_path / "o", params)
    assert not (tmp_path / "o").exists()


# ---- the authors' Mixer ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("lightning", [False, True])
def test_authors_mixer_imports_reordered_to_params_sources(tmp_path, params, lightning):
    torch.manual_seed(1)
    weight = 0.3 * torch.randn(8, 10)
    path = write_authors_mixer(weight, tmp_path / "mixer.ckpt", lightning=lightning)
    out = imported(tmp_path, params, path, "--as", "mixer")
    mixer = load_mixer(out / "mixer.pt")
    assert list(params.sources) != AUTHORS_ORDER
    estimates = {s: torch.rand(2, 300) - 0.5 for s in params.sources}  # audio range
    mixture = torch.rand(2, 300) - 0.5
    with torch.no_grad():
        ours = mixer(torch.stack([estimates[s] for s in params.sources])[None], mixture[None])[0]
    theirs = authors_mixer_forward(weight, estimates, mixture)
    for index, source in enumerate(params.sources):
        np.testing.assert_allclose(ours[index].numpy(), theirs[source].numpy(), atol=1e-6)
    record = json.loads((out / "mixer.import.json").read_text())
    assert record["config"]["file_sources"] == AUTHORS_ORDER and record["sha256"] == file_sha256(path)


def test_a_mixer_over_other_sources_is_refused(tmp_path, params):
    path = write_authors_mixer(torch.randn(6, 8), tmp_path / "mixer.ckpt")
    with pytest.raises(MixerSourcesMismatch, match="not params sources"):
        import_file(path, "mixer", tmp_path / "o", params, mixer_sources=["bass", "drums", "vocals"])
    with pytest.raises(MixerSourcesMismatch, match=r"shape \(6, 8\), not \(8, 10\)"):
        import_file(path, "mixer", tmp_path / "o", params)
    lightning = write_authors_mixer(torch.randn(8, 10), tmp_path / "l.ckpt", lightning=True)
    with pytest.raises(MixerSourcesMismatch, match="trained over"):
        import_file(lightning, "mixer", tmp_path / "o", params, mixer_sources=["a", "b", "c", "d"])


# ---- ONNX separators in the published convention ----------------------------------------------------------------
@pytest.fixture(scope="module")
def ci_params_file(tmp_path_factory, repo_root):
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    raw["profile"] = "ci"
    path = tmp_path_factory.mktemp("ci") / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_onnx_in_the_published_convention_separates_like_torch(tmp_path, ci_params_file):
    """ONNX files as the authors export them (input 'input', output 'output', no metadata) for the chunk the
    params cut, and their Mixer: `mdxnet separate` on the imports matches the torch models."""
    pytest.importorskip("onnxruntime")
    import soundfile as sf

    from mdxnet.config import load_params, per_source, separator_kwargs

    params = load_params(ci_params_file)
    trained, published = tmp_path / "models", tmp_path / "published"
    published.mkdir()
    for index, source in enumerate(params.sources):
        torch.manual_seed(index)
        kwargs = separator_kwargs(params, source)
        model = trained_looking(separator_from_kwargs(**kwargs), seed=index)
        save_checkpoint(trained / f"{source}.pt", model, kind="separator", source=source, model_kwargs=kwargs,
                        params=params, step=0)
        write_authors_onnx(model, int(per_source(params.separate.chunk_frames, source)), published / f"{source}.onnx")
    weight = torch.eye(8, 10) * 0.9 + 0.01 * torch.randn(8, 10)
    write_authors_mixer(weight, published / "mixer.ckpt")
    base = ["--params", str(ci_params_file)]
    for name in [*params.sources, "mixer"]:
        file = published / ("mixer.ckpt" if name == "mixer" else f"{name}.onnx")
        assert main([*base, "models", "import", str(file), "--as", name, "-o", str(tmp_path / "imported")]) == 0
    record = json.loads((tmp_path / "imported/vocals.import.json").read_text())
    assert record["config"]["input_name"] == "input" and record["config"]["frames"] == 32
    assert record["config"]["batch"] is None and record["runtime"] == "onnx"

    # the torch reference: the same separators and the same Mixer in the authors' weights, reordered
    import_file(published / "mixer.ckpt", "mixer", trained, params)
    song = tmp_path / "song.wav"
    sf.write(song, np.random.default_rng(0).uniform(-0.5, 0.5, (3 * 44100, 2)).astype(np.float32), 44100)
    assert main([*base, "separate", str(song), "--models", str(tmp_path / "imported"), "--backend", "onnx",
                 "--device", "cpu", "-o", str(tmp_path / "ort")]) == 0
    assert main([*base, "separate", str(song), "--models", str(trained), "--backend", "torch", "--device", "cpu",
                 "-o", str(tmp_path / "torch")]) == 0
    for source in params.sources:
        ours, _ = sf.read(tmp_path / "ort/song" / f"{source}.wav", dtype="float32")
        reference, _ = sf.read(tmp_path / "torch/song" / f"{source}.wav", dtype="float32")
        assert np.abs(reference).max() > 1e-3
        np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_onnx_shape_against_given_settings(tmp_path, params, ci_params_file, tiny):
    pytest.importorskip("onnxruntime")
    from mdxnet.config import load_params

    path = write_authors_onnx(tiny, 32, tmp_path / "vocals.onnx")
    with pytest.raises(ShapeMismatch, match="its input shape says dim_f 64, the command line 128"):
        import_file(path, "vocals", tmp_path / "o", params, {"dim_f": 128})
    with pytest.raises(ShapeMismatch, match="more than n_fft 64 gives"):
        import_file(path, "vocals", tmp_path / "o", params, {"n_fft": 64})
    not_onnx = tmp_path / "drums.onnx"
    not_onnx.write_bytes(b"\x00garbage")
    with pytest.raises(WrongFileKind, match="not an ONNX model"):
        import_file(not_onnx, "drums", tmp_path / "o", params)
    # imported with its own STFT, but params (ci) cut other chunks: `mdxnet separate` names the keys to set
    ci = load_params(ci_params_file)
    import_file(path, "vocals", tmp_path / "o", ci, {"n_fft": 512, "hop": 128})
    from mdxnet.inference.imported import imported_onnx_separator

    with pytest.raises(Exception, match=r"set model.n_fft.vocals: 512 \(params: 1024\), model.hop: 128"):
        imported_onnx_separator(tmp_path / "o", "vocals", ci)
    (tmp_path / "o/vocals.onnx").write_bytes(b"replaced")
    with pytest.raises(Exception, match="is not the file imported"):
        imported_onnx_separator(tmp_path / "o", "vocals", ci)


# ---- files that import but would not run ----------------------------------------------------
def test_weights_with_nan_are_refused_at_import(tmp_path, params, tiny):
    weight = torch.randn(8, 10)
    weight[3, 4] = float("nan")
    with pytest.raises(WeightsImportError, match=r"mixer.ckpt: its weights .* hold NaN or infinite values"):
        import_file(write_authors_mixer(weight, tmp_path / "mixer.ckpt"), "mixer", tmp_path / "o", params)
    with torch.no_grad():
        next(tiny.parameters()).view(-1)[0] = float("inf")
    broken = write_lightning_separator(tiny, TINY, "vocals", tmp_path / "vocals.ckpt")
    with pytest.raises(WeightsImportError, match="vocals.ckpt: its weights .* hold NaN or infinite values"):
        import_file(broken, "vocals", tmp_path / "o", params)
    assert not (tmp_path / "o").exists()


def test_a_mixer_with_huge_finite_weights_is_refused_at_import(tmp_path, params):
    """Finite weights of ~1e38 passed the NaN check and wrote stems peaking at ~1.4e38, exit 0."""
    weight = 0.3 * torch.randn(8, 10)
    weight[2, 5] = 1e38
    with pytest.raises(WeightsImportError, match=r"mixer.ckpt: its Mixer can scale audio .* up to 1e\+38 times"):
        import_file(write_authors_mixer(weight, tmp_path / "mixer.ckpt"), "mixer", tmp_path / "o", params)
    assert not (tmp_path / "o").exists()


def test_onnx_files_with_external_or_nan_weights_are_refused(tmp_path, params, tiny):
    pytest.importorskip("onnxruntime")
    import onnx
    from onnx import numpy_helper

    path = write_authors_onnx(tiny, 32, tmp_path / "vocals.onnx")
    external = tmp_path / "split" / "vocals.onnx"
    external.parent.mkdir()
    onnx.save(onnx.load(str(path)), str(external), save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    with pytest.raises(WeightsImportError, match="keeps its weights in separate files"):
        import_file(external, "vocals", tmp_path / "o", params)
    proto = onnx.load(str(path))
    first = next(t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and t.dims)
    values = numpy_helper.to_array(first).copy()
    values.flat[0] = np.nan
    first.CopyFrom(numpy_helper.from_array(values, first.name))
    nan_file = tmp_path / "nan" / "vocals.onnx"
    nan_file.parent.mkdir()
    onnx.save(proto, str(nan_file))
    with pytest.raises(WeightsImportError, match=f"its weights {first.name} hold NaN"):
        import_file(nan_file, "vocals", tmp_path / "o", params)
    assert not (tmp_path / "o").exists()
    import_file(path, "vocals", tmp_path / "o", params, {"n_fft": 512, "hop": 128})  # the intact file imports
