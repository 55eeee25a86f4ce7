"""The 3D view: an offscreen pyvista plotter shown through ``OffscreenVTKCanvas`` (a plain widget).

Not pyvistaqt's ``QtInteractor``: a ``QOpenGLWidget`` anywhere in the window makes Qt compose the
whole window through OpenGL, which with a software renderer made every MPR slice step ~30-50 ms slower
(see ``surgtwin/ui/vtk_canvas.py``). The canvas is created after the window is first shown
(VTK/pyvista import ~1 s) so start-up paints fast. Painting goes through
``surgtwin.render.scene.ScenePainter``; a left click without drag on a surface moves the MPR
crosshair there.
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from surgtwin.render.scene import STANDARD_VIEWS


class View3D(QWidget):
    ready = Signal()
    picked = Signal(object)  # LPS point

    def __init__(self, session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.setObjectName("view3d")
        self.canvas = None  # OffscreenVTKCanvas (the widget)
        self.plotter = None  # its offscreen pyvista.Plotter
        self.painter = None
        self.volume_preset: str | None = None
        self._press = None
        self.multi_samples = 0
        self.min_frame_s = 0.15
        self._last_render = 0.0
        self.frames = 0  # renders done (the screenshot waits for one after the meshes arrived)
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(0)
        self._render_timer.timeout.connect(self.render_now)
        # the crosshair sphere is redrawn once slice scrolling pauses: a software-rendered frame
        # (~100-200 ms) on every wheel step would stall the event loop while the user scrolls
        self.crosshair_idle_ms = 250
        self._cross_timer = QTimer(self)
        self._cross_timer.setSingleShot(True)
        self._cross_timer.setInterval(self.crosshair_idle_ms)
        self._cross_timer.timeout.connect(self.render)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        bar = QWidget(self)
        bar.setStyleSheet("background: #232834;")
        hb = QHBoxLayout(bar)
        hb.setContentsMargins(6, 2, 6, 2)
        title = QLabel("3D", bar)
        title.setStyleSheet("color: #4da3ff; font-weight: bold; padding-right: 8px;")
        hb.addWidget(title)
        self.view_buttons = {}
        for name in STANDARD_VIEWS:
            b = QToolButton(bar)
            b.setText(name)
            b.setToolTip({"A": "Anterior", "P": "Posterior", "L": "Left", "R": "Right", "S": "Superior",
                          "I": "Inferior"}[name] + " view")
            b.clicked.connect(lambda _=False, n=name: self.standard_view(n))
            hb.addWidget(b)
            self.view_buttons[name] = b
        hb.addStretch(1)
        hb.addWidget(QLabel("Volume:", bar))
        self.vr_combo = QComboBox(bar)
        self.vr_combo.addItems(["Off", "Bone", "Angio", "Soft tissue"])
        self.vr_combo.setToolTip("Volume rendering with a CT preset (V toggles)")
        self.vr_combo.currentTextChanged.connect(self._on_vr)
        hb.addWidget(self.vr_combo)
        lay.addWidget(bar)
        self._placeholder = QLabel("Starting the 3D view…", self)
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setStyleSheet("background: #1d2330; color: #8891a5;")
        lay.addWidget(self._placeholder, 1)
        session.meshes_changed.connect(self._sync_meshes)
        session.overlays_changed.connect(self._on_overlay)
        self._handle = self._handle_key = self._handle_cb = self._handle_pending = None
        self._handle_timer = QTimer(self)
        self._handle_timer.setSingleShot(True)
        self._handle_timer.setInterval(300)
        self._handle_timer.timeout.connect(self._reattach_handle)
        session.display_changed.connect(self._on_display)
        session.crosshair_changed.connect(self._on_crosshair)
        session.volume_changed.connect(self._on_volume)

    # -- lazy creation --------------------------------------------------------------------------
    def ensure_plotter(self) -> None:
        if self.plotter is not None or self._placeholder is None:
            return  # made already, or closed for good (a late timer after the window closed)
        from surgtwin.render.scene import ScenePainter, add_orientation_marker
        from surgtwin.ui.vtk_canvas import OffscreenVTKCanvas

        # no MSAA: with the software renderer (llvmpipe) 4x MSAA doubles the frame time
        self.canvas = OffscreenVTKCanvas(self, multi_samples=self.multi_samples)
        self.canvas.setAcceptDrops(False)  # drops go to the main window
        self.canvas.resized.connect(self.render)
        self.plotter = self.canvas.plotter
        self.plotter.set_background("#1d2330", top="#3a4356")
        add_orientation_marker(self.plotter)
        self.painter = ScenePainter(self.plotter)
        self.canvas.installEventFilter(_ClickFilter(self))
        lay = self.layout()
        lay.replaceWidget(self._placeholder, self.canvas)
        self._placeholder.deleteLater()
        self._placeholder = None
        self._sync_meshes()
        for key in list(self.session.overlays):
            self._on_overlay(key)
        self._on_volume(reset=False)
        self.standard_view("A")
        self.ready.emit()

    def close_plotter(self) -> None:
        if self.canvas is not None:
            self.canvas.close_vtk()
            self.plotter = None
            self.painter = None  # its plotter is gone: later session events must not touch it

    def render(self) -> None:  # type: ignore[override]
        """Ask for a render. Requests are coalesced and spaced by ``min_frame_s`` so that scrolling
        through slices (which moves the 3D crosshair) never queues software-rendered frames."""
        if self.plotter is None or self._render_timer.isActive():
            return
        wait = self.min_frame_s - (time.perf_counter() - self._last_render)
        self._render_timer.start(max(0, int(wait * 1000)))

    def render_now(self) -> None:
        self._render_timer.stop()
        self._cross_timer.stop()
        if self.canvas is not None and self.plotter is not None:
            self.canvas.render()
            self._last_render = time.perf_counter()
            self.frames += 1

    # -- model -> scene -------------------------------------------------------------------------
    def _sync_meshes(self) -> None:
        if self.painter is None:
            return
        from surgtwin.render.scene import structure_objects

        had = bool(self.painter.actors)
        self.painter.sync(structure_objects(self.session.meshes, self.session.display), kind="structure")
        self._on_crosshair(render=False)
        if not had and self.painter.actors:
            self.standard_view("A")
        self.render()

    def _on_overlay(self, key) -> None:
        if self.painter is None:
            return
        obj = self.session.overlays.get(key)
        if self._handle_key == key:  # the widget caches the pose: rebuilt on the new
            on_moved = self._handle_cb  # one once the nudges pause (building it costs ~0.1 s)
            self.detach_handle()
            if obj is not None:
                self._handle_pending = (key, on_moved)
                self._handle_timer.start()
        if obj is None:
            self.painter.remove(key)
        else:
            self.painter.put(obj)
        self.render()

    def _reattach_handle(self) -> None:
        pending, self._handle_pending = self._handle_pending, None
        if pending is not None and pending[0] in self.session.overlays:
            self.attach_handle(*pending)

    # -- handle widget --------------------------------------------------------------------------
    def attach_handle(self, key, on_moved) -> bool:
        """Translate/rotate arrows and rings on overlay ``key`` (pyvista's affine widget); after each
        drag ``on_moved(matrix)`` gets the object's new 4x4 local -> LPS matrix. False without 3D."""
        if self._handle is not None and self._handle_key == key:
            self._handle_cb = on_moved
            return True
        if self._handle_pending is not None and self._handle_pending[0] == key and self._handle_timer.isActive():
            self._handle_pending = (key, on_moved)  # rebuilt once the nudges pause
            return True
        self._handle_pending = None
        self.detach_handle()
        actor = self.painter.actors.get(key) if self.painter is not None else None
        if actor is None:
            return False
        bounds = np.array(actor.GetBounds()).reshape(3, 2)
        self._handle = self.plotter.add_affine_transform_widget(
            actor, origin=tuple(float(v) for v in bounds.mean(axis=1)), scale=0.6, release_callback=lambda m: on_moved(np.array(m)))
        self._handle_key, self._handle_cb = key, on_moved
        self.render()
        return True

    def attach_points(self, points, on_moved, *, colors=None, radius_mm: float = 3.0) -> bool:
        """Draggable spheres at ``points`` (N, 3) LPS (a trajectory's entry and target); after each
        drag ``on_moved(index, lps)``. Replaces the previous points. False without 3D."""
        self.detach_points()
        if self.plotter is None:
            return False
        pts = np.asarray(points, float).reshape(-1, 3)
        colors = list(colors) if colors is not None else ["#ffd84d"] * len(pts)
        cb = (lambda c, i: on_moved(int(i), np.asarray(c, float))) if len(pts) > 1 else (
            lambda c: on_moved(0, np.asarray(c, float)))
        self.plotter.add_sphere_widget(cb, center=pts if len(pts) > 1 else pts[0], radius=radius_mm,
                                       color=colors if len(pts) > 1 else colors[0], test_callback=False,
                                       interaction_event="end")
        self._points_on = True
        self.render()
        return True

    def detach_points(self) -> None:
        if getattr(self, "_points_on", False) and self.plotter is not None:
            self.plotter.clear_sphere_widgets()
        self._points_on = False

    def detach_handle(self) -> None:
        if self._handle is not None:
            self._handle.remove()
        self._handle, self._handle_key = None, None

    def _on_display(self, value=None) -> None:
        if self.painter is None:
            return
        for key in self.painter.actors:
            obj = self.painter.object(key)
            d = self.session.display.get(obj.value) if obj is not None else None
            if d is not None and (value is None or value == d.value):
                self.painter.update(key, color=d.color, opacity=d.opacity_3d, visible=d.visible)
        self.render()

    def _on_crosshair(self, render: bool = True) -> None:
        if self.painter is None or self.session.volume is None:
            return
        self.painter.set_crosshair(self.session.crosshair_lps, size_mm=float(np.max(self.session.volume.spacing_mm) * 3))
        if render and self.isVisible():
            self._cross_timer.start()  # restarted by every change: one frame after the scrolling stops

    def _on_volume(self, reset: bool = True) -> None:
        if self.painter is None:
            return
        self._on_vr(self.vr_combo.currentText(), render=False)
        if reset:
            self.standard_view("A")
        self._on_crosshair()

    def _on_vr(self, text: str, render: bool = True) -> None:
        self.volume_preset = None if text == "Off" else text
        if self.painter is None:
            return
        self.painter.set_volume(self.session.volume if self.volume_preset else None, self.volume_preset)
        if render:
            self.render()

    def toggle_volume_rendering(self) -> None:
        self.vr_combo.setCurrentText("Off" if self.vr_combo.currentText() != "Off" else "Bone")

    def look_at(self, centre, direction, *, distance_mm: float = 150.0, up=(0.0, 0.0, 1.0)) -> None:
        """Point the camera at ``centre`` (LPS) from ``centre + distance * direction``."""
        if self.plotter is None:
            return
        c = np.asarray(centre, float)
        d = np.asarray(direction, float)
        d = d / np.linalg.norm(d)
        u = np.asarray(up, float)
        if abs(float(d @ u)) > 0.95 * np.linalg.norm(u):
            u = np.array([0.0, -1.0, 0.0])
        self.plotter.camera_position = [tuple(c + distance_mm * d), tuple(c), tuple(u)]
        self.plotter.reset_camera_clipping_range()
        self.render()

    def standard_view(self, name: str) -> None:
        if self.painter is None:
            return
        bounds = None
        if self.session.volume is not None and not self.painter.actors:
            corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)]) * (
                np.asarray(self.session.volume.shape) - 1)
            w = self.session.volume.index_to_world(corners)
            bounds = [w[:, 0].min(), w[:, 0].max(), w[:, 1].min(), w[:, 1].max(), w[:, 2].min(), w[:, 2].max()]
        elif self.painter.actors:
            bs = np.array([a.GetBounds() for a in self.painter.actors.values()])
            bounds = [bs[:, 0].min(), bs[:, 1].max(), bs[:, 2].min(), bs[:, 3].max(), bs[:, 4].min(), bs[:, 5].max()]
        self.painter.standard_view(name, bounds=bounds)
        self.render()

    # -- picking --------------------------------------------------------------------------------
    def pick_display(self, x: float, y: float):
        """Pick the surface under widget pixel (x, y) (Qt coordinates); moves the crosshair there."""
        if self.plotter is None:
            return None
        import vtk

        picker = vtk.vtkCellPicker()
        picker.SetTolerance(0.002)
        ratio = self.canvas.devicePixelRatioF()
        h = self.canvas.height()
        if not picker.Pick(x * ratio, (h - y) * ratio, 0, self.plotter.renderer):
            return None
        lps = np.array(picker.GetPickPosition())
        self.session.set_crosshair(lps)
        self.picked.emit(lps)
        return lps


class _ClickFilter(QObject):
    """A left click without drag on the interactor = pick (rotation drags pass through untouched)."""

    def __init__(self, view: View3D) -> None:
        super().__init__(view)
        self.view = view

    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        t = event.type()
        if t == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton:
            self.view._press = event.position()
        elif t == QEvent.Type.MouseButtonRelease and event.button() == Qt.MouseButton.LeftButton:
            p0, self.view._press = self.view._press, None
            pos = event.position()
            if p0 is not None and (pos - p0).manhattanLength() < 4:
                QTimer.singleShot(0, lambda: self.view.pick_display(pos.x(), pos.y()))
        return False
