"""Autosave into a recovery copy, and restoring it after a crash (no Qt).

The app autosaves the open case every few minutes while it has unsaved changes, and before long or
risky steps, into ``<recovery dir>/<case id>.stwin`` (the same crash-safe format as a saved case,
written incrementally, so an autosave after a label edit writes the label map only) with a small
``<case id>.json`` beside it: where the case is saved (if it is), its name and when. A save by the
user, or closing without keeping changes, removes the recovery copy; one left behind means the app
did not close normally, and on the next start it offers to restore it.

The recovery folder is ``$SURGTWIN_RECOVERY_DIR``, else ``$XDG_STATE_HOME/surgtwin/recovery``
(``~/.local/state/surgtwin/recovery``).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from surgtwin.core.case import Case, open_case, save_case
from surgtwin.core.case.provenance import now_iso

#: minutes between autosaves while a case has unsaved changes
AUTOSAVE_MINUTES = 3.0


def recovery_dir() -> Path:
    env = os.environ.get("SURGTWIN_RECOVERY_DIR")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "surgtwin" / "recovery"


@dataclass(frozen=True)
class Recovery:
    """A recovery copy left by an autosave: the case folder and what its marker says."""

    case_id: str
    folder: Path
    name: str
    case_path: str | None
    saved: str

    def describe(self) -> str:
        where = f" (saved case: {self.case_path})" if self.case_path else " (never saved)"
        return f"{self.name or 'unnamed case'}, autosaved {self.saved}{where}"


def snapshot(case: Case) -> Case:
    """A copy of ``case`` that a background save can read while the user goes on editing: the
    label map is copied, everything else (immutable once set) is shared."""
    snap = Case(case.volume, replace(case.source), name=case.name, case_id=case.case_id, created=case.created,
                volume_hash=case.volume_hash)
    for key in case.keys():
        it = case.item(key)
        if key == "labels":
            lab = it.value
            snap.set_labels(replace(lab, array=lab.array.copy()), it.provenance,
                            item_hash=case.current_hash("labels"), produced_hash=it.produced_hash)
        else:
            snap.set_item(key, it.value, it.provenance, item_hash=it.hash, produced_hash=it.produced_hash)
    for m in case.measurements:
        snap.add_measurement(replace(m))
    snap.notes, snap.view = case.notes, dict(case.view)
    return snap


def autosave(case: Case, case_path=None, *, folder: Path | None = None) -> Path:
    """Write ``case`` (or a ``snapshot`` of it) into the recovery folder; returns the copy's path."""
    root = folder or recovery_dir()
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{case.case_id}.stwin"
    dirty = case.dirty
    save_case(case, target)
    case.dirty = dirty  # an autosave is not a save: the case still has unsaved changes
    marker = {"case_id": case.case_id, "name": case.name, "saved": now_iso(),
              "case_path": str(case_path) if case_path else None}
    tmp = root / f".{case.case_id}.json.tmp"
    tmp.write_text(json.dumps(marker))
    os.replace(tmp, root / f"{case.case_id}.json")
    return target


def discard(case_id: str, *, folder: Path | None = None) -> None:
    """Remove the recovery copy of case ``case_id`` (after a save, or when the user drops it)."""
    root = folder or recovery_dir()
    (root / f"{case_id}.json").unlink(missing_ok=True)
    shutil.rmtree(root / f"{case_id}.stwin", ignore_errors=True)


def pending(*, folder: Path | None = None) -> list[Recovery]:
    """Recovery copies left behind (newest first); unreadable markers are skipped."""
    root = folder or recovery_dir()
    out = []
    if not root.is_dir():
        return out
    for m in root.glob("*.json"):
        try:
            d = json.loads(m.read_text())
            case_id = str(d["case_id"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        f = root / f"{case_id}.stwin"
        if (f / "manifest.json").is_file():
            out.append(Recovery(case_id, f, str(d.get("name") or ""), d.get("case_path"), str(d.get("saved") or "")))
    return sorted(out, key=lambda r: r.saved, reverse=True)


def restore(rec: Recovery, *, progress=None, cancel=None) -> Case:
    """Open a recovery copy as an unsaved case (the user saves it where they want)."""
    case = open_case(rec.folder, progress=progress, cancel=cancel)
    case.dirty = True
    return case


class Autosaver:
    """Autosaves in a background thread from a snapshot, one at a time (the GUI never waits)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self._thread: threading.Thread | None = None
        self.last_error: Exception | None = None
        self.last_path: Path | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def save_now(self, case: Case, case_path=None, *, wait: bool = False) -> bool:
        """Start an autosave of ``case``; False when one is still running."""
        if self.busy:
            if not wait:
                return False
            self._thread.join()
        snap = snapshot(case)

        def work() -> None:
            try:
                self.last_path = autosave(snap, case_path, folder=self.folder)
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - reported in the status bar; the case itself is untouched
                self.last_error = exc

        self._thread = threading.Thread(target=work, name="autosave", daemon=True)
        self._thread.start()
        if wait:
            self._thread.join()
        return True

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
