"""Loading params.yaml: the profile overlay, per-source model settings, and a stable params hash."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PARAMS = Path("params.yaml")


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads floats without a dot (`1e-4`, `5e-05`) as floats, as YAML 1.2 does.

    `dvc exp run -S train.lr.vocals=1e-4` writes such values; plain PyYAML (YAML 1.1) would read them as strings.
    """


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=YamlLoader)


class ParamsError(ValueError):
    """A params file that is missing, unreadable or names an unknown profile."""


def deep_merge(base: dict, overlay: dict) -> dict:
    """Return a copy of `base` with `overlay` merged in; nested dicts merge, everything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resolve_profile(raw: dict) -> dict:
    """Apply `raw['profiles'][raw['profile']]` over the base values; the result has no `profiles` key."""
    profiles = raw.get("profiles") or {}
    name = raw.get("profile")
    base = {k: v for k, v in raw.items() if k != "profiles"}
    if name is None:
        return base
    if name not in profiles:
        raise ParamsError(f"profile {name!r} is not defined under 'profiles:' (known: {sorted(profiles)})")
    return deep_merge(base, profiles[name] or {})


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Read a params file and return the resolved (profile-applied) values."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file {path} not found: run from the project root or pass --params PATH")
    try:
        raw = load_yaml(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"params file {path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ParamsError(f"params file {path} must hold a mapping at the top level")
    return resolve_profile(raw)


def per_source(value: Any, source: str) -> Any:
    """A value that is either shared (scalar) or given per source (a dict keyed by source name)."""
    if isinstance(value, dict):
        if source not in value:
            raise ParamsError(f"no value for source {source!r} in {value}")
        return value[source]
    return value


def separator_kwargs(params: dict, source: str) -> dict[str, Any]:
    """Keyword arguments of the TFC-TDF-U-Net separator for one source, from the resolved params."""
    if source not in params["sources"]:
        raise ParamsError(f"unknown source {source!r}; params.yaml lists {params['sources']}")
    model = params["model"]
    return {key: per_source(value, source) for key, value in model.items()}


def params_hash(params: dict) -> str:
    """Short, stable hash of resolved params (key order does not matter)."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
