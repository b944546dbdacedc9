"""`mdxnet plan`: what `snakemake all` will cost, stage by stage, before it starts: jobs, disk written and time.
Every figure is an estimate: bench/README.md's cost model ("Cost model of the paper run") applied to the resolved
params and to the songs' lengths.

Song lengths come from the dataset when data.root holds it, from data.synth when it is still to be generated,
and otherwise are MUSDB18-HQ's nominal figures (assumed, and said so). Network cost: each measured paper-size
rate in COST_MODEL becomes FLOP/s of the networks' forward passes (the paper-size separator: 224.9 GFLOP per
training chunk); a configuration's time is its own forward FLOPs, counted by PyTorch's FlopCounterMode on
meta tensors (shapes only, nothing computed), over that rate. CPU times are hours on the 2-core host of
bench/README.md, stages one after another; GPU times are for one GPU, where a GPU figure exists.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from mdxnet.audio import SAMPLE_RATE, STEM_NAMES
from mdxnet.config import Augment, Evaluate, Mixer, Params, per_source, separator_kwargs
from mdxnet.data import diskspace
from mdxnet.data.augment import variants
from mdxnet.data.musdb import DATASET_FILE, extra_test_songs, list_tracks, track_seconds
from mdxnet.inference.stitching import stitching_for
from mdxnet.models import SPEC_CHANNELS, separator_from_kwargs
from mdxnet.runs import blend_runs, mixer_runs, model_runs, scored_runs
from mdxnet.training.length import (
    AUTHORS_CHECKPOINT_EPOCHS,
    Length,
    expected_epochs,
    mixer_chunk,
    mixer_length,
    separator_chunk,
    separator_length,
)

ON_DISK, PLANNED_SYNTH, ASSUMED_MUSDB = "on disk", "planned synth", "assumed MUSDB18-HQ"
WAV_BYTES_PER_S = SAMPLE_RATE * 2 * 2  # one 16-bit stereo wav
FLOAT_BYTES_PER_S = SAMPLE_RATE * 2 * 4  # one float32 stereo wav (the stored estimates)
GB = 1e9


@dataclass(frozen=True)
class CostModel:
    """Every rate and size the plan uses: the one table. Each comes from bench/README.md (its section quoted);
    None: no figure (the plan prints "no figure" / "no GPU figure"). GPU figures are slots to fill when measured."""

    # "Cost model of the paper run", download row: 30 min for 22.7 GB "at an assumed 100 Mbit/s"
    download_bytes_per_s: float = 100e6 / 8
    # "Cost model of the paper run", check row: ">= 294 s of audio/s" (16 songs x 20 s in 1.09 s)
    check_audio_s_per_s: float = 294.0
    # data synth: no rate in bench/README.md
    synth_audio_s_per_s: float | None = None
    # "Cost model of the paper run", augmentation row: "0.75 wall-s per source-s on 2 cores for the 8-variant
    # 3 x 3 grid" (8.06 track lengths written), i.e. per second of track written
    augment_s_per_written_s: float = 0.75 / 8.06
    # "Training throughput": paper size, "0.044-0.051 samples/s" (chunks/s) at batch 1-2 on 2 shared cores: the
    # faster one (a lower bound of the speed, under load)
    cpu_train_chunks_per_s: float = 0.051
    # GPU training of the paper-size separator, chunks/s by train.batch_size, fp16 autocast + GradScaler (the
    # authors' train.amp, configs/trainer/minimal.yaml): "GPU rehearsal on an H200", training-step table, the
    # slowest source at each batch (drums 41.7 at batch 8, vocals 43.6 at 16). Batch 1 (the CPU rehearsal's) was
    # not measured.
    gpu_train_chunks_per_s: Mapping[int, float | None] = field(
        default_factory=lambda: {1: None, 8: 41.7, 16: 43.6})
    # the GPU those figures were measured on ("GPU rehearsal on an H200": one NVIDIA H200)
    gpu_name: str = "NVIDIA H200"
    # "Separation inference speed": one paper-size separator forward, "224.9 GFLOP" per 5.92 s chunk
    paper_forward_flop: float = 224.9e9
    # "Cost model of the paper run", Mixer row ("Idle-machine rerun"): eager PyTorch fp32, "2.16 s per chunk per
    # separator" (the frozen separators under a Mixer's training, and validation)
    cpu_eager_s_per_chunk: float = 2.16
    # "End-to-end separation of a 4-minute song": ONNX Runtime batch 2, 2 threads, "0.873" s of audio/s for the
    # 4 separators + Mixer, 512-frame trim chunks, which cost "154.2 GFLOP per second of audio" (same section)
    cpu_separate_audio_s_per_s: float = 0.873
    paper_separate_flop_per_audio_s: float = 154.2e9
    # GPU separation, paper size, s of audio/s for the 4 separators + Mixer: "GPU rehearsal on an H200",
    # separation table ("135.2" at batch 2, PyTorch fp32)
    gpu_separate_audio_s_per_s: float | None = 135.2
    # "Cost model of the paper run", separation row: "~3 s per song job outside" the networks (embedded jobs)
    separate_job_s: float = 3.0
    # "Cost model of the paper run", Mixers row: "linear 167 s of audio/s, conv 42 s/s"; "2.3-3.1 s per job"
    mix_audio_s_per_s: Mapping[str, float] = field(default_factory=lambda: {"linear": 167.0, "conv": 42.0})
    mix_job_s: float = 2.7
    # "Cost model of the paper run", scoring rows: fast "7.1 s of audio/s", museval "1.12 s of audio/s"
    score_audio_s_per_s: Mapping[str, float] = field(default_factory=lambda: {"fast": 7.1, "museval": 1.12})
    # "Cost model of the paper run", aggregation + report row: "0.3-0.7 s per run and 7.2 s for the report"
    aggregate_s: float = 0.7
    report_s: float = 7.2
    # "Cost model of the paper run", training rows: `models/<source>.pt`, `best.pt` and "a 3x larger `last.pt`"
    checkpoint_weight_copies: int = 5
    # "Cost model of the paper run", Mixer row: "< 1 MB" per Mixer
    mixer_checkpoint_bytes: int = 1_000_000
    # "Cost model of the paper run", scoring row: "0.6 MB for 5 songs" (6 runs, 93 s of audio: ~1 kB per s)
    score_bytes_per_audio_s: float = 1_000.0
    # "Cost model of the paper run", aggregation + report row: "~1 MB (`results/`: 0.55 MB)"
    results_bytes: int = 1_000_000
    # "Cost model of the paper run" (and "Augmentation cache"): MUSDB18-HQ's songs and nominal seconds per subset
    musdb_songs: Mapping[str, tuple[int, float]] = field(default_factory=lambda: {
        "train": (86, 20_520.0), "valid": (14, 3_340.0), "test": (50, 12_600.0)})

    def train_gpu_flops(self, batch: int) -> float | None:
        rate = self.gpu_train_chunks_per_s.get(batch)
        return None if rate is None else rate * self.paper_forward_flop

    @property
    def train_cpu_flops(self) -> float:
        return self.cpu_train_chunks_per_s * self.paper_forward_flop

    @property
    def eager_cpu_flops(self) -> float:
        return self.paper_forward_flop / self.cpu_eager_s_per_chunk

    @property
    def separate_cpu_flops(self) -> float:
        return self.cpu_separate_audio_s_per_s * self.paper_separate_flop_per_audio_s

    @property
    def separate_gpu_flops(self) -> float | None:
        rate = self.gpu_separate_audio_s_per_s
        return None if rate is None else rate * self.paper_separate_flop_per_audio_s


COST_MODEL = CostModel()


# ---- songs -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Songs:
    """Seconds of each song per subset, and where the figures come from (ON_DISK, PLANNED_SYNTH, ASSUMED_MUSDB).
    `extra`: the data.extra_test stem files, scored beside the test songs."""

    source: str
    train: tuple[float, ...]
    valid: tuple[float, ...]
    test: tuple[float, ...]
    extra: tuple[float, ...]

    @property
    def scored(self) -> tuple[float, ...]:
        return self.test + self.extra

    @property
    def dataset_seconds(self) -> float:
        return sum(self.train) + sum(self.valid) + sum(self.test)

    @property
    def train_samples(self) -> list[int]:
        """Each training song's length in samples (an epoch's measure, mdxnet.training.length)."""
        return [round(seconds * SAMPLE_RATE) for seconds in self.train]


def dataset_on_disk(data, project_root: Path) -> bool:
    """Whether data.root holds the dataset: the generator's split file (written last), or train/ and test/."""
    root = project_root / data.root
    if data.origin == "synth":
        return (root / DATASET_FILE).is_file()
    return (root / "train").is_dir() and (root / "test").is_dir()


