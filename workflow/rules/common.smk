# Shared set-up of the workflow: params validation and profile resolution, the params each rule depends on,
# and the track lists that only exist once the dataset does (read after the `data_check` checkpoint).

import json
import math
import os
import shlex
import sys
from functools import cache
from pathlib import Path

import yaml
from mdxnet import stages
from mdxnet.config import ParamsError, load_params, per_source
from mdxnet.inference.demucs import model_file as demucs_model_file
from mdxnet.runs import (
    BASELINE_RUNS,
    DEMUCS_FOLDER,
    blend_runs,
    blended_run,
    mixer_runs,
    model_runs,
    scored_runs,
    second_name,
)

# The one params file. Every rule passes it to `mdxnet --params`, so values given any other way would be
# seen by Snakemake but not by the commands: refuse them instead of silently ignoring them.
PARAMS_FILE = "params.yaml"
if config != yaml.safe_load(Path(PARAMS_FILE).read_text()):  # the same YAML reading as `configfile:`
    raise WorkflowError(
        f"{PARAMS_FILE} is the only home of values: edit it (or run `dvc exp run -S key=value`) instead of "
        "passing --config/--configfile to snakemake"
    )

# The one reading of the params (mdxnet.config.load_params, as every `mdxnet` command does): the raw file
# (base values and every profile) checked against the closed schema, the profile applied, typed sections.
try:
    P = load_params(PARAMS_FILE)
except ParamsError as err:
    raise WorkflowError(str(err)) from None
# The resolved values as plain data, for the `params:` rerun triggers below.
RESOLVED = P.to_dict()
# dvc.yaml makes one `blend` stage per second system from this key as params.yaml states it, without the
# profile overlay (DVC cannot apply it): a profile that changed it would make the two orchestrators disagree.
if RESOLVED["blend"]["second"] != config["blend"]["second"]:
    raise WorkflowError(
        f"blend.second differs under profile {P.profile!r}: set it in the base values of {PARAMS_FILE} (DVC "
        "reads it there to make the blend stages), not in a profile"
    )
# likewise the folder of published files, a dependency of published/dvc.yaml's import stage
if RESOLVED["models"]["published"]["dir"] != config["models"]["published"]["dir"]:
    raise WorkflowError(
        f"models.published.dir differs under profile {P.profile!r}: set it in the base values of {PARAMS_FILE} "
        "(DVC reads it there for published/dvc.yaml), not in a profile"
    )

# The data.extra_test songs are named by params alone, before any dataset exists: one whose name cannot name
# its estimates folder ('...stem.mp4' -> '..') stops the workflow here, as one line, rather than inside the first
# input function that lists the test songs (an InputFunctionException with Snakemake's traceback). The checked
# dataset's own tracks are still refused there (list_test_songs), once they exist.
for _song in P.data.extra_test:
    from mdxnet.data.musdb import track_name
    from mdxnet.errors import UserError

    try:
        track_name(_song)
    except UserError as err:
        raise WorkflowError(f"params data.extra_test: {err}") from None

# Rules call the `mdxnet` of the environment that runs Snakemake, so `.venv/bin/snakemake` works unactivated.
shell.prefix(f"set -euo pipefail; PATH={shlex.quote(str(Path(sys.executable).parent))}:\"$PATH\"; ")

