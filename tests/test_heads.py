"""Probability heads and the crossentropy losses against Keras 3 (fixtures:
tests/fixtures/make_head_fixtures.py): Dense(k, sigmoid / softmax / linear) heads with
binary, categorical and sparse categorical crossentropy, string names and classes,
from_logits True and False — predictions, the loss and accuracy evaluate() reports, and the
gradients of the loss, including samples whose probabilities round to 0 or 1 (where Keras
computes the loss from the head's logits rather than from clipped probabilities)."""
import json

import numpy as np
import pytest

import catdog
from catdog import layers
from conftest import FIXTURES, assert_close_rel

FWD_REL = 1e-4
GRAD_REL = 1e-3

IO = dict(np.load(FIXTURES / "heads.npz"))
META = json.loads(str(IO["meta"]))
CASES = META["cases"]
SIGMOID_CATEGORICAL = ("sigmoid_cce_probs", "sigmoid_scce_probs")


def make_loss(spec):
    if isinstance(spec, str):
        return spec
    cls, from_logits = spec
    return getattr(catdog.losses, cls)(from_logits=from_logits)


def build(case):
    m = CASES[case]
    inp = catdog.Input((4, 4, 3))
    conv = layers.Conv2D(6, 3, padding="same", name="conv")
    dense = layers.Dense(m["units"], activation=m["activation"], name="dense")
    out = dense(layers.GlobalAveragePooling2D()(conv(inp)))
    model = catdog.Model(inp, out)
    conv.set_weights([IO["conv/kernel"], IO["conv/bias"]])
    dense.set_weights([IO[f"{case}/dense/kernel"], IO[f"{case}/dense/bias"]])
    return model


def labels(case):
    return {"binary": IO["y_binary"], "int": IO["y_int"], "onehot": IO["y_onehot"]}[
        CASES[case]["labels"]]


def test_fixture_covers_saturated_probabilities():
    # the cases that tell logits reuse from clipping: probabilities exactly 0 or 1 in float32
    assert CASES["sigmoid_bce_str"]["saturated"] > 0
    assert CASES["softmax_cce_str"]["saturated"] > 0
    assert CASES["softmax_scce_str"]["saturated"] > 0
    # and the loss is above what clipping at 1e-7 allows (-log(1e-7) = 16.1 per sample)
    assert float(IO["softmax_cce_str/loss"]) > 16.2


@pytest.mark.parametrize("case", sorted(CASES))
def test_head_matches_keras(case):
    m = CASES[case]
    model = build(case)
    x, y = IO["x"], labels(case)
    assert_close_rel(model.predict(x), IO[f"{case}/pred"], FWD_REL, f"{case} predictions")

    model.compile(optimizer="sgd", loss=make_loss(m["loss"]), metrics=["accuracy"])
    loss, acc = model.evaluate(x, y, batch_size=len(x), verbose=0)
    ref = float(IO[f"{case}/loss"])
    if case in SIGMOID_CATEGORICAL:  # catdog: the clipped formula on the probabilities
        ref = float(IO[f"{case}/probs_loss"])
    assert abs(loss - ref) <= FWD_REL * max(1.0, abs(ref)), (case, loss, ref)
    if case == "linear_bce_logits":
        # Keras's "accuracy" thresholds logits at 0.5; catdog at 0 (= 0.5 on the sigmoid)
        z = IO[f"{case}/logits"].reshape(-1)
        assert acc == pytest.approx(np.mean((z > 0) == (y > 0.5)))
    else:
        assert acc == pytest.approx(float(IO[f"{case}/accuracy"])), case

    grads = model.gradients(x, y, loss=make_loss(m["loss"]))
    assert sorted(grads) == sorted(m["weights"])
    if case in SIGMOID_CATEGORICAL:  # chain rule through Keras's d(clipped loss)/d(probs)
        refs = model.gradients(x, output_gradient=IO[f"{case}/probs_grad"])
    else:
        refs = {key: IO[f"{case}/grad/{key}"] for key in m["weights"]}
    for key in m["weights"]:
        assert_close_rel(grads[key], refs[key], GRAD_REL, f"{case} {key}")


def test_keras_reuses_sigmoid_logits_in_categorical_losses():
    """The Keras quirk catdog does not copy: softmax crossentropy of a sigmoid head's
    logits (recorded from Keras; checked here so a Keras change shows on regeneration)."""
    for case in SIGMOID_CATEGORICAL:
        z = IO[f"{case}/logits"].astype(np.float64)
        y = IO["y_int"].astype(int)
        lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
        assert float(IO[f"{case}/loss"]) == pytest.approx(np.mean(lse - z[np.arange(len(y)), y]),
                                                         rel=1e-5)
        assert abs(float(IO[f"{case}/loss"]) - float(IO[f"{case}/probs_loss"])) > 0.1


PROB_CASES = sorted(c for c in CASES if f"{c}/probs_loss" in IO)


