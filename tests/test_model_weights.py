"""Every way of building a model exposes exactly the weights it predicts with: after fit,
get_weights / layer.get_weights / save_weights give the trained values (the Sequential form
used to hand out the untrained ones while predict used the trained ones), and a fresh model
loaded from them predicts the same bits."""
import numpy as np
import pytest

import catdog
from catdog import layers

SHAPE = (32, 32, 3)


def base():
    b = catdog.applications.MobileNetV2(input_shape=SHAPE, alpha=0.35, include_top=False,
                                        weights=None)
    # the head and the base's last conv + BN train; BN's moving statistics move too where
    # the base runs in training mode (the Sequential forms, as in Keras)
    b.trainable = True
    for layer in b.layers[:-3]:
        layer.trainable = False
    return b


def functional():
    b = base()
    inputs = catdog.Input(SHAPE)
    x = catdog.applications.mobilenet_v2.preprocess_input(inputs)
    x = b(x, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    return catdog.Model(inputs, layers.Dense(1)(x))


def sequential():
    return catdog.Sequential([base(), layers.GlobalAveragePooling2D(), layers.Dense(1)])


def nested_sequential():
    inner = catdog.Sequential([base(), layers.GlobalAveragePooling2D()])
    return catdog.Sequential([inner, catdog.Sequential([layers.Dropout(0.1), layers.Dense(1)])])


def sequential_in_functional():
    inputs = catdog.Input(SHAPE)
    x = catdog.applications.mobilenet_v2.preprocess_input(inputs)
    x = catdog.Sequential([base(), layers.GlobalAveragePooling2D(), layers.Dense(1)])(x)
    return catdog.Model(inputs, x)


BUILDERS = [functional, sequential, nested_sequential, sequential_in_functional]


def data(n=48):
    rng = np.random.default_rng(0)
    y = (np.arange(n) % 2).astype(np.float32)
    x = rng.uniform(0, 255, (n,) + SHAPE).astype(np.float32)
    x[y == 1, :, :, 0] = 255.0
    return x, y


def compile_(model):
    model.compile(optimizer=catdog.optimizers.Adam(learning_rate=1e-2),
                  loss=catdog.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[catdog.metrics.BinaryAccuracy(threshold=0, name="accuracy")])


@pytest.mark.parametrize("build", BUILDERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("ext", ["h5", "npz"])
def test_trained_weights_are_the_ones_predict_uses(build, ext, tmp_path):
    catdog.random.set_seed(5)
    model = build()
    compile_(model)
    x, y = data()
    before = model.get_weights()
    head_before = model.layers[-1].get_weights()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    p = model.predict(x)
    after = model.get_weights()
    assert len(after) == len(before)
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if not np.array_equal(a, b)]
    assert len(changed) >= 4, "fit did not change the weights get_weights() returns"
    head = model.layers[-1].get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(head, head_before)), \
        "the last layer hands out its untrained weights"
    path = tmp_path / f"w.{ext}"
    model.save_weights(str(path))

    catdog.random.set_seed(99)  # another initialisation: only the file can make them agree
    fresh = build()
    assert not np.array_equal(fresh.predict(x), p)
    fresh.load_weights(str(path))
    np.testing.assert_array_equal(fresh.predict(x), p)
    other = build()
    other.set_weights(after)
    np.testing.assert_array_equal(other.predict(x), p)


def test_sequential_takes_its_input_shape_from_the_base_model():
    """Keras: Sequential([base_model, ...]) is built at once from base_model's input."""
    b = base()
    model = catdog.Sequential([b, layers.GlobalAveragePooling2D(), layers.Dense(1, activation="sigmoid")])
    assert model.input_shape == SHAPE and model.output_shape == (1,)
    assert [l.name for l in model.layers][0] == b.name  # no input layer listed, as Keras
    assert len(model.layers) == 3
    assert model.count_params() == b.count_params() + 1280 + 1


def test_sequential_without_shape_builds_on_first_data_and_add_rebuilds():
    catdog.random.set_seed(1)
    model = catdog.Sequential([layers.GlobalAveragePooling2D()])
    with pytest.raises(ValueError, match="no input shape"):
        model.weights
    model.add(layers.Dense(2))
    x = np.ones((3, 4, 4, 5), np.float32)
    out = model.predict(x)
    assert out.shape == (3, 2) and model.input_shape == (4, 4, 5)
    model.add(layers.Dense(1))
    assert model.predict(x).shape == (3, 1)
    assert len(model.weights) == 4


def test_trainable_variables_counts_match_keras():
    """The tutorial's asserts: 2 trainable variables with a frozen base (the Dense kernel and
    bias), 56 after unfreezing from layer 100 (the full-size base at 160x160: Keras's count)."""
    b = catdog.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False, weights=None)
    b.trainable = False
    inputs = catdog.Input((96, 96, 3))
    x = b(inputs, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    model = catdog.Model(inputs, layers.Dense(1)(x))
    assert len(model.trainable_variables) == 2
    assert len(model.non_trainable_variables) == 260
    b.trainable = True
    for layer in b.layers[:100]:
        layer.trainable = False
    assert len(model.trainable_variables) == 56
    assert len(model.trainable_variables) + len(model.non_trainable_variables) == len(model.variables)
    assert sum(w.size for w in model.trainable_variables) == 1862721


def test_sequential_fits_a_directory_dataset(tmp_path):
    """The 2019 form on image_dataset_from_directory (it raised AttributeError _augment)."""
    from PIL import Image

    for k, cls in enumerate(("cats", "dogs")):
        (tmp_path / cls).mkdir()
        for i in range(8):
            Image.fromarray(np.full((36, 36, 3), 30 + 180 * k + i, np.uint8)).save(
                tmp_path / cls / f"{i}.png")
    ds = catdog.utils.image_dataset_from_directory(tmp_path, batch_size=8, image_size=(32, 32),
                                                   seed=3)
    catdog.random.set_seed(2)
    model = catdog.Sequential([layers.RandomFlip("horizontal"), base(),
                               layers.GlobalAveragePooling2D(), layers.Dense(1)])
    compile_(model)
    h = model.fit(ds, epochs=2, verbose=0, validation_data=ds)
    assert h.epoch == [0, 1] and model.input_shape == SHAPE
    assert [type(l).__name__ for l in model._flatten()[1]] == ["RandomFlip"]
    loss, acc = model.evaluate(ds, verbose=0)
    assert loss == pytest.approx(h.history["val_loss"][-1], rel=1e-6)
