"""A tiny evented-model helper (no Qt): ``Signal`` objects that views subscribe to.

Modelled on napari's evented components: the model owns plain data and emits a signal after every
change; Qt views connect to the signals and never poll the model. Callbacks run synchronously on the
thread that changed the model (always the GUI thread in the app: jobs hand their results back there).
"""

from __future__ import annotations

from collections.abc import Callable


class Signal:
    """A list of callbacks called in connection order by ``emit``."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._slots: list[Callable] = []
        self._blocked = 0

    def connect(self, fn: Callable) -> Callable:
        if fn not in self._slots:
            self._slots.append(fn)
        return fn

    def disconnect(self, fn: Callable | None = None) -> None:
        if fn is None:
            self._slots.clear()
        elif fn in self._slots:
            self._slots.remove(fn)

    def emit(self, *args) -> None:
        if self._blocked:
            return
        for fn in list(self._slots):
            fn(*args)

    def blocked(self):
        """Context manager that suppresses emission (for batched updates)."""
        sig = self

        class _Block:
            def __enter__(self):
                sig._blocked += 1

            def __exit__(self, *exc):
                sig._blocked -= 1

        return _Block()

    def __len__(self) -> int:
        return len(self._slots)
