#!/usr/bin/env python3
"""The `.keras` round trip both ways, with TensorFlow's Keras 3 on the other side.

    bash benchmarks/setup.sh tf
    .venv/bin/python benchmarks/check_keras_saving.py          # catdog's venv (scripts/test.sh makes it)

Step 1 (catdog's interpreter): catdog builds and saves models into a temp folder, with the
inputs and catdog's predictions beside them: the lab's model (alpha 0.35, 32x32, seeded
random head, compiled as the lab and trained one step), MobileNetV2 with its top, a
Sequential CNN, issue 22's layers (Flatten, Reshape, SeparableConv2D, Activation, Multiply,
Subtract / Maximum / Minimum / Average, GlobalMaxPooling2D, GAP keepdims, Dropout
noise_shape), tensor arithmetic written as MobileNetV3 writes it (saved after two Adam steps,
resumed below), Add / Maximum / Minimum / Average of three inputs and Concatenate on each
axis, Resizing / Normalization / RandomContrast / RandomBrightness with dilation, groups,
depth multipliers and BN without center / scale, ResNet50, VGG16, MobileNetV3Small / Large,
EfficientNetB0 (and a Rescaling with one scale per channel, its imagenet stem's), ResNet50
on a free input size with its "caffe" preprocess_input inside the model, one model
per activation (13 names, on Conv2D / DepthwiseConv2D / SeparableConv2D / Activation /
Dense), and the Keras-made fixtures of tests/fixtures/keras_saving/ (and layers_model.keras)
after catdog loaded and re-saved them.

Step 2 (benchmarks/.venv-tf, run by step 1 as a subprocess): `keras.models.load_model` on
each file, `predict` on the same inputs, compared with catdog's in the issue's form,
max|keras - catdog| <= 1e-5 * max|catdog| (tests/conftest.py's assert_close_rel); each line
also shows the worst element against rtol 1e-5 + atol 1e-6 ("elementwise"), which a deep
random-weight model (ResNet50's outputs reach ~4e3) can exceed by float32 rounding alone.
Compiled files also take one `train_on_batch`. For catdog's Sequential (saved after two
Adam steps) Keras's next step on the same batch must move the weights as catdog's next step
did (1e-2 relative): the optimizer state carried; the same for the arithmetic model.
Prints one line per file and exits non-zero on any mismatch. TensorFlow stays out of
catdog's own environment: the two sides share only the files.
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "keras_saving")
RTOL, ATOL = 1e-5, 1e-6
# Keras 3's activation names (swish is written silu, hard_swish hard_silu)
ACTIVATIONS = ["relu", "relu6", "sigmoid", "tanh", "softmax", "silu", "hard_sigmoid",
               "hard_silu", "gelu", "elu", "selu", "softplus", "linear"]


def catdog_side(out):
    import numpy as np
    import catdog
    from catdog import layers

    catdog.random.set_seed(20)
    rng = np.random.default_rng(20)
    files = {}

    def randomize(model):
        """Weights that keep activations O(1) (tests/fixtures/make_saving_fixtures.py)."""
        for layer in model._leaf_layers():
            values = []
            for wname, w, _ in layer._weights:
                if wname in ("gamma", "moving_variance", "variance"):
                    values.append(rng.uniform(0.5, 1.5, w.shape))
                elif wname == "count":
                    values.append(np.float32(100))
                elif wname in ("beta", "moving_mean", "bias", "mean"):
                    values.append(rng.normal(0, 0.1, w.shape))
                else:
                    fan_in = w.shape[0] * w.shape[1] if wname == "depthwise_kernel" else int(np.prod(w.shape[:-1]))
                    values.append(rng.normal(0, 1.15 / np.sqrt(fan_in), w.shape))
            if values:
                layer.set_weights(values)

    def add(name, model, x, resume=None):
        if not name.startswith("resaved_") and resume is None:
            randomize(model)
        path = os.path.join(out, name)
        model.save(path)
        np.save(os.path.join(out, name + ".x.npy"), x)
        np.save(os.path.join(out, name + ".pred.npy"), model.predict(x))
        files[name] = bool(model._compiled)
        if resume is not None:  # catdog's next step after the save, for Keras to repeat
            before = model.get_weights()
            model.train_on_batch(*resume)
            np.savez(os.path.join(out, name + ".resume.npz"), x=resume[0], y=resume[1],
                     **{f"before{i}": w for i, w in enumerate(before)},
                     **{f"after{i}": w for i, w in enumerate(model.get_weights())})

    # the lab's model, built by catdog
    base = catdog.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                           include_top=False, weights=None)
    base.trainable = False
    inputs = catdog.Input(shape=(32, 32, 3))
    x = catdog.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.2)])(inputs)
    x = catdog.applications.mobilenet_v2.preprocess_input(x)
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    lab = catdog.Model(inputs, layers.Dense(1)(x))
    lab.compile(optimizer=catdog.optimizers.Adam(learning_rate=1e-3),
                loss=catdog.losses.BinaryCrossentropy(from_logits=True),
                metrics=[catdog.metrics.BinaryAccuracy(threshold=0, name="accuracy")])
    xs = rng.integers(0, 256, (4, 32, 32, 3)).astype(np.float32)
    lab.train_on_batch(xs, np.array([0, 1, 1, 0], np.float32))
    add("catdog_lab.keras", lab, rng.integers(0, 256, (3, 32, 32, 3)).astype(np.float32))

    top = catdog.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, classes=5,
                                          weights=None)
    add("catdog_mnv2_top.keras", top, rng.uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32))

    seq = catdog.Sequential([
        catdog.Input((32, 32, 3)), layers.Rescaling(1.0 / 255),
        layers.Conv2D(8, 3, padding="same", use_bias=False), layers.BatchNormalization(),
        layers.ReLU(), layers.MaxPooling2D(), layers.DepthwiseConv2D(3, padding="same"),
        layers.ReLU(6.0), layers.AveragePooling2D(), layers.Conv2D(12, 1),
        layers.GlobalAveragePooling2D(), layers.Dense(3, activation="softmax")])
    seq.compile(optimizer=catdog.optimizers.Adam(1e-2),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    randomize(seq)
    seq.train_on_batch(xs, np.array([0, 1, 2, 1]))
    seq.train_on_batch(xs, np.array([0, 1, 2, 1]))
    add("catdog_cnn_seq.keras", seq, rng.integers(0, 256, (3, 32, 32, 3)).astype(np.float32),
        resume=(xs, np.array([0, 1, 2, 1])))

    # issue 22's layers (tests/fixtures/make_layer_saving_fixtures.py's model, with Minimum and
    # AveragePooling2D), written by catdog
    inputs = catdog.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.SeparableConv2D(8, 3, padding="same", activation="swish")(x)
    s = layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = layers.Activation("hard_sigmoid")(layers.Conv2D(8, 1)(s))
    x = layers.Multiply()([x, s])
    m = layers.GlobalMaxPooling2D(keepdims=True)(x)
    d = layers.Subtract()([x, layers.Conv2D(8, 1)(x)])
    x = layers.Average()([layers.Maximum()([x, d]), layers.Minimum()([x, d])])
    x = layers.AveragePooling2D(3, strides=1, padding="same")(x)
    x = layers.Dropout(0.3, noise_shape=(None, 1, 1, 8))(x)
    x = layers.Dense(16, activation="relu")(layers.Flatten()(x))
    m = layers.Reshape((8,))(m)
    v = layers.GlobalAveragePooling2D()(layers.Reshape((4, 2, 2))(layers.Dense(16)(m)))
    x = layers.Add()([layers.Dense(16)(m), x])
    logits = layers.Dense(3)(layers.Add()([x, layers.Dense(16)(v)]))
    add("catdog_layers.keras", catdog.Model(inputs, logits),
        rng.normal(0, 1, (3, 16, 16, 3)).astype(np.float32))

    # tensor arithmetic as keras/src/applications/mobilenet_v3.py writes it; compiled, two
    # Adam steps, then Keras repeats catdog's third
    inputs = catdog.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same")(inputs)
    x = x * (layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0))  # hard_swish
    s = layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = layers.Conv2D(8, 1)(layers.Conv2D(4, 1, activation="relu")(s))
    s = layers.ReLU(6.0)(s + 3.0) * (1.0 / 6.0)  # hard_sigmoid
    y = layers.DepthwiseConv2D(3, padding="same")(x * s)
    x = 2 * (-(3.0 - (x - y)) / 2.0) + y
    ops = catdog.Model(inputs, layers.Dense(3, activation="softmax")(
        layers.GlobalAveragePooling2D()(x)))
    randomize(ops)
    ops.compile(optimizer=catdog.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    xo = rng.normal(0, 1, (4, 8, 8, 3)).astype(np.float32)
    yo = np.array([0, 1, 2, 1])
    ops.train_on_batch(xo, yo)
    ops.train_on_batch(xo, yo)
    add("catdog_ops.keras", ops, rng.normal(0, 1, (3, 8, 8, 3)).astype(np.float32),
        resume=(xo, yo))

    # merges of three inputs and Concatenate on each axis (make_ops_saving_fixtures.py's)
    inputs = catdog.Input((6, 6, 3))
    a = layers.Conv2D(4, 1)(inputs)
    b = layers.Conv2D(4, 3, padding="same")(inputs)
    c = layers.Conv2D(4, 1, activation="tanh")(inputs)
    x = layers.Concatenate()([m([a, b, c]) for m in (layers.Add(), layers.Maximum(),
                                                     layers.Minimum(), layers.Average())])
    v = layers.Concatenate()([layers.GlobalAveragePooling2D()(x),
                              layers.Flatten()(layers.Concatenate(axis=1)([a, b])),
                              layers.Flatten()(layers.Concatenate(axis=-2)([b, c]))])
    add("catdog_merge.keras", catdog.Model(inputs, layers.Dense(3)(v)),
        rng.normal(0, 1, (3, 6, 6, 3)).astype(np.float32))

    # branch i22-layers' kinds: augmentation (left out at inference), Resizing (crop, pad,
    # nearest), Normalization (adapted, given, inverted), dilation, groups, multipliers, BN
    # without center / scale
    inputs = catdog.Input((12, 10, 3))
    x = layers.RandomBrightness(0.1)(layers.RandomContrast(0.2)(inputs))
    x = layers.Resizing(9, 9, crop_to_aspect_ratio=True)(x)
    x = layers.Normalization()(x)
    x = layers.Conv2D(6, 3, padding="same", dilation_rate=2, use_bias=False)(x)
    x = layers.BatchNormalization(scale=False)(x)
    x = layers.Conv2D(6, 3, groups=3, activation="relu")(x)
    x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, dilation_rate=2)(x)
    x = layers.BatchNormalization(center=False)(x)
    x = layers.SeparableConv2D(4, 3, padding="same", depth_multiplier=2, activation="swish")(x)
    y = layers.Resizing(10, 6, interpolation="nearest", pad_to_aspect_ratio=True,
                        fill_value=0.5)(x)
    y = layers.Normalization(mean=[0.1, 0.2, -0.1, 0.0], variance=[1.0, 2.0, 0.5, 4.0],
                             invert=True)(y)
    v = layers.Concatenate()([layers.GlobalAveragePooling2D()(x),
                              layers.GlobalMaxPooling2D()(y)])
    add("catdog_new_layers.keras", catdog.Model(inputs, layers.Dense(3)(v)),
        rng.normal(0, 1, (3, 12, 10, 3)).astype(np.float32))

    # every application catdog builds (weights=None, 32x32, random weights), and
    # EfficientNet's imagenet stem: Rescaling with one scale per channel
    apps = {"resnet50": ("ResNet50", dict(include_top=False, pooling="avg")),
            "vgg16": ("VGG16", dict(include_top=False, pooling="max")),
            "mobilenet_v3_small": ("MobileNetV3Small", dict(classes=5)),
            "mobilenet_v3_large": ("MobileNetV3Large", dict(alpha=0.75, include_top=False,
                                                            pooling="avg")),
            "efficientnet_b0": ("EfficientNetB0", dict(classes=5))}
    for key, (builder, kwargs) in apps.items():
        add(f"catdog_{key}.keras", getattr(catdog.applications, builder)(
            input_shape=(32, 32, 3), weights=None, **kwargs),
            rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32))
    from catdog.applications.efficientnet import Rescaling as ChannelRescaling
    inputs = catdog.Input((8, 8, 3))
    x = ChannelRescaling([2.0, 0.5, 4.0])(layers.Normalization()(inputs))
    add("catdog_channel_rescaling.keras", catdog.Model(inputs, layers.Dense(3)(
        layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3)(x)))),
        rng.normal(0, 2, (3, 8, 8, 3)).astype(np.float32))

    # a free input size (input_shape=None) with ResNet50's "caffe" preprocess_input inside:
    # GetItem / Stack / Add operations and batch_shape [null, null, null, 3]
    inputs = catdog.Input((None, None, 3))
    base = catdog.applications.ResNet50(include_top=False, weights=None, pooling="avg")
    x = base(catdog.applications.resnet50.preprocess_input(inputs), training=False)
    add("catdog_caffe_resnet50_free.keras", catdog.Model(inputs, layers.Dense(1)(x)),
        rng.uniform(0, 255, (2, 40, 48, 3)).astype(np.float32))

    for act in ACTIVATIONS:
        inputs = catdog.Input((6, 6, 3))
        x = layers.Conv2D(4, 3, padding="same", activation=act)(inputs)
        x = layers.DepthwiseConv2D(3, strides=2, padding="same", activation=act)(x)
        x = layers.SeparableConv2D(4, 3, padding="same", activation=act)(x)
        x = layers.Flatten()(layers.Activation(act)(x))
        add(f"catdog_act_{act}.keras",
            catdog.Model(inputs, layers.Dense(3, activation=act)(x)),
            rng.normal(0, 1.5, (3, 6, 6, 3)).astype(np.float32))

    io = np.load(os.path.join(FIXTURES, "saving_io.npz"))
    for name in ("lab_a035_32.keras", "mnv2_top_a035_32.keras", "cnn_seq.keras"):
        m = catdog.models.load_model(os.path.join(FIXTURES, name))
        add("resaved_" + name, m, io["x/" + name])
    io = np.load(os.path.join(ROOT, "tests", "fixtures", "keras", "layers_files.npz"))
    add("resaved_layers_model.keras",
        catdog.models.load_model(os.path.join(FIXTURES, "layers_model.keras")), io["x"])
    io = np.load(os.path.join(FIXTURES, "layers_io.npz"))
    add("resaved_layers_cnn.keras",
        catdog.models.load_model(os.path.join(FIXTURES, "layers_cnn.keras")), io["x"])
    io = np.load(os.path.join(FIXTURES, "ops_io.npz"))
    for name in (["ops_mnv3.keras", "merge_nary.keras", "mnv3_small_a075_32.keras",
                  "caffe_free.keras"]
                 + [f"act_{a}.keras" for a in ACTIVATIONS]):
        m = catdog.models.load_model(os.path.join(FIXTURES, name))
        add("resaved_" + name, m, io["x/" + name])
    return files


def tf_side(out, files):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import keras

    bad = 0
    for name, compiled in files.items():
        path = os.path.join(out, name)
        x = np.load(path + ".x.npy")
        want = np.load(path + ".pred.npy")
        model = keras.models.load_model(path)
        got = model.predict(x, verbose=0)
        ok = got.shape == want.shape
        diff = float(np.max(np.abs(got - want))) if ok else float("inf")
        rel = diff / max(float(np.max(np.abs(want))), 1e-30)
        elem = float(np.max(np.abs(got - want) / (np.abs(want) * RTOL + ATOL))) if ok else rel
        ok = ok and rel <= RTOL
        step = ""
        if compiled:
            y = (np.arange(len(x)) % want.shape[-1]) if want.shape[-1] > 1 else np.array([0, 1, 0][:len(x)], np.float32)
            loss = model.train_on_batch(x, y)
            step = f", one train_on_batch: loss {np.ravel(loss)[0]:.4f}"
        rpath = path + ".resume.npz"
        if os.path.exists(rpath):  # Keras's step after loading = catdog's step after saving
            r = np.load(rpath)
            n = len([k for k in r.files if k.startswith("before")])
            model = keras.models.load_model(path)
            model.train_on_batch(r["x"], r["y"])
            worst = max(float(np.max(np.abs((w - r[f"before{i}"]) - (r[f"after{i}"] - r[f"before{i}"])))
                              / max(float(np.max(np.abs(r[f"after{i}"] - r[f"before{i}"]))), 1e-30))
                        for i, w in enumerate(model.get_weights()[:n]))
            ok = ok and worst <= 1e-2
            step += (f"; optimizer state restored (iterations "
                     f"{int(model.optimizer.iterations.numpy()) - 1} before the step), the next "
                     f"step's update matches catdog's within {worst:.1e} relative")
        print(f"{name}: keras {keras.__version__} loads it; max |keras - catdog| = {diff:.2e} "
              f"(max |pred| {float(np.max(np.abs(want))):.3f}, relative {rel:.1e}, elementwise "
              f"{elem:.2f}){step}: {'OK' if ok else 'MISMATCH'}")
        bad += not ok
    return bad


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--tf":
        out = sys.argv[2]
        with open(os.path.join(out, "files.json")) as f:
            files = json.load(f)
        sys.exit(1 if tf_side(out, files) else 0)
    tf_python = os.environ.get("TF_PYTHON", os.path.join(HERE, ".venv-tf", "bin", "python"))
    if not os.path.exists(tf_python):
        sys.exit(f"{tf_python} not found: run `bash benchmarks/setup.sh tf` first")
    with tempfile.TemporaryDirectory(prefix="catdog-keras-check-") as out:
        files = catdog_side(out)
        with open(os.path.join(out, "files.json"), "w") as f:
            json.dump(files, f)
        p = subprocess.run([tf_python, os.path.abspath(__file__), "--tf", out], cwd="/")
        sys.exit(p.returncode)


if __name__ == "__main__":
    main()
