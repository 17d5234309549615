"""weights="imagenet" for ResNet50, VGG16 and MobileNetV3: Keras's file names, URLs and
published md5s (keras/src/applications/resnet.py, vgg16.py, mobilenet_v3.py,
efficientnet.py, imagenet_utils.py), checked downloads from a loopback HTTP server (no
network here), and weight files for another network or size refused naming the layer."""
import hashlib
import json

import numpy as np
import pytest

from catdog import applications, download, weights
from catdog.applications import imagenet_utils
from test_weights_download import LocalServer, sandbox  # noqa: F401  (autouse fixture)


@pytest.fixture
def server():
    s = LocalServer()
    yield s
    s.stop()


def asked_file(monkeypatch, build, **kwargs):
    """The official file name a builder asks catdog.weights for."""
    asked = []

    def fake(name, **kw):
        asked.append(name)
        raise LookupError("stop")

    monkeypatch.setattr(weights, "fetch_named", fake)
    with pytest.raises(LookupError):
        build(weights="imagenet", **kwargs)
    monkeypatch.undo()
    return asked[0]


def test_builders_ask_for_keras_files(monkeypatch):
    A = applications
    cases = [
        (A.ResNet50, dict(include_top=False, input_shape=(32, 32, 3)),
         "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "4d473c1dd8becc155b73f8504c6f6626"),
        (A.ResNet50, dict(), "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
         "2cb95161c43110f7111970584f804107"),
        (A.VGG16, dict(include_top=False, input_shape=(32, 32, 3)),
         "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc"),
        (A.MobileNetV3Small, dict(include_top=False),
         "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5", "d3e8ec802a04aa4fc771ee12a9a9b836"),
        (A.MobileNetV3Small, dict(alpha=0.75),
         "weights_mobilenet_v3_small_224_0.75_float.h5", "cb65d4e5be93758266aa0a7f2c6708b7"),
        (A.MobileNetV3Large, dict(include_top=False, minimalistic=True),
         "weights_mobilenet_v3_large_minimalistic_224_1.0_float_no_top_v2.h5",
         "ec5221f64a2f6d1ef965a614bdae7973"),
        (A.MobileNetV3Large, dict(include_top=False),
         "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5", "07fb09a5933dd0c8eaafa16978110389"),
        (A.EfficientNetB0, dict(include_top=False, input_shape=(64, 64, 3)),
         "efficientnetb0_notop.h5", "50bc09e76180e00e4465e1a485ddc09d"),
        (A.EfficientNetB0, dict(), "efficientnetb0.h5", "902e53a9f72be733fc0bcb005b3ebbac"),
    ]
    for build, kwargs, name, md5 in cases:
        assert asked_file(monkeypatch, build, **kwargs) == name
        base, file_hash = weights.KERAS_FILES[name]
        assert file_hash == md5
        assert base.startswith("https://storage.googleapis.com/tensorflow/keras-applications/"
                               if "efficientnet" not in name else
                               "https://storage.googleapis.com/keras-applications/")
    assert len(weights.KERAS_FILES) == 19  # 4 ResNet50/VGG16, 12 MobileNetV3, 2 EffNetB0, index
    assert weights.KERAS_FILES["imagenet_class_index.json"][1] == imagenet_utils.CLASS_INDEX_MD5


def _seeded_file(tmp_path, name="resnet50_notop.h5"):
    """A legacy .h5 for ResNet50 at 32x32 with seeded weights (catdog's writer)."""
    m = applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    rng = np.random.default_rng(5)
    for layer in m.layers:
        if layer._weights:
            layer.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32)
                               for _, w, _ in layer._weights])
    path = tmp_path / name
    m.save_weights(str(path))
    return m, path


def _serve(server, monkeypatch, name, body, file_hash=None):
    server.routes["/keras/" + name] = {"body": body}
    base, real = weights.KERAS_FILES[name]
    monkeypatch.setitem(weights.KERAS_FILES, name,
                        (server.url("/keras/"), real if file_hash is None else file_hash))


def test_imagenet_download_checked_and_loaded(server, monkeypatch, tmp_path):
    ref, path = _seeded_file(tmp_path)
    body = path.read_bytes()
    name = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    _serve(server, monkeypatch, name, body, hashlib.md5(body).hexdigest())
    m = applications.ResNet50(include_top=False, weights="imagenet", input_shape=(32, 32, 3))
    for a, b in zip(m.weights, ref.weights):
        np.testing.assert_array_equal(a, b)
    cached = tmp_path / "home" / "models" / name
    assert cached.read_bytes() == body
    # cached and still matching: no second download
    applications.ResNet50(include_top=False, weights="imagenet", input_shape=(32, 32, 3))
    assert server.hits["/keras/" + name] == 1


def test_a_file_with_another_hash_is_refused(server, monkeypatch, tmp_path):
    """The real published md5 against a file that is not the official one: refused, both
    hashes said, nothing left in the cache."""
    _, path = _seeded_file(tmp_path)
    name = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    _serve(server, monkeypatch, name, path.read_bytes())
    with pytest.raises(download.DownloadError) as ei:
        applications.ResNet50(include_top=False, weights="imagenet", input_shape=(32, 32, 3))
    msg = str(ei.value)
    assert "md5 " in msg and "expected 4d473c1dd8becc155b73f8504c6f6626 (Keras's published hash)" in msg
    assert name in msg and "CATDOG_WEIGHTS_DIR" in msg
    assert not (tmp_path / "home" / "models" / name).exists()