SOURCES = list(P.sources)
DATA_ROOT = P.data.root.rstrip("/")
# The release whose test songs are separated and scored (params data.score): the training release (data.root,
# checked by data_check), or another release in its own folder, made and checked by its own rules (data.smk).
# Only the scoring rules read it, so changing it retrains nothing.
SCORES_ANOTHER_RELEASE = P.data.scores_another_release
SCORE_ROOT = P.data.scored_root.rstrip("/")
AUGMENT_ROOT = P.augment.root.rstrip("/")
# Where the models come from (params models.origin): trained here (train.smk), or published weights imported
# into their own folder (import.smk), which skips augmentation and training. The two paths write their scores,
# estimates and table in different folders (published/ for imports), so that neither overwrites the other's
# results and each has its own DVC pipeline: dvc.yaml trains, published/dvc.yaml imports.
IMPORTING = P.models.origin == "import"
MODELS = "models/imported" if IMPORTING else "models"
OUTPUTS = "published/" if IMPORTING else ""
EVALUATION = f"{OUTPUTS}evaluation"
ESTIMATES = f"{OUTPUTS}estimates"
RESULTS = f"{OUTPUTS}results"
DATA_CHECK = "resources/data-check.json"
SCORE_CHECK = "resources/score-check.json" if SCORES_ANOTHER_RELEASE else DATA_CHECK
# Evaluation runs (mdxnet.runs, shared with `mdxnet plan`): the model runs share one separation per test track
# (separate_track jobs); `no-mixer` scores the four separators' estimates (estimates/no-mixer/test/<track>/), and
# each Mixer run (MIXER_RUNS: run -> the --kind its Mixer is trained with, None: params) feeds those same
# estimates to its Mixer (mix_track jobs). Then the two baselines, and one blend run per second system of params
# blend.second. Imported weights have their Mixer where one is given, and no conv Mixer.
MIXER_RUNS = mixer_runs(IMPORTING, P.models.published.files["mixer"])
MODEL_RUNS = model_runs(MIXER_RUNS)
BLEND_RUNS = blend_runs(P.blend.second, MODEL_RUNS)
RUNS = scored_runs(MODEL_RUNS, BLEND_RUNS)
USES_DEMUCS = DEMUCS_FOLDER in BLEND_RUNS.values()
# the Demucs model file of params blend.demucs, downloaded once into its cache
DEMUCS_MODEL = demucs_model_file(P.blend.demucs).as_posix()
# Augmentation and training (`priority: 1`) are the critical path; the baselines need no model, so their
# scoring jobs wait and fill the cores training leaves idle (e.g. while the Mixer trains on one core).


wildcard_constraints:
    source="|".join(SOURCES),
    run="|".join(RUNS),
    mixer="|".join(MIXER_RUNS),


# ---- what each rule depends on --------------------------------------------------------------------------------
# mdxnet.stages declares, per DVC stage, the params keys and the package modules the stage depends on (dvc.yaml's
# lists are generated from it). The rules read the same declaration, the modules as inputs, and the RESOLVED
# values of the keys as a `params:` entry, so each rule's params rerun trigger fires exactly when one of them
# changes (a different profile that yields the same values reruns nothing).
def lookup(params, dotted):
    value = params
    for part in dotted.split("."):
        if part in SOURCES and not isinstance(value, dict):
            return value  # a value shared by every source (e.g. model.n_fft: 512) stands for each of them
        if not isinstance(value, dict) or part not in value:
            raise WorkflowError(f"mdxnet.stages names params key {dotted!r}, which {PARAMS_FILE} does not define")
        value = value[part]
    return value


def stage_param_keys(stage, item=None, pipeline="dvc.yaml"):
    """Params keys of a stage of dvc.yaml (the trained path, whose evaluation stages the rules read under either
    origin: the same code and keys) or published/dvc.yaml, for one foreach item; None means the whole file."""
    return stages.param_keys(pipeline, stage, item)


@cache
def code_deps(stage, pipeline="dvc.yaml"):
    """The package modules a stage depends on: inputs of the stage's Snakemake rules, as they are DVC deps of the
    stage, so a code change reruns the same steps in both orchestrators."""
    return stages.code_deps(pipeline, stage)


def stage_params(stage, item=None, pipeline="dvc.yaml"):
    """The resolved values a stage depends on, as a stable string (profile switches are already applied)."""
    keys = stage_param_keys(stage, item, pipeline)
    if keys is None:
        values = RESOLVED
    else:
        values = {key: lookup(RESOLVED, key) for key in keys
                  if key.split(".")[0] not in ("recipe", "recipes", "profile", "profiles")}
    return json.dumps(values, sort_keys=True)


# ---- track lists (known once the dataset exists) -------------------------------------------------------------
def checked_dataset():
    """Waits for the data check (a checkpoint): the track lists below are read from the checked dataset."""
    return checkpoints.data_check.get().output.report


