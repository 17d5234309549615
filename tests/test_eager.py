"""Layers and models called on arrays run at once, as in Keras 3 (the tutorial's
base_model(image_batch), global_average_layer(feature_batch), prediction_layer(...),
data_augmentation(x)), with Keras's training defaults, and the same objects then build the
Model with the weights they used."""
import numpy as np
import pytest

import catdog
from catdog import layers

SHAPE = (32, 32, 3)


def images(n=4, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n,) + SHAPE).astype(np.float32)


def test_tutorial_eager_chain_then_the_same_layers_build_the_model():
    catdog.random.set_seed(2)
    base = catdog.applications.MobileNetV2(input_shape=SHAPE, alpha=0.35, include_top=False,
                                           weights=None)
    x = images()
    feature_batch = base(x)
    assert isinstance(feature_batch, np.ndarray) and feature_batch.shape == (4, 1, 1, 1280)
    np.testing.assert_array_equal(feature_batch, base.predict(x))
    global_average_layer = layers.GlobalAveragePooling2D()
    feature_batch_average = global_average_layer(feature_batch)
    assert feature_batch_average.shape == (4, 1280)
    np.testing.assert_allclose(feature_batch_average, feature_batch.mean(axis=(1, 2)), rtol=1e-5,
                               atol=1e-6)
    prediction_layer = layers.Dense(1)
    prediction_batch = prediction_layer(feature_batch_average)
    assert prediction_batch.shape == (4, 1)
    kernel, bias = prediction_layer.get_weights()
    np.testing.assert_allclose(prediction_batch, feature_batch_average @ kernel + bias,
                               rtol=1e-4, atol=1e-5)

    inputs = catdog.Input(SHAPE)
    y = base(inputs, training=False)
    y = global_average_layer(y)
    y = layers.Dropout(0.2)(y)
    model = catdog.Model(inputs, prediction_layer(y))
    np.testing.assert_allclose(model.predict(x), prediction_batch, rtol=1e-5, atol=1e-6)


def test_eager_layer_sees_weights_trained_in_a_model():
    catdog.random.set_seed(3)
    dense = layers.Dense(1)
    feats = np.random.default_rng(1).normal(size=(8, 6)).astype(np.float32)
    first = dense(feats)
    inputs = catdog.Input((6,))
    model = catdog.Model(inputs, dense(inputs))
    model.compile(optimizer=catdog.optimizers.SGD(learning_rate=0.5),
                  loss=catdog.losses.BinaryCrossentropy(from_logits=True))
    model.fit(feats, np.ones(8, np.float32), epochs=3, verbose=0)
    trained = dense(feats)
    assert not np.allclose(trained, first)
    np.testing.assert_array_equal(trained, model.predict(feats))


def test_dropout_and_batchnorm_default_to_inference_when_called():
    catdog.random.set_seed(4)
    x = np.random.default_rng(2).normal(size=(16, 10)).astype(np.float32)
    np.testing.assert_array_equal(layers.Dropout(0.5)(x), x)
    assert not np.array_equal(layers.Dropout(0.5)(x, training=True), x)
    bn = layers.BatchNormalization()
    x4 = np.random.default_rng(3).normal(3.0, 2.0, (8, 2, 2, 5)).astype(np.float32)
    out = bn(x4)  # moving mean 0, variance 1: (x - 0) / sqrt(1 + eps)
    np.testing.assert_allclose(out, x4 / np.sqrt(1 + 1e-3), rtol=1e-5)
    moving_before = bn.get_weights()[2].copy()
    train_out = bn(x4, training=True)  # batch statistics, moving statistics updated
    assert abs(float(train_out.mean())) < 1e-3
    assert not np.array_equal(bn.get_weights()[2], moving_before)


def test_augmentation_called_directly_gives_a_new_draw_each_time():
    """The tutorial's grid: nine calls on one image give nine different flips/rotations;
    training=False gives the image back."""
    data_augmentation = catdog.Sequential([layers.RandomFlip("horizontal"),
                                           layers.RandomRotation(0.2)])
    first_image = images(1)[0]
    outs = [data_augmentation(catdog.ops.expand_dims(first_image, 0))[0] for _ in range(9)]
    assert all(o.shape == SHAPE for o in outs)
    distinct = {o.tobytes() for o in outs}
    assert len(distinct) == 9
    np.testing.assert_array_equal(data_augmentation(first_image[None], training=False)[0],
                                  first_image)
    # and the same block still builds a model, where it augments only in fit
    inputs = catdog.Input(SHAPE)
    x = data_augmentation(inputs)
    model = catdog.Model(inputs, layers.Dense(1)(layers.GlobalAveragePooling2D()(x)))
    assert [type(l).__name__ for l in model._flatten()[1]] == ["RandomFlip", "RandomRotation"]
    batch = images(3)
    np.testing.assert_array_equal(model.predict(batch), model.predict(batch))
    # model(x) as Keras 3: random layers augment (their default), the rest is inference
    assert not np.array_equal(model(batch), model.predict(batch))
    np.testing.assert_allclose(model(batch, training=False), model.predict(batch), rtol=1e-6)


def test_eager_outputs_answer_numpy_and_bad_input_is_an_error():
    dense = layers.Dense(2)
    out = dense(np.ones((3, 4), np.float32))
    assert type(out.numpy()) is np.ndarray and out.numpy().shape == (3, 2)
    with pytest.raises(ValueError, match="built for input shape"):
        dense(np.ones((3, 5), np.float32))
    with pytest.raises(ValueError, match="expected a batch"):
        layers.GlobalAveragePooling2D()(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        dense(np.full((1, 4), np.nan, np.float32))
