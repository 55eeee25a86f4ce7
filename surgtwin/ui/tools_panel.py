"""Edit & measure panel: tool choice, brush, threshold range, label operations, measurement list."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QButtonGroup,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from surgtwin.ui.tool_state import TOOLS

SHORTCUTS = {"navigate": "N", "distance": "D", "angle": "A", "paint": "P", "erase": "E", "threshold": "T"}


class ToolsPanel(QWidget):
    def __init__(self, session, context, parent=None) -> None:
        super().__init__(parent)
        self.session, self.ctx, self.tools = session, context, context.tools
        self.setObjectName("toolsPanel")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        box = QGroupBox("Tool")
        grid = QGridLayout(box)
        self.group = QButtonGroup(self)
        self.buttons = {}
        for n, (key, tip) in enumerate(TOOLS.items()):
            b = QRadioButton(f"{key.title()}  ({SHORTCUTS[key]})")
            b.setToolTip(tip)
            b.setObjectName(f"tool_{key}")
            b.toggled.connect(lambda on, k=key: on and self.tools.set(tool=k))
            self.group.addButton(b)
            grid.addWidget(b, n // 2, n % 2)
            self.buttons[key] = b
        lay.addWidget(box)
        brush = QGroupBox("Brush")
        g = QGridLayout(brush)
        g.addWidget(QLabel("Radius (mm)"), 0, 0)
        self.radius = QDoubleSpinBox()
        self.radius.setRange(0.5, 50)
        self.radius.setValue(self.tools.brush_radius_mm)
        self.radius.valueChanged.connect(lambda v: self.tools.set(brush_radius_mm=v))
        g.addWidget(self.radius, 0, 1)
        g.addWidget(QLabel("Threshold HU"), 1, 0)
        self.lo, self.hi = QDoubleSpinBox(), QDoubleSpinBox()
        for w, v in ((self.lo, self.tools.hu_range[0]), (self.hi, self.tools.hu_range[1])):
            w.setRange(-1024, 4000)
            w.setDecimals(0)
            w.setValue(v)
            w.valueChanged.connect(lambda _v: self.tools.set(hu_range=(self.lo.value(), self.hi.value())))
        row = QHBoxLayout()
        row.addWidget(self.lo)
        row.addWidget(QLabel("to"))
        row.addWidget(self.hi)
        g.addLayout(row, 1, 1)
        self.island = QPushButton("Keep largest island")
        self.island.clicked.connect(lambda: self.ctx.label_operation("largest_island"))
        self.smooth = QPushButton("Smooth")
        self.smooth.clicked.connect(lambda: self.ctx.label_operation("smooth"))
        g.addWidget(self.island, 2, 0)
        g.addWidget(self.smooth, 2, 1)
        self.active = QLabel("")
        self.active.setStyleSheet("color: #8891a5;")
        g.addWidget(self.active, 3, 0, 1, 2)
        lay.addWidget(brush)
        meas = QGroupBox("Measurements")
        v = QVBoxLayout(meas)
        self.list = QListWidget()
        self.list.setObjectName("measurementList")
        v.addWidget(self.list)
        row = QHBoxLayout()
        self.delete = QPushButton("Delete")
        self.delete.clicked.connect(self._delete)
        self.clear = QPushButton("Clear all")
        self.clear.clicked.connect(lambda: session.case is not None and session.case.clear_measurements())
        row.addWidget(self.delete)
        row.addWidget(self.clear)
        v.addLayout(row)
        lay.addWidget(meas, 1)
        session.measurements_changed.connect(self._fill)
        self.tools.changed.connect(self._sync)
        self._sync()
        self._fill()

    def _sync(self) -> None:
        b = self.buttons[self.tools.tool]
        if not b.isChecked():
            b.setChecked(True)
        v = self.tools.active_label
        name = self.session.display[v].name if v in self.session.display else "none (select one in Structures)"
        self.active.setText(f"Active structure: {name}")

    def _fill(self) -> None:
        self.list.clear()
        for m in self.session.measurements:
            it = QListWidgetItem(f"#{m.id} {m.kind} {m.text}  ({m.plane or '3D'})")
            it.setData(256, m.id)
            self.list.addItem(it)

    def _delete(self) -> None:
        it = self.list.currentItem()
        if it is not None:
            self.session.case.remove_measurement(it.data(256))
