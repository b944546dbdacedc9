"""train.valid_chunks: validation cut as the authors cut it (training-size chunks, n_fft/2 trimmed at both edges,
the training batch at a time) against a transcription of their code, and both ways through a real training run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from mdxnet.training.validation import run_training_chunks
from test_train_resume import mdxnet, state, tiny_project  # noqa: F401 - the fixture, shared


def authors_validation(model, mix: np.ndarray, chunk: int, overlap: int, batch: int) -> np.ndarray:
    """kuielab/mdx-net@Leaderboard_A, transcribed line by line: MusdbValidDataset.__getitem__ (the chunks) and
    ConvTDFNet.validation_step (the model over batches of chunks, `[..., overlap:-overlap]`, concatenated)."""
    chunk_output_size = chunk - 2 * overlap
    left_pad = np.zeros([2, overlap])
    right_pad = np.zeros([2, overlap + chunk_output_size - (mix.shape[-1] % chunk_output_size)])
    mix_padded = np.concatenate([left_pad, mix, right_pad], 1)
    num_chunks = mix_padded.shape[-1] // chunk_output_size
    mix_chunks = [mix_padded[:, i * chunk_output_size: i * chunk_output_size + chunk] for i in range(num_chunks)]
    mix_chunk_batches = torch.tensor(np.array(mix_chunks), dtype=torch.float32).split(batch)
    target_hat_chunks = torch.cat([model(b)[..., overlap:-overlap] for b in mix_chunk_batches])
    return target_hat_chunks.transpose(0, 1).reshape(2, -1)[..., :mix.shape[-1]].detach().numpy()


@pytest.mark.parametrize("length", [1000, 48 * 20, 47])  # ragged, a whole number of steps, shorter than a chunk
def test_training_chunks_equal_the_authors_validation(length):
    torch.manual_seed(0)
    # a wide filter: every output sample depends on its neighbours, so where the chunks are cut shows
    model = torch.nn.Conv1d(2, 2, 9, padding=4).eval()
    mix = np.random.default_rng(1).standard_normal((2, length)).astype(np.float32)
    with torch.no_grad():
        ours = run_training_chunks(model, torch.from_numpy(mix), 64, 8, 3, torch.device("cpu")).numpy()
        theirs = authors_validation(model, mix, 64, 8, 3)
    np.testing.assert_array_equal(ours, theirs)
    with torch.no_grad():  # over several chunks, not one pass over the whole track: the cuts show
        whole = model(torch.from_numpy(mix)[None])[0].numpy()
    assert ours.shape == whole.shape and np.allclose(ours, whole) == (length <= 64 - 2 * 8)


def test_a_trim_of_a_quarter_of_the_chunk_or_more_still_keeps_every_sample_once():
    """The embedded Mixer cuts 8192 of 31744 samples at each edge: the authors' chunking would leave short chunks
    there; ours cuts whole ones, and each sample of the track comes from the middle of exactly one chunk."""
    mix = torch.arange(2 * 300, dtype=torch.float32).reshape(2, 300)
    out = run_training_chunks(torch.nn.Identity(), mix, 64, 20, 2, torch.device("cpu"))
    assert torch.equal(out, mix)


@pytest.mark.parametrize("chunks", ["training", "inference"])
def test_a_separator_and_the_mixer_train_and_validate_either_way(tiny_project, tmp_path, chunks):  # noqa: F811
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    params["train"]["valid_chunks"] = chunks
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    work = tmp_path / "run"
    for source in ["vocals", "drums", "bass", "other"]:
        done = mdxnet(tmp_path, work, "train", "separator", "--source", source, "--steps", "3")
        assert done.returncode == 0, done.stderr[-3000:]
    done = mdxnet(tmp_path, work, "train", "mixer", "--steps", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ["vocals", "mixer"]:
        best = state(work / "models" / f"{name}.pt")["extra"]["valid_sdr"]
        assert np.isfinite(best), name
