"""A few seconds' proof that an installed catdog works: imports from the installed package (not a
source folder), decodes images from a folder, trains a small MobileNetV2 one epoch, predicts,
saves and reloads weights. Run by scripts/check_dist.sh in clean environments made from the
wheel and from the source archive; any failure exits non-zero."""
import os
import struct
import sys
import tempfile

import numpy as np


def write_bmp(path, rgb):
    """A 24-bit BMP (bottom-up rows, BGR, rows padded to 4 bytes): no imaging library needed."""
    h, w, _ = rgb.shape
    row = (w * 3 + 3) & ~3
    pixels = bytearray()
    for y in range(h - 1, -1, -1):
        line = rgb[y, :, ::-1].tobytes()
        pixels += line + b"\0" * (row - len(line))
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    with open(path, "wb") as f:
        f.write(header + info + pixels)


def main():
    import catdog
    from catdog import layers

    here = os.path.dirname(os.path.abspath(catdog.__file__))
    assert "site-packages" in here, f"catdog imported from {here}, not an installed package"
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for k, name in enumerate(("cats", "dogs")):
            os.makedirs(os.path.join(tmp, "data", name))
            for i in range(8):
                img = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
                img[..., k] = 255  # a learnable signal per class
                write_bmp(os.path.join(tmp, "data", name, f"{i}.bmp"), img)
        ds = catdog.utils.image_dataset_from_directory(os.path.join(tmp, "data"), batch_size=8,
                                                       image_size=(32, 32), seed=1)
        assert ds.class_names == ["cats", "dogs"], ds.class_names
        base = catdog.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                               include_top=False, weights=None)
        base.trainable = False
        inputs = catdog.Input((32, 32, 3))
        x = catdog.applications.mobilenet_v2.preprocess_input(inputs)
        x = base(x, training=False)
        x = layers.GlobalAveragePooling2D()(x)
        model = catdog.Model(inputs, layers.Dense(1)(x))
        model.compile(optimizer=catdog.optimizers.Adam(learning_rate=1e-3),
                      loss=catdog.losses.BinaryCrossentropy(from_logits=True),
                      metrics=[catdog.metrics.BinaryAccuracy(threshold=0, name="accuracy")])
        history = model.fit(ds, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        images = np.concatenate([np.asarray(batch_images) for batch_images, _ in ds])
        assert images.shape == (16, 32, 32, 3), images.shape
        before = model.predict(images)
        path = os.path.join(tmp, "smoke.weights.h5")
        model.save_weights(path)
        model.load_weights(path)
        np.testing.assert_array_equal(model.predict(images), before)
    print(f"smoke test passed: catdog {catdog.__version__} from {here}, Python "
          f"{sys.version.split()[0]}")


if __name__ == "__main__":
    main()