def read_songs(data, project_root: str | Path = ".") -> Songs:
    """The songs' lengths: read from data.root, planned from data.synth, or MUSDB18-HQ's nominal figures."""
    project_root = Path(project_root)
    extra = tuple(track_seconds(s) for s in extra_test_songs(data.extra_test, project_root))
    if dataset_on_disk(data, project_root):
        subsets = {s: tuple(track_seconds(t) for t in list_tracks(project_root / data.root, s, data.valid_split))
                   for s in ("train", "valid", "test")}
        return Songs(ON_DISK, extra=extra, **subsets)
    if data.origin == "synth":
        return _planned_synth(data.synth, extra)
    return _assumed_musdb(data.valid_split, extra, COST_MODEL.musdb_songs)


def _planned_synth(synth, extra: tuple[float, ...]) -> Songs:
    n_train = synth.tracks - synth.valid_tracks - synth.test_tracks
    return Songs(PLANNED_SYNTH, (synth.seconds,) * n_train, (synth.seconds,) * synth.valid_tracks,
                 (synth.seconds,) * synth.test_tracks, extra)


def _assumed_musdb(valid_split: str, extra: tuple[float, ...], nominal: Mapping) -> Songs:
    """Equal-length songs with MUSDB18-HQ's nominal totals; `valid_split: none` trains on the validation songs."""
    songs = {subset: (seconds / count,) * count for subset, (count, seconds) in nominal.items()}
    if valid_split == "none":
        songs = {**songs, "train": songs["train"] + songs["valid"], "valid": ()}
    return Songs(ASSUMED_MUSDB, songs["train"], songs["valid"], songs["test"], extra)


