"""The Rehearsal panel: drive the instrument along a planned trajectory with the mouse and keyboard,
with live readouts (depth, distance to target, clearance to each critical structure, deviation from
the plan), collision events (the structure flashes, the event is logged), recording into the case,
the score with its breakdown, replay on a timeline, and a trainee's progress across attempts.

A thin view: the engine is ``surgtwin.core.plan.rehearsal`` (through ``surgtwin.services.rehearsal``:
start, finish, replay, progress); the instrument is one scene object moved by its matrix.

Keys (with the drive pad or the panel focused): W / S or Page Up / Page Down advance / retract 1 mm
(Shift: 5 mm); arrow keys pivot 1° about the entry (Shift: 3°). Mouse on the drive pad: wheel
advances/retracts, dragging pivots.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSlider,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from surgtwin.ui.widgets import note_label, readonly_table, scrolling_label, tab_page

INSTRUMENT_COLOUR = (235, 235, 245)
PLAN_COLOUR = (80, 220, 255)
FLASH_COLOUR = (255, 40, 40)
STATE_COLOURS = {0: "#7fd18b", 1: "#ffb454", 2: "#ff6b6b"}
FLASH_MS = 450
#: level of detail while rehearsing: the 3D view's structures decimated to about this many triangles
#: in all (software OpenGL draws the head's 400k display triangles at ~7 frames/s, 45k at ~30; the
#: issue asks >= 20 with everything else in the frame); the full display meshes come back after
REHEARSAL_TRIANGLES = 40_000


class DrivePad(QWidget):
    """Mouse drive: the wheel advances/retracts, a drag pivots (degrees per pixel)."""

    advance = Signal(float)  # mm (negative: retract)
    pivot = Signal(float, float)  # degrees about the two pivot axes

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("drivePad")
        self.setMinimumHeight(70)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setToolTip("Wheel: advance / retract (1 mm a notch). Drag: pivot about the entry. Keys: W/S, arrows.")
        self._last: QPointF | None = None

    def wheelEvent(self, e) -> None:  # noqa: N802
        steps = e.angleDelta().y() / 120.0
        if steps:
            self.advance.emit(float(steps) * (5.0 if e.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1.0))

    def mousePressEvent(self, e) -> None:  # noqa: N802
        self._last = e.position()
        self.setFocus()

    def mouseMoveEvent(self, e) -> None:  # noqa: N802
        if self._last is None:
            return
        d = e.position() - self._last
        self._last = e.position()
        self.pivot.emit(0.2 * d.x(), -0.2 * d.y())

    def mouseReleaseEvent(self, _e) -> None:  # noqa: N802
        self._last = None

    def keyPressEvent(self, e) -> None:  # noqa: N802
        self.parent().keyPressEvent(e) if self.parent() is not None else None

    def paintEvent(self, _e) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#1b1f27"))
        p.setPen(QPen(QColor("#3a4252"), 1, Qt.PenStyle.DashLine))
        p.drawRect(self.rect().adjusted(0, 0, -1, -1))
        p.setPen(QColor("#8891a5"))
        p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                   "drive pad — wheel: advance/retract · drag: pivot · W/S, arrows")


class RehearsalPanel(QWidget):
    def __init__(self, session, context, parent=None) -> None:
        super().__init__(parent)
        self.session, self.ctx = session, context
        self.setObjectName("rehearsalPanel")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.run = None  # services.rehearsal.RehearsalRun in progress
        self.readouts = None
        self.replayer = None
        self._flash: dict[int, tuple] = {}  # label value -> its colour before the flash
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        form = QFormLayout()
        form.setVerticalSpacing(2)
        self.trajectory = QComboBox(self)
        self.trajectory.setObjectName("rehearsalTrajectory")
        self.trainee = QLineEdit(self)
        self.trainee.setObjectName("rehearsalTrainee")
        self.trainee.setPlaceholderText("resident's name (for the progress view)")
        form.addRow("Trajectory", self.trajectory)
        form.addRow("Trainee", self.trainee)
        lay.addLayout(form)
        row = QHBoxLayout()
        self.start_button = QPushButton("Start rehearsal")
        self.start_button.setObjectName("startRehearsal")
        self.start_button.clicked.connect(self.start)
        self.finish_button = QPushButton("Finish && score")
        self.finish_button.setObjectName("finishRehearsal")
        self.finish_button.clicked.connect(self.finish)
        row.addWidget(self.start_button)
        row.addWidget(self.finish_button)
        lay.addLayout(row)
        self.tabs = QTabWidget(self)
        lay.addWidget(self.tabs, 1)
        # -- drive tab
        dv, dl = tab_page(self.tabs, "Drive")
        self.pad = DrivePad(dv)
        self.pad.advance.connect(lambda mm: self.command("advance", mm))
        self.pad.pivot.connect(lambda a, b: self.command("pivot", a, b))
        dl.addWidget(self.pad)
        grid = QGridLayout()
        self.values: dict[str, QLabel] = {}
        for n, (key, title) in enumerate((("depth_mm", "Depth"), ("tip_to_target_mm", "Tip → target"),
                                          ("entry_error_mm", "Entry error"), ("target_error_mm", "Target error"),
                                          ("angle_deg", "Angle to plan"), ("elapsed_ms", "Update"))):
            lab = QLabel("–")
            lab.setObjectName(f"readout_{key}")
            lab.setStyleSheet("font-weight: bold;")
            grid.addWidget(QLabel(title), n // 2, 2 * (n % 2))
            grid.addWidget(lab, n // 2, 2 * (n % 2) + 1)
            self.values[key] = lab
        dl.addLayout(grid)
        self.distances = readonly_table(dv, "rehearsalDistances", ["Structure", "Clearance", "Margin"])
        dl.addWidget(self.distances, 1)
        dl.addWidget(QLabel("Events"))
        self.events = QListWidget(dv)
        self.events.setObjectName("rehearsalEvents")
        dl.addWidget(self.events, 1)
        # -- replay tab
        rp, rl = tab_page(self.tabs, "Replay")
        prow = QHBoxLayout()
        self.recorded = QComboBox(rp)
        self.recorded.setObjectName("rehearsalRecorded")
        self.recorded.currentIndexChanged.connect(lambda *_: self._load_replay())
        self.play_button = QPushButton("Play")
        self.play_button.setObjectName("playRehearsal")
        self.play_button.setCheckable(True)
        self.play_button.toggled.connect(self._play)
        prow.addWidget(self.recorded, 1)
        prow.addWidget(self.play_button)
        rl.addLayout(prow)
        self.timeline = QSlider(Qt.Orientation.Horizontal, rp)
        self.timeline.setObjectName("rehearsalTimeline")
        self.timeline.setRange(0, 1000)
        self.timeline.valueChanged.connect(lambda *_: self._seek())
        rl.addWidget(self.timeline)
        self.time_label = QLabel("")
        rl.addWidget(self.time_label)
        self.replay_events = QListWidget(rp)
        self.replay_events.setObjectName("replayEvents")
        rl.addWidget(self.replay_events, 1)
        # -- progress tab
        pg, gl = tab_page(self.tabs, "Progress")
        self.progress = readonly_table(pg, "rehearsalProgress", ["#", "Score", "Accuracy", "Safety", "Time", "Smooth"])
        gl.addWidget(self.progress, 1)
        self.trend = QLabel("")
        self.trend.setObjectName("rehearsalTrend")
        self.trend.setWordWrap(True)
        gl.addWidget(self.trend)
        self.score, scroll = scrolling_label(self, "rehearsalScore", max_height=90)
        lay.addWidget(scroll)
        lay.addWidget(note_label(self, "Teaching aid: the score's weights are not validated; not for clinical use."))
        self._timer = QTimer(self)
        self._timer.setInterval(40)
        self._timer.timeout.connect(self._tick)
        session.items_changed.connect(lambda key: self._on_item(key))
        session.volume_changed.connect(lambda *_: self._reset())
        self.trainee.editingFinished.connect(self._fill_progress)
        self.refresh()

    # -- lists ----------------------------------------------------------------------------------
    def _on_item(self, key: str) -> None:
        if key in ("trajectories", "rehearsals"):
            self.refresh()

    def refresh(self) -> None:
        from surgtwin.services.rehearsal import rehearsals
        from surgtwin.services.trajectory import trajectories

        case = self.session.case
        keep = self.trajectory.currentData()
        self.trajectory.blockSignals(True)
        self.trajectory.clear()
        for t in trajectories(case) if case is not None else []:
            self.trajectory.addItem(f"{t['id']}: {t.get('name') or ''}", t["id"])
        self.trajectory.setCurrentIndex(max(0, self.trajectory.findData(keep)))
        self.trajectory.blockSignals(False)
        keep_r = self.recorded.currentData()
        self.recorded.blockSignals(True)
        self.recorded.clear()
        for r in rehearsals(case) if case is not None else []:
            self.recorded.addItem(f"{r['id']} {r['trainee'] or '—'}: {r['score']['total']:.0f} "
                                  f"({r['trajectory_name']})", r["id"])
        self.recorded.setCurrentIndex(max(0, self.recorded.findData(keep_r)))
        self.recorded.blockSignals(False)
        self.start_button.setEnabled(self.trajectory.count() > 0 and self.run is None)
        self.finish_button.setEnabled(self.run is not None)
        self._fill_progress()

    def _reset(self) -> None:
        self._full_meshes = None  # the volume changed: those meshes belong to the case before
        self.run, self.readouts, self.replayer = None, None, None
        self._draw(None)
        self.refresh()

    # -- driving --------------------------------------------------------------------------------
    def start(self) -> None:
        from surgtwin.services.rehearsal import start

        tid = self.trajectory.currentData()
        if tid is None or self.session.case is None:
            self.score.setText("Plan a trajectory first (Trajectory panel).")
            return
        try:
            self.run = start(self.session.case, tid, trainee=self.trainee.text().strip())
        except Exception as exc:  # noqa: BLE001 - a refusal is shown, the app goes on
            from surgtwin.ui.dialogs import error_box

            self.ctx.last_dialog = error_box(self.ctx, "Rehearsal", exc)
            return
        self.run.rehearsal.collision.connect(self._on_collision)
        self._lighten()
        self.events.clear()
        self.score.setText("Rehearsing: advance with the wheel or W, pivot by dragging or the arrow keys.")
        self.tabs.setCurrentIndex(0)
        self.show_readouts(self.run.rehearsal.insert_at(self.run.rehearsal.plan.entry))
        self.refresh()
        self.pad.setFocus()

    def _lighten(self) -> None:
        """Swap the 3D view's structures for lighter copies while rehearsing (level of detail)."""
        from surgtwin.services.pipeline import display_meshes

        meshes = self.session.meshes
        if getattr(self, "_full_meshes", None) is not None or not meshes:
            return
        if sum(len(m.faces) for m in meshes.values()) <= 1.2 * REHEARSAL_TRIANGLES:
            return
        self._full_meshes = dict(meshes)
        self.session.set_meshes(display_meshes(self._full_meshes, total_triangles=REHEARSAL_TRIANGLES))

    def _restore_detail(self) -> None:
        full, self._full_meshes = getattr(self, "_full_meshes", None), None
        if full is not None:
            self.session.set_meshes(full)

    def command(self, name: str, *args) -> None:
        """One command to the instrument (``advance``/``retract`` mm, ``pivot`` deg, deg)."""
        if self.run is None:
            return
        r = getattr(self.run.rehearsal, name)(*args)
        self.show_readouts(r)

    def keyPressEvent(self, e) -> None:  # noqa: N802
        big = bool(e.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        step, turn = (5.0 if big else 1.0), (3.0 if big else 1.0)
        k = e.key()
        keys = {Qt.Key.Key_W: ("advance", step), Qt.Key.Key_PageUp: ("advance", step),
                Qt.Key.Key_S: ("retract", step), Qt.Key.Key_PageDown: ("retract", step),
                Qt.Key.Key_Left: ("pivot", -turn, 0.0), Qt.Key.Key_Right: ("pivot", turn, 0.0),
                Qt.Key.Key_Up: ("pivot", 0.0, turn), Qt.Key.Key_Down: ("pivot", 0.0, -turn)}
        if self.run is not None and k in keys:
            self.command(*keys[k])
            return
        super().keyPressEvent(e)

    def finish(self) -> None:
        from surgtwin.services.rehearsal import finish

        if self.run is None:
            return
        rec = finish(self.session.case, self.run)
        self.run = None
        self._restore_detail()
        self.show_score(rec)
        self.refresh()
        self.recorded.blockSignals(True)
        self.recorded.setCurrentIndex(self.recorded.findData(rec["id"]))
        self.recorded.blockSignals(False)
        self.timeline.blockSignals(True)
        self.timeline.setValue(1000)  # the replay starts where the attempt ended
        self.timeline.blockSignals(False)
        self._load_replay()

    def _on_collision(self, ev) -> None:
        colour = STATE_COLOURS[2] if ev.kind == "enter" else STATE_COLOURS[1] if ev.kind.endswith("margin") else "#d8dee9"
        self.events.addItem(ev.describe())
        self.events.item(self.events.count() - 1).setForeground(QColor(colour))
        self.events.scrollToBottom()
        if ev.kind in ("enter", "enter_margin"):
            self.flash(ev.structure)

    def flash(self, structure: str) -> None:
        """The structure turns red for a moment in the 3D and MPR views."""
        value = next((v for v, d in self.session.display.items() if d.name == structure), None)
        if value is None or value in self._flash:
            return
        self._flash[value] = self.session.display[value].color
        self.session.set_structure(value, color=FLASH_COLOUR)
        QTimer.singleShot(FLASH_MS, lambda v=value: self._unflash(v))

    def _unflash(self, value: int) -> None:
        colour = self._flash.pop(value, None)
        if colour is not None and value in self.session.display:
            self.session.set_structure(value, color=colour)

    # -- showing --------------------------------------------------------------------------------
    def show_readouts(self, r) -> None:
        self.readouts = r
        for key, lab in self.values.items():
            v = getattr(r, key, None)
            lab.setText("–" if v is None else (f"{v:.1f}°" if key == "angle_deg" else
                                                f"{v:.2f} ms" if key == "elapsed_ms" else f"{v:.1f} mm"))
        margins = self.run.rehearsal.margins_mm if self.run is not None else {}
        names = sorted(r.distances_mm, key=lambda n: r.distances_mm[n] - margins.get(n, 0.0))
        t = self.distances
        t.setRowCount(len(names))
        for row, n in enumerate(names):
            state = r.state(n)
            for c, text in enumerate((n, f"{r.distances_mm[n]:.1f} mm", f"{margins.get(n, 0.0):g} mm")):
                item = QTableWidgetItem(text)
                item.setForeground(QColor(STATE_COLOURS[state]))
                t.setItem(row, c, item)
        t.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self._draw(r)

    def _draw(self, r) -> None:
        from surgtwin.render.scene import SceneObject
        from surgtwin.services.trajectory_view import instrument_matrix, unit_instrument

        if r is None:
            for key in [k for k in self.session.overlays if k[0] == "rehearsal"]:
                self.session.set_overlay(key, None)
            return
        v, f = unit_instrument()
        radius = float(self._instrument().get("diameter_mm", 2.0)) / 2
        entry, tip = np.asarray(r.entry_lps, float), np.asarray(r.tip_lps, float)
        colour = FLASH_COLOUR if r.collisions else INSTRUMENT_COLOUR
        old = self.session.overlays.get(("rehearsal", "instrument"))
        obj = SceneObject(("rehearsal", "instrument"), v, f, color=colour, contour=True,
                          matrix=instrument_matrix(entry - 30.0 * np.asarray(r.direction, float), tip, max(radius, 0.4)))
        if old is None or old.color != obj.color or not np.allclose(old.matrix, obj.matrix):
            self.session.set_overlay(("rehearsal", "instrument"), obj)
        plan = self._plan()
        if plan is not None and ("rehearsal", "plan") not in self.session.overlays:
            self.session.set_overlay(("rehearsal", "plan"), SceneObject(
                ("rehearsal", "plan"), v, f, color=PLAN_COLOUR, opacity=0.35,
                matrix=instrument_matrix(plan[0], plan[1], 0.35)))

    def _instrument(self) -> dict:
        if self.run is not None:
            return self.run.rehearsal.instrument.to_json()
        if self.replayer is not None:
            return self.replayer.recording.instrument.to_json()
        return {}

    def _plan(self):
        src = self.run.rehearsal.plan if self.run is not None else (
            self.replayer.recording.plan if self.replayer is not None else None)
        return None if src is None else (np.asarray(src.entry, float), np.asarray(src.target, float))

    def show_score(self, rec: dict) -> None:
        s = rec["score"]
        comps = ", ".join(f"{k} {v:.0f}" for k, v in s["components"].items())
        final = rec["final"]
        self.score.setText(f"<b>Score {s['total']:.0f}/100</b> ({comps}) · {rec['duration_s']:.1f} s · "
                           f"target error {final['target_error_mm']:.1f} mm, tip → target "
                           f"{final['tip_to_target_mm']:.1f} mm · {len(rec['recording']['events'])} event(s) · "
                           f"pose update {rec['timing']['pose_update_ms_median']:.2f} ms (median)")

    # -- replay ---------------------------------------------------------------------------------
    def _load_replay(self) -> None:
        from surgtwin.services.rehearsal import rehearsal, replay

        rid = self.recorded.currentData()
        self.replayer = None
        self.replay_events.clear()
        if rid is None or self.session.case is None:
            return
        self.replayer = replay(self.session.case, rid)
        for ev in self.replayer.timeline():
            self.replay_events.addItem(ev.describe())
        self.show_score(rehearsal(self.session.case, rid))
        self._seek()

    def _seek(self) -> None:
        if self.replayer is None or self.run is not None:
            return
        t = self.replayer.start_s + self.replayer.duration_s * self.timeline.value() / 1000.0
        r = self.replayer.at(t)
        self.time_label.setText(f"t = {t - self.replayer.start_s:.1f} / {self.replayer.duration_s:.1f} s · depth "
                                f"{r.depth_mm:.1f} mm · tip → target {r.tip_to_target_mm:.1f} mm")
        for i, ev in enumerate(self.replayer.timeline()):
            self.replay_events.item(i).setForeground(QColor("#d8dee9" if ev.t_s <= t else "#5d6577"))
        self.readouts = r
        self._draw(r)

    def _play(self, on: bool) -> None:
        if on:
            if self.timeline.value() >= 1000:
                self.timeline.setValue(0)
            self._timer.start()
        else:
            self._timer.stop()

    def _tick(self) -> None:
        if self.replayer is None:
            self.play_button.setChecked(False)
            return
        step = int(round(1000 * 0.04 / max(self.replayer.duration_s, 0.04)))
        v = min(1000, self.timeline.value() + max(step, 1))
        self.timeline.setValue(v)
        if v >= 1000:
            self.play_button.setChecked(False)

    # -- progress -------------------------------------------------------------------------------
    def _fill_progress(self) -> None:
        from surgtwin.services.rehearsal import progress

        tid = self.trajectory.currentData()
        t = self.progress
        if tid is None or self.session.case is None:
            t.setRowCount(0)
            self.trend.setText("")
            return
        trainee = self.trainee.text().strip() or None
        res = progress(self.session.case, tid, trainee)
        rows = res["rows"]
        t.setRowCount(len(rows))
        for r, row in enumerate(rows):
            vals = [str(row["attempt"]), *(f"{row[k]:.0f}" if row[k] is not None else "–"
                                           for k in ("total", "accuracy", "safety", "time", "smoothness"))]
            for c, text in enumerate(vals):
                t.setItem(r, c, QTableWidgetItem(text))
        tr = res["trend"]
        who = trainee or "all trainees"
        self.trend.setText(f"{who}: {tr['attempts']} attempt(s), {tr['direction']}"
                           + (f", best #{tr['best_attempt']} ({tr['best_total']:.0f})" if tr.get("best_attempt") else "")
                           + (f", change {tr['change']:+.0f}" if tr.get("change") is not None else ""))
