"""The one declaration of what each DVC stage depends on: the `mdxnet` command functions it runs and the params it
reads. dvc.yaml and published/dvc.yaml hold the expanded lists (written by `mdxnet stages --write`, checked by
`mdxnet stages --check`), and the Snakemake rules read them from here (workflow/rules/common.smk).

- Params: selectors over the typed params (mdxnet.config.Params). A selector names a key or a section, minus
  subsections where the stage reads all but those; a foreach stage names its per-item keys (`train.lr` becomes
  `train.lr.${item}`). A section is expanded into its keys only where something below it is left out or per
  item, from the dataclass fields, so a key added to a selected section is selected with it.
- Code: the package modules the command functions import, followed transitively through module-level and
  function-local imports (a static scan of src/mdxnet), less the plumbing that does not shape results.

Stdlib, yaml and mdxnet.config only: the workflow and `mdxnet --help` import it without torch.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import typing
from dataclasses import dataclass
from pathlib import Path

from mdxnet.config import Params, is_section

PIPELINES = ("dvc.yaml", "published/dvc.yaml")  # trained models | models.origin: import

# Every stage depends on the recipe and profile choices: DVC cannot apply them, so it reruns when they change and
# Snakemake decides from the resolved values (common.smk) whether anything changed for the stage.
ALWAYS = ("profile", "profiles", "recipe", "recipes")

# Modules that do not shape a stage's results, neither listed nor followed: the CLI and its command modules
# (argument parsing; a command function's own imports are followed), error types, the params reader and schema
# check (its values are the params deps), atomic file writing, git provenance, free-disk checks before writing,
# the plan and the run names (the workflow's job list, not a job's output), and this module.
PLUMBING = frozenset({
    "mdxnet.cli", "mdxnet.errors", "mdxnet.config", "mdxnet.atomic", "mdxnet.gitinfo", "mdxnet.data.diskspace",
    "mdxnet.plan", "mdxnet.runs", "mdxnet.stages",
})
COMMANDS = "mdxnet.commands"


@dataclass(frozen=True)
class Minus:
    """A section less some of its subsections or keys (names relative to the section)."""

    key: str
    left_out: tuple[str, ...]

    def __init__(self, key: str, *left_out: str):
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "left_out", tuple(f"{key}.{name}" for name in left_out))


@dataclass(frozen=True)
class Stage:
    runs: tuple[str, ...]  # the command functions, "module:function" under mdxnet.commands
    params: tuple | None  # selectors (str or Minus) after ALWAYS; None: the whole params file
    per_item: tuple[str, ...] = ()  # keys the foreach item picks in
    item: str = "${item}"  # `${key}` for a foreach over a mapping


# ---- the stages ------------------------------------------------------------------------------------------------
DATA_KEYS = ("data.dataset", "data.root", "data.decoded_root", "data.valid_split")  # where the tracks are
EVALUATE_RUNS = ("evaluate:run_separate", "evaluate:run_mix", "evaluate:run_track", "evaluate:run_aggregate")
BASELINES_RUNS = ("evaluate:run_track", "evaluate:run_aggregate")
BLEND_RUNS = ("evaluate:run_blend", "evaluate:run_aggregate")
DEMUCS_RUNS = ("evaluate:run_demucs_model", "evaluate:run_demucs")
REPORT_RUNS = ("report:run_report", "render:run_table", "metrics:run_metrics")
# the scored songs: data.score names their release (and folder, where not the training release's)
SCORING = ("sample_rate", "sources", "data.extra_test", "data.score")
DATA_RUNS = ("data:run_synth", "data:run_fetch", "data:run_check")

TRAINED = {
    # the training release: the scored one (data.score) is the next stage's, so changing it retrains nothing;
    # data.extra_test: songs scored beside the test set, read by the scoring stages only
    "data": Stage(DATA_RUNS, ("sample_rate", Minus("data", "score", "extra_test"))),
    # the scored release where it is not the training one: made (generated, fetched) and checked in its own folder
    # (data.root and data.dataset: the commands read the scored release's in their place)
    "score_data": Stage(DATA_RUNS, ("sample_rate", Minus("data", "decoded_root", "extra_test"))),
    "augment": Stage(("augment:run_augment",), ("sample_rate", *DATA_KEYS, "augment")),
    "train": Stage(
        ("train:run_separator",),
        ("sample_rate", "sources", "model", Minus("train", "mixer"), "sampler", *DATA_KEYS, "augment",
         "separate.stitch", "separate.chunk_frames", "separate.overlap", "separate.batch"),
        per_item=("model.n_fft", "train.lr", "train.batch_size", "train.gpus", "separate.overlap"),
    ),
    # the separators' own training settings (learning rate, steps, loss, ...) are not the Mixer's
    "mixer": Stage(
        ("train:run_mixer",),
        ("sample_rate", "sources", "mixer", "model", "separate", *DATA_KEYS, "augment",
         Minus("train", "loss", "lr", "lr_scale", "batch_size", "gpus", "max_epochs", "valid_every_epochs",
               "steps", "valid_every", "health"), "sampler"),
    ),
    "evaluate": Stage(EVALUATE_RUNS, (*SCORING, "model", "mixer", "separate", "evaluate")),
    # Demucs v2 on every test song (the second system estimates/demucs of blend.second)
    "demucs": Stage(DEMUCS_RUNS, (*SCORING, "blend.demucs")),
    "blend": Stage(BLEND_RUNS, (*SCORING, "evaluate", Minus("blend", "demucs")), per_item=("blend.second",),
                   item="${key}"),
    "baselines": Stage(BASELINES_RUNS, (*SCORING, "evaluate")),
    "report": Stage((*REPORT_RUNS, "render:run_curves"), None),  # the table records the params hash
}

PUBLISHED = {
    # what an import falls back on and checks: the model's and the Mixer's settings, the chunk
    "import": Stage(("models:run_import",), ("sources", "model", "mixer", "separate", "models")),
    # the scoring rules read the trained path's evaluate, baselines, demucs and blend stages: this one covers all
    "evaluate": Stage(
        tuple(dict.fromkeys(EVALUATE_RUNS + BASELINES_RUNS + DEMUCS_RUNS + BLEND_RUNS)),
        tuple(dict.fromkeys(TRAINED["evaluate"].params + TRAINED["baselines"].params + TRAINED["demucs"].params
                            + (*SCORING, "evaluate", "blend"))),
    ),
    "report": Stage(REPORT_RUNS, None),  # no training curves for imported models
}

STAGES = {"dvc.yaml": TRAINED, "published/dvc.yaml": PUBLISHED}


def stage(pipeline: str, name: str) -> Stage:
    try:
        return STAGES[pipeline][name]
    except KeyError:
        raise KeyError(f"{pipeline} has no stage {name!r} in mdxnet.stages") from None


# ---- params ----------------------------------------------------------------------------------------------------
def section_class(key: str) -> type | None:
    """The Section class of a dotted params key; None for a value; KeyError for a key Params does not have."""
    kind = Params
    for part in key.split("."):
        if not is_section(kind):
            raise KeyError(key)
        hints = typing.get_type_hints(kind)
        if part not in hints:
            raise KeyError(key)
        kind = hints[part]
    return kind if is_section(kind) else None


def _expand(key: str, left_out: tuple[str, ...], declared: Stage) -> list[str]:
    if key in declared.per_item:
        return [f"{key}.{declared.item}"]
    if not any(k.startswith(key + ".") for k in (*left_out, *declared.per_item)):
        return [key]
    kind = section_class(key)
    if kind is None:
        raise KeyError(f"{key} is not a section: nothing below it can be left out or per item")
    keys = []
    for field in dataclasses.fields(kind):
        child = f"{key}.{field.name}"
        if child not in left_out:
            keys += _expand(child, left_out, declared)
    return keys


def declared_keys(declared: Stage) -> list[str] | None:
    """The stage's params keys as dvc.yaml lists them (per-item keys with `${item}`/`${key}`); None: every key."""
    if declared.params is None:
        return None
    keys = list(ALWAYS)
    for selector in declared.params:
        key, left_out = (selector.key, selector.left_out) if isinstance(selector, Minus) else (selector, ())
        section_class(key)  # a key Params does not have stops here, named
        keys += _expand(key, left_out, declared)
    return keys


