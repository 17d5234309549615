"""python -m catdog.lab — the whole transfer-learning lab (../shared/DESIGN.md), on catdog:
data, frozen ImageNet MobileNetV2 + head, 10 epochs, fine-tuning from layer 100 for 10 more,
test accuracy; writes learning curves (PNG), metrics (JSON) and a short Markdown report.

Data and weights: --data / --weights, else ../shared (beside the working directory or the
source tree) when present, else downloaded and cached (catdog.datasets, catdog.weights).
Environment overrides (used by the CI's reduced lab and the notebook test):
CATDOG_LAB_EPOCHS, CATDOG_LAB_FINE_TUNE_EPOCHS, CATDOG_LAB_SUBSET (images per class),
CATDOG_LAB_PRECISION (fp32 | bf16).

--base swaps the base (docs/applications.md, "The lab with another base"): mobilenetv2 (the
default), resnet50, vgg16, mobilenetv3small, mobilenetv3large, efficientnetb0, each at 160x160
(Keras allows it for all six; MobileNetV3's and EfficientNet's ImageNet files are the 224 ones,
which convolutional bases run at 160 unchanged) and fine-tuned from its own default layer
(BASES)."""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPORT_ACC = {"transfer": 0.9703, "transfer_loss": 0.1066, "fine_tuned": 0.98}

# --base: (builder, preprocessing, layer fine-tuning starts at, why that layer). Preprocessing
# "model": the family's preprocess_input inside the model, as the tutorial writes it
# (MobileNetV2's to [-1, 1]; ResNet50's and VGG16's "caffe": BGR, mean subtracted);
# "builtin": the base holds its own (Rescaling / Normalization).
BASES = {
    "mobilenetv2": ("MobileNetV2", "model", 100,
                    "the TensorFlow tutorial's choice: the top 54 of 154 layers"),
    "resnet50": ("ResNet50", "model", "conv5_block1_1_conv",
                 "the last stage (conv5, 32 of 175 layers, 15M of 23.6M weights)"),
    "vgg16": ("VGG16", "model", "block5_conv1",
              "the last convolutional block, as in Keras's classic VGG16 fine-tuning"),
    "mobilenetv3small": ("MobileNetV3Small", "builtin", "expanded_conv_6_expand",
                         "blocks 6-10, about the last half of the network"),
    "mobilenetv3large": ("MobileNetV3Large", "builtin", "expanded_conv_10_expand",
                         "blocks 10-14, the last third, as MobileNetV2's 100"),
    "efficientnetb0": ("EfficientNetB0", "builtin", "block6a_expand_conv",
                       "blocks 6-7 and the top convolution, the last third"),
}
IMAGE_SIZE = 160


def _shared_candidates():
    """`shared/` beside the working directory or any of its parents, or beside the source
    tree (an in-place checkout)."""
    here = Path(__file__).resolve()
    for root in [Path.cwd(), *list(Path.cwd().parents)[:4], here.parents[1]]:
        yield root.parent / "shared"
        yield root / "shared"


def find_shared():
    env = os.environ.get("CATDOG_SHARED")
    if env:
        return Path(env)
    for cand in _shared_candidates():
        if (cand / "data" / "cats_and_dogs_filtered").is_dir():
            return cand
    return None


def subset_folder(src: Path, per_class: int, dest: Path) -> Path:
    """A copy of src (train/ or validation/) with only the first `per_class` files of each
    class, as symlinks (the originals stay read-only and untouched)."""
    for cls in sorted(p for p in src.iterdir() if p.is_dir()):
        out = dest / cls.name
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(cls.iterdir())[:per_class]:
            (out / f.name).symlink_to(f.resolve())
    return dest


