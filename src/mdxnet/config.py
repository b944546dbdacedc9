"""The one reading of params.yaml: YAML -> schema check (base and every profile) -> profile overlay ->
typed, frozen sections (`Params`).

Every entry point (each `mdxnet` command, the Snakefile) calls `load_params`, so a bad value or a misspelt key
at any level, inside a profile too, stops it at start with the key's dotted name. The schema is generated from
the sections' declarations below (`key`: one per params key) and is closed: every key must be declared, and the
base values must be complete, so code never supplies a default of its own.
"""

from __future__ import annotations

import atexit
import copy
import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import sys
import typing
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mdxnet.errors import UserError

DEFAULT_PARAMS = Path("params.yaml")
# When set, every mdxnet command appends the params keys it read to this file (one JSON line per process): the
# test that checks each dvc.yaml stage declares what its commands read uses it.
TRACE_ENV = "MDXNET_PARAMS_TRACE"


# Nodes a params document may hold once its aliases are expanded: params.yaml has ~500; an alias "bomb" (nested
# anchors, each alias repeating the one before) expands to billions and ended in a MemoryError.
MAX_EXPANDED_NODES = 100_000


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads floats without a dot (`1e-4`, `5e-05`) as floats, as YAML 1.2 does.

    `dvc exp run -S train.lr.vocals=1e-4` writes such values; plain PyYAML (YAML 1.1) would read them as strings.
    It refuses a key given twice in one mapping (PyYAML keeps the last one, silently) and a document whose aliases
    expand beyond MAX_EXPANDED_NODES.
    """

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        size = expanded_size(node, {})
        if size > MAX_EXPANDED_NODES:
            raise yaml.YAMLError(f"its aliases expand to {size:,} nodes (more than {MAX_EXPANDED_NODES:,}): write "
                                 "the values out instead of nesting anchors")
        return self.construct_document(node)

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key != "<<":
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark,
                        f"found key {key!r} twice (first {seen[key]}): keep one", key_node.start_mark)
                seen[key] = f"line {key_node.start_mark.line + 1}"
        return super().construct_mapping(node, deep=deep)


def expanded_size(node: yaml.Node, sizes: dict) -> int:
    """Nodes under `node` with every alias written out (an alias is the same node object reached twice)."""
    if id(node) not in sizes:
        children: list = []
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        sizes[id(node)] = 1 + sum(expanded_size(child, sizes) for child in children)
    return sizes[id(node)]


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=YamlLoader)


class ParamsError(ValueError):
    """A params file that is missing, unreadable, breaks the schema or names an unknown profile."""


# ---- declarations ----------------------------------------------------------------------------------------------
# Every params key is declared once, as a field of a typed section below (`key`): its JSON-schema fragment (the
# schema every entry point checks with is generated from these, see `schema`), a one-line doc, and, for a key
# mdxnet.recipes.GOVERNED does not cite the references for, how the deviations table treats it: `not_compared`
# (why no reference is compared; on a section field it covers the whole section) or `opt_in` (this project's own
# switch and its neutral value, the one that behaves as the authors do: the table lists any other value).
_NOT_OPT_IN = object()  # `opt_in` not given (None, False, 0 are neutral values a switch may have)


def key(schema: dict | None = None, *, doc: str, not_compared: str | None = None, opt_in: Any = _NOT_OPT_IN):
    """A section field's declaration; `schema` None for a field holding a section (its schema is the section's)."""
    if not_compared is not None and opt_in is not _NOT_OPT_IN:
        raise TypeError("a key is either not compared or an opt-in, not both")
    metadata = {"schema": schema, "doc": doc, "not_compared": not_compared}
    if opt_in is not _NOT_OPT_IN:
        metadata["opt_in"] = opt_in
    return dataclasses.field(metadata=metadata)


def _ref(name: str) -> dict:
    return {"$ref": f"#/$defs/{name}"}


def _per_source(one: dict) -> dict:
    """A value either shared by every source or given per source ({vocals: ..., drums: ...})."""
    return {"oneOf": [one, {"type": "object", "propertyNames": _ref("source"), "additionalProperties": one}]}


# Fragments several keys share, written once: the schema's $defs, referred to by the constants below.
DEFS: dict[str, dict] = {
    "source": {"enum": ["vocals", "drums", "bass", "other"]},
    "positive_int": {"type": "integer", "minimum": 1},
    "nonneg_int": {"type": "integer", "minimum": 0},
    "positive_number": {"type": "number", "exclusiveMinimum": 0},
    "probability": {"type": "number", "minimum": 0, "maximum": 1},
    "per_source_positive_int": _per_source(_ref("positive_int")),
    "per_source_positive_number": _per_source(_ref("positive_number")),
    "per_source_nonneg_int": _per_source(_ref("nonneg_int")),
    "per_source_bool": _per_source({"type": "boolean"}),
}
SOURCE = _ref("source")
POSITIVE_INT = _ref("positive_int")
NONNEG_INT = _ref("nonneg_int")
POSITIVE_NUMBER = _ref("positive_number")
PROBABILITY = _ref("probability")
PER_SOURCE_POSITIVE_INT = _ref("per_source_positive_int")
PER_SOURCE_POSITIVE_NUMBER = _ref("per_source_positive_number")
PER_SOURCE_NONNEG_INT = _ref("per_source_nonneg_int")
PER_SOURCE_BOOL = _ref("per_source_bool")
# Fragments written out where used (not $defs), shared here all the same.
TEXT = {"type": "string", "minLength": 1}
NUMBER = {"type": "number"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
URL = {"type": "string", "pattern": "^(https?|file)://"}
MD5 = {"type": ["string", "null"], "pattern": "^[0-9a-f]{32}$"}
BYTES = {"type": ["integer", "null"], "minimum": 1}
DEVICE = {"enum": ["auto", "cpu", "cuda"]}


def enum(*values: Any) -> dict:
    return {"enum": list(values)}


def array(items: dict, **constraints: Any) -> dict:
    return {"type": "array", "items": items, **constraints}


def per_source_object(value: dict) -> dict:
    """One value for each of the four sources, all given."""
    names = DEFS["source"]["enum"]
    return {"type": "object", "additionalProperties": False, "required": list(names),
            "properties": {name: value for name in names}}


# Reasons shared by several keys.
_NO_EFFECT = "; no effect on the result"
_RESUMABLE = "resumable checkpoints" + _NO_EFFECT
_REDRAW_ONLY = "read only when sampler.silent_redraw_prob > 0 (that row shows the deviation)"
_CONV_ONLY = "read only when mixer.kind is conv (mdxnet's own; the mixer.kind row shows it)"
_SISEC_FRAMES = "SiSEC2018's 1 s frames (how results are scored, not how they are made)"


# ---- typed sections --------------------------------------------------------------------------------------------
PerSource = Any  # a value shared by every source, or a {source: value} mapping (see `per_source`)
_TRACE: set[str] | None = None


class Section:
    """Base of the frozen sections: attribute reads are recorded while tracing (see TRACE_ENV)."""

    _path: str = ""

    def __getattribute__(self, name: str) -> Any:
        if _TRACE is not None and not name.startswith("_") and name in type(self).__dataclass_fields__:
            _TRACE.add(f"{object.__getattribute__(self, '_path')}{name}")
        return object.__getattribute__(self, name)

    def evolve(self, **changes):
        """A copy with some values changed (a command's overrides), still recording reads under its key: the
        copy's own reads, not the copying's."""
        global _TRACE
        saved, _TRACE = _TRACE, None
        try:
            section = dataclasses.replace(self, **changes)
        finally:
            _TRACE = saved
        object.__setattr__(section, "_path", object.__getattribute__(self, "_path"))
        return section

    @classmethod
    def build(cls, values: dict, path: str = ""):
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for field in dataclasses.fields(cls):
            kind = hints[field.name]
            value = values[field.name]
            if is_section(kind):
                value = kind.build(value, f"{path}{field.name}.")
            kwargs[field.name] = value
        section = cls(**kwargs)
        object.__setattr__(section, "_path", path)
        return section


def is_section(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, Section)


@dataclass(frozen=True)
class Record(Section):
    url: str = key(URL, doc="where the archive is downloaded from")
    md5: str | None = key(MD5, doc="the archive's md5 as published; null: zip integrity only")
    size: int | None = key(BYTES, doc="the archive's size in bytes; null: unknown")


@dataclass(frozen=True)
class Fetch(Section):
    url: str = key(URL, doc="MUSDB18-HQ's archive (data.dataset musdb18hq)")
    md5: str | None = key(MD5, doc="its md5 as published; null: zip integrity only")
    size: int | None = key(BYTES, doc="its size in bytes; null: unknown")
    musdb18: Record = key(doc="MUSDB18's archive (data.dataset musdb18)")
    download_dir: str = key(TEXT, doc="where archives are downloaded to")
    timeout_s: float = key(POSITIVE_NUMBER, doc="seconds per network read; a rerun resumes from the .part file")


@dataclass(frozen=True)
class Synth(Section):
    tracks: int = key(POSITIVE_INT, doc="songs generated in all (train = tracks - valid - test)")
    valid_tracks: int = key(NONNEG_INT, doc="of which validation songs")
    test_tracks: int = key(POSITIVE_INT, doc="of which test songs")
    seconds: float = key(POSITIVE_NUMBER, doc="length of each song")
    seed: int = key(INTEGER, doc="seed of the generated songs")
    jobs: int = key(POSITIVE_INT, doc="songs rendered in parallel")
    soundfont: str = key(TEXT, doc="the General MIDI soundfont the songs are rendered with")
    syllables: bool = key(BOOLEAN, doc="add espeak-ng sung words to the vocal stem")


@dataclass(frozen=True)
class DataCheck(Section):
    mix_snr_db: float = key(NUMBER, doc="least SNR (dB) of the mixture against the sum of the stems (wav)")
    stem_mix_snr_db: float = key(NUMBER, doc="the same for .stem.mp4 files, each stream AAC-coded on its own")


RELEASES = ("musdb18hq", "musdb18")


@dataclass(frozen=True)
class Score(Section):
    dataset: str = key(enum(*RELEASES, "same"), doc="the release whose test songs are separated and scored "
                       "(same: the training release)")
    root: str = key(TEXT, doc="its folder, when it is not the training release",
                    not_compared="where the scored release lives")


@dataclass(frozen=True)
class Data(Section):
    dataset: str = key(enum(*RELEASES), doc="which release of MUSDB trains (and is scored, score.dataset same)")
    root: str = key(TEXT, doc="the dataset folder, in the layout `dataset` names", not_compared="where the dataset lives")
    decoded_root: str = key(TEXT, doc="where a MUSDB18 dataset's training stems are decoded to wav",
                            not_compared="where a MUSDB18 dataset's training stems are decoded to wav (same values)")
    origin: str = key(enum("fetch", "synth", "existing"), doc="how `root` comes to exist")
    fetch: Fetch = key(doc="the downloads of MUSDB18-HQ and MUSDB18",
                       not_compared="how MUSDB18-HQ / MUSDB18 is downloaded")
    valid_split: str = key(enum("musdb", "none"), doc="musdb's 14 validation tracks, or none")
    extra_test: list = key(array(TEXT), doc="extra .stem.mp4 songs scored beside the test set",
                           not_compared="extra songs scored beside the test set; no effect on training")
    synth: Synth = key(doc="the generated dataset (origin synth)", not_compared="the generated dataset of the "
                       "embedded/ci profiles (data.origin shows that deviation)")
    check: DataCheck = key(doc="`mdxnet data check`'s thresholds",
                           not_compared="a check of the dataset, not a choice of the recipe")
    score: Score = key(doc="the release separated and scored")

    def __post_init__(self):
        # two releases in one folder would overwrite each other (a generated one) or mix (a download)
        read = functools.partial(object.__getattribute__, self)  # not traced reads (see TRACE_ENV)
        score = read("score")
        other = object.__getattribute__(score, "dataset") not in ("same", read("dataset"))
        root = object.__getattribute__(score, "root")
        if other and Path(root).resolve() == Path(read("root")).resolve():
            raise ParamsError(f"data.score.root is data.root ({root}), but data.score.dataset "
                              f"({object.__getattribute__(score, 'dataset')}) is not the training release "
                              f"({read('dataset')}): give the scored release a folder of its own")

    @property
    def scored_release(self) -> str:
        """The release whose test songs are separated and scored."""
        return self.dataset if self.score.dataset == "same" else self.score.dataset

    @property
    def scores_another_release(self) -> bool:
        """Whether the scored release is not the training one (and so lives in score.root)."""
        return self.scored_release != self.dataset

    @property
    def scored_root(self) -> str:
        """The folder of the scored release: data.root, or score.root for another release."""
        return self.score.root if self.scores_another_release else self.root

    def scored(self) -> Data:
        """These values with the scored release in place of the training one (its release and folder): what the
        commands that make and check the scored release read."""
        return self.evolve(dataset=self.scored_release, root=self.scored_root)


@dataclass(frozen=True)
class Augment(Section):
    root: str = key(TEXT, doc="the augmentation cache", not_compared="where the augmentation cache lives")
    pitch_semitones: list = key(array({"type": "number", "minimum": -12, "maximum": 12}),
                                doc="the grid's pitch shifts (0: unchanged)")
    # bounded like the pitch shifts (a song 100 times shorter or longer is no augmentation): a rate near 0 made the
    # variant's length overflow in `plan` and `augment`
    tempo_rates: list = key(array({"type": "number", "minimum": 0.01, "maximum": 100}),
                            doc="the grid's tempo rates (1.0: unchanged; r plays r times as fast)")
    grid: str = key(enum("product", "axes"), doc="every (pitch, tempo) pair, or each axis alone")
    speech_sources: list = key(array(SOURCE, uniqueItems=True), doc="sources rendered with rubberband's short window")


_TRANSFORM = {"type": "object", "additionalProperties": False, "required": ["name", "p", "args"],
              "properties": {"name": TEXT, "p": PROBABILITY, "args": {"type": "object"}}}


@dataclass(frozen=True)
class Sampler(Section):
    use_augmented: bool = key(BOOLEAN, doc="also draw from the augmentation cache")
    variant_draw: str = key(enum("pairs", "per_track"), doc="uniform over (track, variant) pairs, or a track first")
    silence_db: float = key({"type": "number", "maximum": 0}, doc="a stem chunk quieter than this (RMS, dBFS) is "
                            "silent", not_compared=_REDRAW_ONLY)
    silent_redraw_prob: float = key(PROBABILITY, doc="chance a silent stem chunk is re-drawn")
    max_redraws: int = key(NONNEG_INT, doc="re-draws at most per chunk", not_compared=_REDRAW_ONLY)
    # whether `name` is a known class and `args` fit it is checked in __post_init__ (mdxnet.transforms)
    transforms: list = key(array(_TRANSFORM), doc="waveform transforms applied to each stem, in order")

    def __post_init__(self):
        # Unknown transform classes and bad arguments stop every entry point at start, not when training begins
        # (audiomentations is imported only when the list is not empty: it takes ~1 s).
        specs = object.__getattribute__(self, "transforms")  # not a traced read (see TRACE_ENV)
        if specs:
            from mdxnet.transforms import build_transforms

            try:
                build_transforms(specs, "sampler.transforms")
            except UserError as err:
                raise ParamsError(f"bad sampler transform (fix it in the params file): {err}") from None


@dataclass(frozen=True)
class Model(Section):
    # mdxnet.models.SEPARATORS: v2 TFCTDFUNet | v1 TFCTDFUNetV1 (needs growth 0)
    arch: PerSource = key(enum("v2", "v1"), doc="the separator network: TFC-TDF-U-Net v2 or v1")
    hop: PerSource = key(PER_SOURCE_POSITIVE_INT, doc="STFT hop (samples)")
    dim_f: PerSource = key(PER_SOURCE_POSITIVE_INT, doc="frequency bins kept (the lowest)")
    dim_t: PerSource = key(PER_SOURCE_POSITIVE_INT, doc="STFT frames per training chunk")
    num_blocks: PerSource = key(PER_SOURCE_POSITIVE_INT, doc="TFC-TDF blocks of the U-Net")
    num_convs: PerSource = key(PER_SOURCE_POSITIVE_INT, doc="convolutions per TFC block (l)")
    channels: PerSource = key(PER_SOURCE_POSITIVE_INT, doc="channels of the first convolution")
    growth: PerSource = key(PER_SOURCE_NONNEG_INT, doc="channels added per scale (g)")
    kernel: PerSource = key(PER_SOURCE_POSITIVE_INT, doc="convolution kernel size (k)")
    bottleneck: PerSource = key(PER_SOURCE_POSITIVE_INT, doc="TDF bottleneck factor (bn)")
    bias: PerSource = key(PER_SOURCE_BOOL, doc="whether the TDF layers have a bias")
    n_fft: PerSource = key(PER_SOURCE_POSITIVE_INT, doc="STFT size")


@dataclass(frozen=True)
class Mixer(Section):
    kind: str = key(enum("linear", "conv"), doc="one 1x1 layer, or a deeper Mixer over time")
    init: str = key(enum("random", "identity"), doc="PyTorch's default init, or the separators' output")
    hidden: int = key(POSITIVE_INT, doc="the conv Mixer's channels", not_compared=_CONV_ONLY)
    layers: int = key(POSITIVE_INT, doc="the conv Mixer's layers", not_compared=_CONV_ONLY)
    kernel: int = key(POSITIVE_INT, doc="the conv Mixer's kernel size", not_compared=_CONV_ONLY)


@dataclass(frozen=True)
class MixerTrain(Section):
    lr: float = key(POSITIVE_NUMBER, doc="the Mixer's RMSProp learning rate")
    batch_size: int = key(POSITIVE_INT, doc="the Mixer's batch (one value, not per source)")
    max_epochs: int = key(POSITIVE_INT, doc="the Mixer's budget in epochs (train.unit epochs)")
    valid_every_epochs: int = key(POSITIVE_INT, doc="epochs between the Mixer's validations (train.unit epochs)")
    steps: int = key(POSITIVE_INT, doc="the Mixer's step budget (train.unit steps)")
    valid_every: int = key(POSITIVE_INT, doc="steps between the Mixer's validations (train.unit steps)")
    checkpoint_every: int = key(POSITIVE_INT, doc="steps between the Mixer's resumable checkpoints",
                                not_compared=_RESUMABLE)
    loss: str = key(enum("mse", "l1"), doc="the Mixer's loss")
    edge_trim: int = key(NONNEG_INT, doc="samples at each edge of the chunk left out of the loss")


@dataclass(frozen=True)
class Health(Section):
    min_level_db: float = key(NUMBER, doc="estimates this much quieter than the target are reported")
    min_sdr_db: float = key({"type": "number", "minimum": 0}, doc="validation SDR this close to 0 dB is reported")


@dataclass(frozen=True)
class EarlyStoppingParams(Section):
    patience: int | None = key({"type": ["integer", "null"], "minimum": 1},
                               doc="validations without improvement before stopping; null: the step budget only")
    min_delta: float = key({"type": "number", "minimum": 0}, doc="dB a validation must beat the best by")


@dataclass(frozen=True)
class Speed(Section):
    channels_last: bool = key(BOOLEAN, doc="the separators' convolutions in the channels-last (NHWC) memory layout")
    compile: str = key(enum("none", "default", "reduce-overhead", "max-autotune"),
                       doc="torch.compile of the model and loss of a step, in this mode (reduce-overhead: CUDA graphs)")
    optimizer_impl: str = key(enum("torch", "for_loop", "foreach"),
                              doc="RMSProp's kernels: torch's choice (foreach on CUDA, for_loop on CPU), or forced")
    cudnn_benchmark: bool = key(BOOLEAN, doc="cuDNN picks convolution algorithms by timing them (CUDA; needs "
                                "train.deterministic false: the pick may differ between runs)")
    pin_memory: bool = key(BOOLEAN, doc="batches in page-locked memory, copied to the GPU asynchronously (CUDA)")
    prefetch_factor: int = key(POSITIVE_INT, doc="batches each loader worker prepares ahead (num_workers > 0)")


@dataclass(frozen=True)
class Train(Section):
    seed: int = key(INTEGER, doc="seed of training", not_compared="a seed reproduces a random stream only within "
                    "the same code (the authors': 2021, configs/experiment/*.yaml)")
    loss: str = key(enum("l1", "mse"), doc="the separators' loss")
    optimizer: str = key(enum("rmsprop"), doc="RMSProp without momentum (the only one built)")
    lr: PerSource = key(PER_SOURCE_POSITIVE_NUMBER, doc="learning rate")
    lr_scale: float = key(POSITIVE_NUMBER, doc="multiplies every lr (profiles change this, not lr)")
    batch_size: PerSource = key(PER_SOURCE_POSITIVE_INT, doc="chunks per training batch")
    unit: str = key(enum("epochs", "steps"), doc="what the training budgets and validation intervals count "
                    "(separators and Mixer): the authors' epochs of the training songs, or steps")
    max_epochs: PerSource = key(PER_SOURCE_POSITIVE_INT, doc="the budget in epochs (train.unit epochs)")
    valid_every_epochs: PerSource = key(PER_SOURCE_POSITIVE_INT,
                                        doc="epochs between validations (train.unit epochs)")
    steps: PerSource = key(PER_SOURCE_POSITIVE_INT, doc="the step budget (train.unit steps)")
    valid_every: PerSource = key(PER_SOURCE_POSITIVE_INT, doc="steps between validations (train.unit steps)")
    early_stopping: EarlyStoppingParams = key(doc="stop once validations no longer improve")
    deterministic: bool = key(BOOLEAN, doc="cuDNN's deterministic algorithms on CUDA")
    valid_sdr: str = key(enum("authors", "mdx"), doc="the validation SDR's formula")
    valid_reduce: str = key(enum("mean", "median"), doc="how validation tracks' SDRs are reduced")
    valid_chunks: str = key(enum("training", "inference"), doc="how a validation track is cut")
    amp: bool = key(BOOLEAN, doc="mixed precision on CUDA")
    amp_dtype: str = key(enum("bfloat16", "float16"), doc="mixed precision's type")
    checkpoint_every: int = key(POSITIVE_INT, doc="steps between resumable checkpoints", not_compared=_RESUMABLE)
    log_every: int = key(POSITIVE_INT, doc="steps averaged into one dvclive row", not_compared="logging")
    remix_prob: float = key(PROBABILITY, doc="per source, the chance its stem comes from its own random track")
    num_workers: int = key(NONNEG_INT, doc="data loading processes", not_compared="data loading processes"
                           + _NO_EFFECT)
    health: Health = key(doc="collapse check of each trained separator", not_compared="a check of the trained "
                         "separators (mdxnet's own), not a choice of how they are trained")
    device: str = key(DEVICE, doc="where `mdxnet train` runs", not_compared="where training runs")
    gpus: PerSource = key(PER_SOURCE_POSITIVE_INT, doc="processes (one GPU each) a separator trains on, launched "
                          "by torchrun; each computes BatchNorm statistics over its share of the batch")
    speed: Speed = key(doc="how a training step is computed", not_compared="how a training step is computed "
                       "(memory layout, compilation, optimizer kernels, data loading): the same mathematics, up to "
                       "float rounding")
    mixer: MixerTrain = key(doc="the Mixer's training")


@dataclass(frozen=True)
class Separate(Section):
    stitch: str = key(enum("trim", "crossfade"), doc="how chunks are joined")
    chunk_frames: PerSource = key(PER_SOURCE_POSITIVE_INT, doc="STFT frames per chunk")
    overlap: PerSource = key(PER_SOURCE_NONNEG_INT, doc="samples trimmed or crossfaded at each chunk edge")
    batch: int = key(POSITIVE_INT, doc="chunks per forward pass", not_compared="chunks per forward pass"
                     + _NO_EFFECT)
    parallel: int = key(POSITIVE_INT, doc="separators run at once on the CPU",
                        not_compared="separators run at once on the CPU" + _NO_EFFECT)
    device: str = key(DEVICE, doc="where inference runs", not_compared="where inference runs")
    backend: str = key(enum("onnx", "torch"), doc="ONNX Runtime or PyTorch",
                       not_compared="ONNX Runtime or PyTorch: how inference runs, not what it computes")
    onnx_cache: str = key(TEXT, doc="where exported ONNX files live", not_compared="where exported ONNX files live")


@dataclass(frozen=True)
class Irm(Section):
    n_fft: int = key(POSITIVE_INT, doc="the oracle's STFT size")
    hop: int = key(POSITIVE_INT, doc="the oracle's STFT hop")
    alpha: float = key(POSITIVE_NUMBER, doc="the mask's exponent (2: IRM2)")


@dataclass(frozen=True)
class Bootstrap(Section):
    resamples: int = key(POSITIVE_INT, doc="bootstrap resamples of the songs")
    confidence: float = key({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                            doc="the interval's confidence")
    seed: int = key(NONNEG_INT, doc="seed of the resampling")
    min_songs: int = key(POSITIVE_INT, doc="fewer songs are flagged as unreliable")


@dataclass(frozen=True)
class Evaluate(Section):
    win: float = key(POSITIVE_NUMBER, doc="BSS Eval frame (s)", not_compared=_SISEC_FRAMES)
    hop: float = key(POSITIVE_NUMBER, doc="BSS Eval hop (s)", not_compared=_SISEC_FRAMES)
    mem_mb_per_minute: float = key(POSITIVE_NUMBER, doc="memory per scoring job, MB per minute of audio",
                                   not_compared="a memory reservation per scoring job")
    jobs: int = key(POSITIVE_INT, doc="scoring processes", not_compared="scoring processes; no effect on the numbers")
    backend: str = key(enum("museval", "fast"), doc="museval or this project's fast BSS Eval",
                       not_compared="a row of its own when not museval (scoring_default_rows): this project's "
                       "default, not a recipe's, the base values staying the authors'")
    crosscheck_tolerance_db: float = key(
        {"type": "number", "exclusiveMinimum": 0}, doc="largest difference (dB) of the fast backend from museval",
        not_compared="how far the fast backend may differ from museval (evaluate.backend's row)")
    irm: Irm = key(doc="the ideal ratio mask oracle", not_compared="the IRM oracle baseline row (SiSEC2018's "
                   "IRM2), not the model")
    audit_tolerance: float = key({"type": "number", "minimum": 0}, doc="`mdxnet audit` flags numbers further off "
                                 "(dB)", not_compared="`mdxnet audit`'s flagging threshold")
    bootstrap: Bootstrap = key(doc="uncertainty of the medians over songs",
                               not_compared="the uncertainty shown beside the medians, not the medians")


@dataclass(frozen=True)
class DemucsParams(Section):
    version: str = key(TEXT, doc="the demucs package version that makes the estimates (checked at run time)")
    model: str = key(TEXT, doc="the pretrained model's name")
    url: str = key(URL, doc="where the model file is downloaded from",
                   not_compared="where the model file is downloaded from (its content: blend.demucs.sha256)")
    sha256: str = key({"type": "string", "pattern": "^[0-9a-f]{8,64}$"},
                      doc="the model file's sha256, or its prefix (demucs' signature)")
    cache: str = key(TEXT, doc="where the downloaded model file is kept", not_compared="where the model file is kept")
    split: bool = key(BOOLEAN, doc="apply_model's split: the mixture in overlapping segments")
    overlap: float = key({"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                         doc="apply_model's overlap of the segments")
    shifts: int = key(NONNEG_INT, doc="apply_model's random time shifts averaged (0: none)")
    normalise: str = key(enum("stereo", "mono", "none"), doc="the mixture's mean and std removed before Demucs and "
                         "put back after: over both channels, of the mono downmix, or none")


@dataclass(frozen=True)
class Blend(Section):
    # a name may not start with `no-mixer-`: blend-no-mixer-<name> is the run without the Mixer
    second: dict = key({"type": "object", "propertyNames": {"pattern": "^(?!no-mixer-)[a-z0-9][a-z0-9_-]*$"},
                        "additionalProperties": TEXT}, doc="{name: folder} of second systems to blend with")
    weights: dict = key(per_source_object({"type": "number", "minimum": 0, "maximum": 1}),
                        doc="b, the weight of our estimate per source")
    demucs: DemucsParams = key(doc="Demucs v2 as the workflow runs it (blend.second folder estimates/demucs)")


@dataclass(frozen=True)
class Report(Section):
    compare_with: str = key(enum("ismir2021-mdx-workshop", "arxiv-2111.12203"), doc="the paper version compared with")
    boxplot: str = key({"type": "string", "pattern": "\\.png$"}, doc="the box plot's file name")


def _published_files() -> dict:
    """A file name per source, and the Mixer's (null: none)."""
    files = per_source_object(TEXT)
    files["required"].append("mixer")
    files["properties"]["mixer"] = {"type": ["string", "null"], "minLength": 1}
    return files


_PUBLISHED_FILES = _published_files()


@dataclass(frozen=True)
class Published(Section):
    dir: str = key(TEXT, doc="where the downloaded files are")
    files: dict = key(_PUBLISHED_FILES, doc="file of each separator and of the Mixer (null: none) in `dir`")
    mixer_sources: list = key(array(SOURCE, uniqueItems=True), doc="source order of the Mixer file")


@dataclass(frozen=True)
class Models(Section):
    origin: str = key(enum("train", "import"), doc="trained here, or published weights imported")
    published: Published = key(doc="the published weights")


@dataclass(frozen=True)
class Params(Section):
    """The resolved params (recipe and profile applied), one typed section per block of params.yaml."""

    recipe: str | None = key(enum("authors", "paper", "mdxnet"), doc="how: the overlay from `recipes` applied",
                             not_compared="the recipe itself (named above the table)")
    profile: str | None = key(TEXT, doc="the scale: the overlay from `profiles` applied after the recipe",
                              not_compared="the profile itself (named above the table)")
    sample_rate: int = key({"type": "integer", "minimum": 8000}, doc="samples per second of every signal")
    sources: list = key(array(SOURCE, minItems=1, uniqueItems=True), doc="the sources separated",
                        not_compared="the four MUSDB sources, all separated")
    data: Data = key(doc="the dataset")
    augment: Augment = key(doc="the pitch/tempo augmentation grid")
    sampler: Sampler = key(doc="training examples")
    model: Model = key(doc="the separator network, shared or per source")
    mixer: Mixer = key(doc="the Mixer over the separators' outputs")
    train: Train = key(doc="training the separators and the Mixer")
    separate: Separate = key(doc="inference")
    evaluate: Evaluate = key(doc="scoring")
    blend: Blend = key(doc="the blend row with a second system")
    report: Report = key(doc="the report", not_compared="how results are reported")
    models: Models = key(doc="where the models come from", not_compared="where the models come from (trained "
                         "here, or published weights imported: the table labels those rows)")

    def to_dict(self) -> dict[str, Any]:
        """The resolved values as plain data (what checkpoints and reports record)."""
        global _TRACE
        saved, _TRACE = _TRACE, None  # recording everything is not reading everything
        try:
            return dataclasses.asdict(self)
        finally:
            _TRACE = saved

    def replace(self, overlay: dict) -> Params:
        """A copy with `overlay` deep-merged in, checked against the schema like any params file."""
        return from_resolved(deep_merge(self.to_dict(), overlay), "params (replaced values)")

    def standalone(self) -> dict[str, Any]:
        """A params file's contents that resolve to exactly these values (no profile applied on top)."""
        return {**self.to_dict(), "recipe": None, "recipes": {}, "profile": None, "profiles": {}}

    @property
    def hash(self) -> str:
        return params_hash(self.to_dict())


# ---- schema ----------------------------------------------------------------------------------------------------
def declarations(cls: type = None, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, declaration) of every field of `cls` (default: Params), a section's before its own fields."""
    cls = Params if cls is None else cls
    hints = typing.get_type_hints(cls)
    found = []
    for field in dataclasses.fields(cls):
        if "doc" not in field.metadata:
            raise TypeError(f"{cls.__name__}.{field.name} is not declared: give it a `key(...)`")
        found.append((f"{prefix}{field.name}", field.metadata))
        if is_section(hints[field.name]):
            found += declarations(hints[field.name], f"{prefix}{field.name}.")
    return found


def section_schema(cls: type) -> dict:
    """A section's JSON schema: closed, every field required, each field's fragment (or section) and doc."""
    hints = typing.get_type_hints(cls)
    properties = {}
    for field in dataclasses.fields(cls):
        declared = field.metadata
        kind = hints[field.name]
        fragment = section_schema(kind) if is_section(kind) else copy.deepcopy(declared["schema"])
        properties[field.name] = {**fragment, "description": declared["doc"]}
    return {"type": "object", "additionalProperties": False, "required": list(properties), "properties": properties}


# The raw file's overlay tables (checked against the overlay schema by `_validators`), resolved away.
_TABLES_DOC = {"recipes": "overlays saying how (authors, paper, mdxnet), applied first",
               "profiles": "overlays saying the scale, applied after the recipe"}


@functools.cache
def schema() -> dict:
    """The JSON schema of a params file, generated from the sections' declarations (`mdxnet params --schema`)."""
    generated = section_schema(Params)
    for table in OVERLAY_CHOICES.values():
        generated["properties"][table] = {"type": "object", "description": _TABLES_DOC[table]}
        generated["required"].append(table)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "description": "mdxnet params.yaml",
            "$defs": copy.deepcopy(DEFS), **generated}


