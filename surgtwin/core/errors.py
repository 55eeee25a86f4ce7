"""The one error type for problems a user can cause (bad file, unsupported series, missing label).

Every message names the file or field at fault and says what to do. The UI shows it in a dialog,
the CLI prints it and exits with status 2; neither shows a traceback for it.
"""

from __future__ import annotations

from pathlib import Path


class SurgtwinError(Exception):
    """A user-facing error: what went wrong, where (file/field), and what to do about it."""

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None):
        self.path = None if path is None else str(path)
        self.hint = hint
        self.reason = message
        text = message if path is None else f"{path}: {message}"
        if hint:
            text = f"{text} ({hint})"
        super().__init__(text)