# ---- network cost ----------------------------------------------------------------------------------------------
@functools.cache
def _network(kwargs: tuple, frames: int) -> tuple[int, int]:
    """(forward FLOPs of one chunk of `frames` STFT frames, parameters) of a separator, on meta tensors."""
    config = dict(kwargs)
    with torch.device("meta"):
        model = separator_from_kwargs(**config)
        spec = torch.empty(1, SPEC_CHANNELS, config["dim_f"], frames)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.spec_forward(spec)
    return counter.get_total_flops(), sum(p.numel() for p in model.parameters())


def forward_flop(params: Params, source: str, frames: int | None = None) -> int:
    """FLOPs of one forward pass of `source`'s separator over `frames` frames (default: its training chunk)."""
    config = separator_kwargs(params, source)
    return _network(tuple(sorted(config.items())), frames or config["dim_t"])[0]


def parameter_count(params: Params, source: str) -> int:
    config = separator_kwargs(params, source)
    return _network(tuple(sorted(config.items())), config["dim_t"])[1]


def chunk_seconds(params: Params, source: str) -> float:
    """Length of one training chunk of `source`'s separator: (dim_t - 1) hops."""
    config = separator_kwargs(params, source)
    return config["hop"] * (config["dim_t"] - 1) / SAMPLE_RATE


