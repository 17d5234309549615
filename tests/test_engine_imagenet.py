"""The real ImageNet weights (../shared) in alpha 1.0 at 160x160 give Keras's 5x5x1280 features
on real images (fixture from Keras with the same file: tests/fixtures/keras/real_features.npz)."""
import numpy as np

import catdog
from conftest import FIXTURES, SHARED_WEIGHTS, assert_close_rel, needs_shared_weights


@needs_shared_weights
def test_imagenet_features_match_keras():
    ref = np.load(FIXTURES / "real_features.npz")
    base = catdog.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=False,
                                           weights=str(SHARED_WEIGHTS))
    x = catdog.applications.mobilenet_v2.preprocess_input(ref["x_raw"])
    feats = base.predict_on_batch(x)
    assert feats.shape == (2, 5, 5, 1280)
    rel = assert_close_rel(feats, ref["features"], 1e-4, "ImageNet features")
    print(f"max|catdog - keras| / max|keras| = {rel:.2e}")


@needs_shared_weights
def test_imagenet_weights_through_weights_imagenet(monkeypatch, tmp_path):
    """weights="imagenet" finds the file through CATDOG_WEIGHTS_DIR (the 224 file serves 160
    when any size is allowed), never the network."""
    monkeypatch.setenv("CATDOG_HOME", str(tmp_path))
    monkeypatch.setenv("CATDOG_WEIGHTS_DIR", str(SHARED_WEIGHTS.parent))
    monkeypatch.setenv("CATDOG_WEIGHTS_ANY_SIZE", "1")
    base = catdog.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=False,
                                           weights="imagenet")
    assert base.count_params() == 2_257_984
    k = base.get_layer("Conv1").get_weights()[0]
    assert k.shape == (3, 3, 3, 32) and float(np.abs(k).max()) > 0.1
