"""The one reading of params.yaml: YAML -> schema check (base and every profile) -> profile overlay ->
typed, frozen sections (`Params`).

Every entry point (each `mdxnet` command, the Snakefile) calls `load_params`, so a bad value or a misspelt key
at any level, inside a profile too, stops it at start with the key's dotted name. The schema
(`params.schema.yaml`, next to this module) is closed: every key must be named there, and the base values must
be complete, so code never supplies a default of its own.
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

DEFAULT_PARAMS = Path("params.yaml")
SCHEMA_PATH = Path(__file__).with_name("params.schema.yaml")
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
        """A copy with some values changed (a command's overrides), still recording reads under its key."""
        section = dataclasses.replace(self, **changes)
        object.__setattr__(section, "_path", object.__getattribute__(self, "_path"))
        return section

    @classmethod
    def build(cls, values: dict, path: str = ""):
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for field in dataclasses.fields(cls):
            kind = hints[field.name]
            value = values[field.name]
            if isinstance(kind, type) and issubclass(kind, Section):
                value = kind.build(value, f"{path}{field.name}.")
            kwargs[field.name] = value
        section = cls(**kwargs)
        object.__setattr__(section, "_path", path)
        return section


@dataclass(frozen=True)
class Record(Section):
    url: str
    md5: str | None
    size: int | None


@dataclass(frozen=True)
class Fetch(Section):
    url: str
    md5: str | None
    size: int | None
    musdb18: Record
    download_dir: str
    timeout_s: float


@dataclass(frozen=True)
class Synth(Section):
    tracks: int
    valid_tracks: int
    test_tracks: int
    seconds: float
    seed: int
    jobs: int
    soundfont: str
    syllables: bool


@dataclass(frozen=True)
class DataCheck(Section):
    mix_snr_db: float
    stem_mix_snr_db: float


@dataclass(frozen=True)
class Data(Section):
    dataset: str
    root: str
    decoded_root: str
    origin: str
    fetch: Fetch
    valid_split: str
    extra_test: list
    synth: Synth
    check: DataCheck


@dataclass(frozen=True)
class Augment(Section):
    root: str
    pitch_semitones: list
    tempo_rates: list
    grid: str
    speech_sources: list


@dataclass(frozen=True)
class Sampler(Section):
    use_augmented: bool
    variant_draw: str
    silence_db: float
    silent_redraw_prob: float
    max_redraws: int
    transforms: list

    def __post_init__(self):
        # Unknown transform classes and bad arguments stop every entry point at start, not when training begins
        # (audiomentations is imported only when the list is not empty: it takes ~1 s).
        specs = object.__getattribute__(self, "transforms")  # not a traced read (see TRACE_ENV)
        if specs:
            from mdxnet.errors import UserError
            from mdxnet.transforms import build_transforms

            try:
                build_transforms(specs, "sampler.transforms")
            except UserError as err:
                raise ParamsError(f"bad sampler transform (fix it in the params file): {err}") from None


@dataclass(frozen=True)
class Model(Section):
    arch: PerSource
    hop: PerSource
    dim_f: PerSource
    dim_t: PerSource
    num_blocks: PerSource
    num_convs: PerSource
    channels: PerSource
    growth: PerSource
    kernel: PerSource
    bottleneck: PerSource
    bias: PerSource
    n_fft: PerSource


@dataclass(frozen=True)
class Mixer(Section):
    kind: str
    init: str
    hidden: int
    layers: int
    kernel: int


@dataclass(frozen=True)
class MixerTrain(Section):
    lr: float
    batch_size: int
    steps: int
    valid_every: int
    checkpoint_every: int
    loss: str
    edge_trim: int


@dataclass(frozen=True)
class Health(Section):
    min_level_db: float
    min_sdr_db: float


@dataclass(frozen=True)
class EarlyStoppingParams(Section):
    patience: int | None
    min_delta: float


@dataclass(frozen=True)
class Train(Section):
    seed: int
    loss: str
    optimizer: str
    lr: PerSource
    lr_scale: float
    batch_size: PerSource
    steps: int
    valid_every: int
    early_stopping: EarlyStoppingParams
    deterministic: bool
    valid_sdr: str
    valid_reduce: str
    valid_chunks: str
    amp: bool
    amp_dtype: str
    checkpoint_every: int
    log_every: int
    remix_prob: float
    num_workers: int
    health: Health
    device: str
    mixer: MixerTrain


@dataclass(frozen=True)
class Separate(Section):
    stitch: str
    chunk_frames: PerSource
    overlap: PerSource
    batch: int
    parallel: int
    device: str
    backend: str
    onnx_cache: str


@dataclass(frozen=True)
class Irm(Section):
    n_fft: int
    hop: int
    alpha: float


@dataclass(frozen=True)
class Bootstrap(Section):
    resamples: int
    confidence: float
    seed: int
    min_songs: int


@dataclass(frozen=True)
class Evaluate(Section):
    win: float
    hop: float
    mem_mb_per_minute: float
    jobs: int
    backend: str
    crosscheck_tolerance_db: float
    irm: Irm
    audit_tolerance: float
    bootstrap: Bootstrap


@dataclass(frozen=True)
class Blend(Section):
    second: dict
    weights: dict


@dataclass(frozen=True)
class Report(Section):
    compare_with: str
    boxplot: str


@dataclass(frozen=True)
class Published(Section):
    dir: str
    files: dict
    mixer_sources: list


@dataclass(frozen=True)
class Models(Section):
    origin: str
    published: Published


@dataclass(frozen=True)
class Params(Section):
    """The resolved params (recipe and profile applied), one typed section per block of params.yaml."""

    recipe: str | None
    profile: str | None
    sample_rate: int
    sources: list
    data: Data
    augment: Augment
    sampler: Sampler
    model: Model
    mixer: Mixer
    train: Train
    separate: Separate
    evaluate: Evaluate
    blend: Blend
    report: Report
    models: Models

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
@functools.cache
def schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


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
        raise ParamsError(f"{where} has bad values (schema: src/mdxnet/{SCHEMA_PATH.name}); fix them and rerun:\n"
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