@pytest.mark.parametrize("case", PROB_CASES)
def test_engine_loss_on_probabilities_matches_keras(case):
    """The clipped formulas on probabilities (no head logits): loss and d loss / d probs."""
    loss_obj = catdog.losses.get(make_loss(CASES[case]["loss"]))
    assert not loss_obj.from_logits
    p = np.ascontiguousarray(IO[f"{case}/pred"])
    y = labels(case)
    value, dp = catdog._engine.loss(loss_obj.kind, p, np.ascontiguousarray(y.reshape(len(p), -1)))
    ref = float(IO[f"{case}/probs_loss"])
    assert abs(value - ref) <= FWD_REL * max(1.0, ref), (case, value, ref)
    assert_close_rel(dp, IO[f"{case}/probs_grad"].reshape(dp.shape), GRAD_REL, f"{case} dL/dp")


@pytest.mark.parametrize("case", ["sigmoid_bce_str", "softmax_cce_str", "softmax_scce_str"])
def test_training_step_uses_the_same_loss(case):
    """train_on_batch reports the loss of the weights before the step: Keras's value."""
    model = build(case)
    model.compile(optimizer=catdog.optimizers.SGD(0.0), loss=make_loss(CASES[case]["loss"]),
                  metrics=["accuracy"])
    loss, acc = model.train_on_batch(IO["x"], labels(case))
    ref = float(IO[f"{case}/loss"])
    assert abs(loss - ref) <= FWD_REL * max(1.0, ref)
    assert acc == pytest.approx(float(IO[f"{case}/accuracy"]))


def test_outputs_stay_probabilities_after_evaluate():
    model = build("sigmoid_bce_str")
    model.compile(loss="binary_crossentropy", metrics=["accuracy"])
    model.evaluate(IO["x"], IO["y_binary"], verbose=0)
    p = model.predict(IO["x"])
    assert p.min() >= 0 and p.max() <= 1
    assert_close_rel(p, IO["sigmoid_bce_str/pred"], FWD_REL, "predict")


def test_from_logits_on_a_sigmoid_head_warns_and_uses_the_logits():
    model = build("sigmoid_bce_fromlogits")
    model.compile(loss=catdog.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
    with pytest.warns(UserWarning, match="from_logits=True"):
        loss, _ = model.evaluate(IO["x"], IO["y_binary"], verbose=0)
    assert loss == pytest.approx(float(IO["sigmoid_bce_fromlogits/loss"]), rel=1e-5)


def test_string_names_and_metric_resolution():
    assert catdog.losses.get("binary_crossentropy").from_logits is False
    assert isinstance(catdog.losses.get("categorical_crossentropy"),
                      catdog.losses.CategoricalCrossentropy)
    assert isinstance(catdog.losses.get("sparse_categorical_crossentropy"),
                      catdog.losses.SparseCategoricalCrossentropy)
    with pytest.raises(ValueError, match="unknown loss"):
        catdog.losses.get("hinge")
    with pytest.raises(ValueError, match="label_smoothing"):
        catdog.losses.BinaryCrossentropy(label_smoothing=0.1)


def test_mismatched_labels_and_metrics_raise():
    model = build("softmax_cce_str")
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    with pytest.raises(ValueError, match="one-hot"):
        model.evaluate(IO["x"], IO["y_int"], verbose=0)
    model.compile(loss="categorical_crossentropy",
                  metrics=[catdog.metrics.BinaryAccuracy()])
    with pytest.raises(ValueError, match="does not go with"):
        model.evaluate(IO["x"], IO["y_onehot"], verbose=0)
    model.compile(loss="categorical_crossentropy", metrics=["binary_accuracy"])
    with pytest.raises(ValueError, match="binary_accuracy"):
        model.evaluate(IO["x"], IO["y_onehot"], verbose=0)
    model = build("sigmoid_bce_str")
    model.compile(loss="binary_crossentropy")
    with pytest.raises(ValueError, match="one label per image"):
        model.evaluate(IO["x"], IO["y_onehot"], verbose=0)


@pytest.mark.parametrize("case", ["sigmoid_bce_str", "softmax_cce_str"])
def test_large_batch_step_matches_keras(case):
    """A batch of 40 (the training step's micro-batched path) gives Keras's mean loss."""
    model = build(case)
    model.compile(optimizer=catdog.optimizers.SGD(0.0), loss=make_loss(CASES[case]["loss"]),
                  metrics=["accuracy"])
    reps = (5,) + (1,) * (labels(case).ndim - 1)
    loss, acc = model.train_on_batch(np.tile(IO["x"], (5, 1, 1, 1)), np.tile(labels(case), reps))
    ref = float(IO[f"{case}/loss"])
    assert abs(loss - ref) <= FWD_REL * max(1.0, ref)
    assert acc == pytest.approx(float(IO[f"{case}/accuracy"]))
