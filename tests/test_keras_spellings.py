"""The Keras/TensorFlow spellings of the published tutorial's versions (2019-2024), written
with catdog for tf.keras: the same objects under their older names, lr=, as_numpy_iterator,
.numpy() on batches, fit(validation_split=), evaluate's progress line."""
import warnings

import numpy as np
import pytest

import catdog


def test_old_names_are_the_same_objects():
    from catdog.preprocessing import image_dataset_from_directory
    from catdog.layers.experimental import preprocessing

    assert image_dataset_from_directory is catdog.utils.image_dataset_from_directory
    pre = catdog.layers.experimental.preprocessing
    assert pre is preprocessing
    assert pre.RandomFlip is catdog.layers.RandomFlip
    assert pre.RandomRotation is catdog.layers.RandomRotation
    assert pre.Rescaling is catdog.layers.Rescaling
    import catdog.layers.experimental.preprocessing as mod
    assert mod is pre
    assert catdog.data.AUTOTUNE == catdog.data.experimental.AUTOTUNE
    assert catdog.optimizers.experimental.RMSprop is catdog.optimizers.RMSprop


@pytest.mark.parametrize("cls", ["Adam", "RMSprop", "SGD"])
def test_lr_is_accepted_with_a_deprecation_warning(cls):
    make = getattr(catdog.optimizers, cls)
    with pytest.warns(DeprecationWarning, match="learning_rate"):
        opt = make(lr=2e-5)
    assert opt.learning_rate == pytest.approx(2e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert make(learning_rate=3e-4).learning_rate == pytest.approx(3e-4)
        assert make().learning_rate == pytest.approx(0.01 if cls == "SGD" else 0.001)
    with pytest.raises(TypeError, match="not both"):
        make(learning_rate=1e-3, lr=1e-3)
    with pytest.raises(TypeError, match="unexpected"):
        make(learning_rat=1e-3)


def folder(tmp_path, n=6):
    from PIL import Image

    for k, cls in enumerate(("cats", "dogs")):
        (tmp_path / cls).mkdir()
        for i in range(n):
            Image.fromarray(np.full((20, 20, 3), 40 + 150 * k + i, np.uint8)).save(
                tmp_path / cls / f"{i}.png")
    return tmp_path


def test_batches_answer_numpy_and_as_numpy_iterator_has_next(tmp_path):
    ds = catdog.utils.image_dataset_from_directory(folder(tmp_path), batch_size=4,
                                                   image_size=(16, 16), seed=1)
    for images, labels in ds.take(1):
        assert images.shape == (4, 16, 16, 3)
        img = images[0].numpy()
        assert type(img) is np.ndarray and img.dtype == np.float32
        np.testing.assert_array_equal(img.astype("uint8"), images[0].astype("uint8"))
        assert ds.class_names[labels[0]] in ("cats", "dogs")
    assert catdog.data.experimental.cardinality(ds) == 3 == ds.cardinality()
    image_batch, label_batch = ds.as_numpy_iterator().next()
    assert type(image_batch) is np.ndarray and image_batch.shape == (4, 16, 16, 3)
    assert label_batch.dtype == np.int32
    assert ds.prefetch(buffer_size=catdog.data.AUTOTUNE) is ds
    with pytest.raises(TypeError):
        catdog.data.experimental.cardinality([1, 2])


def small_head():
    catdog.random.set_seed(7)
    inputs = catdog.Input((4,))
    model = catdog.Model(inputs, catdog.layers.Dense(1)(inputs))
    model.compile(optimizer=catdog.optimizers.SGD(learning_rate=0.1),
                  loss=catdog.losses.BinaryCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def test_fit_validation_split_takes_the_last_samples_before_shuffling():
    """Keras: x[:floor(n * (1 - split))] trains, the rest validates; the same numbers as
    passing that tail as validation_data."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    a = small_head()
    ha = a.fit(x, y, epochs=2, batch_size=4, validation_split=0.3, shuffle=False, verbose=0)
    b = small_head()
    hb = b.fit(x[:7], y[:7], epochs=2, batch_size=4, validation_data=(x[7:], y[7:]),
               shuffle=False, verbose=0)
    assert ha.history == hb.history and "val_loss" in ha.history
    with pytest.raises(ValueError, match="validation_split"):
        small_head().fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="leaves no samples"):
        small_head().fit(x[:1], y[:1], validation_split=0.5, verbose=0)


def test_evaluate_prints_a_progress_line_by_default(capsys):
    x = np.ones((6, 4), np.float32)
    y = np.ones(6, np.float32)
    model = small_head()
    loss, acc = model.evaluate(x, y, batch_size=4)
    out = capsys.readouterr().out
    assert "2/2" in out and f"loss: {loss:.4f}" in out and "accuracy" in out
    model.evaluate(x, y, verbose=0)
    assert capsys.readouterr().out == ""
