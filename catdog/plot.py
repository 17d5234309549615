"""The lab's figures: learning curves, sample images, test predictions, and what a person looks
at after training — the images with the largest loss, a confusion matrix, Grad-CAM heat maps
(matplotlib).

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

__all__ = ["learning_curves", "samples", "predictions", "save", "probabilities", "top_losses",
           "confusion_counts", "confusion_matrix", "grad_cam", "grad_cam_overlay"]

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


# ---- after training: probabilities, top losses, confusion matrix, Grad-CAM ----------------
def _head(model):
    leaves = model._leaf_layers()
    return leaves[-1] if leaves else None


def probabilities(model, images, batch_size: int = 32) -> np.ndarray:
    """Class probabilities (N, k) for ``images``: the model's outputs after a sigmoid/softmax
    head, else the sigmoid (one output: P(class 1)) or softmax of its logits."""
    out = np.asarray(model.predict(images, batch_size=batch_size), dtype=np.float64)
    out = out.reshape(len(out), -1)
    if getattr(_head(model), "activation", None) in ("sigmoid", "softmax"):
        return out.astype(np.float32)
    if out.shape[1] == 1:
        return (1.0 / (1.0 + np.exp(-out))).astype(np.float32)
    e = np.exp(out - out.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _class_probs(probs: np.ndarray) -> np.ndarray:
    """(N, 1) P(class 1) -> (N, 2) [P(class 0), P(class 1)]; (N, k) unchanged."""
    p = np.asarray(probs, dtype=np.float64)
    p = p.reshape(len(p), -1)
    return np.concatenate([1 - p, p], axis=1) if p.shape[1] == 1 else p


def _label_indices(labels: Any, n: int) -> np.ndarray:
    y = np.asarray(labels)
    y = y.reshape(n, -1) if y.size else y.reshape(n, 0)
    if y.shape[1] > 1:  # one-hot
        return np.argmax(y, axis=1)
    return np.rint(y[:, 0]).astype(int)


def top_losses(
    images: Any,
    labels: Any,
    probs: Any,
    class_names: Optional[Sequence[str]] = None,
    *,
    n: int = 9,
    path: Optional[PathLike] = None,
    figsize: Tuple[float, float] = (10, 10),
):
    """The ``n`` images with the largest crossentropy ``-log P(true class)`` (probabilities
    clipped to [1e-7, 1 - 1e-7] as Keras), largest first, titled with the true class, the
    predicted class and its probability; red where the prediction is wrong. ``probs``: from
    :func:`probabilities` ((N, 1) P(class 1) or (N, k)). The figure's ``catdog_order`` and
    ``catdog_losses`` hold the image indices shown and their losses."""
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"images must have shape (N, H, W, C), got {x.shape}")
    p = _class_probs(probs)
    if len(p) != len(x):
        raise ValueError(f"{len(x)} images but {len(p)} probability rows")
    y = _label_indices(labels, len(x))
    if np.any(y < 0) or np.any(y >= p.shape[1]):
        raise ValueError(f"labels must be class indices in [0, {p.shape[1]})")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    p_true = np.clip(p[np.arange(len(x)), y], 1e-7, 1 - 1e-7)
    losses = -np.log(p_true)
    order = np.argsort(-losses, kind="stable")[:n]
    rows, cols = _grid(len(order))
    fig = _figure(figsize)
    for i, j in enumerate(order):
        pred = int(np.argmax(p[j]))
        title = (f"true: {_class_name(y[j], class_names)}\n"
                 f"pred: {_class_name(pred, class_names)} ({p[j, pred]:.2f})\nloss {losses[j]:.2f}")
        _show(fig, rows, cols, i, x[j], title, "tab:red" if pred != y[j] else "black")
    fig.tight_layout()
    fig.catdog_order, fig.catdog_losses = order, losses[order]
    if path is not None:
        save(fig, path)
    return fig


def confusion_counts(labels: Any, predicted: Any, num_classes: Optional[int] = None) -> np.ndarray:
    """(k, k) int64 counts: row = true class, column = predicted class."""
    ya = np.asarray(labels)
    y = np.argmax(ya, axis=-1) if ya.ndim == 2 and ya.shape[1] > 1 else np.rint(ya.reshape(-1)).astype(int)
    p = np.asarray(predicted)
    p = np.argmax(p, axis=-1) if p.ndim == 2 and p.shape[1] > 1 else p.reshape(-1).astype(int)
    if len(y) != len(p):
        raise ValueError(f"{len(y)} labels but {len(p)} predictions")
    k = int(num_classes or max(int(y.max(initial=0)), int(p.max(initial=0))) + 1)
    if np.any(y < 0) or np.any(p < 0) or np.any(y >= k) or np.any(p >= k):
        raise ValueError(f"labels and predictions must be class indices in [0, {k})")
    counts = np.zeros((k, k), np.int64)
    np.add.at(counts, (y, p), 1)
    return counts


def confusion_matrix(
    labels: Any,
    predicted: Any,
    class_names: Optional[Sequence[str]] = None,
    *,
    normalize: bool = False,
    path: Optional[PathLike] = None,
    figsize: Tuple[float, float] = (5, 4.5),
):
    """A confusion matrix of true (rows) against predicted (columns) classes, each cell
    annotated with its count (or, ``normalize=True``, the fraction of its row). ``predicted``:
    class indices, or probabilities (N, k). The figure's ``catdog_counts`` holds the counts."""
    k = len(class_names) if class_names is not None else None
    counts = confusion_counts(labels, predicted, k)
    k = counts.shape[0]
    shown = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    names = [_class_name(i, class_names) for i in range(k)]
    fig = _figure(figsize)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(shown, cmap="Blues", vmin=0)
    fig.colorbar(im, ax=ax)
    ax.set_xticks(range(k))
    ax.set_xticklabels(names)
    ax.set_yticks(range(k))
    ax.set_yticklabels(names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(f"Confusion matrix (accuracy {acc:.1%})")
    top = shown.max() if shown.size else 0
    for i in range(k):
        for j in range(k):
            text = f"{shown[i, j]:.2f}" if normalize else str(int(counts[i, j]))
            ax.text(j, i, text, ha="center", va="center",
                    color="white" if top and shown[i, j] > top / 2 else "black")
    fig.tight_layout()
    fig.catdog_counts = counts
    if path is not None:
        save(fig, path)
    return fig


def _last_spatial_layer(g) -> int:
    for i in range(g.num_layers() - 2, 0, -1):
        if len(g.layer_info(i)["shape"]) == 3:
            return i
    raise ValueError("the model has no layer with (H, W, C) outputs for Grad-CAM")


def grad_cam(model, images, class_index: Any = None, layer: Optional[str] = None):
    """Grad-CAM heat maps (N, h, w) in [0, 1] at ``layer`` (default: the last layer with
    (H, W, C) outputs — MobileNetV2's ``out_relu``, the last convolution's activations).

    The C engine runs the model forward (inference mode) and backward from the class score
    (the logit; for one output, +logit for class 1 and -logit for class 0) to that layer:
    weights a_c = mean over positions of d score / d A_c, map = ReLU(sum_c a_c A_c), scaled
    to a maximum of 1. ``class_index``: one class for all images, one per image, or None for
    the predicted class. Returns (maps, class indices)."""
    x = model._check_x(images)
    g = model._ensure_graph(x.shape[1:3])
    li = model._output_node(layer) if layer is not None else _last_spatial_layer(g)
    if len(g.layer_info(li)["shape"]) != 3:
        raise ValueError(f"layer '{layer}' has no (H, W, C) output: pick a convolution's")
    last = g.num_layers() - 1
    k = int(g.layer_info(last)["shape"][0])
    n = len(x)
    if class_index is None:
        p = _class_probs(probabilities(model, x))
        cls = np.argmax(p, axis=1)
    else:
        cls = np.broadcast_to(np.asarray(class_index, dtype=int).reshape(-1), (n,)).copy()
        if np.any(cls < 0) or np.any(cls >= max(k, 2)):
            raise ValueError(f"class_index must be in [0, {max(k, 2)})")
    dy = np.zeros((n, k), np.float32)
    if k == 1:
        dy[:, 0] = np.where(cls == 1, 1.0, -1.0)
    else:
        dy[np.arange(n), cls] = 1.0
    grads = g.output_gradient(x, li, dy, False, True)
    acts = g.get_output(li, n)
    weights = grads.mean(axis=(1, 2))  # (n, c)
    cam = np.maximum(np.einsum("nhwc,nc->nhw", acts, weights), 0)
    top = cam.reshape(n, -1).max(axis=1)
    cam = cam / np.where(top > 0, top, 1)[:, None, None]
    return cam.astype(np.float32), cls


def grad_cam_overlay(
    model,
    images: Any,
    class_names: Optional[Sequence[str]] = None,
    *,
    class_index: Any = None,
    layer: Optional[str] = None,
    alpha: float = 0.45,
    path: Optional[PathLike] = None,
    figsize: Tuple[float, float] = (10, 10),
):
    """Each image with its Grad-CAM heat map (:func:`grad_cam`) laid over it (bilinear, jet
    colours), titled with the class explained and its probability. The figure's
    ``catdog_maps`` holds the maps."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    cams, cls = grad_cam(model, x, class_index=class_index, layer=layer)
    p = _class_probs(probabilities(model, x))
    rows, cols = _grid(len(x))
    fig = _figure(figsize)
    for i in range(len(x)):
        ax = fig.add_subplot(rows, cols, i + 1)
        img = _to_uint8(x[i])
        h, w = img.shape[:2]
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        ax.imshow(cams[i], cmap="jet", alpha=alpha, extent=(-0.5, w - 0.5, h - 0.5, -0.5),
                  interpolation="bilinear", vmin=0, vmax=1)
        ax.set_title(f"{_class_name(cls[i], class_names)} ({p[i, cls[i]]:.2f})")
        ax.axis("off")
    fig.tight_layout()
    fig.catdog_maps = cams
    if path is not None:
        save(fig, path)
    return fig
