"""Progress reporting and cooperative cancellation for long work (loading, segmentation, meshing, solving).

Long functions take ``progress: ProgressFn | None`` and ``cancel: CancelToken | None`` keyword
arguments. They call ``report(progress, fraction, message)`` now and then and ``check(cancel)`` between
steps; a cancelled job raises ``Cancelled``. No Qt here: the UI wraps these in its worker threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

#: progress(fraction in [0, 1], message)
ProgressFn = Callable[[float, str], None]


class Cancelled(Exception):
    """Raised inside a job when its CancelToken was cancelled. Not an error: the user asked for it."""


class CancelToken:
    """Thread-safe flag a UI or CLI sets to ask a running job to stop at its next check."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


def report(progress: ProgressFn | None, fraction: float, message: str = "") -> None:
    if progress is not None:
        progress(min(1.0, max(0.0, float(fraction))), message)


def check(cancel: CancelToken | None) -> None:
    if cancel is not None:
        cancel.raise_if_cancelled()


def scaled(progress: ProgressFn | None, start: float, stop: float) -> ProgressFn | None:
    """A progress function mapping a sub-step's [0, 1] onto [start, stop] of the parent's range."""
    if progress is None:
        return None
    return lambda f, msg="": progress(start + (stop - start) * f, msg)