def _without_required(node: Any) -> Any:
    """The schema of an overlay: any part of any section, with the same types and the same closed key sets."""
    if isinstance(node, dict):
        return {k: _without_required(v) for k, v in node.items() if k not in ("required", "minProperties")}
    if isinstance(node, list):
        return [_without_required(v) for v in node]
    return node


@functools.cache
def _validators():
    import jsonschema

    full = schema()
    overlay = _without_required({k: v for k, v in full.items() if k != "$schema"})
    overlay["type"] = ["object", "null"]
    overlay["properties"] = {k: v for k, v in overlay["properties"].items() if k not in OVERLAY_CHOICES
                             and k not in OVERLAY_CHOICES.values()}
    raw = copy.deepcopy(full)
    for choice, table in OVERLAY_CHOICES.items():
        raw["properties"][table] = {"type": "object", "additionalProperties": overlay}
        raw["properties"][choice] = {"anyOf": [full["properties"][choice], {"type": "null"}]}
    resolved = copy.deepcopy(full)
    for choice, table in OVERLAY_CHOICES.items():
        resolved["properties"][choice] = {"type": ["string", "null"]}
        del resolved["properties"][table]
    resolved["required"] = [key for key in resolved["required"] if key not in OVERLAY_CHOICES.values()]
    return jsonschema.Draft202012Validator(raw), jsonschema.Draft202012Validator(resolved)


