"""Training length in the authors' units (mdxnet.training.length): an epoch of the training songs on disk, turned
into steps as their dataset and Lightning 1.3.8 count it, and the loop running exactly that."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from torch.utils.data import DataLoader, Dataset

from mdxnet.config import load_params
from mdxnet.data.musdb import musdb_validation_names
from mdxnet.errors import UserError
from mdxnet.plan import COST_MODEL, make_plan, render_table
from mdxnet.training.length import (
    AUTHORS_CHECKPOINT_EPOCHS,
    epoch_chunks,
    mixer_chunk,
    mixer_length,
    separator_chunk,
    separator_length,
    training_samples,
)
from mdxnet.training.loop import Trainer

REPO = Path(__file__).resolve().parents[1]
SR = 44100
SOURCES = ["vocals", "drums", "bass", "other"]
TINY_MODEL = {"hop": 128, "dim_f": 64, "dim_t": 16, "num_blocks": 3, "num_convs": 1, "channels": 4, "growth": 2,
              "bottleneck": 4, "n_fft": 256}  # chunks of 128 x 15 = 1920 samples
VALID = musdb_validation_names()[0]
# training songs (samples) of unequal lengths, and one of musdb's validation songs, which no epoch counts
TRAIN = {"a": 7_001, "b": 5_003, "c": 9_999}


# ---- the authors' code, transcribed ---------------------------------------------------------------------------
class AuthorsTrainDataset(Dataset):
    """kuielab/mdx-net@Leaderboard_A src/datamodules/datasets/musdb.py MusdbTrainDataset, its length only: the
    train split's tracks without the validation names, `track_length = load_wav(vocals.wav).shape[-1]`,
    `self.epoch_size = sum(raw_track_lengths) // self.chunk_size`, `__len__` returning it."""

    def __init__(self, train_dir: Path, valid_track_names: list[str], chunk_size: int):
        raw_track_lengths = []
        for track_name in sorted(p.name for p in train_dir.iterdir()):
            if track_name not in valid_track_names:
                raw_track_lengths.append(sf.read(train_dir / track_name / "vocals.wav")[0].T.shape[-1])
        self.epoch_size = sum(raw_track_lengths) // chunk_size

    def __getitem__(self, _):
        return 0

    def __len__(self):
        return self.epoch_size


def authors_batches_per_epoch(dataset: Dataset, batch_size: int) -> int:
    """Their train_dataloader (src/datamodules/musdb_datamodule.py: batch_size, shuffle=True, drop_last left
    False), counted as Lightning 1.3.8 counts it (num_training_batches = len(train_dataloader); accelerator dp adds
    no DistributedSampler)."""
    return len(DataLoader(dataset=dataset, batch_size=batch_size, shuffle=True))


def write_songs(root: Path, songs: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    for name, samples in songs.items():
        folder = root / "train" / name
        folder.mkdir(parents=True)
        stems = {s: 0.1 * rng.standard_normal((samples, 2)) for s in SOURCES}
        for stem, audio in {**stems, "mixture": sum(stems.values())}.items():
            sf.write(folder / f"{stem}.wav", audio, SR, subtype="PCM_16")
    (root / "test").mkdir(exist_ok=True)
    return root


@pytest.fixture
def dataset(tmp_path) -> Path:
    return write_songs(tmp_path / "musdb", {**TRAIN, VALID: 50_000})


def tiny(root: Path, **train):
    params = load_params(REPO / "params.yaml", profile="paper", recipe="authors")
    return params.replace({"data": {"root": str(root), "valid_split": "musdb", "origin": "existing"},
                           "model": TINY_MODEL, "train": {"unit": "epochs", **train}})


# ---- the epoch, against the transcription ------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [1, 3, 4, 16])
def test_the_epoch_and_its_steps_are_the_authors_on_the_songs_on_disk(dataset, batch):
    params = tiny(dataset, batch_size=batch, max_epochs=7, valid_every_epochs=3)
    chunk = separator_chunk(params, "vocals")
    assert chunk == 128 * 15
    authors = AuthorsTrainDataset(dataset / "train", musdb_validation_names(), chunk)
    per_epoch = authors_batches_per_epoch(authors, batch)
    assert sorted(training_samples(params)) == sorted(TRAIN.values())  # the validation song left out
    length = separator_length(params, "vocals", chunk, training_samples(params))
    assert length.epoch_chunks == authors.epoch_size == sum(TRAIN.values()) // chunk == 11
    assert length.epoch_steps == per_epoch == math.ceil(11 / batch)
    assert (length.steps, length.valid_every) == (7 * per_epoch, 3 * per_epoch)


def test_musdb18hq_epoch_at_the_paper_size():
    """MUSDB18-HQ's 86 training songs (20,520 s nominal, bench/README.md): ~3,465 chunks, 217 steps at 16, 434 at 8."""
    params = load_params(REPO / "params.yaml", profile="paper", recipe="authors")
    songs = [round(20_520 * SR / 86)] * 86
    chunk = separator_chunk(params, "vocals")
    assert chunk == 261_120 and epoch_chunks(songs, chunk) == 3_465
    vocals, drums = (separator_length(params, s, chunk, songs) for s in ("vocals", "drums"))
    assert (vocals.epoch_steps, vocals.steps, vocals.valid_every) == (217, 3000 * 217, 10 * 217)
    assert (drums.epoch_steps, drums.steps, drums.valid_every) == (434, 3000 * 434, 10 * 434)
    mixer = mixer_length(params, mixer_chunk(params), songs)  # configs/experiment/mixer.yaml: 10 epochs at 16
    assert (mixer.epoch_steps, mixer.steps, mixer.valid_every) == (217, 2170, 217)


