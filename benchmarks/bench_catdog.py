"""catdog side: the lab's code with `catdog` in place of `tf.keras` (DESIGN.md, "The lab, as
the notebook reads"). Runs with the interpreter where catdog is pip-installed (the system
python); if `import catdog` fails there, the repository root is tried (an in-place build).

The exact API used (anything missing makes this side report "not available: <reason>"):

    catdog.set_num_threads(n)
    catdog.config.set_precision("bf16")                 # only with --precision bf16
    catdog.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=False, weights=<h5 path>)
    catdog.applications.mobilenet_v2.preprocess_input
    catdog.Sequential([catdog.layers.RandomFlip("horizontal"), catdog.layers.RandomRotation(0.2)])
    catdog.Input(shape=(160, 160, 3)); base_model(x, training=False)
    catdog.layers.GlobalAveragePooling2D() / Dropout(0.2) / Dense(1); catdog.Model(inputs, outputs)
    base_model.trainable = ...; base_model.layers[:100] -> layer.trainable = False
    model.compile(optimizer=catdog.optimizers.Adam(learning_rate=1e-4) | RMSprop(learning_rate=1e-5),
                  loss=catdog.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[catdog.metrics.BinaryAccuracy(threshold=0, name="accuracy")])
    model.predict_on_batch(x)            # x: float32 numpy N×160×160×3, pixel values 0..255
    model.train_on_batch(x, y)           # y: float32 N×1; fallback: model.fit(x, y, batch_size=32, epochs=1)
    catdog.utils.image_dataset_from_directory(dir, shuffle=True, batch_size=32, image_size=(160, 160))
    ds.cardinality(), ds.take(n), ds.skip(n)
    model.fit(train_ds, epochs=E, validation_data=val_ds[, initial_epoch=I]) -> History (.epoch, .history)
    model.evaluate(test_ds) -> (loss, accuracy)

--net resnet50|vgg16|mobilenetv3small|mobilenetv3large|efficientnetb0 (cases 1-3) builds that
base instead, `catdog.applications.<Builder>(input_shape=(160, 160, 3), include_top=False,
weights=None)` after `catdog.utils.set_random_seed(1234)` (seeded random weights: no ImageNet
files here), with the same augmentation and head, the family's preprocess_input in the model
(ResNet50 / VGG16: "caffe", as catdog's lab) or the base's built-in preprocessing (MobileNetV3,
EfficientNet), fine-tuned from the family's default layer (_common.NETS).
`--export-onnx PATH` writes that model with `model.export(PATH, format="onnx")` and PATH.npz
with a 4-image input and catdog's logits, for the ONNX Runtime / OpenVINO sides.
"""
import time

_T_START = time.perf_counter()  # case 5 starts here (before `import catdog`)

import os  # noqa: E402
import sys  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
import _common as C  # noqa: E402
import flops  # noqa: E402

FRAMEWORK = "catdog"

REQUIRED = [
    "set_num_threads", "Input", "Model", "Sequential",
    "applications.MobileNetV2", "applications.mobilenet_v2.preprocess_input",
    "layers.RandomFlip", "layers.RandomRotation", "layers.GlobalAveragePooling2D",
    "layers.Dropout", "layers.Dense",
    "optimizers.Adam", "optimizers.RMSprop", "losses.BinaryCrossentropy", "metrics.BinaryAccuracy",
    "utils.image_dataset_from_directory",
]
MODEL_METHODS = ["compile", "fit", "predict_on_batch", "evaluate"]


def _get(mod, dotted):
    obj = mod
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def import_catdog():
    """Import catdog (installed, else the repository root). Raises NotAvailable with a reason."""
    try:
        import catdog
    except Exception as e1:  # ImportError, or an error inside catdog's own import
        root = os.path.dirname(_HERE)
        sys.modules.pop("catdog", None)
        if os.path.isdir(os.path.join(root, "catdog")) and root not in sys.path:
            sys.path.insert(1, root)
            try:
                import catdog
            except Exception as e2:
                raise C.NotAvailable("cannot import catdog: %s: %s (from the repository: %s: %s)"
                                     % (type(e1).__name__, e1, type(e2).__name__, e2))
        else:
            raise C.NotAvailable("cannot import catdog: %s: %s" % (type(e1).__name__, e1))
    missing = []
    for name in REQUIRED:
        try:
            _get(catdog, name)
        except AttributeError:
            missing.append("catdog." + name)
    if missing:
        raise C.NotAvailable("catdog API missing: " + ", ".join(missing))
    return catdog


