"""The central view area: three MPR views and the 3D view in 1×3, 2×2 or 3D-only layouts."""

from __future__ import annotations

from PySide6.QtWidgets import QGridLayout, QWidget

from surgtwin.ui.slice_view import SliceView
from surgtwin.ui.view3d import View3D

LAYOUTS = {
    "2x2": "2×2 (axial, 3D / coronal, sagittal)",
    "1x3": "1×3 (axial, coronal, sagittal)",
    "3d": "3D only",
}


class ViewArea(QWidget):
    def __init__(self, session, tools, editor, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("viewArea")
        self.slices = {p: SliceView(session, p, tools, editor, self) for p in ("axial", "coronal", "sagittal")}
        self.view3d = View3D(session, self)
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(2, 2, 2, 2)
        self.grid.setSpacing(3)
        self.layout_name = ""
        self.set_layout("2x2")

    def set_layout(self, name: str) -> None:
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}")
        for w in (*self.slices.values(), self.view3d):
            self.grid.removeWidget(w)
            w.hide()
        for r in range(3):
            self.grid.setRowStretch(r, 0)
            self.grid.setColumnStretch(r, 0)
        s = self.slices
        if name == "2x2":
            place = [(s["axial"], 0, 0), (self.view3d, 0, 1), (s["coronal"], 1, 0), (s["sagittal"], 1, 1)]
        elif name == "1x3":
            place = [(s["axial"], 0, 0), (s["coronal"], 0, 1), (s["sagittal"], 0, 2)]
        else:
            place = [(self.view3d, 0, 0)]
        for w, r, c in place:
            self.grid.addWidget(w, r, c)
            self.grid.setRowStretch(r, 1)
            self.grid.setColumnStretch(c, 1)
            w.show()
        self.layout_name = name
