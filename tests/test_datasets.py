"""catdog.datasets: existing copies, a real download from loopback, safe extraction, caching."""
import functools
import http.server
import os
import socket
import threading
import urllib.parse
import zipfile
from pathlib import Path

import pytest

from catdog import datasets, download, weights

SHARED = Path(os.environ.get("CATDOG_SHARED", Path(__file__).resolve().parents[2] / "shared"))
CLASSES = {"train/cats": 3, "train/dogs": 3, "validation/cats": 2, "validation/dogs": 2}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class FileServer:
    """Serves the files of ``root`` on 127.0.0.1:<free port> from a thread."""

    def __init__(self, root: Path):
        handler = functools.partial(_Quiet, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.running = True

    def url(self, name):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def stop(self):
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=5)
            self.running = False


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    s = FileServer(root)
    s.root = root
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def sandbox(tmp_path, monkeypatch):
    monkeypatch.setenv("CATDOG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CATDOG_DATA", raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    real_open = download._open

    def loopback_only(url, timeout):
        assert urllib.parse.urlparse(url).hostname == "127.0.0.1", f"test tried to reach {url}"
        return real_open(url, min(timeout, 5.0))

    monkeypatch.setattr(download, "_open", loopback_only)


def _make_tree(root: Path) -> Path:
    """A tiny cats_and_dogs_filtered: a few fake .jpg files per class."""
    top = root / "cats_and_dogs_filtered"
    for sub, n in CLASSES.items():
        d = top / sub
        d.mkdir(parents=True)
        for i in range(n):
            (d / f"{sub.split('/')[1][:-1]}.{i}.jpg").write_bytes(f"{sub} {i}".encode() * 10)
    return top


def _zip_tree(top: Path, zpath: Path, extra=()):
    with zipfile.ZipFile(zpath, "w") as z:
        for p in sorted(top.rglob("*")):
            z.write(p, p.relative_to(top.parent).as_posix())
        for name, data in extra:
            z.writestr(name, data)
    return zpath


def _cache(tmp_path):
    d = tmp_path / "home" / "datasets"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_path_and_env_point_at_an_existing_copy(tmp_path, monkeypatch):
    top = _make_tree(tmp_path / "data")
    assert datasets.cats_and_dogs(top) == top
    assert datasets.cats_and_dogs(tmp_path / "data") == top  # its parent
    monkeypatch.setenv("CATDOG_DATA", str(tmp_path / "data"))
    assert datasets.cats_and_dogs() == top
    monkeypatch.setenv("CATDOG_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="CATDOG_DATA.*nowhere"):
        datasets.cats_and_dogs()
    with pytest.raises(ValueError, match="neither train/ and validation/"):
        datasets.cats_and_dogs(tmp_path)
    assert datasets.counts(top) == CLASSES


def test_download_extract_check_and_cache(served, tmp_path):
    src = _make_tree(tmp_path / "src")
    digest = datasets.content_digest(src)
    _zip_tree(src, served.root / datasets.ZIP_NAME)
    url = served.url(datasets.ZIP_NAME)
    got = datasets.cats_and_dogs(url=url, content_sha256=digest, progress=False)
    assert got == tmp_path / "home" / "datasets" / "cats_and_dogs_filtered"
    assert datasets.counts(got) == CLASSES
    assert datasets.content_digest(got) == digest
    assert _cache(tmp_path) == ["cats_and_dogs_filtered"]  # zip removed, no temp folders
    served.stop()
    assert datasets.cats_and_dogs(url=url, content_sha256=digest, progress=False) == got  # cached, offline


def test_wrong_content_is_refused_and_nothing_cached(served, tmp_path):
    src = _make_tree(tmp_path / "src")
    _zip_tree(src, served.root / datasets.ZIP_NAME)
    # the default check is against the official 3,000 images
    with pytest.raises(ValueError, match="differ from the official"):
        datasets.cats_and_dogs(url=served.url(datasets.ZIP_NAME), progress=False)
    assert _cache(tmp_path) == []


def test_path_traversal_member_is_refused(served, tmp_path):
    src = _make_tree(tmp_path / "src")
    _zip_tree(src, served.root / datasets.ZIP_NAME, extra=[("cats_and_dogs_filtered/../../../evil.txt", b"owned")])
    with pytest.raises(ValueError, match="unsafe zip member.*evil.txt"):
        datasets.cats_and_dogs(url=served.url(datasets.ZIP_NAME), content_sha256=None, progress=False)
    assert _cache(tmp_path) == []
    assert not list(tmp_path.rglob("evil.txt"))


def test_extract_zip_refuses_absolute_paths_and_links(tmp_path):
    z1 = tmp_path / "abs.zip"
    with zipfile.ZipFile(z1, "w") as z:
        z.writestr("ok.txt", b"fine")
        z.writestr("/tmp/evil_abs.txt", b"owned")
    # zipfile strips a leading "/" when writing; put it back the way a hostile tool would
    raw = z1.read_bytes().replace(b"tmp/evil_abs.txt", b"/mp/evil_abs.txt")
    z1.write_bytes(raw)
    with pytest.raises(ValueError, match="unsafe zip member"):
        datasets.extract_zip(z1, tmp_path / "out1")
    assert not (tmp_path / "out1").exists()  # checked before anything is written
    z2 = tmp_path / "link.zip"
    with zipfile.ZipFile(z2, "w") as z:
        info = zipfile.ZipInfo("cats_and_dogs_filtered/train/link")
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    with pytest.raises(ValueError, match="symbolic link"):
        datasets.extract_zip(z2, tmp_path / "out2")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ValueError, match="not a valid zip"):
        datasets.extract_zip(bad, tmp_path / "out3")


def test_zip_given_as_path_is_extracted_into_cache(tmp_path):
    src = _make_tree(tmp_path / "src")
    z = _zip_tree(src, tmp_path / "mine.zip")
    got = datasets.cats_and_dogs(z, content_sha256=None)
    assert got == tmp_path / "home" / "datasets" / "cats_and_dogs_filtered"
    assert z.is_file()  # the user's own zip is left alone
    assert datasets.counts(got) == CLASSES


def test_offline_with_nothing_cached_says_what_to_do(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    url = f"http://127.0.0.1:{port}/cats_and_dogs_filtered.zip"
    with pytest.raises(weights.DownloadError) as ei:
        datasets.cats_and_dogs(url=url, progress=False)
    msg = str(ei.value)
    assert url in msg and "cannot connect" in msg
    assert str(tmp_path / "home" / "datasets" / "cats_and_dogs_filtered.zip") in msg
    assert "CATDOG_DATA" in msg
    assert _cache(tmp_path) == []


@pytest.mark.shared
def test_shared_copy_is_the_official_dataset(monkeypatch):
    data = SHARED / "data"
    if not (data / "cats_and_dogs_filtered").is_dir():
        pytest.skip(f"shared dataset not found under {data} (set CATDOG_SHARED)")
    monkeypatch.setenv("CATDOG_DATA", str(data))
    got = datasets.cats_and_dogs()
    assert got == data / "cats_and_dogs_filtered"
    assert datasets.counts(got) == datasets.COUNTS
    assert datasets.content_digest(got) == datasets.CONTENT_SHA256
