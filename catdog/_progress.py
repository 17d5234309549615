"""Progress output for fit(), evaluate() and downloads: one module, one rule for where it goes.

Where the output goes decides how it is drawn (`Output`):

- a notebook (Jupyter, Colab, nbclient): one display output per bar, updated in place through
  its display id, so the saved notebook keeps only the last state of each bar;
- a terminal: one line redrawn in place with ``\\r`` at most every ``min_interval`` seconds;
- anything else (a pipe, a CI log, a file): no redraws. fit() and evaluate() print one line
  per epoch with its metrics and time per step, as Keras does; downloads print a line at
  every quarter so a long download still shows in the log.

``enabled=False`` / ``verbose=0`` make a bar silent.
"""
from __future__ import annotations

import sys
import time
from typing import IO, Dict, Optional

__all__ = ["ProgressBar", "StepBar", "Output", "in_notebook", "format_bytes", "format_step_time"]


def in_notebook() -> bool:
    """True inside a Jupyter/Colab kernel (IPython's ZMQ shell or Colab's shell)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()  # type: ignore[attr-defined]
    except Exception:  # pragma: no cover - exotic IPython states
        return False
    if shell is None:
        return False
    name = type(shell).__name__
    return name == "ZMQInteractiveShell" or "google.colab" in type(shell).__module__


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def format_step_time(seconds: float) -> str:
    """Keras's time per step: 1.2 -> '1s/step', 0.19 -> '190ms/step', 2e-5 -> '20us/step'."""
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


def _isatty(file) -> bool:
    try:
        return bool(getattr(file, "isatty", lambda: False)())
    except Exception:
        return False


class Output:
    """One bar's destination. ``mode`` is "notebook", "terminal" or "log" (see the module doc).

    ``draw(text)`` shows an intermediate state (ignored in "log" mode), ``end(text)`` the final
    one and ends the line; ``line(text)`` writes a line of its own in any mode."""

    def __init__(self, file: IO[str], mode: Optional[str] = None) -> None:
        self.file = file
        if mode is None:
            mode = "notebook" if in_notebook() else ("terminal" if _isatty(file) else "log")
        self.mode = mode
        self._handle = None
        self._width = 0
        self.broken = False

    @property
    def interactive(self) -> bool:
        return self.mode != "log"

    def _write(self, text: str) -> None:
        try:
            self.file.write(text)
            self.file.flush()
        except Exception:  # a closed or broken stream must never break training or a download
            self.broken = True

    def _show(self, text: str) -> None:
        try:
            from IPython.display import display

            if self._handle is None:
                self._handle = display({"text/plain": text}, raw=True, display_id=True)
            else:
                self._handle.update({"text/plain": text}, raw=True)
        except Exception:  # no usable IPython after all: fall back to plain lines
            self.mode = "log"
            self._write(text + "\n")

    def draw(self, text: str) -> None:
        if self.broken or self.mode == "log":
            return
        if self.mode == "notebook":
            self._show(text)
            return
        # pad with spaces so a shorter line fully covers the longer one drawn before it
        pad = max(self._width - len(text), 0)
        self._width = len(text)
        self._write("\r" + text + " " * pad)

    def end(self, text: str) -> None:
        if self.broken:
            return
        if self.mode == "notebook":
            self._show(text)
        elif self.mode == "terminal":
            pad = max(self._width - len(text), 0)
            self._write("\r" + text + " " * pad + "\n")
        else:
            self._write(text + "\n")

    def line(self, text: str) -> None:
        if self.broken:
            return
        if self.mode == "notebook":
            self._handle = None
            self._show(text)
            self._handle = None
        else:
            self._write(text + "\n")


def _bar(current: int, total: int, width: int) -> str:
    """Keras's bar: '=' for done steps, '>' at the head while running, '.' for the rest;
    always `width` characters."""
    done = min(int(width * current / total), width) if total else 0
    head = ""
    if done > 0:
        head = "=" * (done - 1) + (">" if current < total else "=")
    return head + "." * (width - done)