def separation_flop_per_audio_s(params: Params) -> float:
    """FLOPs of the four separators per second of separated audio, with separate.chunk_frames and the stitching's
    step (trim drops `overlap` at both chunk edges, crossfade overlaps chunks by it)."""
    total = 0.0
    for source in params.sources:
        frames = int(per_source(params.separate.chunk_frames, source))
        total += forward_flop(params, source, frames) * SAMPLE_RATE / stitching_for(params, source).step
    return total


# ---- stages ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    """One stage of the workflow: its jobs, the bytes it writes, and its time in seconds on the CPU host and on
    one GPU (None: no figure). `gpu` False: a CPU stage (no GPU time is meant)."""

    name: str
    jobs: int
    disk_bytes: int
    cpu_s: float | None
    gpu_s: float | None = None
    gpu: bool = False
    note: str = ""


def data_stage(data, songs: Songs, cost: CostModel) -> Stage:
    """Downloading or generating the dataset (nothing when it is on disk or data.origin is existing)."""
    if songs.source == ON_DISK:
        return Stage("dataset", 0, 0, 0.0, note=f"on disk at {data.root}")
    if data.origin == "existing":
        return Stage("dataset", 0, 0, 0.0, note=f"data.origin existing: data.root {data.root} must hold it")
    wav = round(songs.dataset_seconds * len(STEM_NAMES) * WAV_BYTES_PER_S)  # mixture + 4 stems per song
    if data.origin == "synth":
        seconds = None if cost.synth_audio_s_per_s is None else songs.dataset_seconds / cost.synth_audio_s_per_s
        return Stage("data synth", 1, wav, seconds, note="5 wavs per song; no time figure for the generator")
    if data.dataset == "musdb18":  # the stem files are about as large as their zip; training decodes them to wav
        zipped = data.fetch.musdb18.size or 0
        return Stage("data download", 1, 2 * zipped + wav, zipped / cost.download_bytes_per_s,
                     note=f"{zipped / GB:.1f} GB zip kept + .stem.mp4 files + wavs decoded for training (at most "
                          f"all songs); at an assumed {cost.download_bytes_per_s * 8 / 1e6:g} Mbit/s")
    zipped = data.fetch.size or 0
    return Stage("data download", 1, zipped + wav, zipped / cost.download_bytes_per_s,
                 note=f"{zipped / GB:.1f} GB zip kept + wav; at an assumed {cost.download_bytes_per_s * 8 / 1e6:g} "
                      "Mbit/s")


def check_stage(songs: Songs, cost: CostModel) -> Stage:
    return Stage("data check", 1, 4_000, songs.dataset_seconds / cost.check_audio_s_per_s,
                 note=f"{songs.dataset_seconds / 3600:.2f} h of songs")


def augment_stage(augment: Augment, songs: Songs, cost: CostModel, importing: bool) -> Stage:
    """One rubberband job per training song; the cache size is diskspace's estimate (the refusal's)."""
    if importing:
        return Stage("augmentation", 0, 0, 0.0, note="skipped: models.origin import")
    rates = [rate for _, rate in variants(augment).values()]
    written = sum(songs.train) * sum(1.0 / r for r in rates)
    disk = sum(diskspace.cache_bytes(seconds, rates) for seconds in songs.train)  # per song, as the refusal sums
    return Stage("augmentation", len(songs.train), disk,
                 written * cost.augment_s_per_written_s,
                 note=f"{len(rates)} variants ({augment.grid}), {sum(1.0 / r for r in rates):.2f} song "
                      f"lengths each; FLAC at {diskspace.FLAC_RATIO:g} of wav (upper bound)")


def separator_lengths(params: Params, songs: Songs) -> dict[str, Length]:
    """Each separator's budget and validation interval in steps (train.unit epochs: of these songs)."""
    return {s: separator_length(params, s, separator_chunk(params, s), songs.train_samples) for s in params.sources}