def param_keys(pipeline: str, name: str, item: str | None = None) -> list[str] | None:
    """The concrete params keys of a stage, for one foreach item; None: the whole params file."""
    declared = stage(pipeline, name)
    keys = declared_keys(declared)
    return None if keys is None else [key.replace(declared.item, str(item)) for key in keys]


# ---- code ------------------------------------------------------------------------------------------------------
def package_modules(root: Path) -> dict[str, Path]:
    """{dotted name: file} of the package under root/src/mdxnet (a package is its __init__.py)."""
    src = Path(root) / "src"
    modules = {}
    for path in sorted((src / "mdxnet").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imported(node: ast.AST, module: str, modules: dict[str, Path]) -> list[tuple[str, str | None]]:
    """(module, name or None) of every mdxnet import under node; `from pkg import sub` names the submodule."""
    found = []
    for child in ast.walk(node):
        if isinstance(child, ast.Import):
            found += [(alias.name, None) for alias in child.names]
        elif isinstance(child, ast.ImportFrom):
            base = _from_module(child, module, modules)
            for alias in child.names:
                sub = f"{base}.{alias.name}"
                found.append((sub, None) if sub in modules else (base, alias.name))
    return [(target, name) for target, name in found if target.split(".")[0] == "mdxnet"]


def _from_module(node: ast.ImportFrom, module: str, modules: dict[str, Path]) -> str:
    """The absolute name of the module of `from ... import`, relative forms (`from .x import y`) resolved."""
    if not node.level:
        return node.module
    parts = module.split(".") if module in _packages(modules) else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def _packages(modules: dict[str, Path]) -> set[str]:
    return {name for name, path in modules.items() if path.name == "__init__.py"}


def _function_nodes(tree: ast.Module, function: str) -> list[ast.AST]:
    """A command function, the module-level functions it names (its helpers, transitively) and the module's
    top-level statements (its module-level imports)."""
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    if function not in functions:
        raise KeyError(f"no function {function} in the command module (mdxnet.stages names it)")
    nodes = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    todo, seen = [function], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        nodes.append(functions[name])
        todo += [n.id for n in ast.walk(functions[name]) if isinstance(n, ast.Name) and n.id in functions]
    return nodes


@functools.cache
def _tree(path: Path) -> ast.Module:
    """A module's syntax tree, parsed once per process: every stage's scan (a Snakemake start scans them all)
    walks the same modules."""
    return ast.parse(path.read_text(), str(path))


def imported_modules(runs: tuple[str, ...], modules: dict[str, Path]) -> set[str]:
    """The package modules (of `modules`, package_modules') that the command functions `runs` reach through
    imports, plumbing left out."""
    # the packages' __init__ modules hold docstrings and the version (provenance, as the git commit is)
    packages = _packages(modules)
    todo = [(f"{COMMANDS}.{run.split(':')[0]}", run.split(":")[1]) for run in runs]
    seen, reached = set(), set()
    while todo:
        module, function = todo.pop()
        if (module, function) in seen:
            continue
        seen.add((module, function))
        tree = _tree(modules[module])
        nodes = [tree] if function is None else _function_nodes(tree, function)
        for node in nodes:
            for target, name in _imported(node, module, modules):
                if target.startswith(COMMANDS + ".") and name is not None:
                    todo.append((target, name))  # a command module's function: its own imports only
                elif target in modules and target not in PLUMBING and target not in packages \
                        and not target.startswith(COMMANDS + "."):
                    reached.add(target)
                    todo.append((target, None))
    return reached


def code_deps(pipeline: str, name: str, root: Path | str = ".") -> list[str]:
    """The stage's code dependencies, as dvc.yaml lists them (paths from the project root, sorted)."""
    modules = package_modules(Path(root))
    reached = imported_modules(stage(pipeline, name).runs, modules)
    return sorted(modules[module].relative_to(root).as_posix() for module in reached)
