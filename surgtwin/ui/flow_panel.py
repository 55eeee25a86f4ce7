"""The Blood flow panel: vessel centerlines and the reduced-order (0D) flow model on them — a table
per segment (length, radius, stenosis, flow, pressure drop, pressure ratio), the vessel tree in 3D
coloured by pressure or flow, and a virtual stent with the before/after side by side.

A thin view: the work is the pipeline's ``flow`` step (``surgtwin.services.flow``); what is drawn
comes from ``surgtwin.services.flow_view``.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from surgtwin.ui.see_through import SeeThroughToggle
from surgtwin.ui.widgets import labelled_combo, note_label, scrolling_label

TREE = "aorta"
#: the stented tree is drawn beside the original, shifted along L by the tree's width plus this gap
SIDE_BY_SIDE_GAP_MM = 30.0
STENOSIS_COLOUR = "#ffb454"


def short_name(vessel: str) -> str:
    """A vessel's name for a narrow table column: "iliac_artery_left-2" -> "iliac L 2"."""
    text = vessel.replace("_artery", "").replace("_left", " L").replace("_right", " R").replace("-", " ")
    return text.replace("_", " ")


class FlowPanel(QWidget):
    def __init__(self, session, context, parent=None) -> None:
        super().__init__(parent)
        self.session, self.ctx = session, context
        self.setObjectName("flowPanel")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        form = QFormLayout()
        form.setVerticalSpacing(2)
        self.structures = QLineEdit(self)
        self.structures.setObjectName("flowStructures")
        self.structures.setPlaceholderText("aorta, iliac and renal arteries (default)")
        self.structures.setToolTip("Label names or values making up the vessel tree, comma-separated")
        self.inflow = QDoubleSpinBox(self, decimals=1, minimum=0.0, maximum=500.0, value=0.0, suffix=" ml/s")
        self.inflow.setObjectName("flowInflow")
        self.inflow.setSpecialValueText("default (resting infrarenal)")
        self.pulsatile = QCheckBox("Pulsatile (10 cardiac cycles)", self)
        self.pulsatile.setObjectName("flowPulsatile")
        form.addRow("Vessels", self.structures)
        form.addRow("Inflow", self.inflow)
        form.addRow("", self.pulsatile)
        lay.addLayout(form)
        self.run_button = QPushButton("Centerlines + flow")
        self.run_button.setObjectName("runFlow")
        self.run_button.setToolTip("Extract the vessel centerlines with radius, build the 0D network "
                                   "(Poiseuille segments, Young–Tsai stenoses, RCR outlets) and solve it")
        self.run_button.clicked.connect(self.run)
        lay.addWidget(self.run_button)
        row = QHBoxLayout()
        self.stenosis = QComboBox(self)
        self.stenosis.setObjectName("flowStenosis")
        self.stenosis.currentIndexChanged.connect(lambda *_: self._on_stenosis())
        self.stent_diameter = QDoubleSpinBox(self, decimals=1, minimum=1.0, maximum=40.0, value=10.0, suffix=" mm")
        self.stent_diameter.setObjectName("flowStentDiameter")
        self.stent_button = QPushButton("Virtual stent")
        self.stent_button.setObjectName("stentFlow")
        self.stent_button.setToolTip("Widen the stenotic segment to this diameter and solve again: before/after")
        self.stent_button.clicked.connect(self.stent)
        row.addWidget(self.stenosis, 1)
        row.addWidget(self.stent_diameter)
        row.addWidget(self.stent_button)
        lay.addLayout(row)
        cm, self.field = labelled_combo(self, "Colour the tree by", "flowField", ["pressure", "flow", "off"],
                                        self.show_results)
        self.see_through = SeeThroughToggle(session, self)
        self.see_through.setObjectName("flowSeeThrough")
        cm.addWidget(self.see_through)
        lay.addLayout(cm)
        self.table = QTableWidget(0, 7, self)
        self.table.setObjectName("flowTable")
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setMinimumHeight(170)
        self.table.itemSelectionChanged.connect(self._on_row)
        lay.addWidget(self.table, 1)
        self.summary, scroll = scrolling_label(self, "flowSummary", max_height=110)
        lay.addWidget(scroll)
        lay.addWidget(note_label(self, "Reduced-order (0D) planning estimate with population-average boundary conditions; "
                      "not validated for clinical use."))
        session.items_changed.connect(lambda key: self._on_item(key))
        session.volume_changed.connect(lambda *_: self.show_results())
        self.show_results()

    # -- running --------------------------------------------------------------------------------
    def options(self) -> dict:
        opts: dict = {"tree": TREE}
        text = self.structures.text().strip()
        if text:
            opts["structures"] = [s.strip() for s in text.split(",") if s.strip()]
        if self.inflow.value() > 0:
            opts["inflow_ml_s"] = self.inflow.value()
        if self.pulsatile.isChecked():
            opts["pulsatile"] = True
        return opts

    def run(self) -> None:
        self._start(self.options(), "Blood flow")

    def stent(self) -> None:
        sid = self.stenosis.currentData()
        if sid is None:
            self.summary.setText("No stenosis to stent: run the flow first.")
            return
        opts = self.options()
        opts["stent"] = {sid: self.stent_diameter.value()}
        self._start(opts, "Blood flow: virtual stent")

    def _start(self, opts: dict, title: str) -> None:
        if self.session.case is None or self.session.labels is None:
            self.summary.setText("Open a case with a label map of the vessels first.")
            return
        job = self.ctx.prepare_step("flow", **opts)
        if job is not None:
            self.ctx.jobs.run(title, job.compute, on_done=self._done)

    def _done(self, out) -> None:
        out.apply_to(self.session.case)
        self.show_results()
        self.see_through.setChecked(True)  # the tree runs inside the anatomy
        self.focus()

    def focus(self) -> None:
        """The 3D camera on the tree(s) from the front."""
        objs = [o for k, o in self.session.overlays.items() if k[0] == "flow"]
        if not objs:
            return
        pts = np.vstack([o.vertices for o in objs])
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        extent = float(np.max(hi - lo))
        self.ctx.views.view3d.look_at((lo + hi) / 2, (0.0, -1.0, 0.0), distance_mm=2.2 * extent)

    # -- results --------------------------------------------------------------------------------
    def _on_item(self, key: str) -> None:
        if key.startswith(("flow:", "centerlines:")) or key == "labels":
            self.show_results()

    def results(self):
        """(the flow result, the stented one or None) of the case's tree."""
        from surgtwin.services.flow_view import flow_result

        case = self.session.case
        a = flow_result(case, f"flow:{TREE}")
        b = flow_result(case, f"flow:{TREE}:stent") if a is not None else None
        return a, b

    def show_results(self) -> None:
        a, b = self.results()
        self._fill_stenoses(a)
        self._fill_table(a, b)
        self._draw(a, b)

    def _fill_stenoses(self, a) -> None:
        keep = self.stenosis.currentData()
        self.stenosis.blockSignals(True)
        self.stenosis.clear()
        if a is not None:
            for k, s in enumerate(a.graph.stenoses):
                self.stenosis.addItem(f"s{k}: {a.branch_names[s.branch]} {s.diameter_percent:.0f} %", f"s{k}")
        idx = self.stenosis.findData(keep)
        self.stenosis.setCurrentIndex(max(0, idx))
        self.stenosis.blockSignals(False)
        self.stent_button.setEnabled(self.stenosis.count() > 0)
        self._on_stenosis()

    def _on_stenosis(self) -> None:
        a, _ = self.results()
        sid = self.stenosis.currentData()
        if a is None or sid is None:
            return
        s = a.graph.stenoses[int(sid[1:])]
        self.stent_diameter.setValue(round(float(s.reference_diameter_mm), 1))

    def _fill_table(self, a, b) -> None:
        if a is None:
            self.table.setRowCount(0)
            self.summary.setText("No flow result yet: Centerlines + flow.")
            return
        rows = a.rows()
        heads = ["Vessel", "Sten.", "Q ml/s", "ΔP mmHg", "Pd/Pp"]
        if b is not None:
            heads = ["Vessel", "Sten.", "Q ml/s", "ΔP", "ΔP stent", "Pd/Pp", "Pd/Pp stent"]
            after = {r["segment"]: r for r in b.rows()}
        self.table.setColumnCount(len(heads))
        self.table.setHorizontalHeaderLabels(heads)
        self.table.setRowCount(len(rows))
        bold = QFont(self.font())
        bold.setBold(True)
        for r, row in enumerate(rows):
            st = f"{row['stenosis_percent']:.0f} %" if row["stenosis"] else ""
            cells = [short_name(row["vessel"]), st, f"{row['mean_flow_ml_s']:.1f}"]
            if b is None:
                cells += [f"{row['pressure_drop_mmhg']:.2f}", f"{row['pressure_ratio']:.3f}"]
            else:
                o = after[row["segment"]]
                cells += [f"{row['pressure_drop_mmhg']:.2f}", f"{o['pressure_drop_mmhg']:.2f}",
                          f"{row['pressure_ratio']:.3f}", f"{o['pressure_ratio']:.3f}"]
            tip = (f"{row['segment']} {row['vessel']}: length {row['length_mm']:.0f} mm, min radius {row['min_radius_mm']:.1f} mm, "
                   f"mean flow {row['mean_flow_ml_s']:.2f} ml/s")
            for c, text in enumerate(cells):
                cell = QTableWidgetItem(text)
                cell.setToolTip(tip)
                if row["stenosis"]:
                    cell.setForeground(QColor(STENOSIS_COLOUR))
                    cell.setFont(bold)
                self.table.setItem(r, c, cell)
        head = self.table.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        inflow = float(a.arrays["inflow_ml_s"])
        lines = [f"Inflow {inflow:.1f} ml/s ({inflow * 0.06:.2f} L/min), "
                 f"{'pulsatile' if int(a.arrays['pulsatile']) else 'steady'}; {len(a.graph.branches)} branches, "
                 f"{len(a.graph.stenoses)} stenosis(es)."]
        for k, s in enumerate(a.graph.stenoses):
            pr = float(a.arrays["stenosis_pressure_ratio"][k])
            text = (f"s{k} {a.branch_names[s.branch]}: {s.diameter_percent:.0f} % diameter "
                    f"({s.min_diameter_mm:.1f} of {s.reference_diameter_mm:.1f} mm), Pd/Pp {pr:.3f}")
            if b is not None and np.isfinite(b.arrays["stenosis_pressure_ratio"][k]):
                text += f" → {float(b.arrays['stenosis_pressure_ratio'][k]):.3f} stented"
            lines.append(text)
        if b is not None:
            d = ", ".join(f"{a.segment_names[int(s)]} to {float(dm):.1f} mm" for s, dm in
                          zip(b.arrays["stent_segments"], b.arrays["stent_diameter_mm"], strict=True))
            lines.append(f"Virtual stent: {d} (right: the stented tree).")
        if a.stale or (b is not None and b.stale):
            lines.append("<span style='color:#ffb454'>Out of date (the labels changed): run again.</span>")
        self.summary.setText("<br>".join(lines))

    def _on_row(self) -> None:
        """Selecting a segment moves the crosshair to its middle."""
        a, _ = self.results()
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if a is None or not rows:
            return
        i = rows[0].row()
        br = a.graph.branches[int(a.arrays["segment_branch"][i])]
        i0, i1 = (int(x) for x in a.arrays["segment_range"][i])
        self.session.set_crosshair(br.points_lps[(i0 + i1) // 2])

    def _draw(self, a, b) -> None:
        from surgtwin.render.scene import SceneObject
        from surgtwin.services.flow_view import FIELDS

        for key in [k for k in self.session.overlays if k[0] == "flow"]:
            self.session.set_overlay(key, None)
        field = self.field.currentText()
        if a is None or field not in FIELDS:
            return
        title = "{} {}".format(*FIELDS[field])
        pts = np.vstack([br.points_lps for br in a.graph.branches])
        shift = float(np.ptp(pts[:, 0])) + SIDE_BY_SIDE_GAP_MM
        meshes = [(a.key, a.tubes(field))]
        if b is not None:
            meshes.append((b.key, b.tubes(field, offset_lps=(shift, 0.0, 0.0))))
        allv = np.concatenate([m[2] for _, m in meshes])
        clim = (float(np.nanmin(allv)), float(np.nanmax(allv)))
        if clim[1] - clim[0] < 1e-6:
            clim = (clim[0] - 1.0, clim[1] + 1.0)
        for key, (verts, faces, vals) in meshes:
            self.session.set_overlay(("flow", key), SceneObject(
                ("flow", key), verts, faces, scalars=vals, cmap="coolwarm" if field == "pressure" else "viridis",
                clim=clim, scalar_title=title))