def train_stage(params: Params, songs: Songs, cost: CostModel, importing: bool) -> Stage:
    """One job per separator: steps x batch chunks, plus validation over the validation songs."""
    if importing:
        return Stage("train separators", 0, 0, 0.0, gpu=True, note="skipped: models.origin import")
    train = params.train
    cpu, gpu, disk, chunks, gpu_missing = 0.0, 0.0, 0, 0, []
    lengths = separator_lengths(params, songs)
    validations = 0
    for source in params.sources:
        length = lengths[source]
        batch = int(per_source(train.batch_size, source))
        validations += math.ceil(length.steps / length.valid_every)
        work = length.steps * batch * forward_flop(params, source)
        valid = (math.ceil(length.steps / length.valid_every) * sum(songs.valid) / chunk_seconds(params, source)
                 * forward_flop(params, source))
        cpu += work / cost.train_cpu_flops + valid / cost.eager_cpu_flops
        rate = cost.train_gpu_flops(batch)
        gpu_missing += [f"batch {batch}"] if rate is None else []
        gpu += 0.0 if rate is None else work / rate + _gpu_or_zero(valid, cost.separate_gpu_flops)
        disk += parameter_count(params, source) * 4 * cost.checkpoint_weight_copies
        chunks += length.steps * batch
    steps = sum(length.steps for length in lengths.values())
    note = (f"{steps:,} steps in all = {chunks:,} chunks of "
            f"{chunk_seconds(params, params.sources[0]):.2f} s, {forward_flop(params, params.sources[0]) / 1e9:.4g} "
            f"GFLOP forward each (per source: below); {validations} validation(s) over the validation songs")
    if train.early_stopping.patience is not None:  # the budget is then a maximum
        note += f"; at most: early stopping (patience {train.early_stopping.patience} validations) may end it sooner"
    if gpu_missing:
        note += f"; no GPU figure for {', '.join(sorted(set(gpu_missing)))}"
    return Stage("train separators", len(params.sources), disk, cpu, None if gpu_missing else gpu, True, note)


def _gpu_or_zero(flop: float, rate: float | None) -> float:
    """A side cost on the GPU (validation) where a GPU separation figure exists; left out otherwise."""
    return 0.0 if rate is None else flop / rate


def mixer_stage(params: Params, songs: Songs, cost: CostModel, mixers: dict) -> Stage:
    """One job per Mixer: each step runs its chunks through the four frozen separators (no_grad), and the
    validation songs are separated once."""
    config = params.train.mixer
    steps = mixer_length(params, mixer_chunk(params), songs.train_samples).steps
    per_chunk = sum(forward_flop(params, s) for s in params.sources)
    per_audio_s = sum(forward_flop(params, s) / chunk_seconds(params, s) for s in params.sources)
    work = len(mixers) * (steps * config.batch_size * per_chunk + sum(songs.valid) * per_audio_s)
    gpu = None if cost.separate_gpu_flops is None else work / cost.separate_gpu_flops
    return Stage("train Mixers", len(mixers), len(mixers) * cost.mixer_checkpoint_bytes,
                 work / cost.eager_cpu_flops, gpu, True,
                 note=f"{', '.join(mixers) or 'none'}: {steps:,} steps x {config.batch_size} chunks x "
                      f"{len(params.sources)} separators each (GPU: at the separation figure)")


