"""Long work off the GUI thread, with progress and cooperative cancellation (no Qt).

A ``Job`` runs ``fn(*args, progress=..., cancel=..., **kwargs)`` in a daemon thread. The UI polls
``job.status()`` from a timer (cheap, lock-protected) and takes ``job.result`` / ``job.error`` on
the GUI thread once it is finished, so no Qt object is ever touched from the worker.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass

from surgtwin.core.progress import Cancelled, CancelToken

PENDING, RUNNING, DONE, FAILED, CANCELLED = "pending", "running", "done", "failed", "cancelled"


@dataclass(frozen=True)
class JobStatus:
    state: str
    fraction: float
    message: str
    elapsed_s: float

    @property
    def finished(self) -> bool:
        return self.state in (DONE, FAILED, CANCELLED)


class Job:
    """One unit of long work. ``start()`` it, poll ``status()``, ``cancel()`` it."""

    def __init__(self, name: str, fn, *args, **kwargs) -> None:
        self.name = name
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self.cancel_token = CancelToken()
        self._lock = threading.Lock()
        self._state = PENDING
        self._fraction = 0.0
        self._message = ""
        self._t0 = 0.0
        self._t1: float | None = None
        self.result = None
        self.error: BaseException | None = None
        self.error_traceback: str = ""
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self.nice = 5

    # -- called from the worker thread ----------------------------------------------------------
    def _progress(self, fraction: float, message: str = "") -> None:
        with self._lock:
            self._fraction = min(1.0, max(0.0, float(fraction)))
            if message:
                self._message = message
        if self.cancel_token.cancelled:
            raise Cancelled("cancelled by the user")

    def _lower_priority(self) -> None:
        """On Linux, niceness is per thread: lower this worker's so the GUI thread wins the CPU."""
        if self.nice and sys.platform.startswith("linux"):
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
            except OSError:
                pass

    def _run(self) -> None:
        self._lower_priority()
        try:
            result = self._fn(*self._args, progress=self._progress, cancel=self.cancel_token, **self._kwargs)
        except Cancelled:
            state = CANCELLED
            result = None
        except BaseException as exc:  # noqa: BLE001 - handed to the UI, which shows it
            state = FAILED
            result = None
            self.error = exc
            self.error_traceback = traceback.format_exc()
        else:
            state = CANCELLED if self.cancel_token.cancelled else DONE
        with self._lock:
            self.result = result
            self._state = state
            if state == DONE:
                self._fraction = 1.0
            self._t1 = time.monotonic()
        self._done.set()

    # -- called from the owner (GUI) thread -----------------------------------------------------
    def start(self) -> Job:
        with self._lock:
            if self._state != PENDING:
                raise RuntimeError(f"job {self.name!r} was already started")
            self._state = RUNNING
            self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"job:{self.name}", daemon=True)
        self._thread.start()
        return self

    def run_here(self):
        """Run synchronously on this thread (CLI, tests); returns the result or raises."""
        with self._lock:
            self._state = RUNNING
            self._t0 = time.monotonic()
        self._run()
        if self.error is not None:
            raise self.error
        if self._state == CANCELLED:
            raise Cancelled("cancelled by the user")
        return self.result

    def cancel(self) -> None:
        self.cancel_token.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def status(self) -> JobStatus:
        with self._lock:
            end = self._t1 if self._t1 is not None else time.monotonic()
            elapsed = end - self._t0 if self._t0 else 0.0
            return JobStatus(self._state, self._fraction, self._message, elapsed)
