"""catdog.utils.get_file as Keras 3 names and unpacks archives (keras/src/utils/file_utils.py,
get_file + extract_archive): the image classification tutorial's
``get_file("flower_photos.tgz", origin=..., extract=True)`` returns
``<datasets>/flower_photos_extracted`` holding the archive's own top folder; a `fname` without a
dot downloads ``<fname>_archive`` and unpacks into ``<fname>/``. Served from file:// URLs
(urllib's own handler), so nothing leaves the machine."""
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from catdog import utils


def _tgz(path: Path, members: dict, mode="w:gz"):
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CATDOG_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_tgz_with_dotted_fname_unpacks_into_name_extracted(tmp_path, home):
    src = _tgz(tmp_path / "served.tgz", {"flower_photos/roses/a.jpg": b"A" * 10,
                                         "flower_photos/tulips/b.jpg": b"B" * 20})
    got = utils.get_file("flower_photos.tgz", origin=src.as_uri(), extract=True)
    assert Path(got) == home / "datasets" / "flower_photos_extracted"
    assert (home / "datasets" / "flower_photos.tgz").is_file()  # the download, under fname
    root = Path(got).parent / "flower_photos_extracted" / "flower_photos"  # the tutorial's path
    assert sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.jpg")) == [
        "roses/a.jpg", "tulips/b.jpg"]
    assert (root / "tulips" / "b.jpg").read_bytes() == b"B" * 20
    # a second call uses the cached download (the served file is gone) and unpacks again
    src.unlink()
    assert utils.get_file("flower_photos.tgz", origin=src.as_uri(), extract=True) == got
    assert (root / "roses" / "a.jpg").read_bytes() == b"A" * 10


def test_untar_and_plain_names_unpack_into_fname(tmp_path, home):
    src = _tgz(tmp_path / "x.tar", {"top/f.txt": b"x"}, mode="w")
    got = utils.get_file("flower_photos", origin=src.as_uri(), untar=True)
    assert Path(got) == home / "datasets" / "flower_photos"
    assert (Path(got) / "top" / "f.txt").read_bytes() == b"x"
    assert (home / "datasets" / "flower_photos_archive").is_file()


def test_zip_is_unpacked_too_and_plain_download_returns_the_file(tmp_path, home):
    src = tmp_path / "data.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("d/one.txt", "1")
    got = utils.get_file("data.zip", origin=src.as_uri(), extract=True, cache_dir=tmp_path / "c",
                         cache_subdir="sub")
    assert Path(got) == tmp_path / "c" / "sub" / "data_extracted"
    assert (Path(got) / "d" / "one.txt").read_text() == "1"
    plain = utils.get_file("Red_sunflower", origin=src.as_uri())
    assert Path(plain) == home / "datasets" / "Red_sunflower"
    assert Path(plain).read_bytes() == src.read_bytes()


@pytest.mark.parametrize("bad", ["../evil.txt", "/abs.txt", "ok/../../evil.txt"])
def test_unsafe_tar_members_refuse_the_archive(tmp_path, home, bad):
    src = _tgz(tmp_path / "bad.tgz", {"fine/a.txt": b"a", bad: b"evil"})
    with pytest.raises(ValueError, match="unsafe tar member"):
        utils.get_file("bad.tgz", origin=src.as_uri(), extract=True)
    assert not (home / "datasets" / "bad_extracted").exists()
    assert not (tmp_path / "evil.txt").exists() and not Path("/abs.txt").exists()


def test_tar_links_are_refused(tmp_path, home):
    src = tmp_path / "link.tgz"
    with tarfile.open(src, "w:gz") as tf:
        info = tarfile.TarInfo("d/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(ValueError, match="not a file or a folder"):
        utils.get_file("link.tgz", origin=src.as_uri(), extract=True)


def test_not_an_archive_warns_as_keras(tmp_path, home):
    src = tmp_path / "plain.bin"
    src.write_bytes(b"not an archive\n" * 40)
    with pytest.warns(UserWarning, match="Could not extract archive"):
        got = utils.get_file("plain.bin", origin=src.as_uri(), extract=True)
    assert Path(got) == home / "datasets" / "plain_extracted"


def test_bad_fname_and_hash_are_refused(tmp_path, home):
    with pytest.raises(ValueError, match="Paths are no longer accepted"):
        utils.get_file("a/b.tgz", origin="file:///nowhere")
    with pytest.raises(ValueError, match="sha256"):
        utils.get_file("x", origin="file:///nowhere", md5_hash="0" * 32)
