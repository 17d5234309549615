"""More classes, as users adapt the lab: a 3-class dataset from folders with one-hot labels
(label_mode="categorical") or integer labels, a Dense(3, activation="softmax") head and the
categorical crossentropies; the model learns the classes."""
import numpy as np
import pytest

import catdog
from catdog import layers
from test_data_imagefiles import png_bytes

CLASSES = ("blue", "green", "red")  # sorted: the class order image_dataset_from_directory uses


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """24 noisy 12x12 PNGs per class; each class is brighter in its own channel."""
    root = tmp_path_factory.mktemp("three_classes")
    rng = np.random.default_rng(3)
    channel = {"red": 0, "green": 1, "blue": 2}
    for name in CLASSES:
        (root / name).mkdir()
        for i in range(24):
            img = rng.integers(0, 200, (12, 12, 3))
            img[..., channel[name]] += 40
            (root / name / f"{i:03d}.png").write_bytes(png_bytes(img.astype(np.uint8)))
    return root


def small_model(units=3):
    inputs = catdog.Input((12, 12, 3))
    x = layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = layers.Conv2D(8, 3, padding="same")(x)
    x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    return catdog.Model(inputs, layers.Dense(units, activation="softmax")(x))


@pytest.mark.parametrize("label_mode,loss", [("categorical", "categorical_crossentropy"),
                                             ("int", "sparse_categorical_crossentropy")])
def test_three_classes_from_folders_learn(folders, label_mode, loss):
    catdog.random.set_seed(5)
    ds = catdog.utils.image_dataset_from_directory(folders, label_mode=label_mode, batch_size=8,
                                                   image_size=(12, 12), seed=1)
    assert ds.class_names == list(CLASSES)
    images, labels = next(iter(ds))
    assert labels.shape == ((8, 3) if label_mode == "categorical" else (8,))
    model = small_model()
    model.compile(optimizer=catdog.optimizers.Adam(learning_rate=0.01), loss=loss,
                  metrics=["accuracy"])
    history = model.fit(ds, epochs=12, verbose=0)
    h = history.history
    assert h["loss"][-1] < 0.5 * h["loss"][0], h["loss"]
    assert h["accuracy"][-1] >= 0.9, h["accuracy"]
    loss_value, acc = model.evaluate(ds, verbose=0)
    assert acc >= 0.9
    p = model.predict(images)
    assert p.shape == (8, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    truth = labels.argmax(1) if label_mode == "categorical" else labels
    assert np.mean(p.argmax(1) == truth) >= 0.75


def test_categorical_dataset_needs_a_categorical_loss(folders):
    ds = catdog.utils.image_dataset_from_directory(folders, label_mode="categorical",
                                                   batch_size=8, image_size=(12, 12))
    model = small_model()
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with pytest.raises(ValueError, match="CategoricalCrossentropy"):
        model.fit(ds, epochs=1, verbose=0)
    model = small_model(units=4)
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    with pytest.raises(ValueError, match="3 classes but the model outputs 4"):
        model.fit(ds, epochs=1, verbose=0)
