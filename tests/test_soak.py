"""Soak (issue 11): 20 cycles of the notebook's cells in one process, on a shared base_model:
build -> load the previous cycle's weights -> compile -> fit one epoch on a small subset ->
evaluate -> predict -> save. No exception, resident memory flat (the last cycle within 10% of
the second), and every reload predicting exactly what the model that saved it predicted."""
import shutil

import numpy as np

from conftest import SHARED_DATA
from test_notebook_habits import compile_, make_base, make_folder, model_cell, rss_mb
from catdog.utils import image_dataset_from_directory as idfd

CYCLES = 20


def subset(root, per_class=12):
    """The first images of each class of ../shared's training set, else generated ones."""
    if not SHARED_DATA.exists():
        return make_folder(root, n=per_class, size=(48, 40))
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for f in sorted((SHARED_DATA / "train" / cls).iterdir())[:per_class]:
            shutil.copy(f, root / cls / f.name)
    return root


def test_soak_build_fit_evaluate_predict_save_load(tmp_path):
    train = idfd(subset(tmp_path / "data"), image_size=(32, 32), batch_size=8, seed=1,
                 label_mode="binary", verbose=False)
    test = train.take(1)
    base = make_base(32)
    rss, losses, saved, expected = [], [], None, None
    for cycle in range(CYCLES):
        model = model_cell(base)
        if saved is not None:
            model.load_weights(saved)
            np.testing.assert_array_equal(model.predict(test), expected,
                                          err_msg=f"cycle {cycle}: reload of {saved.name}")
        compile_(model)
        model.fit(train, epochs=1, verbose=0)
        loss, accuracy = model.evaluate(test, verbose=0)
        assert np.isfinite(loss) and 0 <= accuracy <= 1
        losses.append(loss)
        expected = model.predict(test)
        assert expected.shape == (test.num_samples, 1) and np.all(np.isfinite(expected))
        saved = tmp_path / f"cycle{cycle}.{'h5' if cycle % 2 else 'npz'}"
        model.save_weights(saved)
        rss.append(rss_mb())
    assert len(set(losses)) > 1  # the weights carried over and kept training
    assert rss[-1] <= 1.10 * rss[1], f"RSS MB per cycle: {[round(v) for v in rss]}"