def schema_problems(validator, values: Any, prefix: str = "") -> list[str]:
    """One line per schema violation, each naming the dotted key (the deepest failure of a oneOf)."""
    problems = []
    for error in validator.iter_errors(values):
        if error.context:  # "one value, or one per source": report the failure deepest inside the value
            error = max(error.context, key=lambda sub: len(sub.absolute_path))
        path = ".".join(map(str, error.absolute_path)) or "(top level)"
        message = error.message
        if error.validator == "additionalProperties":
            unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            path = ", ".join(f"{path}.{k}" if path != "(top level)" else k for k in unknown)
            message = "unknown key (misspelt?); allowed here: " + ", ".join(sorted(error.schema.get("properties", {})))
        problems.append(f"  {prefix}{path}: {message}")
    return sorted(set(problems))


def non_finite(values: Any, prefix: str = "") -> list[str]:
    """One line per key holding NaN or an infinity: no params key takes one, and JSON Schema's `number` (hence the
    schema's minimum/maximum) lets them through (`train.lr_scale: .nan` ended in a traceback mid-training)."""
    if isinstance(values, dict):
        return [line for key, value in values.items() for line in non_finite(value, f"{prefix}{key}.")]
    if isinstance(values, list):
        return [line for index, value in enumerate(values) for line in non_finite(value, f"{prefix}{index}.")]
    if isinstance(values, float) and not math.isfinite(values):
        return [f"  {prefix[:-1]}: {values} is not a finite number"]
    return []