def separate_stage(params: Params, songs: Songs, cost: CostModel) -> Stage:
    """One job per test song: the four separators once, their float32 estimates kept (the `no-mixer` run)."""
    work = sum(songs.scored) * separation_flop_per_audio_s(params)
    jobs = len(songs.scored)
    gpu = None if cost.separate_gpu_flops is None else work / cost.separate_gpu_flops + jobs * cost.separate_job_s
    onnx = sum(parameter_count(params, s) * 4 for s in params.sources) if params.separate.backend == "onnx" else 0
    disk = round(sum(songs.scored) * FLOAT_BYTES_PER_S * len(params.sources)) + onnx
    return Stage("separate test songs", jobs, disk, work / cost.separate_cpu_flops + jobs * cost.separate_job_s,
                 gpu, True, note=f"{sum(songs.scored) / 3600:.2f} h of audio; float32 estimates"
                                 + (" + ONNX cache" if onnx else ""))


def mix_stage(mixer: Mixer, sources: list[str], songs: Songs, cost: CostModel, mixers: dict) -> Stage:
    """One job per Mixer and test song over the stored estimates (no separator runs again); a Mixer run without
    its own kind has `mixer`'s."""
    seconds, jobs = sum(songs.scored), len(songs.scored)
    kinds = [kind or mixer.kind for kind in mixers.values()]
    cpu = sum(seconds / cost.mix_audio_s_per_s[kind] + jobs * cost.mix_job_s for kind in kinds)
    disk = round(len(mixers) * seconds * FLOAT_BYTES_PER_S * len(sources))
    return Stage("Mixers over estimates", len(mixers) * jobs, disk, cpu, note=f"kinds: {', '.join(kinds) or '-'}")


def score_stage(evaluate: Evaluate, songs: Songs, cost: CostModel, runs: list[str]) -> Stage:
    """One BSS Eval job per run and test song; with the fast backend each run's shortest song also by museval."""
    backend = evaluate.backend
    cpu = len(runs) * sum(songs.scored) / cost.score_audio_s_per_s[backend]
    if backend != "museval" and songs.scored:
        cpu += len(runs) * min(songs.scored) / cost.score_audio_s_per_s["museval"]
    disk = round(len(runs) * sum(songs.scored) * cost.score_bytes_per_audio_s)
    return Stage("scoring", len(runs) * len(songs.scored), disk, cpu,
                 note=f"{backend} backend; runs: {', '.join(runs)}")


def report_stage(cost: CostModel, runs: list[str]) -> Stage:
    return Stage("aggregate + report", len(runs) + 1, cost.results_bytes, len(runs) * cost.aggregate_s + cost.report_s,
                 note="a summary per run, the results table and figures")


# ---- training length per source --------------------------------------------------------------------------------
@dataclass(frozen=True)
class LengthRow:
    """One training length of one model: its budget (`cap`) or, with train.unit epochs, the `expected` length of
    a run whose best epoch falls where the authors' checkpoint did. epochs None: counted in steps."""

    model: str
    which: str  # cap | expected
    batch: int
    epochs: int | None
    steps: int
    chunks: int
    gpu_s: float | None


def _training_gpu_s(chunks: int, flop_per_chunk: float, rate: float | None) -> float | None:
    return None if rate is None else chunks * flop_per_chunk / rate


def length_rows(params: Params, songs: Songs, cost: CostModel, importing: bool) -> list[LengthRow]:
    """Per separator, the cap and (train.unit epochs) the expected length, in epochs, steps, chunks and GPU
    seconds of training steps at cost.gpu_train_chunks_per_s (validation left out); the Mixer's cap (GPU: at the
    separation figure, as its stage)."""
    if importing:
        return []
    rows = []
    for source, length in separator_lengths(params, songs).items():
        batch = int(per_source(params.train.batch_size, source))
        flop, rate = forward_flop(params, source), cost.train_gpu_flops(batch)
        runs = [("cap", length.steps)]
        if length.epoch_steps is not None and source in AUTHORS_CHECKPOINT_EPOCHS:
            runs.append(("expected", min(expected_epochs(params, source) * length.epoch_steps, length.steps)))
        for which, steps in runs:
            epochs = None if length.epoch_steps is None else steps // length.epoch_steps
            rows.append(LengthRow(source, which, batch, epochs, steps, steps * batch,
                                  _training_gpu_s(steps * batch, flop, rate)))
    mixer = params.train.mixer
    length = mixer_length(params, mixer_chunk(params), songs.train_samples)
    per_chunk = sum(forward_flop(params, s) for s in params.sources)
    epochs = None if length.epoch_steps is None else length.steps // length.epoch_steps
    rows.append(LengthRow("Mixer", "cap", mixer.batch_size, epochs, length.steps, length.steps * mixer.batch_size,
                          _training_gpu_s(length.steps * mixer.batch_size, per_chunk, cost.separate_gpu_flops)))
    return rows


