"""Does the committed dvc.lock still describe the tree? Every dependency a stage declares in dvc.yaml that git
tracks (the code, the params) must be recorded in the stage's lock entry with the md5 the file has now, and every
params value the stage lists must be the one params.yaml holds now. Where one is not, `dvc status` on a fresh clone
reports a changed dependency and `dvc repro` starts by re-running stages whose results are already committed: a
commit changed a stage's code or params without regenerating its outputs and lock.

Read from the files alone (yaml, md5), without DVC, so that it runs in the fast tests in a second. Outputs are not
checked: a fresh clone has none (they come from `make` or `dvc pull`).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

FIX = ("run the stages on the committed code (`make`), then `dvc commit -f dvc.yaml` and commit dvc.lock with the "
       "regenerated results")
_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def read_yaml(path: Path):
    """A YAML file as DVC reads it (ruamel, YAML 1.2): DVC writes dvc.lock that way, where an unquoted `off` is a
    string, not the boolean PyYAML's YAML 1.1 makes of it."""
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(path.read_text())


def lookup(document, dotted: str):
    """The value at a dotted key of a params document; KeyError when absent."""
    value = document
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value


def _substitute(text: str, params: dict, item=None, key=None) -> str:
    """DVC's templating: ${item} (and ${key} over a mapping) of a foreach, else a params value."""
    def value(match):
        name = match.group(1)
        local = {"item": item, "key": key}
        return str(local[name]) if name in local else str(lookup(params, name))

    return _VARIABLE.sub(value, text)


def expanded_stages(pipeline: dict, params: dict) -> dict[str, dict]:
    """{lock name: {"deps": [path], "params": [key] | None}} of a dvc.yaml document, foreach stages expanded
    (`train@vocals`); params None: the stage depends on the whole params file."""
    stages = {}
    for name, definition in pipeline["stages"].items():
        if "foreach" in definition:
            items = definition["foreach"]
            if isinstance(items, str):
                items = lookup(params, _VARIABLE.fullmatch(items).group(1))
            pairs = items.items() if isinstance(items, dict) else ((item, item) for item in items)
            for key, item in pairs:  # a mapping names its stages by key; ${item} is the value
                stages[f"{name}@{key}"] = _stage(definition["do"], params, item, key)
        else:
            stages[name] = _stage(definition, params)
    return stages


def _stage(definition: dict, params: dict, item=None, key=None) -> dict:
    keys: list[str] | None = []
    for entry in definition.get("params", []):
        if isinstance(entry, dict):  # {params.yaml: null}: the whole file
            keys = None
            break
        keys.append(_substitute(entry, params, item, key))
    deps = [_substitute(dep, params, item, key) for dep in definition.get("deps", [])]
    return {"deps": deps, "params": keys}


def tracked_files(root: Path) -> set[str]:
    """The files git tracks under `root` (posix paths relative to it)."""
    listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True)
    return {name for name in listed.stdout.decode().split("\0") if name}


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def lock_problems(root: str | Path, tracked: set[str] | None = None, pipeline: str = "dvc.yaml") -> list[str]:
    """One line per stage whose lock entry does not match the tree ([] when the lock describes it)."""
    root = Path(root)
    params = read_yaml(root / "params.yaml")
    stages = expanded_stages(read_yaml(root / pipeline), params)
    lock_path = root / pipeline.replace(".yaml", ".lock")
    locked = read_yaml(lock_path)["stages"] if lock_path.is_file() else {}
    tracked = tracked_files(root) if tracked is None else tracked
    problems = []
    for name, declared in stages.items():
        if name not in locked:
            problems.append(f"{name}: no entry in {lock_path.name} (the stage was never run on this pipeline)")
            continue
        changed = _changed_deps(root, declared["deps"], locked[name], tracked)
        changed += _changed_params(declared["params"], locked[name], params)
        if changed:
            problems.append(f"{name}: " + "; ".join(changed))
    return problems


def _changed_deps(root: Path, deps: list[str], entry: dict, tracked: set[str]) -> list[str]:
    recorded = {dep["path"]: dep.get("md5") for dep in entry.get("deps", [])}
    changed = []
    for path in deps:
        if path not in tracked:  # another stage's output: absent from a fresh clone, checked by DVC itself
            continue
        if path not in recorded:
            changed.append(f"{path} not recorded")
        elif (root / path).is_file() and recorded[path] != md5_of(root / path):
            changed.append(f"{path} modified")
    return changed


def _changed_params(keys: list[str] | None, entry: dict, params: dict) -> list[str]:
    recorded = entry.get("params", {}).get("params.yaml", {})
    if keys is None:
        return [] if recorded == params else ["params.yaml modified"]
    changed = []
    for key in keys:
        try:
            now = lookup(params, key)
        except KeyError:
            now = "<absent>"
        if key not in recorded:
            changed.append(f"params {key} not recorded")
        elif recorded[key] != now:
            changed.append(f"params {key} modified")
    return changed
