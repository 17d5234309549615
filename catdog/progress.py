"""The per-epoch progress line of fit(): Keras-like text, redrawn in place; works in a
terminal and in Jupyter (a carriage return rewrites the output line there too)."""
from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, total, title, verbose=1, width=30):
        self.total, self.verbose, self.width = total, verbose, width
        self.start = time.time()
        self.last_draw = 0.0
        if verbose and title:  # evaluate() draws no title line, as Keras
            print(title, file=sys.stdout, flush=True)

    def _line(self, current, logs):
        metrics = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
        if self.total:
            done = int(self.width * current / self.total)
            bar = "=" * max(done - 1, 0) + (">" if done < self.width else "=") + "." * (self.width - done)
            return f"{current:>{len(str(self.total))}}/{self.total} [{bar}] - {metrics}"
        return f"{current} - {metrics}"

    def update(self, current, logs):
        if self.verbose != 1:
            return
        now = time.time()
        if now - self.last_draw < 0.1 and current != self.total:
            return
        self.last_draw = now
        sys.stdout.write("\r" + self._line(current, logs))
        sys.stdout.flush()

    def finish(self, logs, seconds):
        if not self.verbose:
            return
        metrics = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
        if self.verbose == 1:
            sys.stdout.write("\r" + self._line(self.total or 0, {}).split(" - ")[0])
            sys.stdout.write(f" - {seconds:.0f}s - {metrics}\n")
        else:
            sys.stdout.write(f"{seconds:.0f}s - {metrics}\n")
        sys.stdout.flush()