def epoch_line(params: Params, songs: Songs) -> str:
    """What one epoch is for this run (train.unit epochs), or that the lengths are steps."""
    if params.train.unit != "epochs":
        return "train.unit steps: budgets and validation intervals in steps (no epochs)"
    chunk = separator_chunk(params, params.sources[0])
    length = separator_lengths(params, songs)[params.sources[0]]
    return (f"one epoch (the authors'): {len(songs.train)} songs, {sum(songs.train_samples):,} samples // "
            f"{chunk:,} = {length.epoch_chunks:,} chunks\nsteps per epoch: ceil(chunks / batch)")


# ---- the plan --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    recipe: str | None
    profile: str | None
    songs: Songs
    stages: list[Stage]
    lengths: list[LengthRow] = field(default_factory=list)
    epoch: str = ""

    @property
    def disk_bytes(self) -> int:
        return sum(s.disk_bytes for s in self.stages)

    @property
    def cpu_s(self) -> float:
        return sum(s.cpu_s or 0.0 for s in self.stages)

    @property
    def gpu_s(self) -> float | None:
        """GPU time of the GPU stages; None when one of them (with jobs) has no GPU figure."""
        gpu = [s for s in self.stages if s.gpu and s.jobs]
        return None if any(s.gpu_s is None for s in gpu) else sum(s.gpu_s for s in gpu)


def make_plan(params: Params, project_root: str | Path = ".", cost: CostModel = COST_MODEL) -> Plan:
    """The stages of `snakemake all` for these resolved params and the songs found (or assumed) for them."""
    songs = read_songs(params.data, project_root)
    importing = params.models.origin == "import"
    mixers = mixer_runs(importing, params.models.published.files["mixer"])
    models = model_runs(mixers)
    runs = scored_runs(models, blend_runs(params.blend.second, models))
    stages = [data_stage(params.data, songs, cost), check_stage(songs, cost),
              augment_stage(params.augment, songs, cost, importing), train_stage(params, songs, cost, importing),
              mixer_stage(params, songs, cost, {} if importing else mixers), separate_stage(params, songs, cost),
              mix_stage(params.mixer, params.sources, songs, cost, mixers),
              score_stage(params.evaluate, songs, cost, runs), report_stage(cost, runs)]
    lengths = length_rows(params, songs, cost, importing)
    return Plan(params.recipe, params.profile, songs, stages, lengths, epoch_line(params, songs) if lengths else "")


# ---- output ----------------------------------------------------------------------------------------------------
def heading(plan: Plan) -> str:
    songs = plan.songs
    counts = f"{len(songs.train)} train / {len(songs.valid)} valid / {len(songs.test)} test songs"
    extra = f" + {len(songs.extra)} extra test songs" if songs.extra else ""
    assumed = " (not on disk: nominal lengths assumed, bench/README.md)" if songs.source == ASSUMED_MUSDB else ""
    return (f"# Plan of `snakemake all`: estimates (bench/README.md cost model)\n"
            f"recipe {plan.recipe}, profile {plan.profile}; dataset: {songs.source}{assumed}, {counts}{extra}, "
            f"{songs.dataset_seconds / 3600:.2f} h\n"
            "CPU h: hours on bench/README.md's 2-core host at its measured rates (the per-song stages divide by "
            "more cores); GPU h: on one GPU")


