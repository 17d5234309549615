"""Normalization (keras/src/layers/preprocessing/normalization.py): y = (x - mean) /
max(sqrt(variance), backend.epsilon()) per channel, or its inverse; adapt() on an array and on
batches; weights mean, variance, count (non-trainable) only when adapted. Checked against
Keras 3.15 / TF 2.21 fixtures (tests/fixtures/make_layers_fixtures.py normalization) and by
finite differences."""
import numpy as np
import pytest

import catdog
from catdog import layers
from conftest import assert_close_rel
from layers_common import finite_difference_input_gradient, input_gradient, load, probe_model

IO = load("normalization")


def adapted(case, **kwargs):
    layer = layers.Normalization(**kwargs)
    if case == "adapted_batches":
        layer.adapt([IO[f"adapt/adapted_batches/{i}"] for i in range(3)])
    else:
        layer.adapt(IO["adapt/adapted_image"])
    return layer


def make(case):
    if case == "scalar_adapted":
        return adapted("adapted_image", axis=None)
    if case == "scalar_given_invert":
        return layers.Normalization(axis=None, mean=2.0, variance=9.0, invert=True)
    if case == "given":
        return layers.Normalization(mean=IO["mean/given"], variance=IO["variance/given"])
    if case == "given_scalar":
        return layers.Normalization(mean=2.0, variance=9.0)
    return adapted(case, invert=case == "invert")


@pytest.mark.parametrize("case", ["adapted_image", "adapted_batches", "given", "given_scalar",
                                  "invert", "scalar_adapted", "scalar_given_invert"])
def test_normalization_matches_keras(case):
    layer = make(case)
    x = IO[f"x/{case}"]
    model = probe_model(layer, x.shape[1:])
    # weights as Keras lists them (count is Keras's int64 0; catdog keeps float32)
    want_w = [IO[k] for k in sorted(k for k in IO.files if k.startswith(f"w/{case}/"))]
    got_w = layer.get_weights()
    assert len(got_w) == len(want_w)
    for g, w in zip(got_w, want_w):
        assert g.shape == w.shape
        assert_close_rel(g, w, 1e-6, f"{case} weight")
    assert layer.count_params() == model.count_params() == int(IO[f"params/{case}"])
    assert all(not t for _, _, t in layer._weights)  # Keras: trainable=False weights
    y = model.predict_on_batch(x)
    assert_close_rel(y, IO[f"y/{case}"], 1e-6, f"{case} forward")
    dx = input_gradient(model, x, IO[f"dy/{case}"])
    assert_close_rel(dx, IO[f"dx/{case}"], 1e-6, f"{case} gradient")


def test_epsilon_side_of_tiny_variances():
    """variance 0 and 1e-20: the denominator is epsilon = 1e-7, not sqrt(variance)."""
    y = IO["y/given"]
    x = IO["x/given"]
    np.testing.assert_allclose(y[..., 1], (x[..., 1] + 2.0) / np.float32(1e-7), rtol=1e-6)
    model = probe_model(make("given"), x.shape[1:])
    np.testing.assert_allclose(model.predict_on_batch(x)[..., 2],
                               (x[..., 2] - 0.5) / np.float32(1e-7), rtol=1e-6)


@pytest.mark.parametrize("invert", [False, True])
def test_normalization_gradient_by_finite_differences(invert):
    rng = np.random.default_rng(5)
    layer = layers.Normalization(invert=invert)
    layer.adapt(rng.normal(size=(8, 3, 3, 4)).astype(np.float32) * [1, 2, 3, 4])
    x = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    model = probe_model(layer, x.shape[1:])
    dy = rng.normal(size=x.shape).astype(np.float32)
    got = input_gradient(model, x, dy)
    for i, want in finite_difference_input_gradient(model, x, dy).items():
        assert abs(got[i] - want) <= 2e-3 * max(1.0, abs(want)), (i, got[i], want)