def parse(argv=None):
    p = argparse.ArgumentParser(prog="python -m catdog.lab", description=__doc__.split("\n")[0])
    p.add_argument("--data", help="folder holding train/ and validation/ (cats_and_dogs_filtered)")
    p.add_argument("--base", choices=sorted(BASES), default="mobilenetv2",
                   help="the pretrained base (default mobilenetv2, the tutorial's)")
    p.add_argument("--weights", help="the base's no-top weights file, 'imagenet' (the default) "
                   "or 'none' (random start: the lab's machinery without downloads)")
    p.add_argument("--image-size", type=int, default=IMAGE_SIZE,
                   help=f"image height and width (default {IMAGE_SIZE})")
    p.add_argument("--epochs", type=int, default=int(os.environ.get("CATDOG_LAB_EPOCHS", 10)))
    p.add_argument("--fine-tune-epochs", type=int,
                   default=int(os.environ.get("CATDOG_LAB_FINE_TUNE_EPOCHS", 10)))
    p.add_argument("--fine-tune-at", type=int, default=None,
                   help="index of the first base layer to fine-tune (default: the base's, see "
                   "BASES; 100 for mobilenetv2)")
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--subset", type=int, default=int(os.environ.get("CATDOG_LAB_SUBSET", 0)),
                   help="use only the first N images of each class (0: all)")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--threads", type=int, default=0, help="0: all cores")
    p.add_argument("--precision", choices=["fp32", "bf16"],
                   default=os.environ.get("CATDOG_LAB_PRECISION", "fp32"),
                   help="bf16: the frozen part in bfloat16 (CPUs with AVX512-BF16 or AMX)")
    p.add_argument("--output", default="lab_output")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def run(args, return_model: bool = False):
    import catdog

    previous = catdog.config.get_precision()
    catdog.config.set_precision(getattr(args, "precision", "fp32"))
    try:
        return _run(args, return_model)
    finally:
        catdog.config.set_precision(previous)


