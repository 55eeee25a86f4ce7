"""The Case panel: what the open case holds, how each item was made, which are out of date, notes.

A thin view over ``Case`` (``surgtwin.core.case``): it reads ``case.summary()``-level facts, shows
staleness the case computes, and calls the window's actions to rebuild or save.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

ITEM_NAMES = {"labels": "Label map", "meshes": "Surface meshes"}
STALE_COLOR = QColor("#ffb454")
OK_COLOR = QColor("#7fd88f")


def item_title(key: str) -> str:
    if key in ITEM_NAMES:
        return ITEM_NAMES[key]
    head, _, sub = key.partition(":")
    return f"{'Tet mesh' if head == 'tet' else head.capitalize()} {sub}".strip()


class CasePanel(QWidget):
    def __init__(self, session, context, parent=None) -> None:
        super().__init__(parent)
        self.session, self.ctx = session, context
        self.setObjectName("casePanel")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.header = QLabel("")
        self.header.setObjectName("caseHeader")
        self.header.setWordWrap(True)
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.header)
        self.table = QTableWidget(0, 3, self)
        self.table.setObjectName("caseItems")
        self.table.setHorizontalHeaderLabels(("Item", "Made by", "Status"))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        h = self.table.horizontalHeader()
        h.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        h.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        h.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMaximumHeight(130)
        lay.addWidget(self.table)
        row = QHBoxLayout()
        self.rebuild_button = QPushButton("Rebuild meshes")
        self.rebuild_button.setObjectName("rebuildMeshes")
        self.rebuild_button.setToolTip("Rebuild the surfaces from the current labels (Pipeline → Build meshes)")
        self.rebuild_button.clicked.connect(lambda: self.ctx.build_meshes())
        self.save_button = QPushButton("Save case")
        self.save_button.setObjectName("saveCase")
        self.save_button.clicked.connect(lambda: self.ctx.cases.save())
        row.addWidget(self.rebuild_button)
        row.addWidget(self.save_button)
        lay.addLayout(row)
        lay.addWidget(QLabel("Notes"))
        self.notes = QPlainTextEdit(self)
        self.notes.setObjectName("caseNotes")
        self.notes.setPlaceholderText("Planning notes, saved with the case")
        self.notes.setMaximumHeight(70)
        self._notes_timer = QTimer(self)
        self._notes_timer.setSingleShot(True)
        self._notes_timer.setInterval(500)
        self._notes_timer.timeout.connect(self._store_notes)
        self.notes.textChanged.connect(self._notes_timer.start)
        lay.addWidget(self.notes)
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(400)
        self._refresh_timer.timeout.connect(self.refresh)
        for sig in (session.volume_changed, session.items_changed, session.labels_changed, session.modified):
            sig.connect(lambda *_: self._refresh_timer.start())
        session.volume_changed.connect(self._load_notes)
        context.cases.saved.connect(lambda *_: self.refresh())
        self._load_notes()
        self.refresh()

    def _load_notes(self, *_) -> None:
        case = self.session.case
        self.notes.blockSignals(True)
        self.notes.setPlainText(case.notes if case is not None else "")
        self.notes.blockSignals(False)
        self.notes.setEnabled(case is not None)

    def _store_notes(self) -> None:
        if self.session.case is not None:
            self.session.case.set_notes(self.notes.toPlainText())

    def refresh(self) -> None:
        case = self.session.case
        self.save_button.setEnabled(case is not None)
        if case is None:
            self.header.setText("No case open. Open an image, a DICOM folder or a saved case (.stwin).")
            self.table.setRowCount(0)
            self.rebuild_button.setEnabled(False)
            return
        where = str(self.session.case_path) if self.session.case_path else "not saved yet"
        src = case.source
        state = "unsaved changes" if case.dirty else "saved"
        self.header.setText(f"<b>{case.name or 'unnamed case'}</b> — {state}<br>"
                            f"<span style='color:#8891a5'>{where}<br>source: {src.modality or '?'} "
                            f"{src.kind or ''}, series …{(src.series_uid or '-')[-12:]}</span>")
        stale = case.stale_items()
        keys = case.keys()
        self.table.setRowCount(len(keys))
        for r, key in enumerate(keys):
            it = case.item(key)
            prov = it.provenance
            made = prov.method + (f" ({prov.model.get('name', '?')} {prov.model.get('version', '')})"
                                  if prov.model else "")
            edited = key == "labels" and case.labels_edited_by_hand()
            status = "out of date" if key in stale else ("edited by hand" if edited else "current")
            cells = (item_title(key), made, status)
            for c, text in enumerate(cells):
                cell = QTableWidgetItem(text)
                cell.setToolTip(prov.describe() if c < 2 else "\n".join(stale.get(key, [status])))
                if c == 2:
                    cell.setForeground(STALE_COLOR if key in stale else OK_COLOR)
                self.table.setItem(r, c, cell)
        self.rebuild_button.setEnabled(case.labels is not None and ("meshes" in stale or not case.meshes))
