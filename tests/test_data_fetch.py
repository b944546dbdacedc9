"""`mdxnet data fetch` against a small archive served from 127.0.0.1: success, corruption, resume, safety."""

from __future__ import annotations

import copy
import hashlib
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mdxnet.config import load_params
from mdxnet.data.fetch import fetch_dataset
from mdxnet.errors import UserError

pytestmark = pytest.mark.network


class _Handler(BaseHTTPRequestHandler):
    """Serves `payload` at any path, honours `Range: bytes=N-`, and can cut the body after `cut_after` bytes."""

    payload = b""
    cut_after: int | None = None
    requests: list[str | None] = []

    def do_GET(self):  # noqa: N802 (http.server API)
        cls = type(self)
        cls.requests.append(self.headers.get("Range"))
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        if start >= len(cls.payload) and start:
            self.send_response(416)
            self.end_headers()
            return
        body = cls.payload[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(cls.payload) - 1}/{len(cls.payload)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cls.cut_after is not None:
            body = body[: cls.cut_after]
            cls.cut_after = None
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    handler = type("Handler", (_Handler,), {"payload": b"", "cut_after": None, "requests": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{httpd.server_address[1]}/musdb18hq.zip"
    httpd.shutdown()
    httpd.server_close()


def _zip(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)  # symlink mode bits
            zf.writestr(info, target)
    return buffer.getvalue()


GOOD = {f"{subset}/Song {i}/{stem}.wav": bytes([i]) * 5000 * (1 + j)
        for subset, i in (("train", 1), ("train", 2), ("test", 3))
        for j, stem in enumerate(["mixture", "drums", "bass", "other", "vocals"])}


REPO_ROOT = Path(__file__).resolve().parents[1]


def _params(tmp_path, url, payload, md5=True):
    return load_params(REPO_ROOT / "params.yaml").replace(
        {"data": {"root": str(tmp_path / "musdb18hq"), "origin": "fetch",
                  "fetch": {"url": url, "md5": hashlib.md5(payload).hexdigest() if md5 else None,
                            "size": None, "download_dir": str(tmp_path / "downloads"), "timeout_s": 10}}})


def test_download_verify_extract(server, tmp_path):
    handler, url = server
    handler.payload = _zip(GOOD)
    params = _params(tmp_path, url, handler.payload)
    root = fetch_dataset(params.data, progress=False)
    assert (root / "train" / "Song 1" / "vocals.wav").read_bytes() == GOOD["train/Song 1/vocals.wav"]
    assert sorted(p.name for p in (root / "train").iterdir()) == ["Song 1", "Song 2"]
    assert (tmp_path / "downloads" / "musdb18hq.zip").is_file()
    assert not list(tmp_path.glob(".*extracting*"))
    # second call: dataset present, nothing downloaded
    fetch_dataset(params.data, progress=False)
    assert len(handler.requests) == 1


def test_corrupt_archive_leaves_nothing_and_rerun_recovers(server, tmp_path):
    handler, url = server
    good = _zip(GOOD)
    params = _params(tmp_path, url, good)
    handler.payload = good[:100] + bytes(b ^ 0xFF for b in good[100:200]) + good[200:]
    with pytest.raises(UserError, match="corrupt.*md5.*rerun"):
        fetch_dataset(params.data, progress=False)
    assert not (tmp_path / "musdb18hq").exists()
    assert not list((tmp_path / "downloads").iterdir())  # the bad download is deleted
    handler.payload = good  # the server is fixed
    root = fetch_dataset(params.data, progress=False)
    assert (root / "test" / "Song 3" / "mixture.wav").is_file()


def test_corrupt_archive_without_md5_fails_zip_check(server, tmp_path):
    handler, url = server
    good = _zip(GOOD)
    handler.payload = good[:300] + b"\0" * 200 + good[500:]
    with pytest.raises(UserError, match="corrupt"):
        fetch_dataset(_params(tmp_path, url, good, md5=False).data, progress=False)
    assert not (tmp_path / "musdb18hq").exists()


def test_interrupted_download_resumes_with_range(server, tmp_path):
    handler, url = server
    handler.payload = _zip(GOOD)
    params = _params(tmp_path, url, handler.payload)
    handler.cut_after = len(handler.payload) // 3
    with pytest.raises(UserError, match="rerun .*resume"):
        fetch_dataset(params.data, progress=False)
    part = tmp_path / "downloads" / "musdb18hq.zip.part"
    assert part.stat().st_size == len(handler.payload) // 3
    assert not (tmp_path / "musdb18hq").exists()
    root = fetch_dataset(params.data, progress=False)
    assert handler.requests == [None, f"bytes={len(handler.payload) // 3}-"]
    assert (root / "train" / "Song 2" / "bass.wav").read_bytes() == GOOD["train/Song 2/bass.wav"]
    assert not part.exists()


@pytest.mark.parametrize("evil", [{"../evil.txt": b"x"}, {"/tmp/evil-abs.txt": b"x"}, "link"])
def test_malicious_member_is_rejected(server, tmp_path, evil):
    handler, url = server
    members = copy.deepcopy(GOOD)
    links = None
    if evil == "link":
        links = {"train/Song 1/link.wav": "/etc/passwd"}
    else:
        members.update(evil)
    handler.payload = _zip(members, links)
    with pytest.raises(UserError, match="refusing to extract"):
        fetch_dataset(_params(tmp_path, url, handler.payload).data, progress=False)
    assert not (tmp_path / "musdb18hq").exists()
    assert not (tmp_path / "evil.txt").exists()
    assert not list(tmp_path.glob(".*extracting*"))


def test_existing_origin_downloads_nothing(tmp_path, params):
    params = params.replace({"data": {"root": str(tmp_path), "origin": "existing"}})
    assert fetch_dataset(params.data, progress=False) == tmp_path
    params = params.replace({"data": {"root": str(tmp_path / "absent")}})
    with pytest.raises(UserError, match="data.root"):
        fetch_dataset(params.data, progress=False)


class _Refusing(BaseHTTPRequestHandler):
    """A hostile or broken server: a redirect to a local file, or a 404."""

    def do_GET(self):  # noqa: N802 (http.server API)
        if self.path.endswith("redirect.zip"):
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
        else:
            self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("name", ["redirect.zip", "missing.zip"])
def test_an_http_refusal_names_the_url_setting_to_check(tmp_path, name):
    """`HTTP 302 Found - Redirection to url 'file:///etc/passwd' is not allowed` named no fix."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/{name}"
        with pytest.raises(UserError, match=r"failed: HTTP (302|404) .*: check data\.fetch\.url in params\.yaml"):
            fetch_dataset(_params(tmp_path, url, b"").data, progress=False)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert not (tmp_path / "musdb18hq").exists() and not (tmp_path / "etc").exists()


STEMS_GOOD = {f"musdb18/{subset}/Song {i}.stem.mp4": bytes([i]) * 7000 for subset, i in (("train", 1), ("test", 2))}


def test_musdb18_release_fetches_its_own_record(server, tmp_path):
    """data.dataset: musdb18 downloads data.fetch.musdb18's url, checked against its md5 (the HQ url is not asked)."""
    handler, url = server
    handler.payload = _zip(STEMS_GOOD)
    stems_url = url.replace("musdb18hq.zip", "musdb18.zip")
    md5 = hashlib.md5(handler.payload).hexdigest()
    params = _params(tmp_path, url, b"another archive").replace(
        {"data": {"dataset": "musdb18", "root": str(tmp_path / "musdb18"),
                  "fetch": {"musdb18": {"url": stems_url, "md5": md5, "size": len(handler.payload)}}}})
    root = fetch_dataset(params.data, progress=False)
    assert (root / "train" / "Song 1.stem.mp4").read_bytes() == STEMS_GOOD["musdb18/train/Song 1.stem.mp4"]
    assert (tmp_path / "downloads" / "musdb18.zip").is_file()
    assert not (tmp_path / "downloads" / "musdb18hq.zip").exists()


def test_musdb18_checksum_mismatch_names_its_keys(server, tmp_path):
    handler, url = server
    handler.payload = _zip(STEMS_GOOD)
    params = _params(tmp_path, url, handler.payload).replace(
        {"data": {"dataset": "musdb18", "root": str(tmp_path / "musdb18"),
                  "fetch": {"musdb18": {"url": url.replace("musdb18hq", "musdb18"), "md5": "0" * 32,
                                        "size": None}}}})
    with pytest.raises(UserError, match=r"data\.fetch\.musdb18\.md5"):
        fetch_dataset(params.data, progress=False)
    assert not (tmp_path / "musdb18").exists()


class _Endless(_Handler):
    """Sends `payload` and then more, without (or with a false) Content-Length: a server that does not stop."""

    content_length: str | None = None

    def do_GET(self):  # noqa: N802 (http.server API)
        self.send_response(200)
        if self.content_length is not None:
            self.send_header("Content-Length", self.content_length)
        self.end_headers()
        self.wfile.write(type(self).payload + b"\0" * 300_000)


@pytest.mark.parametrize("content_length", [None, "honest"])
def test_a_server_sending_more_than_the_size_is_stopped_and_nothing_kept(tmp_path, content_length):
    """It filled the disk, and the full .part file was kept with advice to resume it."""
    payload = _zip(GOOD)
    length = str(len(payload) + 300_000) if content_length == "honest" else content_length
    handler = type("Handler", (_Endless,), {"payload": payload, "requests": [], "content_length": length})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        params = _params(tmp_path, f"http://127.0.0.1:{httpd.server_address[1]}/musdb18hq.zip", payload)
        params = params.replace({"data": {"fetch": {"size": len(payload)}}})
        with pytest.raises(UserError, match=f"sends more than the {len(payload)} bytes data.fetch.size") as err:
            fetch_dataset(params.data, progress=False)
        assert "resume" not in str(err.value)
        assert not list((tmp_path / "downloads").iterdir()) and not (tmp_path / "musdb18hq").exists()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_scored_release_is_fetched_into_its_own_folder(server, tmp_path):
    """data.score naming another release (train on MUSDB18-HQ, score MUSDB18, as the authors did): `mdxnet data
    fetch --scored` downloads that release's record into data.score.root and leaves data.root alone."""
    import yaml

    from mdxnet.cli import main

    handler, url = server
    handler.payload = _zip(STEMS_GOOD)
    params = _params(tmp_path, url, b"the MUSDB18-HQ archive, not asked for").replace(
        {"data": {"score": {"dataset": "musdb18", "root": str(tmp_path / "musdb18")},
                  "fetch": {"musdb18": {"url": url.replace("musdb18hq.zip", "musdb18.zip"),
                                        "md5": hashlib.md5(handler.payload).hexdigest(), "size": None}}}})
    assert params.data.scored_release == "musdb18" and params.data.dataset == "musdb18hq"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params.standalone(), sort_keys=False))
    assert main(["--params", str(path), "data", "fetch", "--scored"]) == 0
    root = tmp_path / "musdb18"
    assert (root / "test" / "Song 2.stem.mp4").read_bytes() == STEMS_GOOD["musdb18/test/Song 2.stem.mp4"]
    assert not (tmp_path / "musdb18hq").exists() and not (tmp_path / "downloads" / "musdb18hq.zip").exists()
    assert main(["--params", str(path), "data", "check", "--scored", "--report", str(tmp_path / "check.json")]) != 0
    assert yaml.safe_load((tmp_path / "check.json").read_text())["root"] == str(root)  # the bytes are no audio