# ---- reading ---------------------------------------------------------------------------------------------------
def deep_merge(base: dict, overlay: dict) -> dict:
    """Return a copy of `base` with `overlay` merged in; nested dicts merge, everything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# The two overlays over the base values, applied in this order: the recipe (how), then the profile (the scale).
OVERLAY_CHOICES = {"recipe": "recipes", "profile": "profiles"}


def resolve_profile(raw: dict, profile: str | None = None, recipe: str | None = None) -> dict:
    """Apply `recipes[recipe]`, then `profiles[profile]` (default: the file's own choices) over the base values;
    the result names both choices and has no `recipes` / `profiles` tables."""
    chosen = {"recipe": recipe, "profile": profile}
    resolved = {k: v for k, v in raw.items() if k not in OVERLAY_CHOICES.values()}
    for choice, table in OVERLAY_CHOICES.items():
        name = raw.get(choice) if chosen[choice] is None else chosen[choice]
        resolved[choice] = name
        if name is None:
            continue
        overlays = raw.get(table) or {}
        if name not in overlays:
            raise ParamsError(f"{choice} {name!r} is not defined under '{table}:' (known: {sorted(overlays)})")
        resolved = deep_merge(resolved, overlays[name] or {})
    return resolved


def check_raw(raw: Any, where: str) -> dict:
    """Schema check of a params file's contents: base values complete, every profile's overlay and result valid."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{where} must hold a mapping at the top level")
    raw_validator, resolved_validator = _validators()
    problems = schema_problems(raw_validator, raw) + non_finite(raw)
    if not problems:  # every combination a user can switch to, not only the chosen one
        for recipe in raw.get("recipes") or {None: None}:
            for profile in raw.get("profiles") or {None: None}:
                prefix = f"recipe {recipe} + profile {profile} resolves to "
                problems += schema_problems(resolved_validator, resolve_profile(raw, profile, recipe), prefix)
    if problems:
        raise ParamsError(f"{where} has bad values (schema: `mdxnet params --schema`, declared in "
                          "src/mdxnet/config.py); fix them and rerun:\n"
                          + "\n".join(problems))
    return raw