def test_a_cached_file_that_no_longer_matches_is_fetched_again(server, monkeypatch, tmp_path):
    _, path = _seeded_file(tmp_path)
    body = path.read_bytes()
    name = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    cache = tmp_path / "home" / "models"
    cache.mkdir(parents=True)
    (cache / name).write_bytes(body[:-10])
    _serve(server, monkeypatch, name, body, hashlib.md5(body).hexdigest())
    with pytest.warns(UserWarning, match="downloading it again"):
        p = weights.fetch_named(name, progress=False)
    assert p.read_bytes() == body


def test_weights_dir_copy_is_used_as_is(monkeypatch, tmp_path):
    """A copy the user points at (CATDOG_WEIGHTS_DIR) is theirs: used without a hash check
    (it may be converted, like ../shared's MobileNetV2 file) and without network."""
    _, path = _seeded_file(tmp_path, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
    monkeypatch.setenv("CATDOG_WEIGHTS_DIR", str(tmp_path))
    assert weights.fetch_named(path.name) == path
    with pytest.raises(ValueError, match="catalogue"):
        weights.fetch_named("resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5")


def test_file_hash_auto_rule(tmp_path):
    """Keras's resolve_hasher: 64 hex digits are a sha256, otherwise md5."""
    f = tmp_path / "f.bin"
    f.write_bytes(b"catdog")
    assert download.hash_of(f, "0" * 32) == ("md5", hashlib.md5(b"catdog").hexdigest())
    assert download.hash_of(f, "0" * 64) == ("sha256", hashlib.sha256(b"catdog").hexdigest())


def test_decode_predictions_with_the_class_index(server, monkeypatch, tmp_path):
    index = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
    body = json.dumps(index).encode()
    _serve(server, monkeypatch, "imagenet_class_index.json", body, hashlib.md5(body).hexdigest())
    monkeypatch.setattr(imagenet_utils, "_CLASS_INDEX", None)
    preds = np.zeros((2, 1000), np.float32)
    preds[0, [3, 999, 10]] = [0.5, 0.3, 0.2]
    preds[1, 42] = 1.0
    out = applications.resnet50.decode_predictions(preds, top=3)
    assert [r[:2] for r in out[0]] == [("n00000003", "class_3"), ("n00000999", "class_999"),
                                       ("n00000010", "class_10")]
    assert out[0][0][2] == pytest.approx(0.5) and out[1][0][:2] == ("n00000042", "class_42")
    assert applications.mobilenet_v2.decode_predictions(preds, top=1)[1][0][1] == "class_42"


def test_decode_predictions_refuses_a_wrong_class_index(server, monkeypatch):
    _serve(server, monkeypatch, "imagenet_class_index.json", b'{"0": ["n0", "x"]}')
    monkeypatch.setattr(imagenet_utils, "_CLASS_INDEX", None)
    with pytest.raises(download.DownloadError, match="c2c37ea517e94d9795004a39431a14cb"):
        applications.vgg16.decode_predictions(np.zeros((1, 1000)))


def _saved(tmp_path, build, name, **kwargs):
    m = build(weights=None, **kwargs)
    p = tmp_path / name
    m.save_weights(str(p))
    return p


@pytest.mark.parametrize("suffix", [".h5", ".weights.h5"])
def test_another_network_or_size_is_refused_naming_the_layer(tmp_path, suffix):
    A = applications
    vgg = _saved(tmp_path, A.VGG16, "vgg" + suffix, include_top=False, input_shape=(32, 32, 3))
    # legacy: by name, conv1_conv is the first missing layer; Keras 3 layout: by path, VGG's
    # layers/conv2d sits where conv1_conv's does, and conv1_bn's path is absent from the file
    with pytest.raises(ValueError, match="conv1_conv" if suffix == ".h5" else "layer 'conv1_bn'"):
        A.ResNet50(include_top=False, weights=str(vgg), input_shape=(32, 32, 3))
    small = _saved(tmp_path, A.MobileNetV3Small, "s075" + suffix, include_top=False,
                   input_shape=(32, 32, 3), alpha=0.75)
    with pytest.raises(ValueError, match="expanded_conv_3_project.*\\(1, 1, 96, 32\\) in the file, "
                                         "\\(1, 1, 96, 40\\) in the model"):
        A.MobileNetV3Small(include_top=False, weights=str(small), input_shape=(32, 32, 3))
    top32 = _saved(tmp_path, A.VGG16, "top32" + suffix, include_top=True, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="fc1.*\\(512, 4096\\) in the file, \\(2048, 4096\\) in the model"):
        A.VGG16(include_top=True, weights=str(top32), input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="expanded_conv"):
        A.MobileNetV3Large(include_top=False, weights=str(small), input_shape=(32, 32, 3))


def test_efficientnet_file_loads_when_the_normalization_has_another_auto_name(tmp_path):
    """The official file names its Normalization `normalization`; a second EfficientNetB0 in
    one process calls it `normalization_1`. Names then differ, so the legacy loader matches
    layers by position, as Keras's load_weights does: every weight still lands."""
    from catdog.layers.core import reset_name_counters

    reset_name_counters()
    first = applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    rng = np.random.default_rng(9)
    for layer in first.layers:
        if layer._weights:
            layer.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32)
                               for _, w, _ in layer._weights])
    path = tmp_path / "efficientnetb0_notop.h5"
    first.save_weights(str(path))
    second = applications.EfficientNetB0(include_top=False, weights=str(path), input_shape=(32, 32, 3))
    assert second.layers[2].name == "normalization_1" and first.layers[2].name == "normalization"
    for a, b in zip(first.layers, second.layers):
        for (_, wa, _), (_, wb, _) in zip(a._weights, b._weights):
            np.testing.assert_array_equal(wa, wb, err_msg=a.name)
