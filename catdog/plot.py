"""The lab's figures: learning curves, sample images, test predictions (matplotlib).

Every function returns a :class:`matplotlib.figure.Figure` made without pyplot, so it works
with any backend (Agg on a server, headless CI) and is not drawn twice in a notebook: a
Figure that ends a notebook cell is shown once, as PNG. ``path=`` also saves it as PNG
(written atomically: temp file + rename).
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from catdog.download import _plain_mode

__all__ = ["learning_curves", "samples", "predictions", "save"]

PathLike = Union[str, "os.PathLike[str]"]
FINE_TUNE_LABEL = "Start Fine Tuning"
_ALIASES = {"accuracy": ("accuracy", "acc", "binary_accuracy"), "val_accuracy": ("val_accuracy", "val_acc", "val_binary_accuracy")}


def _figure(figsize: Tuple[float, float]):
    from matplotlib.figure import Figure

    _notebook_display()
    return Figure(figsize=figsize)


def _png(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _notebook_display() -> None:
    """In an IPython kernel, show a Figure that ends a cell as PNG (once), if nothing else does."""
    import sys

    ipython = sys.modules.get("IPython")
    if ipython is None:
        return
    try:
        shell = ipython.get_ipython()
        if shell is None:
            return
        from matplotlib.figure import Figure

        fmt = shell.display_formatter.formatters["image/png"]
        try:
            if fmt.lookup_by_type(Figure) is not None:
                return
        except KeyError:
            pass
        fmt.for_type(Figure, _png)
    except Exception:  # pragma: no cover - odd shells: no inline display, nothing breaks
        return


def save(fig, path: PathLike, dpi: int = 100) -> Path:
    """Save ``fig`` as PNG at ``path`` atomically; returns the path."""
    dest = Path(path).expanduser()
    if not dest.parent.is_dir():
        raise FileNotFoundError(f"folder does not exist: {dest.parent}")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        fig.savefig(tmp_name, format="png", dpi=dpi)
        _plain_mode(tmp_name)
        os.replace(tmp_name, dest)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return dest


def _history(h: Any, what: str) -> Tuple[List[int], Dict[str, List[float]]]:
    """(epochs, metrics) from a History-like object, a {"epoch","history"} dict or a metrics dict."""
    if h is None:
        raise ValueError(f"{what} is None")
    if hasattr(h, "history"):
        metrics, epochs = h.history, list(getattr(h, "epoch", []) or [])
    elif isinstance(h, Mapping) and "history" in h and isinstance(h["history"], Mapping):
        metrics, epochs = h["history"], list(h.get("epoch", []) or [])
    elif isinstance(h, Mapping):
        metrics, epochs = h, []
    else:
        raise TypeError(f"{what} must be a History (with .history) or a dict of metric lists, got {type(h).__name__}")
    out: Dict[str, List[float]] = {}
    for key, canon in (("loss", ("loss",)), ("val_loss", ("val_loss",)), ("accuracy", _ALIASES["accuracy"]), ("val_accuracy", _ALIASES["val_accuracy"])):
        for k in canon:
            if k in metrics and metrics[k] is not None:
                out[key] = [float(v) for v in np.asarray(metrics[k], dtype=float).ravel()]
                break
    if not out:
        raise ValueError(f"{what} has none of loss, accuracy, val_loss, val_accuracy (keys: {sorted(metrics)})")
    n = max(len(v) for v in out.values())
    if not epochs or len(epochs) != n:
        epochs = list(range(n))
    return epochs, out


def learning_curves(
    history: Any,
    history_fine: Any = None,
    *,
    path: Optional[PathLike] = None,
    figsize: Tuple[float, float] = (8, 8),
    title: Optional[str] = None,
):
    """Accuracy (top) and loss (bottom), training and validation, as in the TF tutorial.

    With ``history_fine`` the fine-tuning epochs continue the curves and a vertical line
    labelled "Start Fine Tuning" marks where they start. The x axis counts epochs trained
    (1, 2, ...), so the fine-tuning run's repeated epoch number (``initial_epoch =
    history.epoch[-1]``) does not overlap the first run.
    """
    _, first = _history(history, "history")
    n_first = max(len(v) for v in first.values())
    series = {k: list(v) for k, v in first.items()}
    if history_fine is not None:
        _, fine = _history(history_fine, "history_fine")
        n_fine = max(len(v) for v in fine.values())
        for k in set(series) | set(fine):
            a = series.get(k, [])
            a = a + [float("nan")] * (n_first - len(a))
            b = fine.get(k, [])
            series[k] = a + b + [float("nan")] * (n_fine - len(b))

    fig = _figure(figsize)
    ax_acc = fig.add_subplot(2, 1, 1)
    ax_loss = fig.add_subplot(2, 1, 2)
    panels = (
        (ax_acc, ("accuracy", "Training Accuracy"), ("val_accuracy", "Validation Accuracy"), "Training and Validation Accuracy", "lower right"),
        (ax_loss, ("loss", "Training Loss"), ("val_loss", "Validation Loss"), "Training and Validation Loss", "upper right"),
    )
    for ax, (k_tr, l_tr), (k_va, l_va), panel_title, loc in panels:
        values: List[float] = []
        for key, label in ((k_tr, l_tr), (k_va, l_va)):
            if key in series and series[key]:
                ys = series[key]
                ax.plot(range(1, len(ys) + 1), ys, marker="o", markersize=3, label=label)
                values += [v for v in ys if not math.isnan(v)]
        if ax is ax_acc:
            low = min(values) if values else 0.0
            ax.set_ylim(max(0.0, min(low - 0.02, 0.98)), 1.005)
        else:
            high = max(values) if values else 1.0
            ax.set_ylim(0.0, max(1.0, high * 1.05) if values else 1.0)
        if history_fine is not None:
            ax.axvline(n_first + 0.5, color="tab:green", linestyle="--", label=FINE_TUNE_LABEL)
        if ax.get_lines():
            ax.legend(loc=loc)
        ax.set_title(panel_title)
        ax.set_ylabel("accuracy" if ax is ax_acc else "loss")
        ax.grid(True, alpha=0.3)
        total = len(next(iter(series.values()))) if series else 0
        if total and total <= 30:
            ax.set_xticks(range(1, total + 1))
        ax.set_xlim(0.5, max(total, 1) + 0.5)
    ax_loss.set_xlabel("epoch")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        save(fig, path)
    return fig


def _to_uint8(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.dtype != np.uint8:
        a = np.clip(np.nan_to_num(a.astype(np.float32)), 0, 255).astype(np.uint8)
    return a


def _class_name(label: Any, class_names: Optional[Sequence[str]]) -> str:
    arr = np.asarray(label).ravel()
    if arr.size > 1:  # one-hot / categorical
        idx = int(np.argmax(arr))
    else:
        idx = int(round(float(arr[0]))) if arr.size else 0
    if class_names is not None and 0 <= idx < len(class_names):
        return str(class_names[idx])
    return str(idx)


def _grid(n: int) -> Tuple[int, int]:
    cols = int(math.ceil(math.sqrt(n)))
    return int(math.ceil(n / cols)), cols


def _show(fig, rows: int, cols: int, i: int, img, title: str, color: str = "black") -> None:
    ax = fig.add_subplot(rows, cols, i + 1)
    a = _to_uint8(img)
    ax.imshow(a, cmap="gray" if a.ndim == 2 else None)
    ax.set_title(title, color=color)
    ax.axis("off")


def samples(
    dataset: Any,
    n: int = 9,
    class_names: Optional[Sequence[str]] = None,
    *,
    path: Optional[PathLike] = None,
    figsize: Tuple[float, float] = (10, 10),
):
    """The first ``n`` images of ``dataset`` (batches of (images NHWC 0..255, labels)), titled
    with their class (``class_names`` or ``dataset.class_names``); a 3x3 grid for n=9."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if class_names is None:
        class_names = getattr(dataset, "class_names", None)
    if isinstance(dataset, tuple) and len(dataset) == 2 and np.asarray(dataset[0]).ndim == 4:
        batches: Iterable = [dataset]  # a single (images, labels) batch
    else:
        batches = dataset
    images: List[np.ndarray] = []
    labels: List[Any] = []
    for batch in batches:
        try:
            x, y = batch[0], batch[1]
        except (TypeError, IndexError, KeyError):
            raise TypeError("dataset must yield (images, labels) batches") from None
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"expected image batches of shape (N, H, W, C), got {x.shape}")
        y = np.asarray(y)
        for i in range(x.shape[0]):
            images.append(x[i])
            labels.append(y[i] if y.ndim > 0 else y)
            if len(images) >= n:
                break
        if len(images) >= n:
            break
    if not images:
        raise ValueError("the dataset yielded no images")
    rows, cols = _grid(len(images))
    fig = _figure(figsize)
    for i, (img, lab) in enumerate(zip(images, labels)):
        _show(fig, rows, cols, i, img, _class_name(lab, class_names))
    fig.tight_layout()
    if path is not None:
        save(fig, path)
    return fig


