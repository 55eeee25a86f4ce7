"""Label edits with undo/redo: brush strokes and whole-structure operations as QUndoCommands.

The edit maths lives in ``surgtwin.services.label_edits``; here we only turn mouse strokes into
edits, push them on the QUndoStack and tell the session what changed.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from surgtwin.core.errors import SurgtwinError
from surgtwin.services import label_edits as LE


class LabelEditCommand(QUndoCommand):
    """One label edit of one label map. ``applied=True`` when the stroke already painted it live.

    The command keeps the array it was made on: once the case's label map is replaced (a new
    segmentation, opened labels) the editor clears the undo history, and a command that outlived it
    would refuse to write into the new map rather than corrupt it."""

    def __init__(self, case, edit: LE.LabelEdit, *, applied: bool = False, on_change=None) -> None:
        super().__init__(edit.description)
        self.case, self.edit, self._skip, self._on_change = case, edit, applied, on_change
        self.array = case.labels.array
        changed = edit.before != edit.after
        self.values = {int(v) for v in np.union1d(edit.before[changed], edit.after[changed]) if v}

    def _target(self):
        lab = self.case.labels
        if lab is None or lab.array is not self.array:
            self.setObsolete(True)
            return None
        return lab.array

    def _changed(self) -> None:
        self.case.notify_labels_edited(self.edit.box)
        if self._on_change is not None:
            self._on_change(self.values)

    def redo(self) -> None:
        if self._skip:
            self._skip = False
            self._changed()
            return
        arr = self._target()
        if arr is not None:
            self.edit.apply(arr)
            self._changed()

    def undo(self) -> None:
        arr = self._target()
        if arr is not None:
            self.edit.revert(arr)
            self._changed()


class LabelEditor(QObject):
    """Turns tool actions into undoable label edits on the session's label map."""

    #: label values whose voxels changed (for mesh refresh)
    edited = Signal(object)
    message = Signal(str)

    def __init__(self, session, tools, parent=None) -> None:
        super().__init__(parent)
        self.session, self.tools = session, tools
        self.undo_stack = QUndoStack(self)
        self.undo_stack.setUndoLimit(50)
        self._stroke: list[LE.LabelEdit] | None = None
        self._stroke_desc = ""
        # undo history belongs to one label map: it ends when the map or the case is replaced
        session.volume_changed.connect(self._end_history)
        session.labels_replaced.connect(self._end_history)

    def _end_history(self, *_) -> None:
        self._stroke = None
        self.undo_stack.clear()

    def _require_labels(self):
        if self.session.case is None:
            raise SurgtwinError("open an image first")
        return self.session.case.ensure_labels()  # an empty map to paint by hand when there is none

    # -- brush strokes --------------------------------------------------------------------------
    def begin_stroke(self, plane: str) -> None:
        try:
            self._require_labels()
        except SurgtwinError as exc:
            self.message.emit(str(exc))
            return
        if self.tools.tool != "erase" and self.tools.active_label not in self.session.labels.labels:
            self.message.emit("Choose the structure to paint in the Structures list first")
            self._stroke = None
            return
        self._stroke = []
        self._stroke_desc = {"paint": "Paint", "erase": "Erase", "threshold": "Threshold paint"}[self.tools.tool]

    def dab(self, kji, axis: int) -> None:
        if self._stroke is None:
            return
        labels = self.session.labels
        t = self.tools
        if t.tool == "erase":
            e = LE.erase(labels.array, labels.spacing_mm, kji, t.brush_radius_mm, axis=axis)
        else:
            e = LE.paint(labels.array, labels.spacing_mm, kji, t.brush_radius_mm, t.active_label, axis=axis,
                         image=self.session.volume.array, hu_range=t.hu_range if t.tool == "threshold" else None)
        if e.n_changed:
            e.apply(labels.array)
            self._stroke.append(e)
            self.session.case.notify_labels_edited(e.box)

    def end_stroke(self) -> None:
        stroke, self._stroke = self._stroke, None
        if not stroke:
            return
        edit = LE.merge(stroke, self.session.labels.array, self._stroke_desc)
        self.undo_stack.push(LabelEditCommand(self.session.case, edit, applied=True, on_change=self.edited.emit))

    # -- whole-structure operations -------------------------------------------------------------
    def run_operation(self, name: str, value: int) -> LE.LabelEdit | None:
        labels = self._require_labels()
        if value not in labels.labels:
            raise SurgtwinError("choose a structure in the Structures list first")
        if name == "largest_island":
            edit = LE.keep_largest_island(labels.array, value)
        elif name == "smooth":
            edit = LE.smooth(labels.array, value, radius_vox=1)
        else:
            raise SurgtwinError(f"unknown label operation {name!r}")
        edit.description = f"{edit.description} ({labels.labels[value].name})"
        if edit.n_changed == 0:
            self.message.emit(f"{edit.description}: nothing to change")
            return None
        self.undo_stack.push(LabelEditCommand(self.session.case, edit, on_change=self.edited.emit))
        return edit
