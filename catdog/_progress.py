"""A small, dependency-free progress bar for downloads (and anything counted in steps).

Where the output goes decides how it is drawn:

- a terminal or a notebook (Jupyter/Colab render ``\\r`` in stream output): one line,
  redrawn in place at most every ``min_interval`` seconds;
- anything else (a pipe, a CI log): a few plain lines (every 25 %) so logs stay short.

Everything goes to ``sys.stderr`` by default; ``enabled=False`` makes it silent.
"""
from __future__ import annotations

import sys
import time
from typing import IO, Optional

__all__ = ["ProgressBar", "in_notebook", "format_bytes"]


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


class ProgressBar:
    """``bar = ProgressBar(total, "name"); bar.update(n); ...; bar.close()``.

    ``total`` may be None (unknown): then only the count and rate are shown.
    ``unit="B"`` formats counts as bytes.
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
        self.file = file if file is not None else sys.stderr
        self.enabled = enabled
        self.min_interval = min_interval
        self.count = 0
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._last_quarter = -1
        self._closed = False
        isatty = getattr(self.file, "isatty", lambda: False)
        try:
            tty = bool(isatty())
        except Exception:
            tty = False
        self._inplace = tty or in_notebook()

    def _fmt(self, n: float) -> str:
        return format_bytes(n) if self.unit == "B" else f"{n:.0f}{self.unit}"

    def _line(self) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self.count / elapsed
        rate_s = (format_bytes(rate) + "/s") if self.unit == "B" else f"{rate:.1f}{self.unit}/s"
        head = f"{self.label}: " if self.label else ""
        if self.total:
            frac = min(self.count / self.total, 1.0)
            filled = int(frac * self.width)
            bar = "=" * filled + (">" if filled < self.width else "") + "." * max(self.width - filled - 1, 0)
            return f"{head}[{bar}] {frac * 100:5.1f}% {self._fmt(self.count)}/{self._fmt(self.total)} {rate_s}"
        return f"{head}{self._fmt(self.count)} {rate_s}"

    def _write(self, text: str) -> None:
        try:
            self.file.write(text)
            self.file.flush()
        except Exception:  # a closed/broken stream must never break a download
            self.enabled = False

    def update(self, n: int) -> None:
        """Add ``n`` to the count and redraw if it is time to."""
        self.count += n
        if not self.enabled or self._closed:
            return
        now = time.monotonic()
        if self._inplace:
            if now - self._last_draw >= self.min_interval:
                self._last_draw = now
                self._write("\r" + self._line())
        elif self.total:
            quarter = int(4 * min(self.count / self.total, 1.0))
            if quarter > self._last_quarter and quarter < 4:
                self._last_quarter = quarter
                self._write(self._line() + "\n")

    def close(self, message: str = "") -> None:
        """Draw the final state (plus an optional message) and end the line."""
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        tail = f" {message}" if message else ""
        self._write(("\r" if self._inplace else "") + self._line() + tail + "\n")

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close("failed" if exc_type is not None else "")
