"""The Implants panel: choose a family and size, place it on the anatomy, move it (3D handle, nudge
buttons, Alt+arrow keys) and read the placement checks as they update.

A thin view: placing runs the pipeline's ``implant`` step; a pose change calls
``surgtwin.services.implants.update_pose`` (checks in a few ms) and the case's ``implants`` item is
the truth. Implants are drawn as overlays: in 3D and as outlines in the three MPR views.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from surgtwin.core.errors import SurgtwinError

IMPLANT_COLOR = (176, 190, 214)
SELECTED_COLOR = (255, 196, 64)
LEVELS = ["L5", "L4", "L3", "L2", "L1", "T12", "T11"]
#: nudge buttons: (label, translation LPS unit vector, local rotation axis)
MOVES = [("← R", (-1, 0, 0), None), ("L →", (1, 0, 0), None), ("A ↑", (0, -1, 0), None),
         ("P ↓", (0, 1, 0), None), ("S ⇡", (0, 0, 1), None), ("I ⇣", (0, 0, -1), None),
         ("tilt +x", None, (1, 0, 0)), ("tilt −x", None, (-1, 0, 0)), ("tilt +y", None, (0, 1, 0)),
         ("tilt −y", None, (0, -1, 0)), ("roll +", None, (0, 0, 1)), ("roll −", None, (0, 0, -1))]
#: keyboard nudges (while an implant is selected): Alt+arrows/PgUp/PgDn move, with Shift they rotate
KEYS = {"Alt+Left": ((-1, 0, 0), None), "Alt+Right": ((1, 0, 0), None), "Alt+Up": ((0, 0, 1), None),
        "Alt+Down": ((0, 0, -1), None), "Alt+PgUp": ((0, -1, 0), None), "Alt+PgDown": ((0, 1, 0), None),
        "Alt+Shift+Left": (None, (0, -1, 0)), "Alt+Shift+Right": (None, (0, 1, 0)),
        "Alt+Shift+Up": (None, (1, 0, 0)), "Alt+Shift+Down": (None, (-1, 0, 0)),
        "Alt+Shift+PgUp": (None, (0, 0, 1)), "Alt+Shift+PgDown": (None, (0, 0, -1))}


class ImplantPanel(QWidget):
    def __init__(self, session, context, parent=None) -> None:
        super().__init__(parent)
        from surgtwin.core.plan import implants

        self.session, self.ctx = session, context
        self.setObjectName("implantPanel")
        self.planner = None  # services.implants.ImplantPlanner of the current case (made on first use)
        self._meshes: dict = {}  # (family, size) -> local StructureMesh (one object per geometry)
        self.last_checks = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        form = QFormLayout()
        form.setVerticalSpacing(2)
        self.family = QComboBox(self)
        self.family.setObjectName("implantFamily")
        self.family.addItems(implants.families())
        self.size = QComboBox(self)
        self.size.setObjectName("implantSize")
        self.target = QComboBox(self)
        self.target.setObjectName("implantTarget")
        self.side = QComboBox(self)
        self.side.addItems(["left", "right"])
        form.addRow("Family", self.family)
        form.addRow("Size", self.size)
        form.addRow("Target", self.target)
        form.addRow("Side", self.side)
        lay.addLayout(form)
        self.place_button = QPushButton("Place on the anatomy")
        self.place_button.setObjectName("placeImplant")
        self.place_button.setToolTip("Propose a start pose from the labels (femoral canal axis, pedicle axis) "
                                     "or at the crosshair, and check it")
        self.place_button.clicked.connect(self.place)
        lay.addWidget(self.place_button)
        self.list = QListWidget(self)
        self.list.setObjectName("implantList")
        self.list.setMaximumHeight(46)
        self.list.currentItemChanged.connect(lambda *_: self._on_select())
        lay.addWidget(self.list)
        steps = QHBoxLayout()
        self.step_mm = QDoubleSpinBox(self, decimals=1, minimum=0.1, maximum=20.0, value=1.0, suffix=" mm")
        self.step_deg = QDoubleSpinBox(self, decimals=1, minimum=0.1, maximum=45.0, value=2.0, suffix=" °")
        steps.addWidget(QLabel("Step"))
        steps.addWidget(self.step_mm)
        steps.addWidget(self.step_deg)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        steps.addWidget(self.remove_button)
        lay.addLayout(steps)
        grid = QGridLayout()
        grid.setSpacing(2)
        self.move_buttons = []
        for n, (text, t, r) in enumerate(MOVES):
            b = QPushButton(text, self)
            b.setToolTip("move by the mm step" if t else "rotate about the implant's own axis by the degree step")
            b.clicked.connect(lambda _=False, t=t, r=r: self.nudge(t, r))
            grid.addWidget(b, n // 4, n % 4)
            self.move_buttons.append(b)
        lay.addLayout(grid)
        self.checks = QTableWidget(0, 3, self)
        self.checks.setObjectName("implantChecks")
        self.checks.setHorizontalHeaderLabels(("Check", "Value (limit)", ""))
        self.checks.verticalHeader().hide()
        self.checks.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.checks.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        h = self.checks.horizontalHeader()
        h.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        h.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        h.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.checks.setWordWrap(True)
        self.checks.setMinimumHeight(130)
        lay.addWidget(self.checks, 1)
        self.status = QLabel("")
        self.status.setObjectName("implantStatus")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        self.shortcuts = []
        for keys, (t, r) in KEYS.items():
            sc = QShortcut(QKeySequence(keys), context)
            sc.setContext(Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(lambda t=t, r=r: self.nudge(t, r))
            self.shortcuts.append(sc)
        self.family.currentTextChanged.connect(self._on_family)
        session.items_changed.connect(lambda key: key in ("implants", "labels") and self.refresh())
        session.volume_changed.connect(self._on_case)
        self._on_family(self.family.currentText())
        self._on_case()

    # -- choices --------------------------------------------------------------------------------
    def _on_family(self, name: str) -> None:
        from surgtwin.core.plan import implants

        self.size.clear()
        self.size.addItems(implants.family(name).size_labels())
        self.target.clear()
        if name == "hip-stem":
            self.target.addItems(["femur"])
        elif name == "pedicle-screw":
            self.target.addItems(LEVELS)
            self.target.setCurrentText("L4")
        else:
            self.target.addItems(["crosshair"])
        self.side.setEnabled(name in ("hip-stem", "pedicle-screw"))

    def _on_case(self, *_) -> None:
        from surgtwin.services.implants import ImplantPlanner

        case = self.session.case
        self.planner = ImplantPlanner(case) if case is not None else None
        self.refresh()

    def place_options(self) -> dict:
        """Options of the ``implant`` step for the current choices."""
        opts = {"family": self.family.currentText(), "size": self.size.currentText()}
        target = self.target.currentText()
        if target == "femur":
            opts.update(pose="auto", femur=self.side.currentText())
        elif target in LEVELS:
            opts.update(pose="auto", vertebra=target, side=self.side.currentText())
        else:  # at the crosshair, inserted along the view's superior-inferior axis
            from surgtwin.core.plan.pose import Pose

            opts["pose"] = Pose.from_axis(self.session.crosshair_lps, (0.0, 0.0, -1.0)).to_json()
        return opts

    def place(self) -> None:
        if self.session.case is None or self.session.labels is None:
            self.status.setText("Open a case with labels first (segment it, or open a sample case).")
            return
        job = self.ctx.prepare_step("implant", **self.place_options())
        if job is not None:
            self.ctx.jobs.run("Placing the implant", job.compute, on_done=self._placed)

    def _placed(self, out) -> None:
        out.apply_to(self.session.case)
        if self.list.count():
            self.list.setCurrentRow(self.list.count() - 1)

    # -- the placed implants --------------------------------------------------------------------
    def selected_id(self) -> str | None:
        it = self.list.currentItem()
        return None if it is None else it.data(Qt.ItemDataRole.UserRole)

    def _local_mesh(self, implant):
        key = (implant.family, implant.size, id(implant) if implant.family == "custom" else None)
        if key not in self._meshes:
            self._meshes[key] = implant.mesh()
        return self._meshes[key]

    def refresh(self) -> None:
        """List the case's implants and draw them (keeps the selection)."""
        from surgtwin.render.scene import SceneObject
        from surgtwin.services.implants import placements

        case = self.session.case
        placed = placements(case) if case is not None else []
        keep = self.selected_id()
        self.list.blockSignals(True)
        self.list.clear()
        for p in placed:
            item = QListWidgetItem(f"{p.id}: {p.name or p.implant.family} {p.implant.size}")
            item.setData(Qt.ItemDataRole.UserRole, p.id)
            self.list.addItem(item)
            if p.id == keep:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        ids = {p.id for p in placed}
        for key in [k for k in self.session.overlays if k[0] == "implant" and k[1] not in ids]:
            self.session.set_overlay(key, None)
        for p in placed:
            mesh = self._local_mesh(p.implant)
            color = SELECTED_COLOR if p.id == self.selected_id() else IMPLANT_COLOR
            self.session.set_overlay(("implant", p.id), SceneObject(
                ("implant", p.id), mesh.vertices, mesh.faces, color=color, matrix=p.pose.matrix, contour=True))
        self._on_select(refresh=False)

    def _on_select(self, refresh: bool = True) -> None:
        pid = self.selected_id()
        view3d = self.ctx.views.view3d
        for b in (*self.move_buttons, self.remove_button):
            b.setEnabled(pid is not None)
        if pid is None:
            view3d.detach_handle()
            self._show_checks(None)
            return
        if refresh:
            self.refresh()  # the selected implant drawn highlighted
            return
        view3d.attach_handle(("implant", pid), lambda m: self.set_pose(pid, m))
        rec = next((r for r in (self.session.case.item("implants").value or []) if r.get("id") == pid), None)
        self._show_checks(rec.get("checks") if rec else None)

    def _show_checks(self, checks) -> None:
        """``checks``: a ``PlacementChecks`` or its JSON from the case."""
        from surgtwin.core.plan.checks import PlacementChecks

        if isinstance(checks, dict):
            checks = PlacementChecks.from_json(checks)
        rows = [] if checks is None else checks.rows()
        self.checks.setRowCount(len(rows))
        for r, (name, value, limit, verdict) in enumerate(rows):
            text = value if limit in ("-", "") else f"{value} ({limit})"
            for c, t in enumerate((name.replace("distance to ", "→ "), text, verdict)):
                cell = QTableWidgetItem(t)
                cell.setToolTip(f"{name}: {value}; limit {limit}; {verdict}")
                if c == 2:
                    cell.setForeground(QColor({"PASS": "#7fd88f", "WARN": "#ffb454"}.get(verdict, "#ff6b6b")))
                self.checks.setItem(r, c, cell)
        self.checks.resizeRowsToContents()
        if checks is None:
            self.status.setText("Place an implant, then move it with the 3D handle, the buttons or "
                                "Alt+arrows (Shift rotates).")
        else:
            self.status.setText("All checks pass." if checks.passed else "<b>A check fails</b> — see the table.")

    # -- moving ---------------------------------------------------------------------------------
    def nudge(self, translate=None, rotate=None) -> None:
        """Move the selected implant by the mm step along ``translate`` (LPS) or rotate it by the
        degree step about its own axis ``rotate``."""
        pid = self.selected_id()
        if pid is None or self.session.case is None:
            return
        placed = self.planner.placed(self.session.case, pid)
        t = np.asarray(translate or (0, 0, 0), float) * self.step_mm.value()
        r = np.asarray(rotate or (0, 0, 0), float) * self.step_deg.value()
        self.set_pose(pid, placed.pose.moved(translate_lps=t, rotate_deg_local=r))

    def set_pose(self, pid: str, pose) -> None:
        """A new pose for implant ``pid`` (a ``Pose`` or a 4x4 matrix): checked and stored."""
        from surgtwin.core.plan.pose import Pose
        from surgtwin.services.implants import update_pose

        if not isinstance(pose, Pose):
            pose = Pose(np.asarray(pose, float))
        try:
            self.last_checks = update_pose(self.session.case, pid, pose, planner=self.planner, commit=True)
        except SurgtwinError as exc:
            self.status.setText(f"Not moved: {exc.reason}")
            return
        self._show_checks(self.last_checks)

    def remove_selected(self) -> None:
        from surgtwin.services.implants import remove_implant

        pid = self.selected_id()
        if pid is not None:
            remove_implant(self.session.case, pid)
