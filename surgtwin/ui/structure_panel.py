"""Structure list: visibility, colour and opacity per structure, with volume (ml) and mean HU, and the
segmentation quality gate: flagged structures marked with their reasons, a banner above the list
naming what was flagged or removed, and buttons to confirm them (``surgtwin.services.quality``)."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QColorDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

COLS = ("Structure", "", "Opacity", "ml", "HU")
FLAG_COLOUR = "#ffb454"


class StructurePanel(QWidget):
    def __init__(self, session, context, parent=None) -> None:
        super().__init__(parent)
        self.session, self.ctx = session, context
        self.setObjectName("structurePanel")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.banner = QLabel("")
        self.banner.setObjectName("qualityBanner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(f"background: #3a2c14; color: {FLAG_COLOUR}; padding: 4px; border-radius: 3px;")
        lay.addWidget(self.banner)
        brow = QHBoxLayout()
        self.confirm_button = QPushButton("Confirm selected")
        self.confirm_button.setObjectName("confirmStructure")
        self.confirm_button.setToolTip("I have checked this flagged structure: let planning steps use it")
        self.confirm_button.clicked.connect(self.confirm_selected)
        self.confirm_all_button = QPushButton("Confirm all flagged")
        self.confirm_all_button.setObjectName("confirmAllStructures")
        self.confirm_all_button.clicked.connect(self.confirm_all)
        brow.addWidget(self.confirm_button)
        brow.addWidget(self.confirm_all_button)
        lay.addLayout(brow)
        self._banner_widgets = (self.banner, self.confirm_button, self.confirm_all_button)
        self.table = QTableWidget(0, len(COLS), self)
        self.table.setObjectName("structureTable")
        self.table.setHorizontalHeaderLabels(COLS)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        h = self.table.horizontalHeader()
        h.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c, w in ((1, 30), (2, 74), (3, 66), (4, 48)):
            h.setSectionResizeMode(c, QHeaderView.ResizeMode.Fixed)
            self.table.setColumnWidth(c, w)
        self.table.itemChanged.connect(self._on_item)
        self.table.itemSelectionChanged.connect(self._on_select)
        self.table.cellDoubleClicked.connect(self._on_double)
        lay.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.all_button = QPushButton("Show all")
        self.all_button.clicked.connect(lambda: self._set_all(True))
        self.none_button = QPushButton("Hide all")
        self.none_button.clicked.connect(lambda: self._set_all(False))
        self.stats_button = QPushButton("Statistics")
        self.stats_button.setToolTip("Compute volume (ml) and mean HU of every structure")
        self.stats_button.clicked.connect(lambda: self.ctx.compute_stats())
        for b in (self.all_button, self.none_button, self.stats_button):
            row.addWidget(b)
        lay.addLayout(row)
        self.hint = QLabel("")
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: #8891a5;")
        lay.addWidget(self.hint)
        self._values: list[int] = []
        self._updating = False
        session.display_changed.connect(self._on_display)
        session.labels_changed.connect(lambda bbox=None: self.rebuild() if bbox is None else None)
        session.stats_changed.connect(self._fill_stats)
        session.items_changed.connect(lambda key: self._apply_quality() if key in ("quality", "labels") else None)
        self.rebuild()

    def rebuild(self) -> None:
        self._updating = True
        disp = self.session.display
        self._values = sorted(disp)
        self.table.setRowCount(len(self._values))
        for r, v in enumerate(self._values):
            d = disp[v]
            it = QTableWidgetItem(d.name.replace("_", " "))
            it.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(Qt.CheckState.Checked if d.visible else Qt.CheckState.Unchecked)
            it.setData(Qt.ItemDataRole.UserRole, v)
            it.setToolTip(f"label value {v}; double-click to centre the views on it")
            self.table.setItem(r, 0, it)
            btn = QPushButton("")
            btn.setObjectName(f"colour_{v}")
            btn.setToolTip("Change colour")
            btn.setStyleSheet(f"background: rgb{tuple(d.color)}; border: 1px solid #555; margin: 3px;")
            btn.clicked.connect(lambda _=False, val=v: self._pick_colour(val))
            self.table.setCellWidget(r, 1, btn)
            sl = QSlider(Qt.Orientation.Horizontal)
            sl.setRange(0, 100)
            sl.setValue(int(round(d.opacity_3d * 100)))
            sl.setToolTip("Opacity in 3D (and of the overlay in the slices)")
            sl.valueChanged.connect(lambda x, val=v: self.session.set_structure(val, opacity_3d=x / 100,
                                                                                  opacity_2d=0.55 * x / 100))
            self.table.setCellWidget(r, 2, sl)
            for c in (3, 4):
                cell = QTableWidgetItem("")
                cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, cell)
        self._updating = False
        self._fill_stats()
        self._apply_quality()
        self.hint.setText("" if self._values else
                          "No structures yet: open a sample case, load labels, or run Segment (Ctrl+G).")

    # -- the quality gate ---------------------------------------------------------------------------
    def _apply_quality(self) -> None:
        """Mark flagged structures in the list and say in the banner what the gate found."""
        from surgtwin.services import quality

        case = self.session.case
        status = quality.structure_status(case) if case is not None else {}
        rec = quality.quality_record(case) if case is not None else None
        self._updating = True
        for r, v in enumerate(self._values):
            it = self.table.item(r, 0)
            d = self.session.display[v]
            st = status.get(d.name)
            name = d.name.replace("_", " ")
            tip = f"label value {v}; double-click to centre the views on it"
            if st is not None:
                conf = st.get("confidence")
                tip += f"\nquality: {st['status']}" + (f", confidence {conf:.2f}" if conf is not None else "")
                tip += "".join(f"\n  - {x}" for x in st.get("reasons") or [])
            flagged = st is not None and st["status"] == "flagged"
            it.setText(f"⚠ {name}" if flagged else name)
            it.setForeground(QColor(FLAG_COLOUR) if flagged else self.table.palette().text().color())
            it.setToolTip(tip)
        self._updating = False
        blocking = quality.unconfirmed(case) if case is not None and rec is not None else []
        removed = [n for n, st in status.items() if st["status"] == "removed"]
        lines, details = [], []
        if blocking:
            lines.append(f"⚠ {len(blocking)} flagged: {', '.join(n.replace('_', ' ') for n in blocking)}. "
                         "Planning steps wait for your check (Confirm, or edit them).")
            details += [f"{n.replace('_', ' ')}: {r}" for n in blocking for r in status[n].get("reasons") or []]
        if removed:
            regions = ", ".join((rec or {}).get("fov", {}).get("regions") or [])
            lines.append(f"Removed {len(removed)} outside the scan ({regions or 'field of view'}): "
                         + ", ".join(n.replace("_", " ") for n in removed) + ".")
            details += [f"{n.replace('_', ' ')}: {r}" for n in removed for r in status[n].get("reasons") or []]
        self.banner.setText("<br>".join(lines))
        self.banner.setToolTip("\n".join(details))
        self.banner.setVisible(bool(lines))
        for w in (self.confirm_button, self.confirm_all_button):
            w.setVisible(bool(blocking))

    def confirm_selected(self) -> None:
        from surgtwin.services import quality

        rows = self.table.selectionModel().selectedRows()
        if rows and self.session.case is not None:
            name = self.session.display[self._values[rows[0].row()]].name
            if name in quality.unconfirmed(self.session.case):
                quality.confirm_structures(self.session.case, [name])
                self._remesh()  # the confirmed structure joins the 3D scene
        self._apply_quality()

    def _remesh(self) -> None:
        """Mesh again once the running job (e.g. the previous confirmation's meshing) is done."""
        if self.ctx.jobs.busy:
            QTimer.singleShot(250, self._remesh)
        else:
            self.ctx.build_meshes()

    def confirm_all(self) -> None:
        from surgtwin.services import quality

        if self.session.case is not None and quality.quality_record(self.session.case) is not None:
            quality.confirm_structures(self.session.case, "all")
            self._remesh()
        self._apply_quality()

    def _fill_stats(self) -> None:
        stats = self.session.stats
        for r, v in enumerate(self._values):
            s = stats.get(v)
            self.table.item(r, 3).setText("" if s is None else f"{s['volume_ml']:.1f}")
            self.table.item(r, 4).setText("" if s is None or s["voxels"] == 0 else f"{s['mean_hu']:.0f}")

    def _on_display(self, value=None) -> None:
        if value is None or value not in self._values:
            self.rebuild()
            return
        r = self._values.index(value)
        d = self.session.display[value]
        self._updating = True
        self.table.item(r, 0).setCheckState(Qt.CheckState.Checked if d.visible else Qt.CheckState.Unchecked)
        self.table.cellWidget(r, 1).setStyleSheet(f"background: rgb{tuple(d.color)}; border: 1px solid #555; margin: 3px;")
        self._updating = False

    def _on_item(self, it: QTableWidgetItem) -> None:
        if self._updating or it.column() != 0:
            return
        v = it.data(Qt.ItemDataRole.UserRole)
        self.session.set_structure(v, visible=it.checkState() == Qt.CheckState.Checked)

    def _on_select(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.ctx.tools.set(active_label=self._values[rows[0].row()])

    def _on_double(self, row: int, col: int) -> None:
        if col == 0:
            self.ctx.centre_on_structure(self._values[row])

    def _pick_colour(self, value: int) -> None:
        d = self.session.display[value]
        c = QColorDialog.getColor(QColor(*d.color), self, f"Colour of {d.name}")
        if c.isValid():
            self.session.set_structure(value, color=(c.red(), c.green(), c.blue()))

    def _set_all(self, visible: bool) -> None:
        for v in self._values:
            self.session.set_structure(v, visible=visible)

    def select_value(self, value: int) -> None:
        if value in self._values:
            self.table.selectRow(self._values.index(value))
