"""The two references of every recipe-governed params value, each written once with where it comes from, and the
table of a run's values that differ from them (`mdxnet params --deviations`, results/table.md).

References (read for this table; nothing here is from memory):
- the authors' code: kuielab/mdx-net, branch Leaderboard_A (training), and kuielab/mdx-net-submission, branch
  leaderboard_A (inference: models.py, predict_blend.py);
- the paper's text: KUIELAB-MDX-Net, ISMIR 2021 MDX workshop version (mdx-workshop/mdx-submissions21, paper.md
  at 836a682: a commit of 24 Oct 2021 whose front matter is dated 10 August 2021). Its later revisions (98c4390,
  26 Oct 2021, still with the workshop numbers; f4022cf and 97b6502, 1 Nov 2021, front matter dated 26 October
  2021, where the numbers of arXiv 2111.12203 first appear, see evaluation/references.py) rewrite the
  introduction and add the Demucs blend to the method, but state the same values as compared here; the loss is worded "time-domain l1
  loss" instead of "waveform L1 loss". Where the paper is silent, its reference is the authors' value, marked
  "silent".

Kinds of deviation (`Deviation.kind`):
- recipe (paper's text) / recipe (authors' code): the run follows one reference where the two disagree;
- mdxnet opt-in: this project's own choice, in neither reference (a governed key's value, or one of this
  project's own switches, declared with `opt_in` in mdxnet.config, set away from its neutral value);
- scale (profile NAME): the profile sizes it (steps, model sizes, batch) or the authors count it in epochs;
  network (profile NAME) when that profile swaps the network (v1); mdxnet opt-in (profile NAME) when the profile
  sets a choice of method (a `method` row: e.g. the Mixer's init), not a size;
- edited base value: a base value of params.yaml changed away from the authors' (e.g. `dvc exp run -S ...`);
- fixed: a deviation of this project that no params key switches (the augmentation tool, the Mixer's validation
  score);
- authors' code bug, not reproduced.

Every leaf key of the params is either a row of GOVERNED or declared in mdxnet.config (`key`) with why it is not
compared (`not_compared`, itself or its section) or as this project's own switch (`opt_in`, with its neutral
value): tests/test_recipes.py fails on a new key that is none of these.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdxnet.config import declarations, load_yaml, resolve_profile

AUTHORS = "kuielab/mdx-net@Leaderboard_A"
SUBMISSION = "kuielab/mdx-net-submission@leaderboard_A"
PAPER = ("KUIELAB-MDX-Net, ISMIR 2021 MDX workshop paper (mdx-submissions21 paper.md at 836a682, a commit of 24 Oct "
         "2021, front matter dated 10 Aug 2021)")
SILENT = "silent (the authors' value)"

KIND_PAPER = "recipe (paper's text)"
KIND_AUTHORS = "recipe (authors' code)"
KIND_OPT_IN = "mdxnet opt-in"
KIND_FIXED = "fixed (not a param)"
KIND_BUG = "authors' code bug, not reproduced"
KIND_EDITED = "edited base value (not the authors')"
KIND_SCORING = "mdxnet default (scoring; cross-checked)"
KIND_STAND_IN = "mdxnet default (a stand-in second system, instead of or beside Demucs)"
KIND_EQUAL = "equal to both"  # shown with --all only: a governed value that differs from neither reference


def authors(path: str) -> str:
    return f"{AUTHORS}:{path}"


def submission(path: str) -> str:
    return f"{SUBMISSION}:{path}"


def paper(section: str) -> str:
    return f"paper §{section}"


class NoParamsValue:
    """A reference no params value equals (the authors count training in epochs, the run in steps)."""

    def __repr__(self) -> str:
        return "NO_PARAMS_VALUE"


NO_PARAMS_VALUE = NoParamsValue()


@dataclass(frozen=True)
class AnyOf:
    """A reference that several params values express (data.origin: MUSDB18-HQ downloaded or already there)."""

    values: tuple


@dataclass(frozen=True)
class Reference:
    value: Any  # comparable with the params value; NO_PARAMS_VALUE or AnyOf(...) where no single value is
    source: str
    shown: str | None = None  # how the reference states it, when that is not the params value itself


@dataclass(frozen=True)
class Governed:
    """One params key and its two references. `paper` None: the paper is silent (its reference = the authors')."""

    key: str
    authors: Reference
    paper: Reference | None = None
    # counted in epochs by the authors: never equal to a step count, always listed as scale
    epochs: bool = False
    # a choice of method, not a size: a profile that sets it makes an opt-in of this project, not a scale
    method: bool = False
    # (key, value): compared only when that key has that value (train.steps is read only when train.unit is steps)
    when: tuple[str, Any] | None = None
    # the kind of a base value of params.yaml that is not the authors' on purpose (instead of KIND_EDITED)
    base_kind: str | None = None

    @property
    def paper_reference(self) -> Reference:
        if self.paper is not None:
            return self.paper
        return Reference(self.authors.value, SILENT, self.authors.shown)


def _row(key, value, source, paper_value=None, paper_section=None, shown=None, paper_shown=None, epochs=False,
         method=False, when=None):
    paper_ref = None if paper_section is None else Reference(paper_value, paper(paper_section), paper_shown)
    return Governed(key, Reference(value, source, shown), paper_ref, epochs, method, when)


_SIZES = "Configurations and Training (table, v2 row)"
_PER_SOURCE = "configs/model/ConvTDFNet_{vocals,drums,bass,other}.yaml"
_EXPERIMENTS = "configs/experiment/multigpu_{vocals,drums,bass,other}.yaml"
_AUGMENT = "src/utils/data_augmentation.py"
_DATASET = "src/datamodules/datasets/musdb.py"
_EPOCHS, _STEPS = ("train.unit", "epochs"), ("train.unit", "steps")

GOVERNED: tuple[Governed, ...] = (
    # ---- data -------------------------------------------------------------------------------------------------
    _row("data.origin", AnyOf(("fetch", "existing")), authors("configs/datamodule/musdb18_hq.yaml"),
         AnyOf(("fetch", "existing")), "Experimental Results (\"we used the MUSDB-HQ dataset\")",
         shown="MUSDB18-HQ", paper_shown="MUSDB18-HQ"),
    # The release trained on. The release scored is data.score's: the results table marks which release each
    # paper row was scored on (mdxnet.evaluation.references).
    _row("data.dataset", "musdb18hq", authors("configs/datamodule/musdb18_hq.yaml"),
         "musdb18hq", "Experimental Results (\"For training, we used the MUSDB-HQ dataset\")"),
    # The authors score `musdb18_dev_wav` (MUSDB18 as wavs; the MUSDB18-HQ `dataset_hq` beside it is unused). The
    # workshop text says only "the MUSDB test set" (836a682 paper.md line 119): silent; its later revision says
    # "we only reported SDRs evaluated on MUSDB18, not MUSDB-HQ" (d7d2099 line 161).
    _row("data.score.dataset", "musdb18",
         "kuielab/mdx-net-submission@leaderbard_A_museval:eval_musdb18.py lines 7-8 (musdb18_dev_wav)"),
    _row("data.valid_split", "musdb", authors("configs/datamodule/musdb18_hq.yaml (validation_set: musdb's 14)"),
         "musdb", "Experimental Results (\"default 86/14 train and validation splits\")"),
    _row("sample_rate", 44100, authors("configs/datamodule/musdb18_hq.yaml")),
    # ---- augmentation grid (the tool is a fixed deviation, see FIXED) -----------------------------------------
    _row("augment.pitch_semitones", [-2, -1, 0, 1, 2], authors(f"{_AUGMENT} (P) and configs/datamodule/"
                                                              "musdb18_hq.yaml (aug_params: 2 semitones)")),
    _row("augment.tempo_rates", [0.8, 0.9, 1.0, 1.1, 1.2],
         authors(f"{_AUGMENT} (T = -20..+20 %, soundstretch -tempo)")),
    _row("augment.grid", "product", authors(f"{_AUGMENT} main() and {_DATASET} (every pitch x tempo split)")),
    _row("augment.speech_sources", ["vocals"], authors(f"{_AUGMENT} shift(voice=...): -speech for vocals")),
    # ---- training examples ----------------------------------------------------------------------------------
    _row("sampler.use_augmented", True, authors(f"{_DATASET} (the augmented splits join the training set)"),
         True, "Configurations and Training (\"pitch shift and time stretch\")"),
    _row("sampler.variant_draw", "pairs", authors(f"{_DATASET} __getitem__ (random.choice over every "
                                                  "(split, track) pair)")),
    _row("sampler.transforms", [], authors(f"{_DATASET} __getitem__ (chunks summed, nothing else)"),
         [], "Configurations and Training (only chunking, remixing, pitch shift, time stretch)", shown="none",
         paper_shown="none"),
    # the form before sampler.transforms (read when a params file still has it)
    _row("sampler.gain_db", [0.0, 0.0], authors(f"{_DATASET} __getitem__ (no gain)"),
         [0.0, 0.0], "Configurations and Training (only chunking, remixing, pitch shift, time stretch)"),
    _row("sampler.channel_swap_prob", 0.0, authors(f"{_DATASET} __getitem__ (no channel swap)"),
         0.0, "Configurations and Training (only chunking, remixing, pitch shift, time stretch)"),
    _row("sampler.silent_redraw_prob", 0.0, authors(f"{_DATASET} __getitem__ (no silence check)")),
    _row("train.remix_prob", 1.0, authors(f"{_DATASET} __getitem__ (each source from its own random.choice)")),
    # ---- separator training ---------------------------------------------------------------------------------
    _row("train.loss", "mse", authors("src/models/mdxnet.py AbstractMDXNet.training_step (mse_loss)"),
         "l1", "TFC-TDF-U-Net v2 (\"waveform L1 loss\"; the later revision: \"time-domain l1 loss\")"),
    _row("train.optimizer", "rmsprop", authors(f"{_PER_SOURCE} and configs/model/Mixer.yaml (torch RMSprop, "
                                               "momentum 0)"),
         "rmsprop", "Configurations and Training (\"RMSProp with no momentum\", all five models)"),
    _row("train.lr", {"vocals": 2e-4, "drums": 1e-4, "bass": 1e-4, "other": 1e-4}, authors(_PER_SOURCE)),
    _row("train.lr_scale", 1.0, authors(f"{_PER_SOURCE} (lr used as given)")),
    _row("train.batch_size", {"vocals": 16, "drums": 8, "bass": 8, "other": 8},
         authors(f"{_EXPERIMENTS} (one batch, split over 4/2/3/2 GPUs by DataParallel)")),
    _row("train.gpus", {"vocals": 4, "drums": 2, "bass": 3, "other": 2},
         authors(f"{_EXPERIMENTS} (trainer.gpus '0,1,2,3' / '0,1' / '0,1,2' / '0,1') and configs/trainer/"
                 "minimal.yaml (accelerator: dp, sync_batchnorm: False: each GPU's BatchNorm statistics over its "
                 "share of the batch)")),
    _row("train.amp", True, authors("configs/trainer/minimal.yaml (precision: 16, amp_backend: native)")),
    _row("train.amp_dtype", "float16", authors("configs/trainer/minimal.yaml (precision: 16)")),
    # Training length: epochs of the training songs (mdxnet.training.length turns them into steps from the
    # dataset on disk, as the authors' dataset and Lightning 1.3.8 count them), or steps (the small profiles).
    _row("train.unit", "epochs", authors(f"configs/trainer/minimal.yaml (max_epochs, check_val_every_n_epoch) and "
                                         f"{_DATASET} (epoch_size: the training songs' samples // the chunk)")),
    _row("train.max_epochs", 3000, authors("configs/trainer/minimal.yaml (max_epochs: 3000; early stopping ends "
                                           "it; checkpoints used: vocals epoch 2360, drums 600, bass 1720, other "
                                           "1720, README_SUBMISSION.md)"), when=_EPOCHS),
    _row("train.valid_every_epochs", 10, authors("configs/trainer/minimal.yaml (check_val_every_n_epoch: 10)"),
         when=_EPOCHS),
    _row("train.steps", NO_PARAMS_VALUE, authors("configs/trainer/minimal.yaml, configs/experiment/"
                                                 "multigpu_default.yaml, README_SUBMISSION.md"),
         shown="epochs until early stopping (max 3000; patience 50 validations); checkpoints used: "
               "vocals epoch 2360, drums 600, bass 1720, other 1720", epochs=True, when=_STEPS),
    _row("train.valid_every", NO_PARAMS_VALUE, authors("configs/trainer/minimal.yaml "
                                                       "(check_val_every_n_epoch: 10)"),
         shown="every 10 epochs", epochs=True, when=_STEPS),
    _row("train.early_stopping.patience", 50,
         authors("configs/experiment/multigpu_default.yaml (callbacks.early_stopping.patience: 50, validations)")),
    _row("train.early_stopping.min_delta", 0.05,
         authors("configs/callbacks/default.yaml (EarlyStopping on val/sdr, mode max, min_delta 0.05)")),
    _row("train.deterministic", True, authors("configs/trainer/minimal.yaml (deterministic: True)")),
    _row("train.valid_sdr", "authors", authors("src/utils/utils.py sdr(), per validation track")),
    _row("train.valid_chunks", "training", authors(f"{_DATASET} MusdbValidDataset (chunks of the training size, "
                                                   "n_fft/2 overlap) and src/models/mdxnet.py validation_step, "
                                                   "Mixer.validation_step (per chunk, overlap 8192)")),
    _row("train.valid_reduce", "mean", authors("src/models/mdxnet.py validation_step (Lightning on_epoch mean)")),
    # ---- Mixer ------------------------------------------------------------------------------------------------
    _row("mixer.kind", "linear", authors("src/models/mdxnet.py Mixer (nn.Linear(10, 8, bias=False))"),
         "linear", "Mixer (\"a single 1x1 convolution layer\")", method=True),
    _row("mixer.init", "random", authors("src/models/mdxnet.py Mixer (nn.Linear's default init)"), method=True),
    _row("train.mixer.lr", 3e-3, authors("configs/model/Mixer.yaml")),
    _row("train.mixer.batch_size", 16, authors("configs/experiment/mixer.yaml")),
    _row("train.mixer.loss", "mse", authors("src/models/mdxnet.py Mixer.training_step (mse_loss)")),
    _row("train.mixer.edge_trim", 8192, authors("configs/model/Mixer.yaml (overlap, cut from the loss)")),
    _row("train.mixer.max_epochs", 10, authors("configs/experiment/mixer.yaml (max_epochs: 10)"), when=_EPOCHS),
    _row("train.mixer.valid_every_epochs", 1, authors("configs/experiment/mixer.yaml (check_val_every_n_epoch: 1)"),
         when=_EPOCHS),
    _row("train.mixer.steps", NO_PARAMS_VALUE, authors("configs/experiment/mixer.yaml (max_epochs: 10)"),
         shown="10 epochs", epochs=True, when=_STEPS),
    _row("train.mixer.valid_every", NO_PARAMS_VALUE,
         authors("configs/experiment/mixer.yaml (check_val_every_n_epoch: 1)"), shown="every epoch", epochs=True,
         when=_STEPS),
    # ---- inference ----------------------------------------------------------------------------------------------
    _row("separate.stitch", "trim", submission("predict_blend.py demix_base")),
    _row("separate.chunk_frames", 512, submission("models.py (chunk_size = hop * (2 dim_t - 1), dim_t 256)")),
    _row("separate.overlap", {"vocals": 3072, "drums": 2048, "bass": 8192, "other": 4096},
         submission("predict_blend.py demix_base (trim = n_fft // 2)")),
    # ---- the blend row ------------------------------------------------------------------------------------------
    _row("blend.weights", {"vocals": 0.9, "drums": 0.5, "bass": 0.5, "other": 0.7},
         submission("predict_blend.py (b = 0.5, 0.5, 0.7, 0.9 for bass, drums, other, vocals)")),
    # the second system: Demucs v2 run here (estimates/demucs) as predict_blend.py runs it
    Governed("blend.second", Reference({"demucs": "estimates/demucs"}, submission("predict_blend.py (Demucs, "
                                       "demix_demucs)"), "demucs: estimates/demucs (Demucs v2, run here)"),
             base_kind=KIND_STAND_IN),
    _row("blend.demucs.version", "2.0.3", submission("requirements.txt (demucs==2.0.3)")),
    _row("blend.demucs.model", "demucs", submission("download_demucs.py and predict_blend.py (demucs_name)")),
    _row("blend.demucs.sha256", "e07c671f", submission("download_demucs.py (PRETRAINED_MODELS, check_hash=True)")),
    _row("blend.demucs.split", True, submission("predict_blend.py demix_demucs (apply_model split=True)")),
    _row("blend.demucs.overlap", 0.5, submission("predict_blend.py demix_demucs (apply_model overlap=0.5)")),
    _row("blend.demucs.shifts", 0, submission("predict_blend.py demix_demucs (apply_model without shifts)")),
    _row("blend.demucs.normalise", "stereo", submission("predict_blend.py demix_demucs (mix.mean(), mix.std() "
                                                        "of the stereo mixture)")),
    # ---- network ------------------------------------------------------------------------------------------------
    _row("model.arch", "v2", authors("src/models/mdxnet.py ConvTDFNet"),
         "v2", "TFC-TDF-U-Net v2 and Configurations and Training"),
    _row("model.n_fft", {"vocals": 6144, "drums": 4096, "bass": 16384, "other": 8192}, authors(_PER_SOURCE),
         {"vocals": 6144, "drums": 4096, "bass": 16384, "other": 8192}, "Configurations and Training"),
    _row("model.dim_f", 2048, authors(_PER_SOURCE), 2048, _SIZES),
    _row("model.dim_t", 256, authors(_PER_SOURCE), 256, _SIZES),
    _row("model.hop", 1024, authors(_PER_SOURCE + " (hop_length)"), 1024, _SIZES),
    _row("model.num_blocks", 11, authors(_PER_SOURCE), 11, _SIZES),
    _row("model.num_convs", 3, authors(_PER_SOURCE + " (l)"), 3, _SIZES),
    _row("model.bottleneck", 8, authors(_PER_SOURCE + " (bn)"), 8, _SIZES),
    _row("model.growth", 32, authors(_PER_SOURCE + " (g)"), 32, "Configurations and Training "
                                                                  "(\"a linear factor of 32\")"),
    _row("model.channels", 32, authors(_PER_SOURCE + " (g, the first conv's channels)")),
    _row("model.kernel", 3, authors(_PER_SOURCE + " (k)")),
    _row("model.bias", False, authors(_PER_SOURCE)),
)

# Keys of the params' earlier forms, still compared where a params file has them (sampler.transforms replaced
# gain_db and channel_swap_prob; the step-counted loop dropped items).
FORMER_KEYS = frozenset({"sampler.gain_db", "sampler.channel_swap_prob", "sampler.items"})

def ignored_reasons() -> dict[str, str]:
    """Params keys (or whole sections) no recipe governs, each with why it is not compared: their declarations'
    `not_compared` (mdxnet.config.key)."""
    return {key: declared["not_compared"] for key, declared in declarations() if declared["not_compared"]}


def opt_ins() -> dict[str, Any]:
    """This project's own switches and their neutral values, the ones that behave as the authors' code: their
    declarations' `opt_in` (mdxnet.config.key)."""
    return {key: declared["opt_in"] for key, declared in declarations() if "opt_in" in declared}


@dataclass(frozen=True)
class Deviation:
    """One row of the table. `key` is a params key, or a topic for the rows no params key switches."""

    key: str
    value: str
    authors: str
    authors_source: str
    paper: str
    paper_source: str
    kind: str
    from_authors: bool
    from_paper: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SOUNDSTRETCH = authors(f"{_AUGMENT} shift()")
_MIXER_INIT = authors("src/models/mdxnet.py Mixer.__init__")

# Deviations no params key switches: always listed.
FIXED: tuple[Deviation, ...] = (
    Deviation("augmentation tool", "rubberband (pyrubberband; speech setting: src/mdxnet/data/augment.py)",
              "soundstretch (SoundTouch), -speech for vocals", _SOUNDSTRETCH,
              "\"pitch shift and time stretch\", no tool named", paper("Configurations and Training"),
              KIND_FIXED, True, False),
    Deviation("epoch's last batch (train.unit epochs)", "every step a full batch of train.batch_size chunks, "
              "ceil(epoch / batch) steps per epoch (src/mdxnet/training/length.py)",
              "the last batch of each epoch holds the rest, epoch mod batch chunks (DataLoader drop_last False; "
              "MUSDB18-HQ: 3,465 mod 16 = 9 for vocals, mod 8 = 1 for the others)",
              authors("src/datamodules/musdb_datamodule.py train_dataloader"), SILENT, SILENT, KIND_FIXED, True,
              False),
    Deviation("Mixer: validation score", "mean over the 4 sources of each source's score (src/mdxnet/training/"
              "validation.py)", "one SDR per track over the 4 sources pooled as one signal",
              authors("src/models/mdxnet.py Mixer.validation_step"), SILENT, SILENT, KIND_FIXED, True, False),
    Deviation("Mixer: separators' weights", "the trained separators, loaded and frozen",
              "never loaded: load_from_checkpoint's return value is discarded (random separators)", _MIXER_INIT,
              "\"Train the Mixer while freezing the pretrained weights of the separation models\"",
              paper("Configurations and Training"), KIND_BUG, True, False),
    Deviation("Mixer: separators' BatchNorm", "eval mode (running statistics, frozen)",
              "train mode: Lightning's model.train() reaches the frozen separators (batch statistics, running "
              "statistics updated)", authors("src/models/mdxnet.py Mixer (separators are submodules)"),
              SILENT, SILENT, KIND_BUG, True, False),
)


# The authors scored MUSDB18 with museval.eval_mus_track (their evaluation branch), as SiSEC2018 did; the paper
# names the metric ("the SiSEC2018 version of the SDR metric (BSS Eval v4 framewise multi-channel SDR)"), not a tool.
_AUTHORS_SCORING = "kuielab/mdx-net-submission@leaderbard_A_museval:eval_musdb18.py (museval.eval_mus_track)"


def scoring_default_rows(params) -> list[Deviation]:
    """The scoring backend when it is not museval: this project's default (evaluate.backend fast), a row of its
    own because the base values stay the authors' while the default params score with the fast backend."""
    backend = params.evaluate.backend
    if backend == "museval":
        return []
    value = (f"{backend} (src/mdxnet/evaluation/fast_bsseval.py: the same BSS Eval v4 frames; one track per run "
             f"re-scored by museval, stopping above {params.evaluate.crosscheck_tolerance_db:g} dB)")
    return [Deviation("evaluate.backend", value, "museval", _AUTHORS_SCORING,
                      "SiSEC2018 BSS Eval v4 framewise SDR, no tool named",
                      paper("Performance on the MUSDB Benchmark"), KIND_SCORING, True, False)]


# ---- comparing ---------------------------------------------------------------------------------------------------
def _expand(value: Any, sources: list[str]) -> Any:
    return value if isinstance(value, dict) else {source: value for source in sources}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def matches(reference: Any, value: Any, sources: list[str]) -> bool:
    """Whether a params value equals a reference value (per-source dicts and shared scalars compare per source)."""
    if isinstance(reference, NoParamsValue):
        return False
    if isinstance(reference, AnyOf):
        return any(matches(option, value, sources) for option in reference.values)
    if isinstance(value, AnyOf):  # two references compared with each other
        return any(matches(reference, option, sources) for option in value.values)
    if isinstance(reference, dict) or isinstance(value, dict):
        return _same(_expand(reference, sources), _expand(value, sources))
    return _same(reference, value)


def show(value: Any) -> str:
    """A params value as one short line."""
    if isinstance(value, dict):
        per_source = set(value) <= {"vocals", "drums", "bass", "other"}
        if per_source and len({json.dumps(v, sort_keys=True) for v in value.values()}) == 1 and value:
            return show(next(iter(value.values())))
        return ", ".join(f"{k}{' ' if per_source else ': '}{show(v)}" for k, v in value.items()) or "{}"
    if isinstance(value, list):
        if value and all(isinstance(v, dict) and "name" in v for v in value):  # sampler.transforms
            return "; ".join(_show_transform(v) for v in value)
        return "[" + ", ".join(show(v) for v in value) + "]" if value else "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _show_transform(spec: dict) -> str:
    args = ", ".join(f"{k}={show(v)}" for k, v in (spec.get("args") or {}).items())
    return f"{spec['name']}(p={show(spec.get('p'))}{', ' + args if args else ''})"


def _shown(reference: Reference) -> str:
    return reference.shown if reference.shown is not None else show(reference.value)


# ---- reading the params ----------------------------------------------------------------------------------------
def leaf_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys of the params' leaves: a typed section's fields (per-source dicts are one leaf)."""
    if dataclasses.is_dataclass(node):
        return [key for field in dataclasses.fields(node)
                for key in leaf_keys(object.__getattribute__(node, field.name), f"{prefix}{field.name}.")]
    return [prefix[:-1]]


def ignored(key: str) -> bool:
    """Whether `key` or a section holding it is declared not compared."""
    return _ignored_entry(key, ignored_reasons()) is not None


def lookup(values: dict, key: str, missing: Any = None) -> Any:
    node = values
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return missing
        node = node[part]
    return node


def _overlay_keys(overlay: Any, prefix: str = "") -> set[str]:
    if not isinstance(overlay, dict) or not overlay:
        return {prefix[:-1]} if prefix else set()
    return set().union(*(_overlay_keys(v, f"{prefix}{k}.") for k, v in overlay.items()))


def read_raw(path: str | Path) -> dict | None:
    """A params file's raw contents (recipes and profiles included), or None where there is none to read."""

    path = Path(path)
    if not path.is_file():
        return None
    raw = load_yaml(path.read_text())
    return raw if isinstance(raw, dict) else None


@dataclass(frozen=True)
class Overlays:
    """What the chosen recipe alone gives, and which keys the chosen profile sets (to tell scale from recipe)."""

    recipe_values: dict | None  # None: unknown (no params file to read)
    recipe_keys: frozenset[str]
    profile_keys: frozenset[str]
    profile_swaps_network: bool

    @classmethod
    def read(cls, raw: dict | None, recipe: str | None, profile: str | None) -> Overlays:
        if not raw:
            return cls(None, frozenset(), frozenset(), False)

        recipe_values = resolve_profile({**raw, "profile": None}, None, recipe)
        recipe_overlay = (raw.get("recipes") or {}).get(recipe) or {}
        overlay = (raw.get("profiles") or {}).get(profile) or {}
        return cls(recipe_values, frozenset(_overlay_keys(recipe_overlay)), frozenset(_overlay_keys(overlay)),
                   lookup(overlay, "model.arch") is not None)

    @staticmethod
    def _sets(keys: frozenset[str], key: str) -> bool:
        return any(k == key or k.startswith(key + ".") or key.startswith(k + ".") for k in keys)

    def profile_sets(self, key: str) -> bool:
        return self._sets(self.profile_keys, key)

    def recipe_sets(self, key: str) -> bool:
        return self._sets(self.recipe_keys, key)


# ---- the table -------------------------------------------------------------------------------------------------
def _kind(row: Governed, value: Any, params, overlays: Overlays, sources: list[str]) -> str:
    recipe_value = lookup(overlays.recipe_values, row.key, value) if overlays.recipe_values else value
    by_profile = overlays.profile_sets(row.key) and not matches(recipe_value, value, sources)
    if by_profile and row.method:
        return f"{KIND_OPT_IN} (profile {params.profile})"
    if by_profile or row.epochs:
        word = "network" if overlays.profile_swaps_network and by_profile else "scale"
        kind = f"{word} (profile {params.profile})"
        if by_profile and not matches(row.authors.value, recipe_value, sources):
            kind += f"; recipe {params.recipe}: {show(recipe_value)}"
        return kind
    to_authors = matches(row.authors.value, value, sources)
    if overlays.recipe_values is not None and not to_authors and not overlays.recipe_sets(row.key):
        return row.base_kind or KIND_EDITED  # the base values are the authors': neither overlay put this value here
    to_paper = matches(row.paper_reference.value, value, sources)
    if to_paper and not to_authors:
        return KIND_PAPER
    if to_authors and not to_paper:
        return KIND_AUTHORS
    return KIND_OPT_IN


def deviations(params, raw: dict | None = None, equal: bool = False) -> list[Deviation]:
    """Every value of `params` (resolved) that differs from the authors' code or the paper's text, then the
    fixed deviations and the authors' bugs not reproduced. `raw`: the params file's contents, to tell a value the
    profile sets (scale) from the recipe's (without it, only epoch-counted keys are called scale). `equal`: also
    every governed value that differs from neither (kind KIND_EQUAL), so that a reader sees what was compared."""
    values = params.to_dict()
    sources = list(params.sources)
    overlays = Overlays.read(raw, params.recipe, params.profile)
    missing = object()
    rows = []
    for row in GOVERNED:
        value = lookup(values, row.key, missing)
        if value is missing:  # a form of the params this file does not have (sampler.gain_db vs transforms)
            continue
        if row.when is not None and lookup(values, row.when[0], missing) != row.when[1]:
            continue  # not read with this run's values (the step counts when train.unit is epochs)
        paper_ref = row.paper_reference
        from_authors = not matches(row.authors.value, value, sources)
        from_paper = not matches(paper_ref.value, value, sources)
        if not (from_authors or from_paper or equal):
            continue
        kind = _kind(row, value, params, overlays, sources) if from_authors or from_paper else KIND_EQUAL
        rows.append(Deviation(row.key, show(value), _shown(row.authors), row.authors.source, _shown(paper_ref),
                              paper_ref.source, kind, from_authors, from_paper))
    return (rows + _opt_in_rows(values, sources, equal) + _profile_rows(values, params, overlays, sources)
            + scoring_default_rows(params) + list(FIXED))


_OPT_IN_SOURCE = "this project's own switch, whose neutral value behaves as the authors' code (src/mdxnet/config.py)"


def _opt_in_rows(values: dict, sources: list[str], equal: bool) -> list[Deviation]:
    """This project's own switches set away from their neutral value (with `equal`, also those left at it). The
    neutral value behaves as the authors' code, and the paper, silent on a switch the authors lack, follows it."""
    rows = []
    for key, neutral in opt_ins().items():
        value = lookup(values, key)
        off = not matches(neutral, value, sources)
        if off or equal:
            rows.append(Deviation(key, show(value), show(neutral), _OPT_IN_SOURCE, SILENT, SILENT,
                                  KIND_OPT_IN if off else KIND_EQUAL, off, off))
    return rows



def _ignored_entry(key: str, reasons: dict[str, str]) -> str | None:
    """The not-compared entry that covers `key` (the key itself or the section holding it); None: none does."""
    parts = key.split(".")
    return next((".".join(parts[:n]) for n in range(1, len(parts) + 1) if ".".join(parts[:n]) in reasons), None)


def _profile_rows(values: dict, params, overlays: Overlays, sources: list[str]) -> list[Deviation]:
    """The values a profile changes that no recipe governs (where the data lives, the generated dataset, the
    device): not compared with either reference, but listed as the profile's scale, so that every key a profile
    changes shows up (tests/test_recipes.py checks this for the paper rehearsal)."""
    if overlays.recipe_values is None:
        return []
    reasons = ignored_reasons()
    rows = []
    entries = {_ignored_entry(key, reasons) for key in overlays.profile_keys} - {None}
    for key in sorted(entries):
        value, without = lookup(values, key), lookup(overlays.recipe_values, key)
        if matches(without, value, sources):
            continue
        rows.append(Deviation(key, show(value), f"{show(without)} (without the profile)",
                              f"not compared: {reasons[key]}", SILENT, SILENT, f"scale (profile {params.profile})",
                              False, False))
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def heading(params) -> str:
    return (f"Recipe `{params.recipe}`, profile `{params.profile}`: every value that differs from the authors' "
            f"code ({AUTHORS}, {SUBMISSION}) or from the paper's text ({PAPER}). A paper cell \"silent\": the paper "
            "does not give the value, and the authors' value stands for it. `mdxnet params --deviations "
            "--recipe R --profile P` shows another combination.")


def render_markdown(rows: list[Deviation]) -> str:
    lines = ["| Key | This run | Authors' code | Paper | Differs from | Kind |", "|---|---|---|---|---|---|"]
    for row in rows:
        differs = ", ".join(name for name, flag in (("authors", row.from_authors), ("paper", row.from_paper)) if flag)
        paper_cell = "silent" if row.paper_source == SILENT else f"{row.paper} ({row.paper_source})"
        cells = [row.key if " " in row.key else f"`{row.key}`", row.value, f"{row.authors} ({row.authors_source})", paper_cell, differs, row.kind]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def table_data(params, rows: list[Deviation]) -> dict[str, Any]:
    """The table as data (results/table.json provenance)."""
    return {"recipe": params.recipe, "profile": params.profile, "authors": [AUTHORS, SUBMISSION], "paper": PAPER,
            "rows": [row.to_dict() for row in rows]}
