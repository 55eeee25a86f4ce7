"""The Trajectory panel: plan a straight instrument path (entry and target set at the crosshair,
dragged in the MPR views or in 3D), auto-suggest the safest entries with a risk map on the skin,
metrics per critical structure updated live while dragging, the probe's-eye reslices with a depth
slider, and a what-if comparing two trajectories.

A thin view: the step ``trajectory`` plans and suggests, ``surgtwin.services.trajectory.evaluate``
measures a dragged pose (milliseconds, on the case's cached clearance maps), ``update_trajectory``
stores it; what is drawn comes from ``surgtwin.services.trajectory_view``.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QSpinBox,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from surgtwin.ui.oblique_view import ObliqueView
from surgtwin.ui.see_through import SeeThroughToggle
from surgtwin.ui.widgets import note_label, readonly_table, scrolling_label, tab_page

INSTRUMENT_COLOUR = (235, 235, 245)
MARGIN_COLOUR = (120, 200, 255)
FAIL_COLOUR = (255, 90, 90)
CROSSHAIR = "(crosshair)"
#: the entry or target nearest a click within this distance (mm) is the one dragged
GRAB_MM = 25.0


class TrajectoryPanel(QWidget):
    def __init__(self, session, context, parent=None) -> None:
        super().__init__(parent)
        self.session, self.ctx = session, context
        self.setObjectName("trajectoryPanel")
        self.live = None  # (entry, target) being dragged, not yet stored
        self.metrics = None  # TrajectoryMetrics of what is shown
        self._dragging = None  # "entry" | "target"
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        self.choice = QComboBox(self)
        self.choice.setObjectName("trajectoryChoice")
        self.choice.currentIndexChanged.connect(lambda *_: self._on_choice())
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove)
        row.addWidget(QLabel("Trajectory"))
        row.addWidget(self.choice, 1)
        row.addWidget(self.remove_button)
        lay.addLayout(row)
        form = QFormLayout()
        form.setVerticalSpacing(2)
        self.target = QComboBox(self)
        self.target.setObjectName("trajectoryTarget")
        self.region = QComboBox(self)
        self.region.setObjectName("trajectoryRegion")
        self._chosen: dict[str, bool] = {}  # the user picked a target / region: keep it across refills
        for combo in (self.target, self.region):
            combo.activated.connect(lambda *_, c=combo: self._chosen.__setitem__(c.objectName(), True))
        self.instrument = QComboBox(self)
        self.instrument.setObjectName("trajectoryInstrument")
        self.k = QSpinBox(self, minimum=1, maximum=10, value=3)
        form.addRow("Target", self.target)
        form.addRow("Entry region", self.region)
        form.addRow("Instrument", self.instrument)
        form.addRow("Suggestions", self.k)
        lay.addLayout(form)
        row = QHBoxLayout()
        self.suggest_button = QPushButton("Suggest safest entry")
        self.suggest_button.setObjectName("suggestTrajectory")
        self.suggest_button.setToolTip("Score thousands of entries over the entry region against every critical "
                                       "structure's margin; plan the safest, keep the ranked suggestions")
        self.suggest_button.clicked.connect(self.suggest)
        self.manual_button = QPushButton("Entry at crosshair")
        self.manual_button.setObjectName("manualTrajectory")
        self.manual_button.setToolTip("Plan a new trajectory from the crosshair to the target")
        self.manual_button.clicked.connect(self.plan_from_crosshair)
        row.addWidget(self.suggest_button)
        row.addWidget(self.manual_button)
        lay.addLayout(row)
        prow = QHBoxLayout()
        self.pedicle = QComboBox(self)
        self.pedicle.setObjectName("trajectoryPedicle")
        self.pedicle.addItems([f"{lv} {side}" for lv in ("L1", "L2", "L3", "L4", "L5") for side in ("left", "right")])
        self.pedicle_button = QPushButton("Pedicle screw path")
        self.pedicle_button.setObjectName("pedicleTrajectory")
        self.pedicle_button.setToolTip("Entry and target on the pedicle axis of this vertebra and side "
                                       "(needs a vertebrae label)")
        self.pedicle_button.clicked.connect(self.plan_pedicle)
        prow.addWidget(self.pedicle, 1)
        prow.addWidget(self.pedicle_button)
        lay.addLayout(prow)
        self.drag_button = QPushButton("Drag entry / target in the views")
        self.drag_button.setObjectName("dragTrajectory")
        self.drag_button.setCheckable(True)
        self.drag_button.setToolTip("Press near the entry or the target in an MPR view and drag it; in 3D drag the "
                                    "spheres. The metrics follow live; the plan is stored on release.")
        self.drag_button.toggled.connect(self._dragging_mode)
        lay.addWidget(self.drag_button)
        self.tabs = QTabWidget(self)
        lay.addWidget(self.tabs, 1)
        # metrics tab
        mt, ml = tab_page(self.tabs, "Metrics")
        self.table = readonly_table(mt, "trajectoryTable", ["Structure", "Clearance", "Margin", ""])
        ml.addWidget(self.table, 2)
        ml.addWidget(QLabel("Suggested entries (best first)"))
        self.suggestions = QListWidget(mt)
        self.suggestions.setObjectName("trajectorySuggestions")
        self.suggestions.itemActivated.connect(self._use_suggestion)
        self.suggestions.itemClicked.connect(self._use_suggestion)
        ml.addWidget(self.suggestions, 1)
        # probe's-eye tab
        pe, pl = tab_page(self.tabs, "Probe's eye")
        views = QHBoxLayout()
        self.across = ObliqueView(session, pe, half_size_mm=20.0, spacing_mm=0.25)
        self.across.setObjectName("probeAcross")
        self.along = ObliqueView(session, pe, half_size_mm=40.0, spacing_mm=0.4)
        self.along.setObjectName("probeAlong")
        self.across.setMinimumSize(150, 150)
        self.along.setMinimumSize(150, 150)
        views.addWidget(self.across)
        views.addWidget(self.along)
        pl.addLayout(views, 1)
        drow = QHBoxLayout()
        drow.addWidget(QLabel("Depth"))
        self.depth = QSlider(Qt.Orientation.Horizontal, pe)
        self.depth.setObjectName("probeDepth")
        self.depth.setRange(0, 1000)
        self.depth.valueChanged.connect(lambda *_: self._probe())
        drow.addWidget(self.depth, 1)
        self.depth_label = QLabel("")
        drow.addWidget(self.depth_label)
        pl.addLayout(drow)
        # what-if tab
        wi, wl = tab_page(self.tabs, "What if")
        crow = QHBoxLayout()
        crow.addWidget(QLabel("Compare with"))
        self.other = QComboBox(wi)
        self.other.setObjectName("trajectoryOther")
        self.other.currentIndexChanged.connect(lambda *_: self._compare())
        crow.addWidget(self.other, 1)
        wl.addLayout(crow)
        self.compare_table = readonly_table(wi, "trajectoryCompare", columns=3)
        wl.addWidget(self.compare_table, 1)
        self.summary, scroll = scrolling_label(self, "trajectorySummary", max_height=90)
        lay.addWidget(scroll)
        self.see_through = SeeThroughToggle(session, self, focus={"tumour": 1.0, "ventricles": 0.5, "vessels": 0.6,
                                                                 "brain_stem": 0.5, "spinal_canal": 0.5}, others=0.08)
        self.see_through.setObjectName("trajectorySeeThrough")
        lay.addWidget(self.see_through)
        lay.addWidget(note_label(self, "Planning aid: distances from the label map with the margins shown; "
                                       "not for clinical use."))
        session.items_changed.connect(lambda key: self._on_item(key))
        session.volume_changed.connect(lambda *_: self.refresh())
        session.labels_changed.connect(lambda *_: self._fill_targets())
        self.refresh()

    # -- choices --------------------------------------------------------------------------------
    def records(self) -> list[dict]:
        from surgtwin.services.trajectory import trajectories

        return trajectories(self.session.case) if self.session.case is not None else []

    def selected(self) -> dict | None:
        tid = self.choice.currentData()
        return next((r for r in self.records() if r["id"] == tid), None)

    def _fill_targets(self) -> None:
        from surgtwin.core.plan.trajectory import instruments

        keep_t, keep_r = self.target.currentText(), self.region.currentText()
        self.target.clear()
        self.region.clear()
        lab = self.session.labels
        names = [x.name for x in lab.labels] if lab is not None else []
        self.target.addItems([*names, CROSSHAIR])
        self.region.addItems([n for n in ("skin", "skull", "vertebrae") if n in names or n == "skin"])
        for w in (self.pedicle, self.pedicle_button):
            w.setEnabled("vertebrae" in names)
        for combo, keep, default in ((self.target, keep_t, "tumour"), (self.region, keep_r, "skin")):
            i = combo.findText(keep) if keep and self._chosen.get(combo.objectName()) else combo.findText(default)
            combo.setCurrentIndex(max(0, i))
        if self.instrument.count() == 0:
            for name, ins in instruments().items():
                self.instrument.addItem(f"{ins.label} ({ins.diameter_mm:g} mm)", name)

    def refresh(self) -> None:
        self._fill_targets()
        keep = self.choice.currentData()
        recs = self.records()
        for combo in (self.choice, self.other):
            combo.blockSignals(True)
            combo.clear()
            for r in recs:
                combo.addItem(f"{r['id']}: {r['name']} ({r['verdict']})", r["id"])
            combo.blockSignals(False)
        self.choice.setCurrentIndex(max(0, self.choice.findData(keep)))
        self.other.setCurrentIndex(1 if len(recs) > 1 and self.other.currentIndex() == self.choice.currentIndex()
                                   else self.other.currentIndex())
        self._on_choice()

    def _on_item(self, key: str) -> None:
        if key == "trajectories" and self._dragging is None:
            self.refresh()

    def _on_choice(self) -> None:
        self.live = None
        rec = self.selected()
        self.remove_button.setEnabled(rec is not None)
        if rec is not None:
            from surgtwin.core.plan.trajectory import TrajectoryMetrics

            self.metrics = TrajectoryMetrics.from_json(rec["metrics"])
        else:
            self.metrics = None
        self._show()
        self._fill_suggestions(rec)
        self._compare()
        if self.drag_button.isChecked():
            self._attach_3d()

    # -- planning -------------------------------------------------------------------------------
    def _common(self) -> dict:
        opts = {"instrument": self.instrument.currentData()}
        t = self.target.currentText()
        opts["target"] = [float(v) for v in self.session.crosshair_lps] if t == CROSSHAIR else t
        return opts

    def suggest(self) -> None:
        if self.session.labels is None:
            self.summary.setText("Open a case with a label map first.")
            return
        opts = {**self._common(), "entry_region": self.region.currentText(), "suggest": self.k.value()}
        self._run(opts, "Trajectory: suggesting")

    def plan_from_crosshair(self) -> None:
        if self.session.labels is None:
            self.summary.setText("Open a case with a label map first.")
            return
        opts = {**self._common(), "entry": [float(v) for v in self.session.crosshair_lps]}
        self._run(opts, "Trajectory: planning")

    def plan_pedicle(self) -> None:
        if self.session.labels is None:
            self.summary.setText("Open a case with a vertebrae label first.")
            return
        level, side = self.pedicle.currentText().split()
        self._run({"pedicle": f"{level}:{side}"}, "Trajectory: pedicle path")

    def _run(self, opts: dict, title: str) -> None:
        job = self.ctx.prepare_step("trajectory", **opts)
        if job is not None:
            self.ctx.jobs.run(title, job.compute, on_done=self._done)

    def _done(self, out) -> None:
        before = {r["id"] for r in self.records()}
        out.apply_to(self.session.case)
        new = [r["id"] for r in self.records() if r["id"] not in before]
        self.refresh()
        if new:
            self.choice.setCurrentIndex(self.choice.findData(new[-1]))
        self.see_through.setChecked(True)
        self.focus()

    def remove(self) -> None:
        from surgtwin.services.trajectory import remove_trajectory

        rec = self.selected()
        if rec is not None:
            remove_trajectory(self.session.case, rec["id"])
            self.refresh()

    def _use_suggestion(self, item: QListWidgetItem) -> None:
        """Move the trajectory's entry to a ranked suggestion."""
        from surgtwin.services.trajectory import update_trajectory

        rec = self.selected()
        if rec is None or item is None:
            return
        entry = item.data(Qt.ItemDataRole.UserRole)
        update_trajectory(self.session.case, rec["id"], entry=entry)
        self.refresh()

    # -- dragging -------------------------------------------------------------------------------
    def _dragging_mode(self, on: bool) -> None:
        tools = self.ctx.tools
        if on:
            tools.pick_points(self._press, on_drag=self._drag, on_release=self._release)
            self._attach_3d()
        else:
            if tools.picker == self._press:
                tools.stop_picking()
            self.ctx.views.view3d.detach_points()

    def _ends(self):
        if self.live is not None:
            return self.live
        rec = self.selected()
        return None if rec is None else (np.asarray(rec["entry_lps"], float), np.asarray(rec["target_lps"], float))

    def _press(self, lps) -> None:
        ends = self._ends()
        if ends is None:
            return
        d = [float(np.linalg.norm(lps - p)) for p in ends]
        i = int(np.argmin(d))
        if d[i] > GRAB_MM:
            self._dragging = None
            return
        self._dragging = ("entry", "target")[i]
        self._drag(lps)

    def _drag(self, lps) -> None:
        if self._dragging is None:
            return
        entry, target = self._ends()
        if self._dragging == "entry":
            entry = np.asarray(lps, float)
        else:
            target = np.asarray(lps, float)
        self.move(entry, target)

    def _release(self) -> None:
        if self._dragging is not None:
            self._dragging = None
            self.commit()

    def _attach_3d(self) -> None:
        ends = self._ends()
        if ends is None:
            self.ctx.views.view3d.detach_points()
            return
        self.ctx.views.view3d.attach_points(np.vstack(ends), self._moved_3d, colors=["#50dcff", "#ff6bd0"])

    def _moved_3d(self, index: int, lps) -> None:
        entry, target = self._ends()
        self.move(lps if index == 0 else entry, lps if index == 1 else target)
        self.commit()

    def move(self, entry, target) -> None:
        """Show the trajectory with ``entry``/``target`` moved (metrics live; not stored)."""
        from surgtwin.services.trajectory import evaluate

        rec = self.selected()
        if rec is None:
            return
        self.live = (np.asarray(entry, float), np.asarray(target, float))
        self.metrics = evaluate(self.session.case, self.live[0], self.live[1], rec["instrument"], rec["margins_mm"],
                                target_structure=rec.get("target_structure"))
        self._show()

    def commit(self) -> None:
        """Store the dragged trajectory in the case."""
        from surgtwin.services.trajectory import update_trajectory

        rec = self.selected()
        if rec is None or self.live is None:
            return
        entry, target = self.live
        update_trajectory(self.session.case, rec["id"], entry=entry, target=target)
        self.live = None
        self.refresh()

    # -- showing --------------------------------------------------------------------------------
    def _show(self) -> None:
        self._fill_table()
        self._draw()
        self._probe()

    def _fill_table(self) -> None:
        m = self.metrics
        t = self.table
        if m is None:
            t.setRowCount(0)
            self.summary.setText("No trajectory yet: Suggest safest entry, or put the crosshair on an entry "
                                 "point and press Entry at crosshair.")
            return
        rows = sorted(m.clearances, key=lambda c: c.min_distance_mm - c.margin_mm)
        t.setRowCount(len(rows))
        for r, c in enumerate(rows):
            cells = [c.structure, f"{c.min_distance_mm:.1f} mm", f"{c.margin_mm:g} mm",
                     "ok" if c.passed else ("ENTERS" if c.entered else "too close")]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if not c.passed:
                    item.setForeground(QColor("#ff6b6b"))
                t.setItem(r, col, item)
        t.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        colour = "#7fd18b" if m.passed else "#ff6b6b"
        angle = m.entry_angle_deg
        lines = [f"<b style='color:{colour}'>{m.verdict.upper()}</b> · length {m.length_mm:.1f} mm · "
                 f"entry angle {'–' if angle is None else f'{angle:.0f}°'} · "
                 f"{self.instrument_label()}"]
        crossed = [c.structure for c in m.crossed]
        if crossed:
            lines.append("Crosses: " + " → ".join(crossed))
        lines += [f"<span style='color:#ff6b6b'>{r}</span>" for r in m.reasons]
        if self.live is not None:
            lines.append("<i>moved: stored on release</i>")
        self.summary.setText("<br>".join(lines))

    def instrument_label(self) -> str:
        rec = self.selected()
        ins = (rec or {}).get("instrument") or {}
        return f"{ins.get('label', '')} ⌀{ins.get('diameter_mm', 0):g} mm"

    def _fill_suggestions(self, rec) -> None:
        self.suggestions.clear()
        sug = (rec or {}).get("suggestion") or {}
        for s in sug.get("ranked") or []:
            m = s["metrics"]
            worst = min((c["min_distance_mm"] - c["margin_mm"] for c in m["clearances"]), default=0.0)
            item = QListWidgetItem(f"#{s['rank']}  risk {s['risk']:.2f} · {m['length_mm']:.0f} mm · "
                                   f"worst clearance over margin {worst:+.1f} mm · {m['verdict']}")
            item.setData(Qt.ItemDataRole.UserRole, m["entry_lps"])
            self.suggestions.addItem(item)

    def _probe(self) -> None:
        from surgtwin.services.trajectory_view import probe_planes

        ends = self._ends()
        if ends is None or self.session.volume is None:
            self.across.clear()
            self.along.clear()
            self.depth_label.setText("")
            return
        entry, target = ends
        length = float(np.linalg.norm(target - entry))
        depth = length * self.depth.value() / 1000.0
        (c1, u1, v1), (c2, u2, v2) = probe_planes(entry, target, depth)
        ring = c1 + np.array([np.cos(a) * u1 + np.sin(a) * v1 for a in np.linspace(0, 2 * np.pi, 40)]) * max(
            float(self.metrics.diameter_mm) / 2 if self.metrics else 1.0, 0.5)
        self.across.set_plane(c1, u1, v1, outlines=[(ring, "#ffd84d", True)],
                              caption=f"across the path at {depth:.0f} mm")
        self.along.set_plane(c2, u2, v2, lines=[(entry, target, "#ffd84d", "")],
                             outlines=[(np.vstack([c2 - 3 * u2, c2 + 3 * u2]), "#ff6bd0", False)],
                             caption=f"along the path, {length - depth:.0f} mm to target")
        self.depth_label.setText(f"{depth:.0f} / {length:.0f} mm")

    def _draw(self) -> None:
        from surgtwin.render.scene import SceneObject
        from surgtwin.services.trajectory_view import instrument_matrix, unit_instrument

        objs = {}
        ends = self._ends()
        if ends is not None and self.metrics is not None:
            entry, target = ends
            m = self.metrics
            r = float(m.diameter_mm) / 2
            margin = max((c.margin_mm for c in m.clearances), default=0.0)
            v, f = unit_instrument()
            colour = INSTRUMENT_COLOUR if m.passed else FAIL_COLOUR
            objs["instrument"] = SceneObject(("trajectory", "instrument"), v, f, color=colour, contour=True,
                                             matrix=instrument_matrix(entry, target, max(r, 0.4)))
            objs["margin"] = SceneObject(("trajectory", "margin"), v, f, color=MARGIN_COLOUR, opacity=0.18,
                                         matrix=instrument_matrix(entry, target, r + margin))
            for name, p, c in (("entry", entry, (80, 220, 255)), ("target", target, (255, 107, 208))):
                mat = np.eye(4)
                mat[:3, 3] = p
                objs[name] = SceneObject(("trajectory", name), *self._marker(), color=c, contour=True, matrix=mat)
            risk = self._risk_object()
            if risk is not None:
                objs["risk"] = risk
        for key in [k for k in self.session.overlays if k[0] == "trajectory" and k[1] not in objs]:
            self.session.set_overlay(key, None)
        for name, obj in objs.items():
            self.session.set_overlay(("trajectory", name), obj)

    def _marker(self):
        """One sphere mesh shared by the entry and target markers (moved by their matrix)."""
        from surgtwin.render.glyphs import sphere

        if getattr(self, "_sphere", None) is None:
            self._sphere = sphere((0.0, 0.0, 0.0), 2.0)
        return self._sphere

    def _risk_object(self):
        from surgtwin.render.scene import SceneObject
        from surgtwin.services.trajectory_view import risk_overlay

        rec = self.selected()
        sug = (rec or {}).get("suggestion") or {}
        case = self.session.case
        item = case.item(sug["risk_item"]) if sug.get("risk_item") and case is not None else None
        surface = self.session.meshes.get(sug.get("region") or "skin")
        if item is None or surface is None:
            return None
        key = (rec["id"], id(item.value), id(surface))
        if getattr(self, "_risk_cache", (None,))[0] != key:
            out = risk_overlay(surface.vertices, surface.faces, surface.normals, item.value["entries_lps"],
                               item.value["risk"])
            obj = None
            if out is not None:
                v, f, risk = out
                obj = SceneObject(("trajectory", "risk"), v, f, scalars=risk, cmap="RdYlGn_r", clim=(0.0, 1.0),
                                  scalar_title="Entry risk", opacity=0.55)
            self._risk_cache = (key, obj)
        return self._risk_cache[1]

    def focus(self) -> None:
        """Crosshair on the target; the 3D camera looking down the path from outside, a little aside."""
        ends = self._ends()
        if ends is None:
            return
        entry, target = ends
        self.session.set_crosshair(target)
        out = (entry - target) / max(float(np.linalg.norm(entry - target)), 1e-9)
        side = np.cross(out, (0.0, 0.0, 1.0))
        side = side / np.linalg.norm(side) if np.linalg.norm(side) > 1e-3 else np.array([1.0, 0.0, 0.0])
        self.ctx.views.view3d.look_at(target, out + 0.8 * side + 0.3 * np.array([0.0, 0.0, 1.0]), distance_mm=260.0)

    def _compare(self) -> None:
        from surgtwin.services.trajectory import what_if

        a, b = self.choice.currentData(), self.other.currentData()
        t = self.compare_table
        if a is None or b is None or a == b or self.session.case is None:
            t.setRowCount(0)
            return
        res = what_if(self.session.case, a, b)
        t.setColumnCount(4)
        t.setHorizontalHeaderLabels(["", str(a), str(b), "better"])
        t.setRowCount(len(res["rows"]))
        for r, row in enumerate(res["rows"]):
            for c, text in enumerate(row):
                t.setItem(r, c, QTableWidgetItem(str(text)))
        t.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