def scored_dataset():
    """Waits for the check of the scored release (a checkpoint: the data check itself where it is the training
    release): the test songs are read from it."""
    if SCORES_ANOTHER_RELEASE:
        return checkpoints.score_check.get().output.report
    return checked_dataset()


def train_tracks():
    """The training tracks, named as `mdxnet augment` names their cache: the sampler's list (same split)."""
    from mdxnet.data.musdb import split_tracks, track_name

    checked_dataset()
    return [track_name(track) for track in split_tracks(P, "train")]


@cache
def _test_songs(checked_at):
    from mdxnet.data.musdb import list_test_songs, track_name
    from mdxnet.errors import UserError

    try:
        return {track_name(path): str(path) for path in list_test_songs(P)}
    except UserError as err:  # e.g. a data.extra_test song whose name cannot name its estimates folder
        raise WorkflowError(str(err)) from None


def test_songs():
    """{track name: path} of the scored release's test tracks plus the `data.extra_test` stem files."""
    # listed once per data check: a dataset rebuilt during this run is listed again after its new check
    return _test_songs(os.stat(scored_dataset()).st_mtime_ns)


def train_track_files(wildcards):
    """The files of training track `wildcards.track`: <root>/train/<name>/ (MUSDB18-HQ) or
    <root>/train/<name>.stem.mp4 (MUSDB18), whichever the dataset holds (`find_track` looks for both)."""
    from mdxnet.data.musdb import find_track

    checked_dataset()
    return track_files(str(find_track(DATA_ROOT, wildcards.track)))


def track_files(path):
    """The files of one track: its five wavs (MUSDB18-HQ folder) or the stem file itself."""
    if Path(path).is_dir():
        return [f"{path}/{name}.wav" for name in ["mixture", *SOURCES]]
    return [path]


@cache
def track_minutes(path):
    if Path(path).is_dir():
        import soundfile

        return soundfile.info(f"{path}/mixture.wav").duration / 60
    import stempeg

    return stempeg.Info(path).duration(0) / 60


def gpus(device):
    """GPUs a job asks the scheduler for (resource `gpu`; `--gpus=N` on SLURM): one where params.yaml says cuda,
    none for cpu or auto (auto uses a GPU only if the node has one), so a CPU-only cluster never sees a GPU
    request and a GPU cluster gets one per job that needs it."""
    return 1 if device == "cuda" else 0


def train_processes(source):
    """Processes a separator trains on (params train.gpus): torchrun starts them, one GPU each on CUDA."""
    return int(per_source(P.train.gpus, source))


def train_gpus(wildcards):
    """A separator's job asks for as many GPUs as it starts processes (none unless train.device is cuda)."""
    return gpus(P.train.device) * train_processes(wildcards.source)


def train_launcher(wildcards):
    """What starts `mdxnet train separator`: itself, or torchrun with train.gpus processes on this node
    (--standalone: a rendezvous of its own on a free port, so several such jobs share a node)."""
    processes = train_processes(wildcards.source)
    if processes == 1:
        return ""
    return f"torchrun --standalone --nproc_per_node {processes} --no-python "


def evaluate_gpus(wildcards):
    """The model runs separate on separate.device; the baselines run no model."""
    return gpus(P.separate.device) if wildcards.run in MODEL_RUNS else 0


def evaluate_mem_mb(wildcards):
    """museval's memory grows with track length: reserve evaluate.mem_mb_per_minute per minute of audio."""
    minutes = track_minutes(test_songs()[wildcards.track])
    return math.ceil(minutes * P.evaluate.mem_mb_per_minute)


def augment_manifests(wildcards=None):
    return expand(f"{AUGMENT_ROOT}/{{track}}/manifest.json", track=train_tracks())


def evaluation_files(runs):
    return expand(f"{EVALUATION}/{{run}}/test/{{track}}.json", run=runs, track=sorted(test_songs()))


