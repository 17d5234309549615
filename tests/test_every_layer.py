"""Issue 22's "Done when": one small functional model using every layer kind catdog runs
(tests/every_layer_model.py: Resizing, Normalization, RandomBrightness/Contrast, Conv2D with
strides / groups / dilation / activation, DepthwiseConv2D 5x5, SeparableConv2D, the three
BatchNormalization forms, Add / Subtract / Maximum / Average, Concatenate, a squeeze-and-excite
Multiply, every activation string, pooling, Flatten, Reshape, Dense with tanh and softmax)
matches Keras 3 on predict and on every weight after one optimizer step (Adam, BN in training
mode). Keras's numbers: tests/fixtures/make_every_layer_fixtures.py."""
import json
from pathlib import Path

import numpy as np
import pytest

import catdog
from every_layer_model import build

IO = np.load(Path(__file__).parent / "fixtures" / "keras" / "every_layer.npz")


def fixture_model():
    inp, out = build(catdog.layers, catdog.Input)
    model = catdog.Model(inp, out)
    for layer in model.layers:
        n = len(layer.get_weights())
        if n and f"w/{layer.name}/0" in IO.files:
            layer.set_weights([IO[f"w/{layer.name}/{i}"] for i in range(n)])
    return model


def rel_err(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1e-12))


def test_the_model_has_keras_layers_in_keras_order():
    model = fixture_model()
    names = [layer.name for layer in model.layers]
    assert names[1:] == json.loads(str(IO["layers"]))[1:]  # the input's name is numbered


def test_predict_matches_keras():
    model = fixture_model()
    got = model.predict(IO["x"], verbose=0)
    assert rel_err(got, IO["logits"]) < 1e-5


@pytest.mark.parametrize("threads", [1, 2])
def test_one_adam_step_matches_keras(threads):
    catdog.set_num_threads(threads)
    model = fixture_model()
    model.compile(optimizer=catdog.optimizers.Adam(1e-2),
                  loss=catdog.losses.BinaryCrossentropy(from_logits=True))
    loss = model.train_on_batch(IO["x"], IO["y"][:, None])
    assert abs(float(loss) - float(IO["loss"])) < 1e-5 * max(1.0, abs(float(IO["loss"])))
    # Adam's first step moves every weight by at most lr (m / sqrt(v) is +-1 up to eps); a
    # weight whose gradient is at round-off level (the bias before a training-mode BN) may land
    # anywhere in that range in either framework. So each weight, moving statistics included,
    # must agree with Keras's to 1e-3 of the learning rate.
    checked = 0
    for layer in model.layers:
        for i, w in enumerate(layer.get_weights()):
            want = IO[f"step/{layer.name}/{i}"]
            err = float(np.abs(w.astype(np.float64) - want).max())
            assert err <= 1e-5, (layer.name, i, err)
            checked += 1
    assert checked == len([k for k in IO.files if k.startswith("step/")])
