"""TensorFlow/Keras side: the lab's own Keras code (tf.keras = Keras 3, TensorFlow backend).

Run with benchmarks/.venv-tf/bin/python (made by benchmarks/setup.sh); normally run.py does it.
Cases: 1 inference (batch 32 images/s, batch-1 latency), 2 transfer-learning train step,
3 fine-tuning train step, 4 short lab on the real data, 5 import + build + load weights.
Only the standard library is imported at module level, so case 5 times the real import.

--net resnet50|vgg16|mobilenetv3small|mobilenetv3large|efficientnetb0 (cases 1-3): Keras's
`keras.applications.<Builder>(input_shape=(160, 160, 3), include_top=False, weights=None)`
after `keras.utils.set_random_seed(1234)`, the same augmentation and head, the family's
preprocess_input in the model (ResNet50 / VGG16: "caffe") or the base's built-in preprocessing
(MobileNetV3, EfficientNet), fine-tuned from the family's default layer (_common.NETS).
`--dump-reference` with --net writes the base's weights per layer too, so the torch.nn
ResNet50 / VGG16 of bench_pytorch.py can be checked against Keras on the same weights.
"""
import time

_T_START = time.perf_counter()  # case 5 starts here (before `import tensorflow`)

import os  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import flops  # noqa: E402

FRAMEWORK = "tensorflow"


def import_tf(threads):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as e:
        raise C.NotAvailable("cannot import tensorflow (%s); run benchmarks/setup.sh" % e)
    # Same thread count as the other sides; must come before TF's runtime starts.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


def build_lab_model(tf, weights, net="mobilenetv2"):
    """The lab's model, as the Keras tutorial writes it (another base with --net: seeded random
    weights)."""
    spec = C.NETS[net]
    size = spec["size"]
    data_augmentation = tf.keras.Sequential([
        tf.keras.layers.RandomFlip("horizontal"),
        tf.keras.layers.RandomRotation(0.2),
    ])
    preprocess_input = getattr(tf.keras.applications, spec.get("family", "mobilenet_v2")).preprocess_input
    if net == "mobilenetv2":
        base_model = tf.keras.applications.MobileNetV2(input_shape=(C.SIZE, C.SIZE, 3), alpha=C.ALPHA,
                                                       include_top=False, weights=weights)
    else:
        tf.keras.utils.set_random_seed(C.SEED)
        base_model = getattr(tf.keras.applications, spec["builder"])(
            input_shape=(size, size, 3), include_top=False, weights=None)
    base_model.trainable = False
    inputs = tf.keras.Input(shape=(size, size, 3))
    x = data_augmentation(inputs)
    if spec["preprocessing"] == "model":
        x = preprocess_input(x)
    x = base_model(x, training=False)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dropout(0.2)(x)
    outputs = tf.keras.layers.Dense(1)(x)
    model = tf.keras.Model(inputs, outputs)
    return model, base_model


def compile_frozen(tf, model):
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=1e-4),
                  loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[tf.keras.metrics.BinaryAccuracy(threshold=0, name="accuracy")])


def unfreeze_and_compile(tf, model, base_model, net="mobilenetv2"):
    base_model.trainable = True
    at = C.fine_tune_index(net, [layer.name for layer in base_model.layers])
    for layer in base_model.layers[:at]:
        layer.trainable = False
    model.compile(optimizer=tf.keras.optimizers.RMSprop(learning_rate=1e-5),
                  loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[tf.keras.metrics.BinaryAccuracy(threshold=0, name="accuracy")])


def n_trainable(tf, model):
    import numpy as np
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def random_batch(n, seed=0, size=C.SIZE):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, size=(n, size, size, 3)).astype("float32")
    y = rng.integers(0, 2, size=(n, 1)).astype("float32")
    return x, y