# ---- inputs ------------------------------------------------------------------------------------------------
def dataset_made(root):
    """What making the dataset at `root` produces, by data.origin: the generator writes its split file last; a
    download is extracted aside and renamed into place, so the folder itself is complete once it exists."""
    return {"synth": f"{root}/mdxnet_dataset.json", "fetch": directory(root)}[P.data.origin]


def dataset_folder(made, root):
    """The dataset folder a data check reads, from what making it produced (`dataset_made`): the split file's
    folder (synth), the folder itself (fetch: its dirname would be the folder above); `root` where nothing was
    made (existing)."""
    if not made:
        return root
    return made[0] if P.data.origin == "fetch" else os.path.dirname(made[0])


def dataset_ready(root=DATA_ROOT, key="data.root", release=P.data.dataset):
    """What a data check waits for: the finished dataset, or an existing copy (`data.origin: existing`)."""
    if P.data.origin == "existing":
        if not Path(root).is_dir():
            raise WorkflowError(
                f"data.origin is 'existing' but {key} {root} is not a folder: point {key} at a copy of "
                f"{release} (musdb18hq: MUSDB18-HQ, musdb18: MUSDB18), or set data.origin to fetch or synth in "
                "params.yaml"
            )
        return []
    return [str(dataset_made(root))]


def run_stage(run):
    """The dvc.yaml stage that scores a run: `evaluate` for the model runs, `blend` for the blends,
    `baselines` for the others."""
    if run in BLEND_RUNS:
        return "blend"
    return "evaluate" if run in MODEL_RUNS else "baselines"


def run_estimates(run, track):
    """The stored estimates of one model run and track (musdb layout, float32 wav)."""
    return [f"{ESTIMATES}/{run}/test/{track}/{source}.wav" for source in SOURCES]


def crosscheck_track():
    """The track every run's museval cross-check scores (evaluate.backend fast): the shortest, for speed."""
    songs = test_songs()
    return min(songs, key=lambda name: (track_minutes(songs[name]), name))


def second_system_inputs(wildcards):
    """One track's estimates of a blend run's second system. A folder the workflow writes itself (a model run's
    estimates/<run>) comes from its rule; any other must hold every test track and source before anything is
    scored: what it lacks stops the workflow, named."""
    from mdxnet.evaluation.blend import missing_tracks, track_folder

    folder = BLEND_RUNS[wildcards.run]
    parts = folder.split("/")
    if folder == DEMUCS_FOLDER:
        return run_estimates("demucs", wildcards.track)
    if len(parts) == 2 and parts[0] == ESTIMATES and parts[1] in MODEL_RUNS:
        return run_estimates(parts[1], wildcards.track)
    faults = missing_tracks(folder, sorted(test_songs()), SOURCES)
    if faults:
        name = second_name(wildcards.run)
        raise WorkflowError(f"params blend.second.{name} points at {folder}, which cannot be blended: "
                            + "; ".join(faults) + " (musdb layout: <folder>/test/<track>/<source>.wav, every "
                            "test track; see README, Blending with a second system)")
    return [f"{track_folder(folder, wildcards.track)}/{source}.wav" for source in SOURCES]


def crosscheck_flag(wildcards):
    """`--cross-check` on one track per run when the scores come from the fast backend."""
    return "--cross-check" if P.evaluate.backend != "museval" and wildcards.track == crosscheck_track() else ""


def scored_estimates(wildcards):
    """A model run's stored estimates of the track; the baselines compute theirs in the scoring job."""
    return run_estimates(wildcards.run, wildcards.track) if wildcards.run in MODEL_RUNS else []


def estimator_args(wildcards, input):
    if wildcards.run not in MODEL_RUNS:
        return BASELINE_RUNS[wildcards.run]
    folder = shlex.quote(os.path.dirname(input.estimates[0]))
    return f"--estimator model{' --no-mixer' if wildcards.run == 'no-mixer' else ''} --estimates {folder}"


def model_file(name):
    """The file that says a model is ready: its checkpoint, or for an import its record (written last)."""
    return f"{MODELS}/{name}.import.json" if IMPORTING else f"{MODELS}/{name}.pt"