class StepBar:
    """fit()'s and evaluate()'s progress over the steps (batches) of one epoch.

    ``verbose`` as in Keras: 0 silent; 1 a live bar where the output is interactive, else one
    line at the end; 2 one line at the end. The line reads, as Keras prints it::

        Epoch 3/10
        63/63 [==============================] - 12s 190ms/step - loss: 0.31 - accuracy: 0.88

    (where not interactive, "Epoch 3/10 - " begins that same line)."""

    def __init__(self, total: Optional[int], title: str = "", verbose: int = 1, width: int = 30,
                 file: Optional[IO[str]] = None, min_interval: float = 0.1) -> None:
        self.total = total if (total is not None and total > 0) else None
        self.title = title
        self.verbose = int(verbose)
        self.width = width
        self.min_interval = min_interval
        self.start = time.monotonic()
        self._last_draw = 0.0
        self.out = Output(file if file is not None else sys.stdout)
        self.live = self.verbose == 1 and self.out.interactive
        if self.live and title and self.out.mode == "terminal":
            self.out.line(title)

    @staticmethod
    def _metrics(logs: Dict[str, float]) -> str:
        return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())

    def _head(self, text: str) -> str:
        if self.title and self.out.mode == "notebook":
            return f"{self.title}\n{text}"
        return text

    def _count(self, current: int) -> str:
        if not self.total:
            return f"{current}"
        return f"{current:>{len(str(self.total))}}/{self.total}"

    def update(self, current: int, logs: Dict[str, float]) -> None:
        if not self.live:
            return
        now = time.monotonic()
        if now - self._last_draw < self.min_interval and current != self.total:
            return
        self._last_draw = now
        text = self._count(current)
        if self.total:
            text += f" [{_bar(current, self.total, self.width)}]"
            elapsed = now - self.start
            if 0 < current < self.total:
                eta = elapsed / current * (self.total - current)
                text += f" - ETA: {eta:.0f}s"
        metrics = self._metrics(logs)
        self.out.draw(self._head(text + (f" - {metrics}" if metrics else "")))

    def finish(self, logs: Dict[str, float], seconds: float, steps: Optional[int] = None) -> None:
        """The epoch's last line: steps done, wall time, time per step, the metrics."""
        if not self.verbose:
            return
        steps = steps if steps is not None else (self.total or 0)
        per_step = f" {format_step_time(seconds / steps)}" if steps else ""
        metrics = self._metrics(logs)
        tail = f" - {seconds:.0f}s{per_step}" + (f" - {metrics}" if metrics else "")
        if self.live:
            bar = f" [{_bar(steps, steps, self.width)}]" if self.total else ""
            self.out.end(self._head(self._count(steps) + bar + tail))
        else:
            head = f"{self.title} - " if self.title else ""
            self.out.line(f"{head}{self._count(steps)}{tail}")


class ProgressBar:
    """A download's progress: ``bar = ProgressBar(total, "name"); bar.update(n); bar.close()``.

    ``total`` may be None (unknown): then only the count and rate are shown.
    ``unit="B"`` formats counts as bytes. Goes to ``sys.stderr`` by default.
    """

    def __init__(
        self,
        total: Optional[int],
        label: str = "",
        *,
        unit: str = "B",
        width: int = 30,
        file: Optional[IO[str]] = None,
        enabled: bool = True,
        min_interval: float = 0.1,
    ) -> None:
        self.total = total if (total is not None and total > 0) else None
        self.label = label
        self.unit = unit
        self.width = width
        self.out = Output(file if file is not None else sys.stderr)
        self.enabled = enabled
        self.min_interval = min_interval
        self.count = 0
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._last_quarter = -1
        self._closed = False

    def _fmt(self, n: float) -> str:
        return format_bytes(n) if self.unit == "B" else f"{n:.0f}{self.unit}"

    def _line(self) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self.count / elapsed
        rate_s = (format_bytes(rate) + "/s") if self.unit == "B" else f"{rate:.1f}{self.unit}/s"
        head = f"{self.label}: " if self.label else ""
        if self.total:
            frac = min(self.count / self.total, 1.0)
            bar = _bar(self.count, self.total, self.width)
            return f"{head}[{bar}] {frac * 100:5.1f}% {self._fmt(self.count)}/{self._fmt(self.total)} {rate_s}"
        return f"{head}{self._fmt(self.count)} {rate_s}"

    def update(self, n: int) -> None:
        """Add ``n`` to the count and redraw if it is time to."""
        self.count += n
        if not self.enabled or self._closed:
            return
        now = time.monotonic()
        if self.out.interactive:
            if now - self._last_draw >= self.min_interval:
                self._last_draw = now
                self.out.draw(self._line())
        elif self.total:
            quarter = int(4 * min(self.count / self.total, 1.0))
            if quarter > self._last_quarter and quarter < 4:
                self._last_quarter = quarter
                self.out.line(self._line())

    def close(self, message: str = "") -> None:
        """Draw the final state (plus an optional message) and end the line."""
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        tail = f" {message}" if message else ""
        self.out.end(self._line() + tail)

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close("failed" if exc_type is not None else "")
