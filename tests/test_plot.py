"""catdog.plot: learning curves, samples and predictions figures (Agg, no pyplot)."""
import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.figure import Figure  # noqa: E402

from catdog import plot  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


class History:
    def __init__(self, epoch, history):
        self.epoch = epoch
        self.history = history


class Batches:
    """What catdog.utils.image_dataset_from_directory gives: batches plus class_names."""

    class_names = ["cats", "dogs"]

    def __init__(self, n_batches=2, batch=4, size=32):
        rng = np.random.default_rng(0)
        self.data = []
        for _ in range(n_batches):
            x = rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
            x[:, : size // 2] = 0.0  # something visible: dark top half
            self.data.append((x, rng.integers(0, 2, batch).astype(np.int32)))
        self.iterations = 0

    def __iter__(self):
        self.iterations += 1
        return iter(self.data)


def _curves(n, start, acc0, seed):
    rng = np.random.default_rng(seed)
    acc = np.clip(acc0 + np.cumsum(rng.uniform(0, 0.02, n)), 0, 1)
    return {
        "loss": list(1 - acc + 0.05), "accuracy": list(acc),
        "val_loss": list(1 - acc + 0.08), "val_accuracy": list(acc - 0.01),
    }


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("CATDOG_HOME", str(tmp_path / "home"))


def test_learning_curves_with_fine_tuning_marker(tmp_path):
    h = History(list(range(10)), _curves(10, 0, 0.6, 1))
    hf = History(list(range(9, 20)), _curves(11, 9, 0.93, 2))
    out = tmp_path / "curves.png"
    fig = plot.learning_curves(h, hf, path=out)
    assert isinstance(fig, Figure)
    acc_ax, loss_ax = fig.axes
    assert acc_ax.get_title() == "Training and Validation Accuracy"
    assert loss_ax.get_title() == "Training and Validation Loss"
    for ax in (acc_ax, loss_ax):
        labels = [l.get_label() for l in ax.get_lines()]
        assert plot.FINE_TUNE_LABEL in labels
        marker = ax.get_lines()[labels.index(plot.FINE_TUNE_LABEL)]
        assert list(marker.get_xdata()) == [10.5, 10.5]  # between epoch 10 and the first fine-tuning one
        data = ax.get_lines()[0]
        assert len(data.get_xdata()) == 21  # 10 + 11 epochs, one continuous curve
    assert [l.get_label() for l in acc_ax.get_lines()][:2] == ["Training Accuracy", "Validation Accuracy"]
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]  # no temp file left


def test_learning_curves_plain_dicts_and_no_validation():
    fig = plot.learning_curves({"loss": [0.9, 0.5, 0.4], "accuracy": [0.6, 0.8, 0.85]})
    acc_ax, loss_ax = fig.axes
    assert [l.get_label() for l in acc_ax.get_lines()] == ["Training Accuracy"]
    assert plot.FINE_TUNE_LABEL not in [l.get_label() for l in loss_ax.get_lines()]
    fig2 = plot.learning_curves({"epoch": [0, 1], "history": {"loss": [1, 0.5], "acc": [0.5, 0.7]}},
                                {"loss": [0.4], "acc": [0.8]})
    assert len(fig2.axes[0].get_lines()[0].get_xdata()) == 3
    with pytest.raises(ValueError, match="none of loss"):
        plot.learning_curves({"foo": [1]})
    with pytest.raises(TypeError, match="History"):
        plot.learning_curves([0.1, 0.2])


def test_samples_grid_with_class_titles(tmp_path):
    ds = Batches()
    out = tmp_path / "samples.png"
    fig = plot.samples(ds, path=out)
    assert len(fig.axes) == 8  # only 8 images in the dataset
    titles = [ax.get_title() for ax in fig.axes]
    expected = [ds.class_names[int(y)] for _, ys in ds.data for y in ys]
    assert titles == expected
    assert out.read_bytes()[:8] == PNG
    fig9 = plot.samples(Batches(n_batches=5), n=9)
    assert len(fig9.axes) == 9
    assert fig9.axes[0].get_subplotspec().get_geometry()[:2] == (3, 3)
    x, y = ds.data[0]
    one = plot.samples((x, y), n=2, class_names=["c", "d"])  # a single batch works too
    assert [ax.get_title() for ax in one.axes] == [["c", "d"][int(v)] for v in y[:2]]
    with pytest.raises(ValueError, match="no images"):
        plot.samples([])


def test_predictions_titles_and_red_when_wrong(tmp_path):
    x, _ = Batches(n_batches=1, batch=6).data[0]
    labels = np.array([0, 1, 0, 1, 0, 1])
    predicted = np.array([0, 1, 1, 1, 0, 0])
    out = tmp_path / "pred.png"
    fig = plot.predictions(x, labels, predicted, ["cats", "dogs"], path=out)
    assert len(fig.axes) == 6
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[2] == "pred: dogs\ntrue: cats"
    colors = [matplotlib.colors.to_hex(ax.title.get_color()) for ax in fig.axes]
    red = matplotlib.colors.to_hex("tab:red")
    assert [c == red for c in colors] == [False, False, True, False, False, True]
    assert out.read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="logits > 0"):
        plot.predictions(x, labels, np.linspace(-2, 2, 6), ["cats", "dogs"])
    with pytest.raises(ValueError, match="6 images but"):
        plot.predictions(x, labels[:3], predicted, ["cats", "dogs"])


def test_no_pyplot_state_is_left_behind():
    import sys

    plot.learning_curves({"loss": [1.0, 0.5]})
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []
