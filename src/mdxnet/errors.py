"""Errors that mean "the input or environment is wrong": the CLI prints them as one line and exits 2; and the
JSON reader that turns an unreadable file into one."""

import json
from pathlib import Path


class UserError(Exception):
    """Bad input or environment (missing file, wrong format, absent dataset): the message names file and fix."""


class AudioError(UserError):
    """An audio file that cannot be read or has the wrong shape."""


class WriteError(UserError):
    """An output that could not be written (disk full, quota, I/O error), of which nothing was kept."""


def read_json(path: str | Path, what: str, fix: str):
    """The JSON document in `path`, or a UserError "<what> <path> cannot be read (<why>): <fix>" when the file is
    missing, unreadable or not JSON. Checking the document's shape is the caller's job."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{what} {path} cannot be read ({err}): {fix}") from None
