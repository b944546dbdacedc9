"""Atomic file writes for every output of the pipeline: a temp file in the target folder, then os.replace.

An interrupted run (Ctrl-C, SIGKILL, full disk) never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call `write(tmp_path)`, then move the temp file onto `path`; nothing partial is left on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs are meant to be shared read-only
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text))


def write_json_atomic(path: str | Path, data) -> Path:
    """Indented, key-sorted JSON; NaN allowed (museval's per-track files hold NaN for silent frames)."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=True, default=str) + "\n")
