"""catdog-lab --base: each family runs the whole lab (transfer, fine-tuning from its default
layer, test split, outputs). Random-start weights (--weights none: no downloads here), 64x64,
20 images per class, 1 + 1 epochs: the machinery, not accuracy."""
import json
import os

import numpy as np
import pytest

from catdog import applications, lab
from conftest import needs_shared_data, shared_dir

# the default fine-tuning layer of each base, and its index in Keras's layer list
DEFAULTS = {"mobilenetv2": ("MobileNetV2", "block_11_expand_relu", 100),
            "resnet50": ("ResNet50", "conv5_block1_1_conv", 143),
            "vgg16": ("VGG16", "block5_conv1", 15),
            "mobilenetv3small": ("MobileNetV3Small", "expanded_conv_6_expand", 80),
            "mobilenetv3large": ("MobileNetV3Large", "expanded_conv_10_expand", 110),
            "efficientnetb0": ("EfficientNetB0", "block6a_expand_conv", 162)}


def test_every_base_has_a_stated_default():
    assert sorted(lab.BASES) == sorted(DEFAULTS)
    for base, (builder, _, at, why) in lab.BASES.items():
        assert builder == DEFAULTS[base][0] and why
        assert at in (DEFAULTS[base][1], DEFAULTS[base][2])
    assert lab.parse([]).base == "mobilenetv2" and lab.parse([]).image_size == 160


@needs_shared_data
@pytest.mark.parametrize("base", sorted(set(DEFAULTS) - {"mobilenetv2"}))
def test_lab_runs_with_each_base(base, tmp_path, monkeypatch):
    monkeypatch.setenv("CATDOG_SHARED", str(shared_dir()))
    args = lab.parse(["--base", base, "--weights", "none", "--image-size", "64", "--subset", "20",
                      "--epochs", "1", "--fine-tune-epochs", "1", "--output", str(tmp_path),
                      "--quiet"])
    metrics, model = lab.run(args, return_model=True)
    builder, layer, index = DEFAULTS[base]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["base"] == base and saved["fine_tune_at"] == index and saved["image_size"] == 64
    assert len(saved["history_fine"]["loss"]) == 2 and np.isfinite(saved["test"]["loss"])
    assert f"{builder} (ImageNet, None) at 64x64" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "test_predictions.png").stat().st_size > 0
    base_model = next(l for l in model.layers if l.name.lower() == builder.lower())
    assert base_model.layers[index].name == layer
    flags = [l.trainable for l in base_model.layers]
    assert not any(flags[:index]) and all(flags[index:])
