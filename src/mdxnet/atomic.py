"""Atomic file writes for every output of the pipeline: a temp file in the target folder, then os.replace.

An interrupted run (Ctrl-C, SIGKILL, full disk) never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _temp_beside(path: Path) -> Path:
    """An empty temp file in `path`'s folder (created if needed): same file system, so os.replace is atomic."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def _written(tmp: Path, write: Callable[[str], None]) -> None:
    write(str(tmp))
    os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs are meant to be shared read-only


def write_atomic(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call `write(tmp_path)`, then move the temp file onto `path`; nothing partial is left on failure."""
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        _written(tmp, write)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_atomic_group(writes: dict[Path, Callable[[str], None]]) -> None:
    """Several files as one unit: every one is written to its temp file first and they are moved into place only
    once all succeeded, so a failure (full disk, Ctrl-C) leaves neither a half-written file nor an incomplete set.
    Folders this call created are removed again on failure."""
    created = {folder for path in writes for folder in _missing_folders(Path(path).parent)}
    staged: dict[Path, Path] = {}
    try:
        for path, write in writes.items():
            staged[Path(path)] = _temp_beside(Path(path))
            _written(staged[Path(path)], write)
        for path, tmp in staged.items():
            os.replace(tmp, path)
    except BaseException:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
        for folder in sorted(created, key=lambda f: len(f.parts), reverse=True):  # deepest first
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise


def _missing_folders(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet (what mkdir(parents=True) would create)."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text))


def write_json_atomic(path: str | Path, data) -> Path:
    """Indented, key-sorted JSON; NaN allowed (museval's per-track files hold NaN for silent frames)."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=True, default=str) + "\n")