def from_resolved(resolved: dict, where: str) -> Params:
    """Typed params from already-resolved values (a checkpoint's record, a test's edit), schema-checked."""
    problems = schema_problems(_validators()[1], resolved) + non_finite(resolved)
    if problems:
        raise ParamsError(f"{where} has bad values:\n" + "\n".join(problems))
    return Params.build(resolved)


def load_params(path: str | Path = DEFAULT_PARAMS, profile: str | None = None, recipe: str | None = None) -> Params:
    """Read a params file, check it against the schema, and return the resolved (profile-applied) values."""
    path = Path(path)
    if path.is_dir():
        raise ParamsError(f"params file {path} is a folder: pass the file itself (--params PATH/params.yaml)")
    if not path.is_file():
        raise ParamsError(f"params file {path} not found: run from the project root or pass --params PATH")
    try:
        raw = load_yaml(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"params file {path} is not valid YAML: {err}") from err
    check_raw(raw, f"params file {path}")
    try:
        resolved = resolve_profile(raw, profile, recipe)
    except ParamsError as err:
        raise ParamsError(f"params file {path}: {err}") from None
    return from_resolved(resolved, f"params file {path}")


def per_source(value: Any, source: str) -> Any:
    """A value that is either shared (scalar) or given per source (a dict keyed by source name)."""
    if isinstance(value, dict):
        if source not in value:
            raise ParamsError(f"no value for source {source!r} in {value}")
        return value[source]
    return value