def predictions(
    images: Any,
    labels: Any,
    predicted: Any,
    class_names: Optional[Sequence[str]] = None,
    *,
    n: int = 9,
    path: Optional[PathLike] = None,
    figsize: Tuple[float, float] = (10, 10),
):
    """A grid of (up to ``n``) test images titled "pred: <class> / true: <class>", red when wrong.

    ``predicted`` holds class indices (e.g. ``(logits > 0).astype(int)`` for the lab's single
    logit); ``labels`` the true indices.
    """
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"images must have shape (N, H, W, C), got {x.shape}")
    y = np.atleast_1d(np.asarray(labels))
    p = np.atleast_1d(np.asarray(predicted))
    if p.shape[0] != len(x) or y.shape[0] != len(x):
        raise ValueError(f"{len(x)} images but {y.shape[0]} labels and {p.shape[0]} predictions")
    y = y.reshape(len(x), -1)
    p = p.reshape(len(x), -1)
    if p.shape[1] == 1 and np.issubdtype(p.dtype, np.floating) and not np.all(np.isin(p, (0.0, 1.0))):
        raise ValueError(
            "predicted must hold class indices; for the lab's logits pass (logits > 0).astype(int)"
        )
    k = min(n, len(x))
    if k < 1:
        raise ValueError("no images to show")
    rows, cols = _grid(k)
    fig = _figure(figsize)
    for i in range(k):
        true_name = _class_name(y[i], class_names)
        pred_name = _class_name(p[i], class_names)
        wrong = true_name != pred_name
        _show(fig, rows, cols, i, x[i], f"pred: {pred_name}\ntrue: {true_name}", "tab:red" if wrong else "black")
    fig.tight_layout()
    if path is not None:
        save(fig, path)
    return fig