def _hours(seconds: float | None, missing: str = "no figure") -> str:
    if seconds is None:
        return missing
    hours = seconds / 3600
    return f"~{hours:,.0f}" if hours >= 100 else f"~{hours:.3g}"


def _size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _gpu_cell(stage: Stage) -> str:
    return _hours(stage.gpu_s, "no GPU figure") if stage.gpu else "CPU stage"


def render_table(plan: Plan) -> str:
    """The heading, a markdown table aligned in columns, and the total line."""
    header = ["stage", "jobs", "disk", "CPU h (estimate)", "GPU h (estimate)", "how"]
    rows = [[s.name, str(s.jobs), _size(s.disk_bytes), _hours(s.cpu_s), _gpu_cell(s), s.note] for s in plan.stages]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    total = (f"total: disk ~{_size(plan.disk_bytes)}, CPU {_hours(plan.cpu_s)} h, GPU "
             f"{_hours(plan.gpu_s, 'no GPU figure')}{' h' if plan.gpu_s is not None else ''} (all estimates; DVC "
             "may store the cache and the estimates twice unless its cache links)")
    return "\n".join([heading(plan), "", line(header), rule, *map(line, rows), "", total, *render_lengths(plan)]) + "\n"


def render_lengths(plan: Plan, cost: CostModel = COST_MODEL) -> list[str]:
    """The per-source training lengths as lines of a short table (each line under 100 columns)."""
    if not plan.lengths:
        return []
    header = ["model", "length", "batch", "epochs", "steps", "chunks", "GPU h"]
    rows = [[r.model, r.which, str(r.batch), "-" if r.epochs is None else f"{r.epochs:,}", f"{r.steps:,}",
             f"{r.chunks:,}", _hours(r.gpu_s, "no figure")] for r in plan.lengths]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in
                                 enumerate(zip(cells, widths, strict=True))) + " |"

    rates = ", ".join(f"{rate:g} at {batch}" for batch, rate in cost.gpu_train_chunks_per_s.items() if rate)
    notes = [f"GPU h: training steps only, one {cost.gpu_name}, fp16 (bench/README.md chunks/s at batch:",
             f"{rates}); the Mixer at the separation figure."]
    if any(r.which == "expected" for r in plan.lengths):
        epochs = "/".join(str(e) for e in AUTHORS_CHECKPOINT_EPOCHS.values())
        notes += [f"cap: train.max_epochs. expected: the authors' checkpoint epoch ({epochs} for",
                  f"{'/'.join(AUTHORS_CHECKPOINT_EPOCHS)}, README_SUBMISSION.md) + early stopping's patience x",
                  "valid_every_epochs, if the best validation falls where theirs did."]
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return ["", "## Training length per model", plan.epoch, *notes, "", line(header), rule, *map(line, rows)]


def as_data(plan: Plan) -> dict:
    """The plan as plain data (`mdxnet plan --json`): the same figures, seconds and bytes, None for no figure."""
    return {"estimates": True, "heading": heading(plan), "recipe": plan.recipe, "profile": plan.profile,
            "dataset": {"source": plan.songs.source, **{k: {"songs": len(v), "seconds": sum(v)} for k, v in
                        dataclasses.asdict(plan.songs).items() if k != "source"}},
            "stages": [{**dataclasses.asdict(s), "cpu_hours": _in_hours(s.cpu_s),
                        "gpu_hours": _in_hours(s.gpu_s) if s.gpu else None} for s in plan.stages],
            "lengths": [{**dataclasses.asdict(r), "gpu_hours": _in_hours(r.gpu_s)} for r in plan.lengths],
            "total": {"disk_bytes": plan.disk_bytes, "cpu_hours": _in_hours(plan.cpu_s),
                      "gpu_hours": _in_hours(plan.gpu_s)}}


def _in_hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600
