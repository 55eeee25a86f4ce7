"""The TAVR panel: the aortic annulus measured from the labels or from three hinge points clicked in
the MPR views, a double-oblique reslice of the annulus plane with its contour, the device sizing
charts with the recommendation per family, and the virtual valve (family, size, depth) with its
predicted gradient and paravalvular-leak indicator.

A thin view: the measurement is the pipeline's ``tavr`` step, re-placing the valve is
``surgtwin.services.tavr.store_valve``; the record's fields are listed in that module.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from surgtwin.ui.oblique_view import ObliqueView
from surgtwin.ui.see_through import SeeThroughToggle
from surgtwin.ui.widgets import note_label, readonly_table, scrolling_label

ANNULUS_COLOUR = (255, 216, 77)
VALVE_COLOUR = (190, 200, 215)
HINGE_COLOUR = (80, 220, 255)
#: what "See-through anatomy" keeps in 3D (opacity by structure name); the rest is hidden in 3D
FOCUS = {"aortic_root": 0.3, "ascending_aorta": 0.15, "left_ventricle": 0.1, "coronary_artery_left": 1.0,
         "coronary_artery_right": 1.0, "calcification": 1.0}
RISK_COLOURS = {"low": "#7fd18b", "moderate": "#ffb454", "high": "#ff6b6b"}
#: measurement rows: (title, record key, format)
ROWS = (
    ("Perimeter", "perimeter_mm", "{:.1f} mm"),
    ("Area", "area_mm2", "{:.1f} mm²"),
    ("Min / max diameter", None, None),
    ("Eccentricity", "eccentricity", "{:.2f}"),
    ("D_A = 2√(A/π)", "area_derived_diameter_mm", "{:.1f} mm"),
    ("D_P = P/π", "perimeter_derived_diameter_mm", "{:.1f} mm"),
    ("Coronary height left", "coronary_height_left_mm", "{:.1f} mm"),
    ("Coronary height right", "coronary_height_right_mm", "{:.1f} mm"),
    ("Sinus of Valsalva diameter", "sinus_diameter_mm", "{:.1f} mm"),
    ("STJ diameter / height", None, None),
    ("Calcium", None, None),
)


def _fmt(fmt: str, value) -> str:
    return "–" if value is None else fmt.format(value)


class TavrPanel(QWidget):
    def __init__(self, session, context, parent=None) -> None:
        super().__init__(parent)
        self.session, self.ctx = session, context
        self.setObjectName("tavrPanel")
        self.hinges: list[np.ndarray] = []
        self._frames: dict = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        self.measure_button = QPushButton("Measure from labels")
        self.measure_button.setObjectName("measureTavr")
        self.measure_button.setToolTip("Find the annulus at the aortic root's ventricular end (aortic root label, "
                                       "or an aorta mask) and measure the root")
        self.measure_button.clicked.connect(self.measure)
        self.hinge_button = QPushButton("Click 3 hinge points")
        self.hinge_button.setObjectName("hingeTavr")
        self.hinge_button.setCheckable(True)
        self.hinge_button.setToolTip("Click the three lowest leaflet hinge points in the MPR views; the annulus "
                                     "plane goes through them")
        self.hinge_button.toggled.connect(self._picking)
        row.addWidget(self.measure_button)
        row.addWidget(self.hinge_button)
        lay.addLayout(row)
        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("tavrTabs")
        lay.addWidget(self.tabs, 1)
        # -- annulus tab
        ann = QWidget()
        al = QVBoxLayout(ann)
        al.setContentsMargins(0, 2, 0, 0)
        self.oblique = ObliqueView(session, ann)
        al.addWidget(self.oblique, 3)
        self.measurements = readonly_table(ann, "tavrMeasurements", columns=2)
        self.measurements.horizontalHeader().hide()
        al.addWidget(self.measurements, 2)
        self.tabs.addTab(ann, "Annulus")
        # -- device tab
        dev = QWidget()
        dl = QVBoxLayout(dev)
        dl.setContentsMargins(0, 2, 0, 0)
        form = QFormLayout()
        form.setVerticalSpacing(2)
        self.family = QComboBox(dev)
        self.family.setObjectName("tavrFamily")
        self.size = QComboBox(dev)
        self.size.setObjectName("tavrSize")
        self.depth = QDoubleSpinBox(dev, decimals=1, minimum=0.0, maximum=12.0, value=3.0, singleStep=0.5,
                                    suffix=" mm into the LVOT")
        self.depth.setObjectName("tavrDepth")
        self.output = QDoubleSpinBox(dev, decimals=1, minimum=1.0, maximum=12.0, value=5.0, suffix=" L/min")
        self.rate = QDoubleSpinBox(dev, decimals=0, minimum=30, maximum=180, value=70, suffix=" /min")
        self.bsa = QDoubleSpinBox(dev, decimals=2, minimum=0.0, maximum=3.0, value=0.0, singleStep=0.05,
                                  suffix=" m²")
        self.bsa.setSpecialValueText("not given")
        form.addRow("Family", self.family)
        form.addRow("Size", self.size)
        form.addRow("Depth", self.depth)
        form.addRow("Cardiac output", self.output)
        form.addRow("Heart rate", self.rate)
        form.addRow("BSA", self.bsa)
        dl.addLayout(form)
        self.chart = readonly_table(dev, "tavrChart", columns=4)
        self.chart.setHorizontalHeaderLabels(["Size", "Range", "Oversizing", ""])
        dl.addWidget(self.chart, 1)
        self.tabs.addTab(dev, "Device")
        self.result, scroll = scrolling_label(self, "tavrResult", max_height=150)
        lay.addWidget(scroll)
        self.see_through = SeeThroughToggle(session, self, focus=FOCUS, others=0.0)
        self.see_through.setObjectName("tavrSeeThrough")
        lay.addWidget(self.see_through)
        lay.addWidget(note_label(self, "Planning aid: charts are representative (check the manufacturer's IFU); gradient and "
                      "leak indicator are simplified estimates. Not for clinical use."))
        self.family.currentIndexChanged.connect(lambda *_: self._family_changed())
        for w in (self.size,):
            w.currentIndexChanged.connect(lambda *_: self._valve_changed())
        for w in (self.depth, self.output, self.rate, self.bsa):
            w.editingFinished.connect(self._valve_changed)
        session.items_changed.connect(lambda key: self._on_item(key))
        session.volume_changed.connect(lambda *_: self._on_volume())
        self._filling = False
        self.show_record()

    # -- measuring ------------------------------------------------------------------------------
    def record(self) -> dict | None:
        from surgtwin.services.tavr import tavr_record

        return tavr_record(self.session.case) if self.session.case is not None else None

    def measure(self, hinge_points=None) -> None:
        if self.session.case is None:
            self.result.setText("Open a cardiac CT first.")
            return
        opts = {"family": self.family.currentText() or None, "cardiac_output_l_min": self.output.value(),
                "heart_rate_bpm": self.rate.value()}
        if self.bsa.value() > 0:
            opts["bsa_m2"] = self.bsa.value()
        if hinge_points is not None:
            opts["hinge_points"] = [[float(v) for v in p] for p in hinge_points]
        job = self.ctx.prepare_step("tavr", **{k: v for k, v in opts.items() if v is not None})
        if job is not None:
            self.ctx.jobs.run("TAVR: annulus", job.compute, on_done=self._done)

    def _done(self, out) -> None:
        out.apply_to(self.session.case)
        self.show_record()
        self.focus()

    def _picking(self, on: bool) -> None:
        tools = self.ctx.tools
        if on:
            self.hinges = []
            tools.pick_points(self._hinge)
            self.result.setText("Click the three hinge points (the lowest points of the leaflet attachments) "
                                "in the MPR views: 0 of 3.")
        else:
            if tools.picker == self._hinge:
                tools.stop_picking()
        self._draw_hinges()

    def _hinge(self, lps) -> None:
        self.hinges.append(np.asarray(lps, float))
        self._draw_hinges()
        if len(self.hinges) < 3:
            self.result.setText(f"Click the three hinge points in the MPR views: {len(self.hinges)} of 3.")
            return
        points = list(self.hinges)
        self.hinge_button.setChecked(False)  # stops picking
        self.hinges = points
        self._draw_hinges()
        self.measure(hinge_points=points)

    def _draw_hinges(self) -> None:
        from surgtwin.render.glyphs import sphere
        from surgtwin.render.scene import SceneObject

        for key in [k for k in self.session.overlays if k[0] == "tavr" and k[1].startswith("hinge")]:
            self.session.set_overlay(key, None)
        for i, p in enumerate(self.hinges):
            v, f = sphere(p, 1.5)
            self.session.set_overlay(("tavr", f"hinge-{i}"), SceneObject(
                ("tavr", f"hinge-{i}"), v, f, color=HINGE_COLOUR, contour=True))

    # -- the valve ------------------------------------------------------------------------------
    def _family_changed(self) -> None:
        if self._filling:
            return
        rec = self.record()
        if rec is None:
            return
        self._store(family=self.family.currentText(), size=None)

    def _valve_changed(self) -> None:
        if self._filling or self.record() is None:
            return
        self._store(family=self.family.currentText(), size=self.size.currentText() or None)

    def _store(self, **changes) -> None:
        from surgtwin.services.tavr import store_valve

        changes.update(depth_mm=self.depth.value(), cardiac_output_l_min=self.output.value(),
                       heart_rate_bpm=self.rate.value())
        if self.bsa.value() > 0:
            changes["bsa_m2"] = self.bsa.value()
        if changes.get("size") is None:
            changes.pop("size", None)
            changes.pop("depth_mm")  # another family: its own default depth
        try:
            store_valve(self.session.case, **changes)
        except Exception as exc:  # noqa: BLE001 - a refusal is shown, the app goes on
            from surgtwin.ui.dialogs import error_box

            self.ctx.last_dialog = error_box(self.ctx, "Valve", exc)
        self.show_record()

    # -- showing --------------------------------------------------------------------------------
    def _on_item(self, key: str) -> None:
        if key == "tavr":
            self.show_record()

    def _on_volume(self) -> None:
        self.hinges = []
        self.show_record()

    def show_record(self) -> None:
        rec = self.record()
        self._filling = True
        try:
            self._fill_controls(rec)
        finally:
            self._filling = False
        self._fill_measurements(rec)
        self._fill_chart(rec)
        self._fill_result(rec)
        self._draw(rec)

    def _fill_controls(self, rec) -> None:
        from surgtwin.core.plan import tavr_devices as dev

        if self.family.count() == 0:
            self.family.addItems(dev.families())
        valve = (rec or {}).get("valve")
        fam = (valve or {}).get("family") or ((rec or {}).get("parameters") or {}).get("family")
        if fam:
            self.family.setCurrentText(fam)
        chart = dev.chart(self.family.currentText())
        self.size.clear()
        self.size.addItems([str(s["size"]) for s in chart["sizes"]])
        if valve:
            self.size.setCurrentText(str(valve["size"]))
            self.depth.setValue(float(valve["depth_mm"]))
        params = (rec or {}).get("parameters") or {}
        for w, key in ((self.output, "cardiac_output_l_min"), (self.rate, "heart_rate_bpm"), (self.bsa, "bsa_m2")):
            if params.get(key) is not None:  # what the record was planned with (e.g. BSA from the DICOM header)
                w.setValue(float(params[key]))
        self.bsa.setToolTip(f"Body surface area for the PPM grade; this plan's: {params.get('bsa_source') or 'not given'}")
        for w in (self.family, self.size, self.depth):
            w.setEnabled(rec is not None)

    def _fill_measurements(self, rec) -> None:
        t = self.measurements
        if rec is None:
            t.setRowCount(0)
            self.oblique.clear()
            return
        m = rec["measurement"]
        t.setRowCount(len(ROWS))
        for r, (title, key, fmt) in enumerate(ROWS):
            if key is not None:
                text = _fmt(fmt, m.get(key))
            elif title.startswith("Min / max"):
                text = f"{m['diameter_min_mm']:.1f} / {m['diameter_max_mm']:.1f} mm"
            elif title.startswith("STJ"):
                text = f"{_fmt('{:.1f}', m.get('stj_diameter_mm'))} mm at {_fmt('{:.1f}', m.get('stj_height_mm'))} mm"
            else:
                c = m.get("calcium") or {}
                sectors = ", ".join(f"{k.split('_')[0][0].upper()}{k.split('_')[1][0].upper() if '_' in k else ''} "
                                    f"{v:.0f}" for k, v in (c.get("sectors") or {}).items())
                text = f"{_fmt('{:.0f}', c.get('total_mm3'))} mm³" + (f" ({sectors})" if sectors else "")
            t.setItem(r, 0, QTableWidgetItem(title))
            t.setItem(r, 1, QTableWidgetItem(text))
        low = [h for h in ("left", "right") if (m.get(f"coronary_height_{h}_mm") or 99) < 10.0]
        for h in low:
            r = [x[1] for x in ROWS].index(f"coronary_height_{h}_mm")
            t.item(r, 1).setForeground(QColor("#ff6b6b"))
        t.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        t.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        c, u, v = (np.asarray(m[k], float) for k in ("centre_lps", "u_lps", "v_lps"))
        dmax, dmin = float(m["diameter_max_mm"]), float(m["diameter_min_mm"])
        lines = [(c - 0.5 * dmax * u, c + 0.5 * dmax * u, "#ff9f43", f"{dmax:.1f}"),
                 (c - 0.5 * dmin * v, c + 0.5 * dmin * v, "#54a0ff", f"{dmin:.1f}")]
        outlines = [(np.asarray(m["contour_lps"], float), "#ffd84d", True)]
        self.oblique.set_plane(c, u, v, outlines=outlines, lines=lines,
                               caption=f"Annulus plane ({m['method']})\nP {m['perimeter_mm']:.1f} mm · "
                                       f"A {m['area_mm2']:.0f} mm²")

    def _fill_chart(self, rec) -> None:
        t = self.chart
        if rec is None:
            t.setRowCount(0)
            return
        fam = self.family.currentText()
        s = rec["sizing"].get(fam)
        if s is None:
            t.setRowCount(0)
            return
        unit = "mm²" if s["sized_by"] == "area" else "mm"
        t.setHorizontalHeaderLabels(["Size", f"{s['sized_by'].title()} range", "Oversizing", "Fits"])
        t.setRowCount(len(s["rows"]))
        bold = QFont(self.font())
        bold.setBold(True)
        for r, row in enumerate(s["rows"]):
            rec_row = str(row["size"]) == str(s["recommended"])
            cells = [f"{row['size']} mm", f"{row['min']:g}–{row['max']:g} {unit}",
                     f"{row['oversizing_percent']:+.1f} %", "recommended" if rec_row else ("yes" if row["in_range"] else "")]
            for c, text in enumerate(cells):
                cell = QTableWidgetItem(text)
                if rec_row:
                    cell.setFont(bold)
                    cell.setForeground(QColor("#7fd18b"))
                t.setItem(r, c, cell)
        t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)

    def _fill_result(self, rec) -> None:
        if rec is None:
            if not self.hinge_button.isChecked():
                self.result.setText("No annulus yet: Measure from labels, or click 3 hinge points.")
            return
        lines = []
        for fam, s in rec["sizing"].items():
            over = "" if s["oversizing_percent"] is None else f" ({s['oversizing_percent']:+.1f} % {s['sized_by']})"
            lines.append(f"{fam}: <b>{s['recommended'] or 'no size fits'}</b>{over}")
        valve, hemo, pvl, ppm = rec.get("valve"), rec.get("hemodynamics"), rec.get("pvl_risk"), rec.get("ppm")
        if valve:
            lines.append(f"Valve: {valve['family']} {valve['size']} mm at {valve['depth_mm']:.1f} mm; predicted mean "
                         f"gradient <b>{hemo['mean_gradient_mmhg']:.1f} mmHg</b> (EOA {valve['eoa_cm2']:.2f} cm²)")
        if ppm:
            lines.append(f"Indexed EOA {ppm['indexed_eoa_cm2_m2']:.2f} cm²/m²: prosthesis–patient mismatch "
                         f"{ppm['ppm']}")
        if pvl:
            colour = RISK_COLOURS.get(pvl["level"], "#d8dee9")
            lines.append(f"Paravalvular-leak indicator: <b style='color:{colour}'>{pvl['level']}</b> "
                         f"({'; '.join(pvl['reasons']) or 'no risk factor'})")
        for w in dict.fromkeys(rec.get("warnings") or []):
            lines.append(f"<span style='color:#ffb454'>⚠ {w}</span>")
        if self.session.case is not None and self.session.case.is_stale("tavr"):
            lines.append("<span style='color:#ffb454'>Out of date (the labels changed): measure again.</span>")
        self.result.setText("<br>".join(lines))

    def _frame_mesh(self, implant_family: str, size: str):
        from surgtwin.core.plan.implants import family

        key = (implant_family, size)
        if key not in self._frames:
            self._frames[key] = family(implant_family).implant(size).mesh()
        return self._frames[key]

    def _draw(self, rec) -> None:
        from surgtwin.render.glyphs import slab, tube
        from surgtwin.render.scene import SceneObject

        for key in [k for k in self.session.overlays if k[0] == "tavr" and not k[1].startswith("hinge")]:
            self.session.set_overlay(key, None)
        if rec is None:
            return
        m = rec["measurement"]
        contour = np.asarray(m["contour_lps"], float)
        v, f = slab(contour, m["normal_lps"], thickness_mm=0.8)
        self.session.set_overlay(("tavr", "annulus"), SceneObject(
            ("tavr", "annulus"), v, f, color=ANNULUS_COLOUR, opacity=0.35, contour=True))
        v, f, _ = tube(contour, 0.5, sides=8, closed=True)
        self.session.set_overlay(("tavr", "ring"), SceneObject(("tavr", "ring"), v, f, color=ANNULUS_COLOUR))
        valve = rec.get("valve")
        if valve:
            mesh = self._frame_mesh(valve["implant_family"], str(valve["size"]))
            self.session.set_overlay(("tavr", "valve"), SceneObject(
                ("tavr", "valve"), mesh.vertices, mesh.faces, color=VALVE_COLOUR, opacity=0.6,
                matrix=np.asarray(valve["matrix_lps"], float), contour=True))

    def focus(self) -> None:
        """Crosshair on the annulus centre, the 3D camera looking down the root, anatomy see-through."""
        rec = self.record()
        if rec is None:
            return
        m = rec["measurement"]
        c = np.asarray(m["centre_lps"], float)
        self.session.set_crosshair(c)
        n = np.asarray(m["normal_lps"], float)
        side = np.cross(n, [0.0, 0.0, 1.0])
        side = side if np.linalg.norm(side) > 1e-3 else np.array([1.0, 0.0, 0.0])
        view = side / np.linalg.norm(side) - 0.35 * n  # from the side, a little from below the annulus
        self.see_through.setChecked(True)
        self.ctx.views.view3d.look_at(c + 10.0 * n, view, distance_mm=170.0, up=n)