def test_budgets_per_source_and_steps_as_given(dataset):
    params = tiny(dataset, batch_size=2, max_epochs={"vocals": 4, "drums": 1, "bass": 2, "other": 3})
    chunk, songs = separator_chunk(params, "vocals"), training_samples(params)
    assert [separator_length(params, s, chunk, songs).steps for s in SOURCES] == [4 * 6, 6, 2 * 6, 3 * 6]
    steps = params.replace({"train": {"unit": "steps", "steps": {"vocals": 5, "drums": 6, "bass": 7, "other": 8},
                                      "valid_every": 2}})
    assert [(separator_length(steps, s, chunk, None).steps, separator_length(steps, s, chunk, None).valid_every)
            for s in SOURCES] == [(5, 2), (6, 2), (7, 2), (8, 2)]


def test_songs_shorter_than_one_chunk_are_refused_by_name(tmp_path):
    params = tiny(write_songs(tmp_path / "short", {"a": 1000}))
    with pytest.raises(UserError, match="less than one 1920-sample chunk.*train.unit: steps"):
        separator_length(params, "bass", 1920, training_samples(params))


def test_the_small_profiles_keep_their_step_counts():
    for profile, steps, valid_every, mixer_steps in (("embedded", 800, 200, 100), ("ci", 4, 4, 2),
                                                     ("rehearsal", 1, 5000, 1)):
        params = load_params(REPO / "params.yaml", profile=profile)
        assert params.train.unit == "steps"
        length = separator_length(params, "vocals", separator_chunk(params, "vocals"), None)
        assert (length.steps, length.valid_every) == (steps, valid_every)
        assert mixer_length(params, mixer_chunk(params), None).steps == mixer_steps


# ---- the loop runs it ----------------------------------------------------------------------------------------------
def test_the_loop_runs_the_epochs_and_validates_every_n(dataset, tmp_path, monkeypatch):
    from mdxnet.training.separator import train_separator

    params = tiny(dataset, batch_size=4, max_epochs=5, valid_every_epochs=2, amp=False, num_workers=0,
                  device="cpu", checkpoint_every=1000, log_every=1000,
                  early_stopping={"patience": None, "min_delta": 0.05})
    params = params.replace({"sampler": {"use_augmented": False}, "separate": {"chunk_frames": 32, "overlap": 128}})
    validated: list[int] = []
    original = Trainer._validate

    def record(self, step, monitor):
        validated.append(step)
        return original(self, step, monitor)

    monkeypatch.setattr(Trainer, "_validate", record)
    result = train_separator(params, "vocals", tmp_path / "models" / "vocals.pt", device="cpu",
                             live_dir=tmp_path / "live")
    per_epoch = math.ceil(11 / 4)  # 11 chunks of 1920 samples per epoch (the test above), batches of 4
    assert result.steps == 5 * per_epoch == 15
    # the authors validate after epochs 2 and 4 (check_val_every_n_epoch 2); the last step always validates here
    assert validated == [2 * per_epoch, 4 * per_epoch, 5 * per_epoch]


# ---- the plan shows it ---------------------------------------------------------------------------------------------
def test_plan_shows_each_models_cap_and_expected_length(dataset):
    params = tiny(dataset, batch_size={"vocals": 4, "drums": 2, "bass": 2, "other": 2})
    plan = make_plan(params)
    rows = {(r.model, r.which): r for r in plan.lengths}
    vocals_epoch = math.ceil(11 / 4)
    assert rows["vocals", "cap"].steps == 3000 * vocals_epoch and rows["vocals", "cap"].epochs == 3000
    assert rows["drums", "cap"].chunks == 3000 * math.ceil(11 / 2) * 2
    expected = AUTHORS_CHECKPOINT_EPOCHS["drums"] + 50 * 10  # their checkpoint epoch + patience x 10 epochs
    assert rows["drums", "expected"].epochs == expected == 1100
    assert rows["drums", "expected"].steps == expected * math.ceil(11 / 2)
    assert rows["Mixer", "cap"].epochs == 10
    text = render_table(plan)
    assert "11 chunks" in text and COST_MODEL.gpu_name in text
    assert max(len(line) for line in text[text.index("## Training length"):].splitlines()) < 100