def test_adapt_on_a_dataset_and_in_a_trained_model():
    """adapt() takes a dataset's (x, y) batches; the layer then runs first in a model
    that trains (it passes the gradient; its weights stay, being non-trainable)."""
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(12, 6, 6, 3)) * 40 + 120).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 120).astype(np.float32)
    ds = ((x[i:i + 5], y[i:i + 5]) for i in range(0, 12, 5))  # as a dataset yields batches
    norm = layers.Normalization(name="norm")
    norm.adapt(ds)
    mean, var, count = norm.get_weights()
    np.testing.assert_allclose(mean, x.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(var, x.var(axis=(0, 1, 2)), rtol=1e-4)
    assert count.shape == () and count == 0
    model = catdog.Sequential([catdog.Input((6, 6, 3)), norm, layers.Conv2D(2, 3),
                               layers.GlobalAveragePooling2D(), layers.Dense(1)])
    model.compile(optimizer="adam", loss=catdog.losses.BinaryCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    np.testing.assert_array_equal(norm.get_weights()[0], mean)
    assert len(model.trainable_weights) == 4 and len(model.non_trainable_weights) == 3


def test_eager_call_and_keras_docstring_examples():
    """The examples of Keras's docstring (per-index adapt, given mean/variance, invert)."""
    adapt_data = np.array([[0., 7., 4.], [2., 9., 6.], [0., 7., 4.], [2., 9., 6.]], np.float32)
    layer = layers.Normalization(axis=-1)
    layer.adapt(adapt_data)
    np.testing.assert_allclose(layer(np.array([[0., 7., 4.]], np.float32)), [[-1., -1., -1.]])
    layer = layers.Normalization(mean=3., variance=2.)
    np.testing.assert_allclose(layer(np.array([[1.], [2.], [3.]], np.float32)).ravel(),
                               [-1.4142135, -0.70710677, 0.], rtol=1e-6)
    layer = layers.Normalization(axis=-1, invert=True)
    layer.adapt(adapt_data)
    np.testing.assert_allclose(layer(np.array([[1., 2., 3.]], np.float32)), [[2., 10., 8.]])


def test_bad_arguments_name_the_layer():
    with pytest.raises(ValueError, match="both `mean` and `variance`"):
        layers.Normalization(mean=1.0)
    with pytest.raises(ValueError, match="'nz'.*per channel"):
        layers.Normalization(axis=(1, 2), name="nz")
    with pytest.raises(ValueError, match="'nb'.*broadcast"):
        probe_model(layers.Normalization(mean=[1., 2.], variance=[1., 1.], name="nb"), (4, 4, 3))
    with pytest.raises(ValueError, match="'ng'.*nothing to adapt"):
        layers.Normalization(mean=1., variance=1., name="ng").adapt(np.ones((2, 3)))
    layer = layers.Normalization(name="nneg")
    model = probe_model(layer, (2, 2, 3))
    layer.set_weights([np.zeros(3), np.array([1., -1., 1.]), np.zeros(())])
    with pytest.raises(Exception, match="nneg.*variance.*negative"):
        model.predict_on_batch(np.ones((1, 2, 2, 3), np.float32))


@pytest.mark.parametrize("case", ["adapted_image", "given", "invert", "scalar_adapted",
                                  "scalar_given_invert"])
def test_config_and_saving_round_trip(case, tmp_path):
    """get_config as Keras writes it; a .keras file of a model with the layer loads back with
    its weights (adapted) or constants (given) and the same predictions."""
    import json

    layer = make(case)
    x = IO[f"x/{case}"]
    model = probe_model(layer, x.shape[1:])
    want = json.loads(str(IO[f"config/{case}"]))
    got = layer.get_config()
    for key in ("axis", "invert", "mean", "variance"):
        if isinstance(want[key], list) and want[key] and isinstance(want[key][0], float):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-7)
        else:
            assert got[key] == want[key], key
    model.save(tmp_path / "m.keras")
    again = catdog.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(again.predict_on_batch(x), model.predict_on_batch(x))
    assert again.count_params() == model.count_params()


def test_adapt_on_an_image_dataset_and_a_mapped_one(tmp_path):
    """adapt() on image_dataset_from_directory's batches of (images, labels) and on a mapped
    dataset of images only (tf.data's `ds.map(lambda x, y: x)`, as Keras's guides adapt):
    the statistics are those of every image, as the whole array would give."""
    from catdog.utils import image_dataset_from_directory
    from test_data_dataset import make_folder

    ds = image_dataset_from_directory(make_folder(tmp_path / "d"), batch_size=8,
                                      image_size=(12, 16), shuffle=False, verbose=False)
    x = np.concatenate([b[0] for b in ds])
    for data in (ds, ds.map(lambda images, labels: images)):
        norm = layers.Normalization()
        norm.adapt(data)
        mean, var, _ = norm.get_weights()
        np.testing.assert_allclose(mean, x.mean(axis=(0, 1, 2)), rtol=1e-5)
        np.testing.assert_allclose(var, x.var(axis=(0, 1, 2)), rtol=1e-4)