def catdog_source(catdog):
    """Where the imported catdog was installed from, and that tree's git commit now."""
    import json
    import subprocess
    src = os.path.dirname(os.path.dirname(os.path.abspath(catdog.__file__)))
    try:
        import importlib.metadata as md
        url = json.loads(md.distribution("catdog").read_text("direct_url.json") or "{}").get("url", "")
        if url.startswith("file://") and os.path.isdir(url[7:]):
            src = url[7:]
    except Exception:
        pass
    try:
        out = subprocess.run(["git", "-C", src, "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        commit = out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return src + (" @ " + commit if commit else "")


def build_lab_model(catdog, weights, net="mobilenetv2"):
    """The lab's model, as DESIGN.md writes it (another base with --net: seeded random weights)."""
    layers = catdog.layers
    spec = C.NETS[net]
    size = spec["size"]
    data_augmentation = catdog.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.2)])
    preprocess_input = getattr(catdog.applications, spec.get("family", "mobilenet_v2")).preprocess_input
    if net == "mobilenetv2":
        base_model = catdog.applications.MobileNetV2(input_shape=(C.SIZE, C.SIZE, 3), include_top=False,
                                                     weights=weights)
    else:
        catdog.utils.set_random_seed(C.SEED)
        base_model = getattr(catdog.applications, spec["builder"])(
            input_shape=(size, size, 3), include_top=False, weights=None)
    base_model.trainable = False
    inputs = catdog.Input(shape=(size, size, 3))
    x = data_augmentation(inputs)
    if spec["preprocessing"] == "model":
        x = preprocess_input(x)
    x = base_model(x, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(1)(x)
    model = catdog.Model(inputs, outputs)
    missing = [m for m in MODEL_METHODS if not hasattr(model, m)]
    if missing:
        raise C.NotAvailable("catdog.Model lacks " + ", ".join(missing))
    return model, base_model


def _loss_metrics(catdog):
    return dict(loss=catdog.losses.BinaryCrossentropy(from_logits=True),
                metrics=[catdog.metrics.BinaryAccuracy(threshold=0, name="accuracy")])


def compile_frozen(catdog, model):
    model.compile(optimizer=catdog.optimizers.Adam(learning_rate=1e-4), **_loss_metrics(catdog))


def unfreeze_and_compile(catdog, model, base_model, net="mobilenetv2"):
    base_model.trainable = True
    at = C.fine_tune_index(net, [layer.name for layer in base_model.layers])
    for layer in base_model.layers[:at]:
        layer.trainable = False
    model.compile(optimizer=catdog.optimizers.RMSprop(learning_rate=1e-5), **_loss_metrics(catdog))


def random_batch(n, seed=0, size=C.SIZE):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, size=(n, size, size, 3)).astype("float32")
    y = rng.integers(0, 2, size=(n, 1)).astype("float32")
    return x, y


def n_trainable(model):
    try:
        import numpy as np
        return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
    except Exception:
        return None