def main():
    a = C.parse_args(FRAMEWORK)
    R = C.Result(FRAMEWORK, a)
    st = C.settings(a.quick, a.net)
    reps = min(a.repeats, st["max_repeats"] or a.repeats)
    try:
        tf = import_tf(a.threads)
    except C.NotAvailable as e:
        R.unavailable(str(e))
    import keras
    R.d["versions"] = {"tensorflow": tf.__version__, "keras": keras.__version__,
                       "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)")}
    tf.keras.utils.set_random_seed(C.SEED)
    fl = flops.summary(C.ALPHA, C.SIZE) if a.net == "mobilenetv2" else {}  # FLOPs: MobileNetV2's only
    net, size = a.net, a.size
    if net != "mobilenetv2":  # MobileNetV2's RESULTS.md lines stay as they were
        R.d["versions"]["net"] = net

    if a.dump_reference:
        dump_reference(tf, a)
        return

    def case5():
        model = tf.keras.applications.MobileNetV2(input_shape=(C.SIZE, C.SIZE, 3), alpha=C.ALPHA,
                                                  include_top=False, weights=a.weights)
        t = time.perf_counter() - _T_START
        return {"seconds": t, "params": int(model.count_params()),
                "what": "import tensorflow + MobileNetV2(include_top=False, weights=h5 path)"}

    if 5 in a.case_list:  # first, before anything else warms the process
        R.run_case(5, case5)

    shared = {}

    def lab_model():
        if "model" not in shared:
            shared["model"], shared["base"] = build_lab_model(tf, a.weights, net)
        return shared["model"], shared["base"]

    def case1():
        model, _ = lab_model()
        compile_frozen(tf, model)
        x32, _ = random_batch(C.BATCH, size=size)
        x1, _ = random_batch(1, seed=1, size=size)
        t32 = C.time_steps(lambda: model.predict_on_batch(x32), st["warmup"], st["iters"], reps)
        t1 = C.time_steps(lambda: model.predict_on_batch(x1), st["warmup1"], st["iters1"], reps)
        r = C.throughput_record(t32, C.BATCH, "model.predict_on_batch(x)", fl.get("case1_gflop_per_image"))
        r["batch1"] = C.latency_record(t1, "model.predict_on_batch(x[None])")
        return r

    def case2():
        model, _ = lab_model()
        compile_frozen(tf, model)
        x, y = random_batch(C.BATCH, size=size)
        t = C.time_steps(lambda: model.train_on_batch(x, y), st["warmup"], st["iters"], reps)
        r = C.throughput_record(t, C.BATCH, "model.train_on_batch(x, y) [Adam 1e-4, augmentation on]",
                                fl.get("case2_gflop_per_image"))
        r["trainable_params"] = n_trainable(tf, model)
        return r

    def case3():
        model, base = lab_model()
        unfreeze_and_compile(tf, model, base, net)
        at = C.fine_tune_index(net, [layer.name for layer in base.layers])
        x, y = random_batch(C.BATCH, size=size)
        t = C.time_steps(lambda: model.train_on_batch(x, y), st["warmup"], st["iters"], reps)
        r = C.throughput_record(t, C.BATCH, "model.train_on_batch(x, y) [RMSprop 1e-5, from layer %d]" % at,
                                fl.get("case3_gflop_per_image"))
        r["fine_tune_at"] = [at, base.layers[at].name]
        r["trainable_params"] = n_trainable(tf, model)
        return r

    def case4():
        C.reset_peak_rss()  # not reset in practice: the process is fresh; kept for clarity
        t0 = time.perf_counter()
        tf.keras.utils.set_random_seed(a.seed)
        train_dir = os.path.join(a.data, "train")
        validation_dir = os.path.join(a.data, "validation")
        train_dataset = tf.keras.utils.image_dataset_from_directory(
            train_dir, shuffle=True, batch_size=C.BATCH, image_size=(C.SIZE, C.SIZE), seed=a.seed)
        validation_dataset = tf.keras.utils.image_dataset_from_directory(
            validation_dir, shuffle=True, batch_size=C.BATCH, image_size=(C.SIZE, C.SIZE), seed=a.seed)
        val_batches = tf.data.experimental.cardinality(validation_dataset)
        test_dataset = validation_dataset.take(val_batches // 5)
        validation_dataset = validation_dataset.skip(val_batches // 5)
        if a.quick:  # a tiny lab, only to prove the code path
            train_dataset = train_dataset.take(3)
            validation_dataset = validation_dataset.take(2)
            test_dataset = test_dataset.take(1)
        AUTOTUNE = tf.data.AUTOTUNE
        train_dataset = train_dataset.prefetch(buffer_size=AUTOTUNE)
        validation_dataset = validation_dataset.prefetch(buffer_size=AUTOTUNE)
        test_dataset = test_dataset.prefetch(buffer_size=AUTOTUNE)

        model, base_model = build_lab_model(tf, a.weights)
        compile_frozen(tf, model)
        ie, fe = (1, 1) if a.quick else (a.initial_epochs, a.fine_tune_epochs)
        timers = [C.validation_timer(tf.keras.callbacks.Callback) for _ in range(2)]
        t1 = time.perf_counter()
        history = model.fit(train_dataset, epochs=ie, validation_data=validation_dataset, verbose=2,
                            callbacks=[timers[0]])
        t2 = time.perf_counter()
        unfreeze_and_compile(tf, model, base_model)
        history_fine = model.fit(train_dataset, epochs=ie + fe, initial_epoch=len(history.epoch),
                                 validation_data=validation_dataset, verbose=2, callbacks=[timers[1]])
        t3 = time.perf_counter()
        loss, accuracy = model.evaluate(test_dataset, verbose=0)
        t4 = time.perf_counter()
        return C.lab_record(a, (ie, fe), (t0, t1, t2, t3, t4), history, history_fine, timers,
                            loss, accuracy,
                            "image_dataset_from_directory train+validation (take/skip test), "
                            "prefetch, fit %d epochs (Adam) + fit %d epochs (RMSprop, from layer "
                            "100) with validation, evaluate(test)")

    for c, fn in ((1, case1), (2, case2), (3, case3), (4, case4)):
        if c in a.case_list:
            C.log(FRAMEWORK, "case", c)
            R.run_case(c, fn)
    R.write(final=True)


def dump_reference(tf, a):
    """Input, head weights and Keras outputs, for bench_pytorch.py --check-parity."""
    import numpy as np
    model, base = build_lab_model(tf, a.weights, a.net)
    x, _ = random_batch(2, seed=7, size=a.size)
    if C.NETS[a.net]["preprocessing"] == "model":
        pre = getattr(tf.keras.applications, C.NETS[a.net]["family"]).preprocess_input(x.copy())
    else:
        pre = x
    base_out = base(pre, training=False).numpy()
    logits = model(x, training=False).numpy()
    dense = model.layers[-1]
    k, b = [w.numpy() for w in dense.weights]
    names = np.array([l.name for l in base.layers])
    extra = {}
    if a.net != "mobilenetv2":  # the base's (random) weights, "w:<layer>:<i>" in get_weights order
        for layer in base.layers:
            for i, w in enumerate(layer.get_weights()):
                extra["w:%s:%d" % (layer.name, i)] = w
    np.savez(a.dump_reference, x=x, base_out=base_out, logits=logits, dense_kernel=k,
             dense_bias=b, layer_names=names, **extra)
    C.log("wrote", a.dump_reference, "base_out", base_out.shape, "logits", logits.ravel())


if __name__ == "__main__":
    main()
