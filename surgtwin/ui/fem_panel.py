"""The Simulation panel: finite-element bone/implant mechanics of a placed implant, the
stress-shielding table per zone, the implant's safety factor, a colour map on the bone, and a
"what if" with another size shown side by side.

A thin view: the work is the pipeline's ``fem`` step and ``surgtwin.services.simulate``; results
are the case's ``fem:<id>`` items (with the ``tet:...`` mesh they were computed on).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from surgtwin.ui.widgets import labelled_combo

LOADS = {"hip-stem": ["walking", "stairs", "3xBW"], "pedicle-screw": ["pullout", "compression"]}
FIELDS = {"SED change %": "sed_change", "von Mises implanted MPa": "von_mises_implanted_mpa",
          "von Mises intact MPa": "von_mises_intact_mpa", "off": None}
#: the B result of a what-if is drawn beside A, shifted along L by the bone's width plus this gap
SIDE_BY_SIDE_GAP_MM = 25.0


def field_values(arrays: dict, name: str) -> np.ndarray:
    """Per-element values of colour field ``name`` (SED change in %, clipped to +-100)."""
    if name == "sed_change":
        a, b = np.asarray(arrays["sed_intact_mpa"], float), np.asarray(arrays["sed_implanted_mpa"], float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(a > 0, 100.0 * (b - a) / np.maximum(a, 1e-30), 0.0)
        return np.clip(out, -100.0, 100.0)
    return np.asarray(arrays[name], float)


class FemPanel(QWidget):
    def __init__(self, session, context, parent=None) -> None:
        super().__init__(parent)
        self.session, self.ctx = session, context
        self.setObjectName("femPanel")
        self.comparison = None  # the last what-if's result dict
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        form = QFormLayout()
        form.setVerticalSpacing(2)
        self.implant = QComboBox(self)
        self.implant.setObjectName("femImplant")
        self.load = QComboBox(self)
        self.load.setObjectName("femLoad")
        self.body_weight = QDoubleSpinBox(self, decimals=0, minimum=20, maximum=250, value=75, suffix=" kg")
        self.mesh_size = QDoubleSpinBox(self, decimals=1, minimum=1.0, maximum=6.0, value=2.0, suffix=" mm")
        form.addRow("Implant", self.implant)
        form.addRow("Load", self.load)
        form.addRow("Body weight", self.body_weight)
        form.addRow("Element size", self.mesh_size)
        lay.addLayout(form)
        row = QHBoxLayout()
        self.run_button = QPushButton("Run FE")
        self.run_button.setObjectName("runFem")
        self.run_button.setToolTip("Mesh the bone with the implant bonded in, solve intact and implanted "
                                   "(linear elasticity, CT-based bone modulus)")
        self.run_button.clicked.connect(self.run)
        self.size_b = QComboBox(self)
        self.size_b.setObjectName("femSizeB")
        self.compare_button = QPushButton("What if size…")
        self.compare_button.setObjectName("compareFem")
        self.compare_button.clicked.connect(self.compare)
        row.addWidget(self.run_button)
        row.addWidget(self.compare_button)
        row.addWidget(self.size_b)
        lay.addLayout(row)
        cm, self.field = labelled_combo(self, "Colour the bone by", "femField", FIELDS, self.show_results)
        lay.addLayout(cm)
        self.table = QTableWidget(0, 4, self)
        self.table.setObjectName("femTable")
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setMinimumHeight(150)
        lay.addWidget(self.table, 1)
        self.summary = QLabel("")
        self.summary.setObjectName("femSummary")
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        note = QLabel("Linear-elastic planning estimate, not validated for clinical use.")
        note.setStyleSheet("color: #8891a5;")
        note.setWordWrap(True)
        lay.addWidget(note)
        self.implant.currentIndexChanged.connect(lambda *_: self._on_implant())
        session.items_changed.connect(lambda key: self._on_item(key))
        session.volume_changed.connect(lambda *_: self.refresh())
        self.refresh()

    # -- choices --------------------------------------------------------------------------------
    def _placements(self) -> list:
        from surgtwin.services.implants import placements

        return placements(self.session.case) if self.session.case is not None else []

    def _on_item(self, key: str) -> None:
        if key == "implants":
            self.refresh()
        elif key.startswith("fem:"):
            self.show_results()

    def refresh(self) -> None:
        keep = self.implant.currentData()
        self.implant.blockSignals(True)
        self.implant.clear()
        for p in self._placements():
            self.implant.addItem(f"{p.id}: {p.name or p.implant.family} {p.implant.size}", p.id)
        idx = self.implant.findData(keep)
        self.implant.setCurrentIndex(max(0, idx))
        self.implant.blockSignals(False)
        self._on_implant()

    def selected(self):
        pid = self.implant.currentData()
        return next((p for p in self._placements() if p.id == pid), None)

    def _on_implant(self) -> None:
        from surgtwin.core.plan.implants import family

        p = self.selected()
        for w in (self.run_button, self.compare_button, self.size_b, self.load):
            w.setEnabled(p is not None)
        self.load.clear()
        self.size_b.clear()
        if p is not None:
            self.load.addItems(LOADS.get(p.implant.family, ["walking"]))
            self.size_b.addItems([s for s in family(p.implant.family).size_labels() if s != p.implant.size])
        self.comparison = None
        self.show_results()

    def options(self) -> dict:
        p = self.selected()
        load = self.load.currentText()
        opts = {"implant": p.id, "load": load, "body_weight_kg": self.body_weight.value(),
                "size_mm": self.mesh_size.value()}
        return opts

    # -- running --------------------------------------------------------------------------------
    def run(self) -> None:
        if self.selected() is None:
            self.summary.setText("Place an implant first (Implants panel).")
            return
        self.ctx.cases.autosave()
        job = self.ctx.prepare_step("fem", **self.options())
        if job is not None:
            self.ctx.jobs.run("Finite elements", job.compute, on_done=self._done)

    def _done(self, out) -> None:
        out.apply_to(self.session.case)
        self.comparison = None
        self.show_results()

    def compare(self) -> None:
        from surgtwin.services.simulate import prepare_what_if

        if self.selected() is None or not self.size_b.currentText():
            return
        try:
            opts = self.options()
            job = prepare_what_if(self.session.case, opts.pop("implant"), size_b=self.size_b.currentText(), **opts)
        except Exception as exc:  # noqa: BLE001 - a refusal is shown, the app goes on
            from surgtwin.ui.dialogs import error_box

            self.ctx.last_dialog = error_box(self.ctx, "What if", exc)
            return
        self.ctx.jobs.run("Finite elements: what if", job.compute, on_done=self._compared)

    def _compared(self, out) -> None:
        out.apply_to(self.session.case)
        self.comparison = out.summary
        self.show_results()

    # -- results --------------------------------------------------------------------------------
    def _result(self, key: str):
        case = self.session.case
        it = case.item(key) if case is not None else None
        if it is None:
            return None, None
        mesh = case.item(it.provenance.parameters.get("tet_item", ""))
        return it, (mesh.value if mesh is not None else None)

    def show_results(self) -> None:
        p = self.selected()
        keys = []
        if p is not None:
            keys = [f"fem:{p.id}"]
            if self.comparison is not None:
                keys = list(self.comparison["keys"])
        results = [(k, *self._result(k)) for k in keys]
        results = [r for r in results if r[1] is not None]
        self._fill_table(results)
        self._draw(results)

    def _fill_table(self, results) -> None:
        case = self.session.case
        if not results:
            self.table.setRowCount(0)
            self.summary.setText("" if self.selected() is None else "No result yet: Run FE.")
            return
        cols = [it.value for _, it, _ in results]
        if len(results) == 1:
            heads = ["Zone", "SED intact", "implanted", "Δ %"]
        else:
            heads = ["Zone"] + [f"Δ % size {_size(it)}" for _, it, _ in results]
        names = results[0][1].provenance.parameters.get("zone_names") or {}
        ids = [int(z) for z in results[0][1].value["zone_ids"]]
        self.table.setColumnCount(len(heads))
        self.table.setHorizontalHeaderLabels(heads)
        self.table.setRowCount(len(ids))
        for r, z in enumerate(ids):
            cells = [str(names.get(str(z), names.get(z, z)))]
            if len(results) == 1:
                a = cols[0]
                cells += [f"{a['zone_sed_intact_kj_m3'][r]:.2f}", f"{a['zone_sed_implanted_kj_m3'][r]:.2f}",
                          _percent(a["zone_change_percent"][r])]
            else:
                for a in cols:
                    zi = [int(x) for x in a["zone_ids"]]
                    cells.append(_percent(a["zone_change_percent"][zi.index(z)]) if z in zi else "-")
            for c, text in enumerate(cells):
                cell = QTableWidgetItem(text)
                if c > 0 and text.startswith("-") and len(text) > 1:
                    cell.setForeground(QColor("#6fa8ff"))  # bone unloaded: stress shielding
                self.table.setItem(r, c, cell)
        h = self.table.horizontalHeader()
        h.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        lines = []
        for _key, it, _ in results:
            a = it.value
            lines.append(f"size {_size(it)}: implant peak von Mises "
                         f"{float(a['implant_peak_von_mises_mpa']):.0f} MPa, yield {float(a['implant_yield_mpa']):.0f} "
                         f"MPa, safety factor {float(a['safety_factor']):.1f}")
        if self.comparison is not None:
            lines.append(self.comparison.get("sentence", ""))
        stale = [k for k, *_ in results if case.is_stale(k)]
        if stale:
            lines.append("<span style='color:#ffb454'>Out of date (the implant or labels changed): run again.</span>")
        self.summary.setText("<br>".join(lines))

    def _draw(self, results) -> None:
        from surgtwin.render.scene import SceneObject

        for key in [k for k in self.session.overlays if k[0] == "fem"]:
            self.session.set_overlay(key, None)
        name = FIELDS[self.field.currentText()]
        if name is None or not results:
            return
        values = [field_values(it.value, name) for _, it, _ in results]
        if name == "sed_change":
            clim = (-100.0, 100.0)
        else:
            hi = float(np.percentile(np.concatenate(values), 98)) or 1.0
            clim = (0.0, hi)
        offset = 0.0
        for (key, it, mesh), vals in zip(results, values, strict=True):
            bone = np.flatnonzero(np.asarray(it.value["implant_elements"]) == 0)
            faces, elements = mesh.boundary(bone)
            verts = np.asarray(mesh.nodes, float) + [offset, 0.0, 0.0]
            self.session.set_overlay(("fem", key), SceneObject(
                ("fem", key), verts, faces, scalars=vals[elements], cmap="coolwarm" if name == "sed_change" else "jet",
                clim=clim, scalar_title=self.field.currentText()))
            offset += float(np.ptp(mesh.nodes[:, 0])) + SIDE_BY_SIDE_GAP_MM


def _size(item) -> str:
    return str((item.provenance.parameters.get("implant") or {}).get("size", "?"))


def _percent(v) -> str:
    """A zone's SED change for the table ("-" where the intact bone carries no strain energy)."""
    return f"{float(v):+.1f}" if np.isfinite(v) else "-"

