"""mdxnet.atomic: a killed writer's temp files are removed by the next write of the same target, a live writer's
are not (it still moves its file into place)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from itertools import count
from pathlib import Path

import pytest

from mdxnet.atomic import HOST, STALE_SECONDS, remove_stale_temps, write_text_atomic

SERIAL = count()
OTHER_HOST = "f" * 8 if HOST != "f" * 8 else "e" * 8
# A writer in its own process: writes half its temp file, tells the test where it is, then waits for a line on
# stdin before finishing (or is killed while it waits).
WRITER = """
import sys
from pathlib import Path
from mdxnet.atomic import write_atomic

def write(tmp):
    Path(tmp).write_text("half")
    print(tmp, flush=True)
    sys.stdin.readline()
    Path(tmp).write_text(sys.argv[2])

write_atomic(sys.argv[1], write)
"""


def start_writer(target: Path, text: str) -> tuple[subprocess.Popen, Path]:
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target), text], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    return writer, Path(writer.stdout.readline().strip())


def dead_pid() -> int:
    """The pid of a process that has ended (and is reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def temp_of(target: Path, tag: str, age: float = 0.0) -> Path:
    """A temp file beside `target` as mdxnet.atomic names them (`tag`: '<host>-<pid>.' or '' for the older
    names), last written `age` seconds ago."""
    tmp = target.parent / f".{target.name}.{tag}abcd_{next(SERIAL):03d}.tmp"  # as mkstemp's 8 random characters
    tmp.write_text("leftover")
    os.utime(tmp, (time.time() - age, time.time() - age))
    return tmp


def test_a_killed_writers_temp_file_is_removed_by_the_rerun(tmp_path):
    target = tmp_path / "out" / "vocals.wav"
    writer, tmp = start_writer(target, "first")
    writer.send_signal(signal.SIGKILL)  # no cleanup runs: the temp file stays
    writer.wait()
    assert tmp.is_file() and not target.exists()
    write_text_atomic(target, "rerun")
    assert target.read_text() == "rerun"
    assert sorted(p.name for p in target.parent.iterdir()) == ["vocals.wav"]


def test_a_concurrent_writers_fresh_temp_file_is_kept(tmp_path):
    target = tmp_path / "vocals.wav"
    writer, tmp = start_writer(target, "concurrent")
    try:
        write_text_atomic(target, "ours")
        assert tmp.read_text() == "half"  # still there, mid-write
    finally:
        writer.communicate("go\n")
    assert writer.returncode == 0 and target.read_text() == "concurrent"  # its move into place still worked
    assert not tmp.exists()


def test_which_temp_files_are_stale(tmp_path):
    target = tmp_path / "vocals.wav"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = temp_of(target, f"{HOST}-{dead_pid()}.")
        running = temp_of(target, f"{HOST}-{live.pid}.")
        elsewhere = temp_of(target, f"{OTHER_HOST}-{dead_pid()}.")  # its pid cannot be looked up from here
        elsewhere_old = temp_of(target, f"{OTHER_HOST}-1.", age=STALE_SECONDS + 60)
        older_name = temp_of(target, "", age=STALE_SECONDS + 60)
        older_name_fresh = temp_of(target, "")
        other_target = temp_of(tmp_path / "vocals.wav.bak", f"{HOST}-{dead_pid()}.")  # never touched
        assert sorted(remove_stale_temps(target)) == sorted([dead, elsewhere_old, older_name])
        assert running.exists() and elsewhere.exists() and older_name_fresh.exists() and other_target.exists()
    finally:
        live.kill()
        live.wait()


@pytest.mark.parametrize("name", ["so[ng].wav", "a*b?.wav"])
def test_glob_characters_in_the_target_name_are_literal(tmp_path, name):
    target = tmp_path / name
    stale = temp_of(target, f"{HOST}-{dead_pid()}.")
    lookalike = temp_of(tmp_path / "song.wav", f"{HOST}-{dead_pid()}.")  # 'so[ng].wav' as a pattern matches it
    assert remove_stale_temps(target) == [stale] and lookalike.exists()


def test_a_folder_or_a_file_in_the_way_of_an_output_is_named(tmp_path):
    from mdxnet.atomic import require_folder_target
    from mdxnet.errors import UserError

    (tmp_path / "taken").mkdir()
    (tmp_path / "a file").write_text("")
    with pytest.raises(UserError, match="taken is a folder: name a file"):
        write_text_atomic(tmp_path / "taken", "x")
    with pytest.raises(UserError, match="a file is a file, not a folder"):
        write_text_atomic(tmp_path / "a file" / "out.json", "x")
    with pytest.raises(UserError, match="a file is a file, not a folder"):
        require_folder_target(tmp_path / "a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a file", "taken"]


@pytest.mark.parametrize("argv", [
    ["metrics", "{table}", "-o", "{folder}"],
    ["compare", "{results}", "{results}", "-o", "{folder}"],
    ["plan", "--json", "{folder}"],
    ["report", "--compare", "{results}", "{results}", "-o", "{file}"],
])
def test_commands_refuse_an_output_path_that_is_a_folder_or_below_a_file(tmp_path, capsys, argv, repo_root):
    from mdxnet.cli import main

    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    (tmp_path / "results").mkdir()
    shutil.copyfile(repo_root / "results" / "table.json", tmp_path / "results" / "table.json")
    names = {"table": tmp_path / "results" / "table.json", "folder": tmp_path / "folder",
             "file": tmp_path / "file", "results": tmp_path / "results"}
    argv = [arg.format(**names) for arg in argv]
    assert main(["--params", str(repo_root / "params.yaml"), *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and ("is a folder" in err or "is a file, not a folder" in err), err
    assert list((tmp_path / "folder").iterdir()) == []
