"""catdog.weights: Keras names, the cache, and real downloads from a loopback HTTP server."""
import hashlib
import http.server
import json
import os
import threading
import urllib.parse
import warnings
from pathlib import Path

import pytest

from catdog import download, weights

HDF5_SIG = b"\x89HDF\r\n\x1a\n"
SHARED_224 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        srv = self.server
        path = urllib.parse.urlparse(self.path).path
        srv.hits[path] = srv.hits.get(path, 0) + 1
        spec = srv.routes.get(path)
        if spec is None or spec.get("status", 200) != 200:
            body = b"<html>not found</html>"
            self.send_response(spec.get("status", 404) if spec else 404)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        body = spec["body"]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        cut = spec.get("truncate")
        self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()
        self.close_connection = True  # an interrupted transfer: fewer bytes than announced


class LocalServer:
    """http.server on 127.0.0.1:<free port>, in a thread, serving ``routes``."""

    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.routes = {}
        self.httpd.hits = {}
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.running = True

    @property
    def routes(self):
        return self.httpd.routes

    @property
    def hits(self):
        return self.httpd.hits

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=5)
            self.running = False


@pytest.fixture
def server():
    s = LocalServer()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def sandbox(tmp_path, monkeypatch):
    """CATDOG_HOME in tmp_path, no proxies, and any URL but 127.0.0.1 is a test failure."""
    monkeypatch.setenv("CATDOG_HOME", str(tmp_path / "home"))
    for var in ("CATDOG_WEIGHTS_DIR", "CATDOG_WEIGHTS_ANY_SIZE", "CATDOG_DATA"):
        monkeypatch.delenv(var, raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    real_open = download._open

    def loopback_only(url, timeout):
        host = urllib.parse.urlparse(url).hostname
        assert host == "127.0.0.1", f"test tried to reach {url}"
        return real_open(url, min(timeout, 5.0))

    monkeypatch.setattr(download, "_open", loopback_only)
    weights.clear_files()
    yield
    weights.clear_files()


def _payload(n=200_000, seed=1):
    data = hashlib.sha256(str(seed).encode()).digest() * (n // 32 + 1)
    return data[:n]


def _cache_listing(folder: Path):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- names


def test_resolve_keras_names_and_rules():
    assert weights.resolve(1.0, 160, False) == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5"
    assert weights.resolve(0.35, 96, True) == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96.h5"
    assert weights.resolve(1, (128, 128, 3), False).endswith("_1.0_128_no_top.h5")
    assert weights.resolve(0.50, 224, False).endswith("_0.5_224_no_top.h5")
    with pytest.warns(UserWarning, match="224"):
        assert weights.resolve(1.0, 150, False).endswith("_1.0_224_no_top.h5")
    with pytest.warns(UserWarning, match="square"):
        assert weights.resolve(1.0, (160, 128, 3), False).endswith("_1.0_224_no_top.h5")
    with pytest.raises(ValueError, match="alpha"):
        weights.resolve(0.6, 160, False)


def test_catalogue_lists_every_file_and_matches_the_json():
    cat = weights.catalogue()
    names = {f["file"] for f in cat["files"]}
    assert len(names) == 60
    for a in ("0.35", "0.5", "0.75", "1.0", "1.3", "1.4"):
        for s in (96, 128, 160, 192, 224):
            for top in ("", "_no_top"):
                assert f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{a}_{s}{top}.h5" in names
    lab = next(f for f in cat["files"] if f["file"].endswith("1.0_160_no_top.h5"))
    assert lab["bytes"] == 9406464
    assert lab["urls"][0].startswith("https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/")
    assert "JonathanCMitchell/mobilenet_v2_keras/releases/download/v1.1/" in lab["urls"][1]
    on_disk = Path(__file__).resolve().parents[1] / "weights" / "catalogue.json"
    if not on_disk.is_file():
        pytest.skip(f"{on_disk} not in this tree")
    assert json.loads(on_disk.read_text()) == json.loads(json.dumps(cat)), (
        "weights/catalogue.json is stale: regenerate with python -m catdog.weights > weights/catalogue.json"
    )


# --------------------------------------------------------------------------- get_file


def test_good_file_checked_by_sha256(server, tmp_path, capsys):
    body = _payload()
    server.routes["/good.bin"] = {"body": body}
    cache = tmp_path / "home" / "models"
    p = weights.get_file("good.bin", [server.url("/good.bin")], sha256=hashlib.sha256(body).hexdigest(), size=len(body))
    assert p == cache / "good.bin"
    assert p.read_bytes() == body
    assert _cache_listing(cache) == ["good.bin"]
    mask = os.umask(0)
    os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask
    assert "good.bin" in capsys.readouterr().err  # the progress bar went to stderr


def test_404_then_fallback_url(server, tmp_path):
    body = _payload(seed=2)
    server.routes["/mirror/f.bin"] = {"body": body}
    urls = [server.url("/missing/f.bin"), server.url("/mirror/f.bin")]
    p = weights.get_file("f.bin", urls, tmp_path / "c", sha256=hashlib.sha256(body).hexdigest(), progress=False)
    assert p.read_bytes() == body
    assert server.hits == {"/missing/f.bin": 1, "/mirror/f.bin": 1}
    assert _cache_listing(tmp_path / "c") == ["f.bin"]


def test_interrupted_transfer_leaves_nothing(server, tmp_path):
    body = _payload(seed=3)
    server.routes["/cut.bin"] = {"body": body, "truncate": len(body) // 3}
    with pytest.raises(weights.DownloadError) as ei:
        weights.get_file("cut.bin", server.url("/cut.bin"), tmp_path / "c", progress=False)
    msg = str(ei.value)
    assert "interrupted" in msg and f"of {len(body)} bytes" in msg
    assert "put it at" in msg and str(tmp_path / "c" / "cut.bin") in msg
    assert _cache_listing(tmp_path / "c") == []


def test_corrupt_file_hash_mismatch_leaves_nothing(server, tmp_path):
    body = _payload(seed=4)
    server.routes["/bad.bin"] = {"body": body[:-1] + b"\x00"}
    with pytest.raises(weights.DownloadError, match="corrupt.*sha256"):
        weights.get_file("bad.bin", server.url("/bad.bin"), tmp_path / "c",
                         sha256=hashlib.sha256(body).hexdigest(), progress=False)
    assert _cache_listing(tmp_path / "c") == []
    # wrong size is caught the same way, and a known size bounds what is read
    server.routes["/big.bin"] = {"body": body}
    with pytest.raises(weights.DownloadError, match="more than the expected 100 bytes"):
        weights.get_file("big.bin", server.url("/big.bin"), tmp_path / "c", size=100, progress=False)
    assert _cache_listing(tmp_path / "c") == []


def test_second_call_hits_cache_without_network(server, tmp_path):
    body = _payload(seed=5)
    sha = hashlib.sha256(body).hexdigest()
    server.routes["/w.h5"] = {"body": body}
    url = server.url("/w.h5")
    first = weights.get_file("w.h5", [url], sha256=sha, progress=False)
    server.stop()
    second = weights.get_file("w.h5", [url], sha256=sha, progress=False)
    assert first == second and second.read_bytes() == body
    assert server.hits == {"/w.h5": 1}


def test_bad_cached_file_is_replaced(server, tmp_path):
    body = _payload(seed=6)
    server.routes["/x.bin"] = {"body": body}
    cache = tmp_path / "c"
    cache.mkdir()
    (cache / "x.bin").write_bytes(b"half a file")
    with pytest.warns(UserWarning, match="downloading it again"):
        p = weights.get_file("x.bin", server.url("/x.bin"), cache, size=len(body), progress=False)
    assert p.read_bytes() == body


def test_offline_error_says_what_where(tmp_path):
    # a port nobody listens on: bind, note the port, close
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    urls = [f"http://127.0.0.1:{port}/a/w.h5", f"http://127.0.0.1:{port}/b/w.h5"]
    with pytest.raises(weights.DownloadError) as ei:
        weights.get_file("w.h5", urls, progress=False, hint="Or set CATDOG_WEIGHTS_DIR.")
    msg = str(ei.value)
    assert "Could not get w.h5" in msg
    assert "cannot connect" in msg
    assert f"from {urls[0]} (or {urls[1]})" in msg
    assert str(tmp_path / "home" / "models" / "w.h5") in msg
    assert msg.endswith("Or set CATDOG_WEIGHTS_DIR.")
    assert isinstance(ei.value, OSError)


# --------------------------------------------------------------------------- fetch / locate


def test_fetch_downloads_catalogue_name_and_checks_hdf5(server, tmp_path):
    name = weights.resolve(0.5, 128, False)
    server.routes["/mn/" + name] = {"body": HDF5_SIG + _payload(5000)}
    server.routes["/html/" + name] = {"body": b"<html>quota exceeded</html>"}
    p = weights.fetch(0.5, 128, False, base_urls=[server.url("/html/"), server.url("/mn/")], progress=False)
    assert p == tmp_path / "home" / "models" / name
    assert p.read_bytes().startswith(HDF5_SIG)
    assert server.hits["/html/" + name] == 1  # tried first, refused as not HDF5
    # now cached: no more traffic
    assert weights.fetch(0.5, 128, False, base_urls=[server.url("/mn/")], progress=False) == p
    assert server.hits["/mn/" + name] == 1


def test_fetch_offline_message_names_file_url_and_folder(tmp_path):
    with pytest.raises(weights.DownloadError) as ei:
        weights.fetch(1.0, 160, False, base_urls=["http://127.0.0.1:9/"], progress=False)
    msg = str(ei.value)
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5" in msg
    assert "9406464 bytes" in msg
    assert "CATDOG_WEIGHTS_DIR" in msg and "use_file" in msg


def test_weights_dir_use_file_and_any_size(tmp_path, monkeypatch):
    wdir = tmp_path / "wdir"
    wdir.mkdir()
    f224 = wdir / SHARED_224
    f224.write_bytes(HDF5_SIG)
    # exact file only by default
    assert weights.locate(1.0, 224, False, weights_dir=wdir) == f224
    assert weights.locate(1.0, 160, False, weights_dir=wdir) is None
    # "use the 224 file at 160" -- by flag, by environment, or by registration
    with pytest.warns(UserWarning, match="any_size"):
        assert weights.locate(1.0, 160, False, weights_dir=wdir, any_size=True) == f224
    monkeypatch.setenv("CATDOG_WEIGHTS_DIR", str(wdir))
    monkeypatch.setenv("CATDOG_WEIGHTS_ANY_SIZE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert weights.fetch(1.0, 160, False) == f224
    monkeypatch.delenv("CATDOG_WEIGHTS_ANY_SIZE")
    assert weights.locate(1.0, 160, False) is None
    weights.use_file(f224, 1.0, 160, False)
    assert weights.fetch(1.0, 160, False) == f224.resolve()
    assert weights.locate(1.0, 160, True) is None  # only for what was registered
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        weights.use_file(tmp_path / "nope.h5", 1.0, 160)


def test_weights_argument(tmp_path):
    f = tmp_path / "mine.h5"
    f.write_bytes(HDF5_SIG)
    assert weights.weights_path(None) is None
    assert weights.weights_path(str(f)) == f
    assert weights.weights_path(f) == f
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        weights.weights_path(tmp_path / "missing.h5")
    with pytest.raises(ValueError, match="folder"):
        weights.weights_path(tmp_path)
    with pytest.raises(ValueError, match="imagenet"):
        weights.weights_path(3)


def test_shared_weights_file_matches_its_recorded_hash():
    shared = Path(os.environ.get("CATDOG_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    f = shared / "weights" / SHARED_224
    if not f.is_file():
        pytest.skip(f"shared weights not present at {f} (set CATDOG_SHARED)")
    copy = weights.LOCAL_COPIES["shared-1.0_224_no_top"]
    assert f.stat().st_size == copy["size"]
    assert weights.sha256_of(f) == copy["sha256"]


def test_a_silent_server_times_out_and_leaves_nothing(tmp_path):
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection (backlog) but never answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/slow.bin"
        with pytest.raises(weights.DownloadError, match="timed out"):
            weights.get_file("slow.bin", url, tmp_path / "c", progress=False, timeout=0.3)
    finally:
        silent.close()
    assert _cache_listing(tmp_path / "c") == []
