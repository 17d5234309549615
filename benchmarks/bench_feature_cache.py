#!/usr/bin/env python3
"""The feature cache (issue 15 section 1): the validation part of fit, per epoch, with the
cache on and off, for the lab's two phases (160x160 ImageNet MobileNetV2; transfer learning
with the whole base frozen, then fine-tuning from layer 100) on the lab's validation images
(the 800 of validation_ds after its test split, or --val-images of them).

    python benchmarks/bench_feature_cache.py [--epochs 3] [--train-batches 2]

Each fit trains on --train-batches batches per epoch (the training part is not measured);
the time of every validation pass inside fit is taken around catdog.training.evaluate.
Also checks that both settings give the same val_loss / val_accuracy bits. Prints a table,
writes nothing. Numbers depend on the machine and on what else runs."""
import argparse
import os
import time
from pathlib import Path

import numpy as np

import catdog
from catdog import layers, training


def shared() -> Path:
    return Path(os.environ.get("CATDOG_SHARED") or Path(__file__).resolve().parents[2] / "shared")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-batches", type=int, default=2)
    ap.add_argument("--val-images", type=int, default=0, help="0: all 800")
    a = ap.parse_args()
    data = shared() / "data" / "cats_and_dogs_filtered"
    weights = shared() / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    kw = dict(shuffle=True, batch_size=32, image_size=(160, 160))
    train = catdog.utils.image_dataset_from_directory(data / "train", **kw).take(a.train_batches)
    val = catdog.utils.image_dataset_from_directory(data / "validation", **kw)
    val = val.skip(val.cardinality() // 5)
    if a.val_images:
        val = val.take(a.val_images // 32)
    print(f"validation images: {val.num_samples}, threads {catdog.config.get_num_threads()}, "
          f"precision {catdog.config.get_precision()}")

    times = []
    real_evaluate = training.evaluate

    def timed(*args, **kwargs):
        t = time.perf_counter()
        out = real_evaluate(*args, **kwargs)
        times.append(time.perf_counter() - t)
        return out

    training.evaluate = timed

    def lab(phase):
        catdog.random.set_seed(1)
        aug = catdog.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.2)])
        base = catdog.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=False,
                                               weights=str(weights))
        base.trainable = False
        inputs = catdog.Input(shape=(160, 160, 3))
        x = aug(inputs)
        x = catdog.applications.mobilenet_v2.preprocess_input(x)
        x = base(x, training=False)
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dropout(0.2)(x)
        model = catdog.Model(inputs, layers.Dense(1)(x))
        loss = catdog.losses.BinaryCrossentropy(from_logits=True)
        acc = [catdog.metrics.BinaryAccuracy(threshold=0, name="accuracy")]
        if phase == "fine-tuning":
            base.trainable = True
            for layer in base.layers[:100]:
                layer.trainable = False
            model.compile(optimizer=catdog.optimizers.RMSprop(learning_rate=1e-5), loss=loss,
                          metrics=acc)
        else:
            model.compile(optimizer=catdog.optimizers.Adam(learning_rate=1e-4), loss=loss,
                          metrics=acc)
        return model

    results = {}
    for phase in ("transfer", "fine-tuning"):
        for on in (False, True):
            catdog.config.set_feature_cache_bytes(catdog.config.FEATURE_CACHE_BYTES if on else 0)
            model = lab(phase)
            del times[:]
            h = model.fit(train, epochs=a.epochs, validation_data=val, verbose=0)
            results[phase, on] = (list(times), h.history)
            info = model._graph.feature_cache_info()
            print(f"{phase:12s} cache {'on ' if on else 'off'}: validation per epoch "
                  + " ".join(f"{t:6.3f}" for t in times) + " s"
                  + (f"   (cut node {info['cut']}, {info['bytes'] / 2**20:.1f} MiB)" if on else ""))
        (off_t, off_h), (on_t, on_h) = results[phase, False], results[phase, True]
        same = all(np.array_equal(off_h[k], on_h[k]) for k in ("val_loss", "val_accuracy"))
        ratio = np.median(off_t[1:]) / np.median(on_t[1:])
        print(f"{phase:12s} epochs 2..{a.epochs}: {np.median(off_t[1:]):.3f} s -> "
              f"{np.median(on_t[1:]):.3f} s = {ratio:.1f}x faster; first epoch "
              f"{off_t[0]:.3f} -> {on_t[0]:.3f} s; same bits: {same}")


if __name__ == "__main__":
    main()
