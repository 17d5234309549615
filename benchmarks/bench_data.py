#!/usr/bin/env python3
"""Data pipeline benchmark (issue 3): decode+resize throughput per core on the real dataset,
and the time of a cached, augmented epoch (the lab's RandomFlip + RandomRotation(0.2)),
compared with a frozen-base training epoch when the engine is present.

    python benchmarks/bench_data.py [--data ../shared/data/cats_and_dogs_filtered] [--repeat 3]

Prints a table and writes nothing. Numbers depend on the machine and on what else runs."""
import argparse
import os
import time
from pathlib import Path

import numpy as np

import catdog
from catdog import _engine
from catdog.layers.preprocessing import RandomFlip, RandomRotation
from catdog.utils import image_dataset_from_directory


def default_data() -> Path:
    shared = os.environ.get("CATDOG_SHARED") or Path(__file__).resolve().parents[2] / "shared"
    return Path(shared) / "data" / "cats_and_dogs_filtered"


def best_of(repeat, fn):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def decode_throughput(train_dir, threads, repeat):
    """Images/s of cd_dataset_load (read + decode + resize 160x160 + cache) on `threads`."""
    ds = image_dataset_from_directory(train_dir, image_size=(160, 160), verbose=False, seed=0)
    paths, labels = ds.file_paths, ds.labels

    def load():
        d = _engine.Dataset(paths, labels, 160, 160, "bilinear", False, "int", 2, 1 << 32, "warn")
        d.load(threads)

    return len(paths) / best_of(repeat, load)


def epoch_time(ds, layers, workers, repeat, consume=None):
    def run():
        for x, y, _ in ds.loader(epoch=1, training=True, layers=layers, num_workers=workers):
            if consume:
                consume(x)

    return best_of(repeat, run)


def frozen_base_epoch(train_ds):
    """Seconds of one frozen-base fit epoch of the lab's model (random weights: same compute),
    or None when this checkout has no engine yet."""
    try:
        from catdog import layers
        from catdog.applications import MobileNetV2
    except ImportError:
        return None
    try:
        base = MobileNetV2(input_shape=(160, 160, 3), include_top=False, weights=None)
        base.trainable = False
        inputs = catdog.Input(shape=(160, 160, 3))
        x = catdog.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.2)])(inputs)
        x = layers.Rescaling(1 / 127.5, -1)(x)
        x = base(x, training=False)
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dropout(0.2)(x)
        model = catdog.Model(inputs, layers.Dense(1)(x))
        model.compile(optimizer=catdog.optimizers.Adam(1e-4),
                      loss=catdog.losses.BinaryCrossentropy(from_logits=True),
                      metrics=[catdog.metrics.BinaryAccuracy(threshold=0, name="accuracy")])
        t = time.perf_counter()
        model.fit(train_ds, epochs=1, verbose=0)
        return time.perf_counter() - t
    except Exception as e:  # noqa: BLE001 - the engine may be partial on this branch
        print(f"(frozen-base epoch not measured: {type(e).__name__}: {e})")
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_data())
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-engine", action="store_true", help="do not time a training epoch")
    args = ap.parse_args()
    train_dir = args.data / "train"
    if not train_dir.is_dir():
        raise SystemExit(f"no dataset at {train_dir}: pass --data")
    cores = os.cpu_count() or 1
    print(f"catdog data pipeline benchmark: {train_dir} ({cores} cores)")

    rows = []
    for threads in sorted({1, min(2, cores)}):
        ips = decode_throughput(train_dir, threads, args.repeat)
        rows.append((f"decode+resize+cache, {threads} thread(s)", f"{ips:8.1f} images/s",
                     f"{ips / threads:8.1f} images/s/core"))

    ds = image_dataset_from_directory(train_dir, image_size=(160, 160), batch_size=32, seed=0,
                                      verbose=False)
    lab = [RandomFlip("horizontal"), RandomRotation(0.2)]
    plain_t = epoch_time(ds, [], 1, args.repeat)
    rows.append(("cached epoch, no augmentation, 1 worker", f"{plain_t * 1000:8.1f} ms", ""))
    aug = {}
    for workers in sorted({0, 1, min(2, cores)}):
        aug[workers] = epoch_time(ds, lab, workers, args.repeat)
        rows.append((f"cached epoch + flip + rotation(0.2), {workers} worker(s)",
                     f"{aug[workers] * 1000:8.1f} ms", f"{2000 / aug[workers]:8.1f} images/s"))

    train_t = None if args.skip_engine else frozen_base_epoch(ds)
    for name, a, b in rows:
        print(f"  {name:<48} {a:>18} {b:>22}")
    if train_t:
        share = aug[min(2, cores)] / train_t
        print(f"  frozen-base training epoch (engine, fit)         {train_t:15.2f} s")
        print(f"  augmented data epoch / training epoch: {share * 100:.2f} % (target < 5 %)")
    else:
        print("  frozen-base training epoch: engine not available in this checkout")


if __name__ == "__main__":
    main()
