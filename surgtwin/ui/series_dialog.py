"""Series browser: every DICOM series candidate in a folder, with its warnings, before loading."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

COLS = ("Description", "Modality", "Slices × rows × cols", "Spacing (mm)", "Orientation", "Files", "Status")


def _fmt_spacing(sp) -> str:
    return "?" if not sp else " × ".join(f"{s:.2g}" for s in sp)


class SeriesDialog(QDialog):
    def __init__(self, folder, candidates, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("seriesDialog")
        self.setWindowTitle("Choose a series to load")
        self.resize(980, 420)
        self.candidates = list(candidates)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"<b>{len(self.candidates)} series</b> found in {folder}. Warnings are shown "
                             "before loading; refused series cannot be loaded."))
        self.table = QTableWidget(len(self.candidates), len(COLS), self)
        self.table.setHorizontalHeaderLabels(COLS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(6, QHeaderView.ResizeMode.Stretch)
        self.table.setWordWrap(True)
        first_ok = None
        for r, c in enumerate(self.candidates):
            shape = getattr(c, "shape", ()) or ()
            warnings = list(getattr(c, "warnings", []) or [])
            refusal = getattr(c, "refusal", None)
            status = f"Refused: {refusal}" if refusal else ("; ".join(warnings) if warnings else "OK")
            vals = (c.description or "(no description)", c.modality or "?",
                    " × ".join(str(s) for s in shape) if shape else "?", _fmt_spacing(getattr(c, "spacing_mm", None)),
                    getattr(c, "orientation", "") or "?", str(getattr(c, "n_files", "?")), status)
            for col, v in enumerate(vals):
                it = QTableWidgetItem(v)
                it.setToolTip(v)
                if col == 6:
                    it.setForeground(QColor("#ff6b6b" if refusal else ("#ff9f43" if warnings else "#7bd88f")))
                if refusal:
                    it.setFlags(it.flags() & ~Qt.ItemFlag.ItemIsSelectable)
                self.table.setItem(r, col, it)
            if first_ok is None and not refusal:
                first_ok = r
        self.table.resizeColumnsToContents()
        self.table.resizeRowsToContents()
        lay.addWidget(self.table, 1)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        self.table.itemSelectionChanged.connect(self._sync)
        self.table.cellDoubleClicked.connect(lambda *_: self.selected() is not None and self.accept())
        if first_ok is not None:
            self.table.selectRow(first_ok)
        self._sync()

    def selected(self):
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        c = self.candidates[rows[0].row()]
        return None if getattr(c, "refusal", None) else c

    def _sync(self) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Open).setEnabled(self.selected() is not None)
