"""Same seed and thread count => bit-identical weights after N training steps (dropout on,
BN in training mode, everything trainable)."""
import numpy as np

import catdog
from catdog import layers


def train(seed, steps=4, threads=2):
    if threads is not None:
        catdog.set_num_threads(threads)
    catdog.random.set_seed(seed)
    base = catdog.applications.MobileNetV2(input_shape=(64, 64, 3), alpha=0.35,
                                           include_top=False, weights=None)
    inputs = catdog.Input((64, 64, 3))
    x = base(inputs)  # training mode: BN batch statistics
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.5)(x)
    out = layers.Dense(1)(x)
    model = catdog.Model(inputs, out)
    model.compile(optimizer=catdog.optimizers.Adam(1e-3),
                  loss=catdog.losses.BinaryCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 64, 64, 3)).astype(np.float32)
    y = (rng.uniform(size=8) > 0.5).astype(np.float32)
    losses = [model.train_on_batch(x, y) for _ in range(steps)]
    return losses, model.get_weights()


def test_same_seed_same_bits():
    l1, w1 = train(seed=5)
    l2, w2 = train(seed=5)
    assert l1 == l2
    for a, b in zip(w1, w2):
        assert np.array_equal(a, b)


def test_other_seed_other_dropout_and_init():
    l1, w1 = train(seed=5, steps=2)
    l3, w3 = train(seed=6, steps=2)
    assert l1 != l3
    assert any(not np.array_equal(a, b) for a, b in zip(w1, w3))


def test_one_thread_is_deterministic_too():
    l1, w1 = train(seed=9, steps=2, threads=1)
    l2, w2 = train(seed=9, steps=2, threads=1)
    assert l1 == l2 and all(np.array_equal(a, b) for a, b in zip(w1, w2))
    catdog.set_num_threads(2)


def test_thread_count_holds_in_another_python_thread():
    # OpenMP thread counts are per calling thread: a model trained from a worker thread (a
    # notebook's background job, say) must still use catdog.set_num_threads' count.
    import threading

    l1, w1 = train(seed=11, steps=2, threads=1)
    out = {}
    worker = threading.Thread(target=lambda: out.update(r=train(seed=11, steps=2, threads=None)))
    try:
        worker.start()  # set_num_threads(1) was called by this thread only
        worker.join()
        l2, w2 = out["r"]
        assert l1 == l2 and all(np.array_equal(a, b) for a, b in zip(w1, w2))
    finally:
        catdog.set_num_threads(2)
