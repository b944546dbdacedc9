"""How long a model trains and how often it validates, in steps, from `train.unit` and the dataset on disk.

`train.unit: steps` takes train.steps / train.valid_every (train.mixer.steps / valid_every for the Mixer) as
they are. `train.unit: epochs` counts as the authors do (kuielab/mdx-net@Leaderboard_A, PyTorch Lightning 1.3.8):

- an epoch is `MusdbTrainDataset.epoch_size` (src/datamodules/datasets/musdb.py): the summed lengths in samples of
  the un-augmented training songs (train/ without the validation tracks; their vocals.wav) floor-divided by the
  training chunk, hop x (dim_t - 1) samples (src/datamodules/musdb_datamodule.py chunk_size): 261,120 at the
  paper size;
- its steps are the batches of their train DataLoader (musdb_datamodule.py train_dataloader: batch_size,
  shuffle, drop_last left False), which Lightning 1.3.8 counts as len(DataLoader) (trainer/data_loading.py
  reset_train_dataloader): ceil(epoch / batch). Under `accelerator: dp` (configs/trainer/minimal.yaml) Lightning
  puts no DistributedSampler in, so the whole batch is one step;
- training stops after max_epochs epochs (configs/trainer/minimal.yaml max_epochs 3000; configs/experiment/
  mixer.yaml 10 for the Mixer), and validates at the end of every epoch e (1-based) with e % n == 0, n =
  check_val_every_n_epoch (minimal.yaml 10; mixer.yaml 1) (Lightning 1.3.8 training_loop.py
  _should_check_val_fx): in steps, every n x steps-per-epoch.

One difference remains (a fixed row of `mdxnet params --deviations`): the authors' last batch of an epoch holds
epoch mod batch chunks; every step here is a full batch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mdxnet.config import Params, per_source, separator_kwargs
from mdxnet.data.musdb import split_tracks, track_samples
from mdxnet.errors import UserError

log = logging.getLogger(__name__)

# The epoch of each checkpoint the authors shipped (kuielab/mdx-net@Leaderboard_A README_SUBMISSION.md, "The
# epoch of each checkpoint we used").
AUTHORS_CHECKPOINT_EPOCHS = {"vocals": 2360, "drums": 600, "bass": 1720, "other": 1720}


def epoch_chunks(song_samples: Iterable[int], chunk_samples: int) -> int:
    """Chunks in one of the authors' epochs: the songs' summed samples // the training chunk."""
    return sum(int(n) for n in song_samples) // int(chunk_samples)


def steps_per_epoch(chunks: int, batch_size: int) -> int:
    """Batches of one epoch as Lightning 1.3.8 counts their DataLoader (drop_last False): the last one short."""
    return math.ceil(chunks / batch_size)


@dataclass(frozen=True)
class Length:
    """A training run's step budget and validation interval; for unit epochs, also what one epoch is."""

    steps: int
    valid_every: int
    epoch_steps: int | None = None  # steps per epoch (unit epochs)
    epoch_chunks: int | None = None  # chunks per epoch (unit epochs)


def separator_chunk(params: Params, source: str) -> int:
    """Samples in `source`'s training chunk, hop x (dim_t - 1) (the model's chunk_samples, without building it)."""
    config = separator_kwargs(params, source)
    return int(config["hop"]) * (int(config["dim_t"]) - 1)


def mixer_chunk(params: Params) -> int:
    """The Mixer's training chunk: the longest separator chunk (mdxnet.training.mixer.MixerTask.chunk)."""
    return max(separator_chunk(params, source) for source in params.sources)


def training_samples(params: Params, root: str | Path | None = None) -> list[int]:
    """Length in samples of each un-augmented training song on disk (the validation tracks left out)."""
    return [track_samples(track) for track in split_tracks(params, "train", root)]


def in_steps(unit: str, *, steps: int, valid_every: int, max_epochs: int, valid_every_epochs: int,
             batch_size: int, chunk_samples: int, song_samples: Iterable[int] | None, name: str) -> Length:
    """The budget and validation interval in steps: as given (unit steps) or from epochs of the songs."""
    if unit == "steps":
        return Length(int(steps), int(valid_every))
    chunks = epoch_chunks(song_samples or (), chunk_samples)
    if chunks < 1:
        raise UserError(f"{name}: the training songs hold less than one {chunk_samples}-sample chunk, so an epoch "
                        "(train.unit epochs) is empty: add training songs or set train.unit: steps in params.yaml")
    per_epoch = steps_per_epoch(chunks, batch_size)
    return Length(int(max_epochs) * per_epoch, int(valid_every_epochs) * per_epoch, per_epoch, chunks)


def separator_length(params: Params, source: str, chunk_samples: int, song_samples: Iterable[int] | None) -> Length:
    """`source`'s separator: train.steps / valid_every, or train.max_epochs / valid_every_epochs."""
    train = params.train

    def pick(value):
        return int(per_source(value, source))

    return in_steps(train.unit, steps=pick(train.steps), valid_every=pick(train.valid_every),
                    max_epochs=pick(train.max_epochs), valid_every_epochs=pick(train.valid_every_epochs),
                    batch_size=pick(train.batch_size), chunk_samples=chunk_samples, song_samples=song_samples,
                    name=source)


def mixer_length(params: Params, chunk_samples: int, song_samples: Iterable[int] | None) -> Length:
    """The Mixer: train.mixer.steps / valid_every, or train.mixer.max_epochs / valid_every_epochs."""
    mixer = params.train.mixer
    return in_steps(params.train.unit, steps=mixer.steps, valid_every=mixer.valid_every,
                    max_epochs=mixer.max_epochs, valid_every_epochs=mixer.valid_every_epochs,
                    batch_size=mixer.batch_size, chunk_samples=chunk_samples, song_samples=song_samples,
                    name="mixer")


def describe_length(name: str, length: Length) -> None:
    """One log line saying what the budget is in steps, and where it comes from."""
    if length.epoch_steps is None:
        log.info("%s: at most %d steps, validating every %d (train.unit steps)", name, length.steps,
                 length.valid_every)
        return
    log.info("%s: one epoch = %d chunks = %d steps; at most %d steps (%d epochs), validating every %d steps",
             name, length.epoch_chunks, length.epoch_steps, length.steps, length.steps // length.epoch_steps,
             length.valid_every)


def expected_epochs(params: Params, source: str) -> int:
    """The authors' checkpoint epoch of `source` and the validations early stopping waits after it (patience x
    valid_every_epochs): how long a run like theirs trains, if its best epoch falls where theirs did."""
    patience = params.train.early_stopping.patience or 0
    return AUTHORS_CHECKPOINT_EPOCHS[source] + patience * int(per_source(params.train.valid_every_epochs, source))