def _run(args, return_model):
    import catdog
    from catdog import layers

    t_start = time.time()
    if args.threads:
        catdog.set_num_threads(args.threads)
    catdog.random.set_seed(args.seed)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    verbose = 0 if args.quiet else 1

    shared = find_shared()
    data = Path(args.data) if args.data else (
        shared / "data" / "cats_and_dogs_filtered" if shared else catdog.datasets.cats_and_dogs())
    base_name = getattr(args, "base", "mobilenetv2")
    builder_name, preprocessing, fine_tune_from, _ = BASES[base_name]
    weights = args.weights
    if weights is None and shared is not None and base_name == "mobilenetv2":
        cand = shared / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
        weights = str(cand) if cand.exists() else None
    weights = weights or "imagenet"
    if weights.lower() == "none":
        weights = None

    tmp = None
    train_dir, validation_dir = data / "train", data / "validation"
    if args.subset:
        tmp = tempfile.TemporaryDirectory(prefix="catdog-lab-")
        train_dir = subset_folder(train_dir, args.subset, Path(tmp.name) / "train")
        validation_dir = subset_folder(validation_dir, args.subset,
                                       Path(tmp.name) / "validation")

    # -- the lab, as the notebook reads (DESIGN.md) ----------------------------------------
    size = getattr(args, "image_size", IMAGE_SIZE)
    BATCH_SIZE, IMG_SIZE = 32, (size, size)
    train_ds = catdog.utils.image_dataset_from_directory(
        train_dir, shuffle=True, batch_size=BATCH_SIZE, image_size=IMG_SIZE, seed=args.seed)
    validation_ds = catdog.utils.image_dataset_from_directory(
        validation_dir, shuffle=True, batch_size=BATCH_SIZE, image_size=IMG_SIZE, seed=args.seed)
    class_names = train_ds.class_names
    val_batches = validation_ds.cardinality()
    test_batches = max(val_batches // 5, 1)  # small --subset runs still get a test split
    test_ds = validation_ds.take(test_batches)
    validation_ds = validation_ds.skip(test_batches)

    data_augmentation = catdog.Sequential([layers.RandomFlip("horizontal"),
                                           layers.RandomRotation(0.2)])
    family = {"MobileNetV2": "mobilenet_v2", "ResNet50": "resnet50", "VGG16": "vgg16",
              "MobileNetV3Small": "mobilenet_v3", "MobileNetV3Large": "mobilenet_v3",
              "EfficientNetB0": "efficientnet"}[builder_name]
    preprocess_input = getattr(catdog.applications, family).preprocess_input
    train_images = train_ds.num_samples
    IMG_SHAPE = IMG_SIZE + (3,)
    base_model = getattr(catdog.applications, builder_name)(input_shape=IMG_SHAPE,
                                                            include_top=False, weights=weights)
    if args.fine_tune_at is None:
        names = [layer.name for layer in base_model.layers]
        args.fine_tune_at = (fine_tune_from if isinstance(fine_tune_from, int)
                             else names.index(fine_tune_from))
    base_model.trainable = False
    inputs = catdog.Input(shape=IMG_SHAPE)
    x = data_augmentation(inputs)
    if preprocessing == "model":
        x = preprocess_input(x)
    x = base_model(x, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(1)(x)
    model = catdog.Model(inputs, outputs)
    summary_frozen = []
    model.summary(print_fn=summary_frozen.append)

    loss = catdog.losses.BinaryCrossentropy(from_logits=True)
    metrics = [catdog.metrics.BinaryAccuracy(threshold=0, name="accuracy")]
    model.compile(optimizer=catdog.optimizers.Adam(learning_rate=args.learning_rate), loss=loss,
                  metrics=metrics)
    loss0, accuracy0 = model.evaluate(validation_ds, verbose=0)
    t0 = time.time()
    history = model.fit(train_ds, epochs=args.epochs, validation_data=validation_ds, verbose=verbose)
    t_transfer = time.time() - t0

    base_model.trainable = True
    for layer in base_model.layers[:args.fine_tune_at]:
        layer.trainable = False
    model.compile(optimizer=catdog.optimizers.RMSprop(learning_rate=args.learning_rate / 10),
                  loss=loss, metrics=metrics)
    summary_fine = []
    model.summary(print_fn=summary_fine.append)
    total_epochs = args.epochs + args.fine_tune_epochs
    t0 = time.time()
    history_fine = model.fit(train_ds, epochs=total_epochs, initial_epoch=history.epoch[-1],
                             validation_data=validation_ds, verbose=verbose)
    t_fine = time.time() - t0
    test_loss, test_accuracy = model.evaluate(test_ds, verbose=0)

    images, labels = next(iter(test_ds))
    predicted = (model.predict_on_batch(images).ravel() > 0).astype(int)

    # -- outputs ----------------------------------------------------------------------------
    from catdog import plot

    plot.learning_curves(history, path=out / "learning_curves_transfer.png")
    plot.learning_curves(history, history_fine, path=out / "learning_curves_fine_tuning.png")
    plot.predictions(images, labels.ravel().astype(int), predicted, class_names,
                     path=out / "test_predictions.png")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    metrics_out = {
        "initial": {"val_loss": loss0, "val_accuracy": accuracy0},
        "transfer": {k: v[-1] for k, v in history.history.items()},
        "fine_tuned": {k: v[-1] for k, v in history_fine.history.items()},
        "test": {"loss": test_loss, "accuracy": test_accuracy},
        "history": history.history, "history_fine": history_fine.history,
        "epochs": [args.epochs, args.fine_tune_epochs], "subset": args.subset, "seed": args.seed,
        "precision": catdog.config.get_precision(),
        "threads": catdog.get_num_threads(), "seconds": {"transfer": t_transfer,
                                                          "fine_tuning": t_fine,
                                                          "total": time.time() - t_start},
        "peak_rss_mb": peak_mb, "data": str(data), "weights": str(weights),
        "base": base_name, "image_size": size, "fine_tune_at": args.fine_tune_at,
        "train_images": train_images, "class_names": class_names,
        "report": REPORT_ACC,
    }
    (out / "metrics.json").write_text(json.dumps(metrics_out, indent=2))
    t, f = metrics_out["transfer"], metrics_out["fine_tuned"]
    report = f"""# catdog lab report

Cats vs dogs, {builder_name} (ImageNet, {weights}) at {size}x{size}, seed {args.seed},
{catdog.get_num_threads()} threads, {train_images} training images, {catdog.config.get_precision()}.

| stage | val_accuracy | val_loss | student report |
|---|---|---|---|
| before training | {accuracy0:.4f} | {loss0:.4f} | |
| transfer learning ({args.epochs} epochs) | {t['val_accuracy']:.4f} | {t['val_loss']:.4f} | 0.9703 / 0.1066 |
| fine-tuning from layer {args.fine_tune_at} (+{args.fine_tune_epochs}) | {f['val_accuracy']:.4f} | {f['val_loss']:.4f} | 0.98 |
| test split | {test_accuracy:.4f} | {test_loss:.4f} | |

Wall time: transfer {t_transfer:.0f} s, fine-tuning {t_fine:.0f} s, total {time.time() - t_start:.0f} s;
peak memory {peak_mb:.0f} MB.

![transfer](learning_curves_transfer.png)
![fine-tuning](learning_curves_fine_tuning.png)

```
{chr(10).join(summary_fine)}
```
"""
    (out / "report.md").write_text(report)
    if tmp is not None:
        tmp.cleanup()
    if verbose:
        print(f"\nTest accuracy: {test_accuracy:.4f}; outputs in {out.resolve()}")
    return (metrics_out, model) if return_model else metrics_out


def main(argv=None) -> int:
    args = parse(argv)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
