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
    """One label edit. ``applied=True`` when the stroke already painted it live."""

    def __init__(self, session, edit: LE.LabelEdit, *, applied: bool = False, on_change=None) -> None:
        super().__init__(edit.description)
        self.session, self.edit, self._skip, self._on_change = session, edit, applied, on_change
        changed = edit.before != edit.after
        self.values = {int(v) for v in np.union1d(edit.before[changed], edit.after[changed]) if v}

    def _changed(self) -> None:
        self.session.notify_labels_edited(self.edit.box)
        if self._on_change is not None:
            self._on_change(self.values)

    def redo(self) -> None:
        if self._skip:
            self._skip = False
        else:
            self.edit.apply(self.session.labels.array)
        self._changed()

    def undo(self) -> None:
        self.edit.revert(self.session.labels.array)
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
        session.volume_changed.connect(self.undo_stack.clear)

    def _require_labels(self):
        if self.session.volume is None:
            raise SurgtwinError("open an image first")
        if self.session.labels is None:
            from surgtwin.core.types import LabelMap, LabelTable

            # an empty label map so the user can start painting by hand
            v = self.session.volume
            self.session.set_labels(LabelMap(np.zeros(v.shape, np.uint8), v.affine.copy(), v.frame_of_reference_uid,
                                             None, {}, labels=LabelTable()))
        return self.session.labels

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
            self.session.notify_labels_edited(e.box)

    def end_stroke(self) -> None:
        stroke, self._stroke = self._stroke, None
        if not stroke:
            return
        edit = LE.merge(stroke, self.session.labels.array, self._stroke_desc)
        self.undo_stack.push(LabelEditCommand(self.session, edit, applied=True, on_change=self.edited.emit))

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
        self.undo_stack.push(LabelEditCommand(self.session, edit, on_change=self.edited.emit))
        return edit
