"""Atomic file writes for every output of the pipeline: a temp file in the target folder, then os.replace.

An interrupted run (Ctrl-C, SIGKILL, full disk) never leaves a half-written file under the final name. A killed
run (SIGKILL: no cleanup runs) does leave its temp files; the next write of the same target removes them
(`remove_stale_temps`).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mdxnet.errors import UserError

# Temp files are named .<target>.<host>-<pid>.<8 random characters>.tmp: the writer's machine (a short hash of its
# host name) and process, so that a later run can tell a killed writer's leftovers from a live writer's file.
HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
# A temp file untouched this long is a leftover whoever wrote it: a live writer writes its temp files within
# seconds (or block by block, a block taking minutes at most), so even a writer on another machine (a shared
# folder on a cluster) or in another container, whose process cannot be looked up from here, is long gone.
STALE_SECONDS = 6 * 3600
# Bytes a temp file's path has beyond its target's: the leading '.' and '.<host>-<pid>.<8 random>.tmp' (a Linux pid
# has at most 7 digits). Callers checking up front that a path fits the system's limit add it.
TEMP_NAME_EXTRA = 1 + 1 + 8 + 1 + 7 + 1 + 8 + 4


def _temp_beside(path: Path) -> Path:
    """An empty temp file in `path`'s folder (created if needed): same file system, so os.replace is atomic.
    Leftovers of killed writes of the same target are removed first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{HOST}-{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def remove_stale_temps(path: Path) -> list[Path]:
    """Delete the temp files of `path` (beside it) that no live writer owns: those of a process of this machine
    that has ended, and any untouched for STALE_SECONDS (older names without host and pid, other machines).
    A temp file of another target ('.vocals.wav.bak.…') never matches. Returns what was removed."""
    pattern = re.compile(re.escape(f".{path.name}.") + r"(?:(?P<host>[0-9a-f]{8})-(?P<pid>\d+)\.)?[a-z0-9_]{8}\.tmp")
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        match = pattern.fullmatch(tmp.name)
        if match and _stale(tmp, match["host"], match["pid"]):
            if tmp.is_dir() and not tmp.is_symlink():  # a temp_dir_beside of a killed writer
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)  # missing: another rerun removed it first
            removed.append(tmp)
    return removed


@contextmanager
def temp_dir_beside(path: Path) -> Iterator[Path]:
    """A temp folder in `path`'s folder, named as the temp files are (so a killed writer's leftover is removed by
    the next write of the same target, as `remove_stale_temps` does for files), removed when the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{HOST}-{os.getpid()}.", suffix=".tmp"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _stale(tmp: Path, host: str | None, pid: str | None) -> bool:
    try:
        if time.time() - tmp.stat().st_mtime > STALE_SECONDS:
            return True
    except FileNotFoundError:  # moved into place or removed meanwhile
        return False
    return host == HOST and not _alive(int(pid))


def _alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        pass
    return True


def _written(tmp: Path, write: Callable[[str], None]) -> None:
    write(str(tmp))
    os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs are meant to be shared read-only


def require_file_target(path: str | Path, what: str = "output") -> Path:
    """`path` as a file to write: refused (UserError, named) when a folder has its name or a file stands where its
    folder would be (os.replace and mkdir gave raw IsADirectoryError / FileExistsError tracebacks). Commands call
    it on their file arguments before their work; every atomic write checks it again."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder: name a file to write (e.g. {path / path.name}.json), or move "
                        f"the folder away")
    require_folder_target(path.parent, what)
    return path


def require_folder_target(folder: str | Path, what: str = "output folder") -> Path:
    """`folder` as a folder to write into (made if missing): refused, named, when it or a parent is a file."""
    folder = Path(folder)
    blocking = next((p for p in (folder, *folder.parents) if p.exists() or p.is_symlink()), None)
    if blocking is not None and not blocking.is_dir():
        raise UserError(f"{what} {folder}: {blocking} is a file, not a folder: pass another path")
    return folder


def write_atomic(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call `write(tmp_path)`, then move the temp file onto `path`; nothing partial is left on failure."""
    path = require_file_target(path)
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
    with atomic_group(list(writes)) as staged:
        for path, write in writes.items():
            _written(staged[Path(path)], write)


@contextmanager
def atomic_group(paths: list[Path]) -> Iterator[dict[Path, Path]]:
    """`write_atomic_group` for files written piece by piece (e.g. a song streamed block by block): yields
    {final path: temp path beside it}; the caller writes every temp file; on a clean exit all are moved into
    place (readable by all), on any exception the temps and the folders this call created are removed."""
    created = {folder for path in paths for folder in _missing_folders(Path(path).parent)}
    staged: dict[Path, Path] = {}
    try:
        for path in paths:
            staged[Path(path)] = _temp_beside(Path(path))
        yield dict(staged)
        for path, tmp in staged.items():
            os.chmod(tmp, 0o644)
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
