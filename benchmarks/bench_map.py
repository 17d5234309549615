#!/usr/bin/env python3
"""What ``Dataset.map`` costs in fit: the lab's transfer-learning model (160x160 ImageNet
MobileNetV2 frozen, RandomFlip + RandomRotation, GAP, Dropout, Dense(1)) trained one epoch on
--train-batches batches of cats_and_dogs_filtered/train and evaluated on --val-batches
batches of the validation folder, from the dataset itself (a whole epoch in C) and from ``ds.map(lambda x, y: (x, y))``
(batch by batch from Python: augmentation on the calling threads, no feature cache), each
--repeats times, alternating.

    python benchmarks/bench_map.py [--train-batches 20] [--val-batches 8] [--repeats 2]

Prints the fit and evaluate times per setting (median; wall clock and the process's CPU
time, all threads: on a shared machine the CPU time moves less) and the losses; writes nothing. The
two settings draw different augmentations (the C loader keys them by sample, the Python loop
by batch position: same distributions), so their losses differ. Numbers depend on the
machine and on what else runs."""
import argparse
import os
import statistics
import time
from pathlib import Path

import catdog
from catdog import layers


def shared() -> Path:
    return Path(os.environ.get("CATDOG_SHARED") or Path(__file__).resolve().parents[2] / "shared")


def model(weights):
    catdog.utils.set_random_seed(1)
    base = catdog.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=False,
                                           weights=str(weights))
    base.trainable = False
    inputs = catdog.Input((160, 160, 3))
    x = catdog.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.2)])(inputs)
    x = catdog.applications.mobilenet_v2.preprocess_input(x)
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    m = catdog.Model(inputs, layers.Dense(1)(x))
    m.compile(optimizer=catdog.optimizers.Adam(1e-4),
              loss=catdog.losses.BinaryCrossentropy(from_logits=True),
              metrics=[catdog.metrics.BinaryAccuracy(threshold=0, name="accuracy")])
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-batches", type=int, default=20)
    ap.add_argument("--val-batches", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    data = shared() / "data" / "cats_and_dogs_filtered"
    weights = shared() / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    kw = dict(shuffle=True, batch_size=32, image_size=(160, 160), seed=1, verbose=False)
    train = catdog.utils.image_dataset_from_directory(data / "train", **kw).take(a.train_batches)
    val = catdog.utils.image_dataset_from_directory(data / "validation", **kw).take(a.val_batches)
    settings = {"C path": (train, val),
                "map": (train.map(lambda x, y: (x, y)), val.map(lambda x, y: (x, y)))}
    times = {k: {"fit": [], "evaluate": [], "fit_cpu": [], "evaluate_cpu": []} for k in settings}
    losses = {}
    for _ in range(a.repeats):
        for name, (tr, va) in settings.items():
            m = model(weights)
            t0, c0 = time.perf_counter(), time.process_time()
            h = m.fit(tr, epochs=1, verbose=0)
            t1, c1 = time.perf_counter(), time.process_time()
            ev = m.evaluate(va, verbose=0)
            t2, c2 = time.perf_counter(), time.process_time()
            times[name]["fit"].append(t1 - t0)
            times[name]["evaluate"].append(t2 - t1)
            times[name]["fit_cpu"].append(c1 - c0)
            times[name]["evaluate_cpu"].append(c2 - c1)
            losses[name] = (h.history["loss"][0], ev[0])
    n_train, n_val = train.num_samples, val.num_samples
    print(f"{n_train} training images (1 epoch), {n_val} validation images, "
          f"{catdog.get_num_threads()} threads, median of {a.repeats}")
    for name, t in times.items():
        f, e = statistics.median(t["fit"]), statistics.median(t["evaluate"])
        fc, ec = statistics.median(t["fit_cpu"]), statistics.median(t["evaluate_cpu"])
        print(f"  {name:7s} fit {f:6.2f} s wall, {fc:6.2f} s CPU   evaluate {e:6.2f} s wall, "
              f"{ec:6.2f} s CPU   loss {losses[name][0]:.6f} val_loss {losses[name][1]:.6f}")


if __name__ == "__main__":
    main()