def separator_kwargs(params: Params, source: str) -> dict[str, Any]:
    """The separator config for one source, from the resolved params: `arch` (which network class,
    mdxnet.models.separator_from_kwargs) and that class's keyword arguments. Checkpoints record it whole."""
    if source not in params.sources:
        raise ParamsError(f"unknown source {source!r}; params.yaml lists {params.sources}")
    model = params.model
    return {field.name: per_source(getattr(model, field.name), source) for field in dataclasses.fields(model)}


def as_plain(params: dict | Params) -> dict[str, Any]:
    """Resolved params as plain data; a plain mapping (a stand-in task's record in tests) is taken as it is."""
    return params.to_dict() if isinstance(params, Params) else copy.deepcopy(dict(params))


def params_hash(params: dict | Params) -> str:
    """Short, stable hash of resolved params (key order does not matter)."""
    blob = json.dumps(as_plain(params), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


# ---- tracing which keys a command reads --------------------------------------------------------------------------
def start_trace() -> None:
    """Record every params key read in this process; written to $MDXNET_PARAMS_TRACE at exit (if set)."""
    global _TRACE
    target = os.environ.get(TRACE_ENV)
    if not target or _TRACE is not None:
        return
    _TRACE = set()

    def write() -> None:
        line = json.dumps({"argv": sys.argv[1:], "keys": sorted(_TRACE or ())})
        with open(target, "a") as handle:
            handle.write(line + "\n")

    atexit.register(write)
