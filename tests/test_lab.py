"""The lab on the real data, reduced for CI (subset of images, 1 + 1 epochs): it learns
(accuracy well above chance), writes its outputs, and is reproducible bit for bit."""
import json

import numpy as np

from catdog import lab
from conftest import needs_shared_data, needs_shared_weights


def run(tmp_path, name, subset=100, seed=1337):
    import os

    from conftest import shared_dir

    os.environ["CATDOG_SHARED"] = str(shared_dir())
    args = lab.parse(["--subset", str(subset), "--epochs", "1", "--fine-tune-epochs", "1",
                      "--seed", str(seed), "--output", str(tmp_path / name), "--quiet"])
    return lab.run(args, return_model=True)


@needs_shared_data
@needs_shared_weights
def test_reduced_lab_learns_and_writes_outputs(tmp_path):
    metrics, _ = run(tmp_path, "a")
    out = tmp_path / "a"
    for f in ("metrics.json", "report.md", "learning_curves_transfer.png",
              "learning_curves_fine_tuning.png", "test_predictions.png"):
        assert (out / f).stat().st_size > 0, f
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["train_images"] == 200
    # 200 training images, 1 + 1 epochs: well above chance (0.5)
    assert metrics["fine_tuned"]["val_accuracy"] >= 0.75, metrics["fine_tuned"]
    assert metrics["test"]["accuracy"] >= 0.75, metrics["test"]
    assert len(metrics["history"]["loss"]) == 1 and len(metrics["history_fine"]["loss"]) == 2


@needs_shared_data
@needs_shared_weights
def test_lab_is_reproducible(tmp_path):
    m1, model1 = run(tmp_path, "r1", subset=40)
    m2, model2 = run(tmp_path, "r2", subset=40)
    assert m1["history"] == m2["history"] and m1["history_fine"] == m2["history_fine"]
    assert m1["test"] == m2["test"]
    w1, w2 = model1.get_weights(), model2.get_weights()
    assert len(w1) == len(w2) == 260 + 2  # 52 convs + 52 BN x 4, the dense kernel and bias
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2))