def time_training(model, st, reps, size=C.SIZE):
    """Seconds per training step of batch 32: train_on_batch if catdog has it, else fit() on
    in-memory arrays (one epoch of `iters` batches, per-batch time = epoch time / batches)."""
    x, y = random_batch(C.BATCH, size=size)
    if hasattr(model, "train_on_batch"):
        return C.time_steps(lambda: model.train_on_batch(x, y), st["warmup"], st["iters"], reps), \
            "model.train_on_batch(x, y)"
    import numpy as np
    k = st["iters"]
    xk, yk = np.concatenate([x] * k), np.concatenate([y] * k)

    def epoch():
        model.fit(xk, yk, batch_size=C.BATCH, epochs=1)
    try:
        epoch()  # warm-up epoch (also proves fit accepts arrays)
    except TypeError as e:
        raise C.NotAvailable("catdog.Model has no train_on_batch(x, y) and fit(x, y, batch_size=32, "
                             "epochs=1) on arrays failed: %s" % e)
    t = C.time_steps(epoch, 0, 1, reps)
    return [s / k for s in t], "model.fit(x, y, batch_size=32, epochs=1) over %d batches / %d" % (k, k)


def main():
    a = C.parse_args(FRAMEWORK)
    R = C.Result(FRAMEWORK if a.precision == "fp32" else FRAMEWORK + "-" + a.precision, a)
    st = C.settings(a.quick, a.net)
    reps = min(a.repeats, st["max_repeats"] or a.repeats)
    if a.net != "mobilenetv2":
        REQUIRED[REQUIRED.index("applications.MobileNetV2")] = "applications." + C.NETS[a.net]["builder"]
    try:
        catdog = import_catdog()
        catdog.set_num_threads(a.threads)
        if a.precision != "fp32":
            try:
                catdog.config.set_precision(a.precision)
            except AttributeError:
                raise C.NotAvailable("catdog.config.set_precision missing (needed for --precision %s)"
                                     % a.precision)
    except C.NotAvailable as e:
        R.unavailable(str(e))
    except Exception as e:
        R.unavailable("%s: %s" % (type(e).__name__, e))
    R.d["versions"] = {"catdog": getattr(catdog, "__version__", "?"), "file": catdog.__file__,
                       "precision": a.precision}
    try:
        import numpy
        R.d["versions"]["numpy"] = numpy.__version__
        import importlib.metadata as md
        R.d["versions"]["onednn"] = md.version("onednn")
    except Exception:
        pass
    R.d["versions"]["source"] = catdog_source(catdog)
    fl = flops.summary(C.ALPHA, C.SIZE) if a.net == "mobilenetv2" else {}  # FLOPs: MobileNetV2's only
    net, size = a.net, a.size
    if net != "mobilenetv2":  # MobileNetV2's RESULTS.md lines stay as they were
        R.d["versions"]["net"] = net
    if a.export_onnx:
        export_onnx(catdog, a, R)
        return

    def case5():
        base = catdog.applications.MobileNetV2(input_shape=(C.SIZE, C.SIZE, 3), include_top=False,
                                               weights=a.weights)
        t = time.perf_counter() - _T_START
        r = {"seconds": t, "what": "import catdog + MobileNetV2(include_top=False, weights=h5 path)"}
        if hasattr(base, "count_params"):
            r["params"] = int(base.count_params())
        return r

    if 5 in a.case_list:
        R.run_case(5, case5)

    shared = {}

    def lab_model():
        if "model" not in shared:
            shared["model"], shared["base"] = build_lab_model(catdog, a.weights, net)
        return shared["model"], shared["base"]

    def case1():
        model, _ = lab_model()
        compile_frozen(catdog, model)
        x32, _ = random_batch(C.BATCH, size=size)
        x1, _ = random_batch(1, seed=1, size=size)
        t32 = C.time_steps(lambda: model.predict_on_batch(x32), st["warmup"], st["iters"], reps)
        t1 = C.time_steps(lambda: model.predict_on_batch(x1), st["warmup1"], st["iters1"], reps)
        r = C.throughput_record(t32, C.BATCH, "model.predict_on_batch(x)", fl.get("case1_gflop_per_image"))
        r["batch1"] = C.latency_record(t1, "model.predict_on_batch(x[None])")
        return r

    def case2():
        model, _ = lab_model()
        compile_frozen(catdog, model)
        t, how = time_training(model, st, reps, size)
        r = C.throughput_record(t, C.BATCH, how + " [Adam 1e-4, augmentation on]", fl.get("case2_gflop_per_image"))
        r["trainable_params"] = n_trainable(model)
        return r

    def case3():
        model, base = lab_model()
        unfreeze_and_compile(catdog, model, base, net)
        at = C.fine_tune_index(net, [layer.name for layer in base.layers])
        t, how = time_training(model, st, reps, size)
        r = C.throughput_record(t, C.BATCH, how + " [RMSprop 1e-5, from layer %d]" % at,
                                fl.get("case3_gflop_per_image"))
        r["fine_tune_at"] = [at, base.layers[at].name]
        r["trainable_params"] = n_trainable(model)
        return r

    def case4():
        t0 = time.perf_counter()
        catdog.utils.set_random_seed(a.seed)
        train_dir = os.path.join(a.data, "train")
        validation_dir = os.path.join(a.data, "validation")
        train_ds = catdog.utils.image_dataset_from_directory(
            train_dir, shuffle=True, batch_size=C.BATCH, image_size=(C.SIZE, C.SIZE), seed=a.seed)
        validation_ds = catdog.utils.image_dataset_from_directory(
            validation_dir, shuffle=True, batch_size=C.BATCH, image_size=(C.SIZE, C.SIZE), seed=a.seed)
        val_batches = int(validation_ds.cardinality())
        test_ds = validation_ds.take(val_batches // 5)
        validation_ds = validation_ds.skip(val_batches // 5)
        if a.quick:
            train_ds, validation_ds, test_ds = train_ds.take(3), validation_ds.take(2), test_ds.take(1)
        model, base_model = build_lab_model(catdog, a.weights)
        compile_frozen(catdog, model)
        ie, fe = (1, 1) if a.quick else (a.initial_epochs, a.fine_tune_epochs)
        timers = [C.validation_timer(catdog.callbacks.Callback) for _ in range(2)]
        t1 = time.perf_counter()
        history = model.fit(train_ds, epochs=ie, validation_data=validation_ds, callbacks=[timers[0]])
        t2 = time.perf_counter()
        unfreeze_and_compile(catdog, model, base_model)
        history_fine = model.fit(train_ds, epochs=ie + fe, initial_epoch=len(history.epoch),
                                 validation_data=validation_ds, callbacks=[timers[1]])
        t3 = time.perf_counter()
        loss, accuracy = model.evaluate(test_ds)
        t4 = time.perf_counter()
        return C.lab_record(a, (ie, fe), (t0, t1, t2, t3, t4), history, history_fine, timers,
                            loss, accuracy,
                            "image_dataset_from_directory train+validation (take/skip test), fit %d "
                            "epochs (Adam) + fit %d epochs (RMSprop, from layer 100) with "
                            "validation, evaluate(test)")

    for c, fn in ((1, case1), (2, case2), (3, case3), (4, case4)):
        if c in a.case_list:
            C.log(R.d["framework"], "case", c)
            R.run_case(c, fn)
    R.write(final=True)


def export_onnx(catdog, a, R):
    """The --net model (seeded random base + head, inference graph) as ONNX via catdog's own
    exporter, plus PATH.npz with 4 random images (NHWC, 0..255) and catdog's logits for them,
    which the ONNX Runtime / OpenVINO sides compare with theirs."""
    import numpy as np
    model, _ = build_lab_model(catdog, None, a.net)
    compile_frozen(catdog, model)
    x, _ = random_batch(4, seed=7, size=a.size)
    logits = np.asarray(model.predict_on_batch(x))
    t0 = time.perf_counter()
    model.export(a.export_onnx, format="onnx")
    t = time.perf_counter() - t0
    np.savez(a.export_onnx + ".npz", x=x, logits=logits)
    R.d["export"] = {"seconds": t, "path": a.export_onnx, "net": a.net, "layout": "NHWC",
                     "catdog": getattr(catdog, "__version__", "?"),
                     "how": "catdog model.export(path, format=\"onnx\") (opset 17, dynamic batch, "
                            "NHWC input transposed once)"}
    C.log("exported", a.export_onnx, "in %.1f s" % t)
    R.write(final=True)


if __name__ == "__main__":
    main()
