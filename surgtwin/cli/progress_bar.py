"""A terminal progress bar for CLI commands (a ``ProgressFn``), quiet when stderr is not a TTY."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """Call with (fraction, message). Draws ``[#####.....]  42%  message`` on stderr."""

    def __init__(self, label: str = "", *, width: int = 30, stream=None, min_interval_s: float = 0.1):
        self.label = label
        self.width = width
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self._last = 0.0
        self._last_msg = None

    def __call__(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if self.tty:
            if fraction < 1.0 and now - self._last < 0.1:
                return
            n = int(round(fraction * self.width))
            bar = "#" * n + "." * (self.width - n)
            self.stream.write(f"\r{self.label} [{bar}] {fraction * 100:5.1f}%  {message[:50]:<50}")
            if fraction >= 1.0:
                self.stream.write("\n")
            self.stream.flush()
        elif message != self._last_msg and (fraction >= 1.0 or now - self._last > 2.0):
            self.stream.write(f"{self.label} {fraction * 100:5.1f}% {message}\n")
            self._last_msg = message
        self._last = now
