"""The one JSON reader behind the named errors of the project's JSON files (records, scores, reports)."""

import pytest

from mdxnet.data.musdb import DATASET_FILE, read_dataset_file
from mdxnet.errors import UserError, read_json
from mdxnet.evaluation.aggregate import read_track_json
from mdxnet.evaluation.report import dataset_checksum
from mdxnet.inference.imported import read_manifest

BAD = [(b"{not json", "Expecting property name"), (b"\xff\xfe\x81", "codec can't decode"), (None, "No such file")]


@pytest.mark.parametrize(("content", "why"), BAD)
def test_read_json_names_the_file_the_reason_and_the_fix(content, why, tmp_path):
    path = tmp_path / "doc.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError) as err:
        read_json(path, "the record", "write it again")
    assert str(err.value).startswith(f"the record {path} cannot be read (") and why in str(err.value)
    assert str(err.value).endswith("): write it again")


def test_read_json_returns_the_document(tmp_path):
    (tmp_path / "doc.json").write_text('{"a": [1, 2.5, null]}', encoding="utf-8")
    assert read_json(tmp_path / "doc.json", "x", "y") == {"a": [1, 2.5, None]}


READERS = [  # (reader of a file, where it looks, the fix it gives)
    (read_track_json, "scores.json", "re-run `mdxnet evaluate track`"),
    (read_manifest, "vocals.import.json", "import the file again"),
    (dataset_checksum, "check.json", "regenerate it with `mdxnet data check`"),
    (lambda path: read_dataset_file(path.parent), DATASET_FILE, "`mdxnet data synth`"),
]


@pytest.mark.parametrize(("reader", "name", "fix"), READERS)
def test_every_reader_of_a_damaged_file_names_it_and_the_fix(reader, name, fix, tmp_path):
    path = tmp_path / name
    path.write_text('{"cut off": ', encoding="utf-8")  # an interrupted write of another tool
    with pytest.raises(UserError) as err:
        reader(path)
    assert str(path) in str(err.value) and fix in str(err.value)
