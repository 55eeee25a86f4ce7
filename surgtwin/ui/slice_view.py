"""One MPR view (axial, coronal or sagittal) drawn with QPainter from the session model.

Mouse: left = the active tool (crosshair / measure / paint), right-drag = window/level,
middle-drag or Shift+left-drag = pan, wheel = next/previous slice, Ctrl+wheel = zoom, double-click =
reset zoom. The view never computes anatomy: slices come from ``surgtwin.render.slices``, edits go
through the ``LabelEditor``.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from surgtwin.core.measure import Measurement
from surgtwin.render import slices as S
from surgtwin.ui.theme import PLANE_COLORS

#: overlay outlines (implants, instruments) follow a moving object at most this often (per second)
OVERLAY_HZ = 12


class SliceView(QWidget):
    #: (lps (3,), hu or None, label name or "") under the mouse
    hovered = Signal(object, object, str)

    def __init__(self, session, plane: str, tools, editor, parent=None) -> None:
        super().__init__(parent)
        self.session, self.plane, self.tools, self.editor = session, plane, tools, editor
        self.setObjectName(f"slice_{plane}")
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.mapping: S.PlaneMapping | None = None
        self.zoom, self.pan = 1.0, QPointF(0, 0)
        self._image: QImage | None = None
        self._image_key = None
        self._buf = None
        self._drag = None  # ("wl"|"pan"|"tool", start pos, start value)
        self._pending: list = []  # measurement points being placed (LPS)
        self._mouse = None
        self._lut = None
        for sig in (session.volume_changed,):
            sig.connect(self._on_volume)
        session.crosshair_changed.connect(self._invalidate_if_slice_moved)
        session.window_changed.connect(self._invalidate)
        session.labels_changed.connect(lambda *_: self._invalidate(labels=True))
        session.display_changed.connect(lambda *_: self._invalidate(labels=True))
        session.measurements_changed.connect(self.update)
        session.overlays_changed.connect(self._on_overlay)
        self._contours: dict = {}  # overlay key -> (object, slice index, segments (n, 2, 2) on screen in mm)
        self._overlay_timer = QTimer(self)
        self._overlay_timer.setSingleShot(True)
        self._overlay_timer.setInterval(int(1000 / OVERLAY_HZ))
        self._overlay_timer.timeout.connect(self.update)
        tools.changed.connect(self._on_tools)
        self._on_volume()

    # -- model -> view --------------------------------------------------------------------------
    def _on_volume(self) -> None:
        v = self.session.volume
        self.mapping = None if v is None else S.plane_mapping(v.affine, v.shape, self.plane)
        self.zoom, self.pan = 1.0, QPointF(0, 0)
        self._pending = []
        self._invalidate(labels=True)

    def _on_tools(self) -> None:
        if self.tools.tool not in ("distance", "angle"):
            self._pending = []
        if self.tools.picker is not None:
            self.setCursor(Qt.CursorShape.CrossCursor)
        else:
            self.unsetCursor()
        self._invalidate(labels=True)

    def _invalidate(self, *_, labels: bool = False) -> None:
        if labels:
            self._lut = None
        self._image_key = None
        self.update()

    def _invalidate_if_slice_moved(self) -> None:
        if self.mapping is not None and self._image_key is not None and self._image_key[0] != self.slice_index:
            self._image_key = None
        self.update()

    @property
    def slice_index(self) -> int:
        return self.mapping.slice_from_index(self.session.crosshair_index()) if self.mapping else 0

    def set_slice(self, index: int) -> None:
        if self.mapping is None:
            return
        kji = np.asarray(self.session.volume.world_to_index(self.session.crosshair_lps))
        kji[self.mapping.slice_axis] = int(np.clip(index, 0, self.mapping.n_slices - 1))
        self.session.set_crosshair(self.session.volume.index_to_world(kji))

    def step(self, n: int) -> None:
        if self.mapping is not None:
            self.set_slice(self.slice_index + n * self.mapping.slice_sign)

    # -- rendering ------------------------------------------------------------------------------
    def render_image(self) -> QImage | None:
        """The current slice, windowed and with the label overlay, as a QImage (cached)."""
        m, vol = self.mapping, self.session.volume
        if m is None or vol is None:
            return None
        key = (self.slice_index, self.session.window, self.tools.show_overlay)
        if key == self._image_key and self._image is not None:
            return self._image
        idx = key[0]
        gray = S.window_to_gray(S.extract(vol.array, m, idx), *self.session.window)
        labels = self.session.labels
        if labels is not None and self.tools.show_overlay:
            if self._lut is None:
                top = np.iinfo(labels.array.dtype).max if labels.array.dtype.itemsize <= 2 else 65535
                self._lut = S.label_lut(self.session.display, int(top))
                self._compositor = S.Compositor(self._lut)
            bgra = self._compositor(gray, S.extract(labels.array, m, idx))
        else:
            bgra = S.gray_to_bgra(gray)
        self._buf = np.ascontiguousarray(bgra)
        h, w = gray.shape
        self._image = QImage(self._buf.data, w, h, 4 * w, QImage.Format.Format_RGB32)
        self._image_key = key
        return self._image

    def _geometry(self):
        """(scale px/mm, image rect on screen) for the current zoom/pan."""
        m = self.mapping
        wmm, hmm = m.n_cols * m.col_spacing_mm, m.n_rows * m.row_spacing_mm
        s = min((self.width() - 8) / wmm, (self.height() - 8) / hmm) * self.zoom
        x0 = (self.width() - wmm * s) / 2 + self.pan.x()
        y0 = (self.height() - hmm * s) / 2 + self.pan.y()
        return s, QRectF(x0, y0, wmm * s, hmm * s)

    def screen_from_lps(self, lps) -> QPointF:
        kji = self.session.volume.world_to_index(lps)
        r, c = self.mapping.pixel_from_index(kji)
        s, rect = self._geometry()
        return QPointF(rect.x() + (c + 0.5) * self.mapping.col_spacing_mm * s,
                       rect.y() + (r + 0.5) * self.mapping.row_spacing_mm * s)

    def lps_from_screen(self, pos: QPointF) -> np.ndarray:
        s, rect = self._geometry()
        c = (pos.x() - rect.x()) / (self.mapping.col_spacing_mm * s) - 0.5
        r = (pos.y() - rect.y()) / (self.mapping.row_spacing_mm * s) - 0.5
        kji = self.mapping.index_from_pixel(self.slice_index, r, c)
        return self.session.volume.index_to_world(kji)

    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#000000"))
        img = self.render_image()
        colour = QColor(PLANE_COLORS[self.plane])
        if img is None:
            p.setPen(QColor("#8891a5"))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, f"{self.plane.title()}\n(no image)")
            self._frame(p, colour)
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.zoom < 2.5)
        s, rect = self._geometry()
        p.drawImage(rect, img, QRectF(0, 0, img.width(), img.height()))
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self._draw_crosshair(p)
        self._draw_contours(p, s, rect)
        self._draw_measurements(p)
        self._draw_annotations(p, colour)
        if self.tools.edits and self._mouse is not None:
            p.setPen(QPen(QColor(255, 255, 255, 200), 1, Qt.PenStyle.DashLine))
            r = self.tools.brush_radius_mm * s
            p.drawEllipse(self._mouse, r, r)
        self._frame(p, colour)
        p.end()

    def _frame(self, p: QPainter, colour: QColor) -> None:
        pen = QPen(colour, 3 if self.hasFocus() else 1.5)
        p.setPen(pen)
        p.drawRect(QRectF(0.5, 0.5, self.width() - 1, self.height() - 1))

    def _draw_crosshair(self, p: QPainter) -> None:
        pt = self.screen_from_lps(self.session.crosshair_lps)
        others = [pl for pl in S.PLANES if pl != self.plane]
        # vertical line = the plane whose normal runs along screen-right, horizontal = along screen-down
        vert = {"axial": "sagittal", "coronal": "sagittal", "sagittal": "coronal"}[self.plane]
        horiz = [o for o in others if o != vert][0]
        gap = 10
        for name, a, b, c, d in ((vert, pt.x(), 0, pt.x(), self.height()), (horiz, 0, pt.y(), self.width(), pt.y())):
            col = QColor(PLANE_COLORS[name])
            col.setAlpha(170)
            p.setPen(QPen(col, 1))
            if a == c:
                p.drawLine(QPointF(a, b), QPointF(a, pt.y() - gap))
                p.drawLine(QPointF(a, pt.y() + gap), QPointF(c, d))
            else:
                p.drawLine(QPointF(a, b), QPointF(pt.x() - gap, b))
                p.drawLine(QPointF(pt.x() + gap, b), QPointF(c, d))

    def _on_overlay(self, key) -> None:
        """An overlay moved: its outline is recomputed at the next paint, at most ``OVERLAY_HZ`` times a
        second (an instrument driven at 20+ poses/s must not repaint three views per pose)."""
        self._contours.pop(key, None)
        if not self._overlay_timer.isActive():
            self._overlay_timer.start()

    def _draw_contours(self, p: QPainter, scale: float, rect: QRectF) -> None:
        """Outlines of the overlays marked ``contour`` (implants) where they cut this slice."""
        m = self.mapping
        for key, obj in self.session.overlays.items():
            if not obj.contour or not obj.visible:
                continue
            cached = self._contours.get(key)
            if cached is None or cached[0] is not obj or cached[1] != self.slice_index:
                cached = (obj, self.slice_index, S.contour_pixels(obj.world_vertices(), obj.faces,
                                                                  self.session.volume.affine, m, self.slice_index))
                self._contours[key] = cached
            seg = cached[2]
            if not len(seg):
                continue
            xs = rect.x() + (seg[..., 1] + 0.5) * m.col_spacing_mm * scale
            ys = rect.y() + (seg[..., 0] + 0.5) * m.row_spacing_mm * scale
            p.setPen(QPen(QColor(*obj.color), 2))
            p.drawLines([QLineF(x0, y0, x1, y1) for (x0, x1), (y0, y1) in zip(xs, ys, strict=True)])

    def _on_this_slice(self, lps) -> bool:
        kji = self.session.volume.world_to_index(lps)
        return abs(kji[self.mapping.slice_axis] - self.slice_index) <= 0.5

    def _draw_measurements(self, p: QPainter) -> None:
        p.setFont(QFont(self.font().family(), 10, QFont.Weight.Bold))
        items = [(m.points_lps, m.text) for m in self.session.measurements if m.plane in (None, self.plane)]
        if self._pending:
            items.append((self._pending, ""))
        for pts, text in items:
            if not all(self._on_this_slice(q) for q in pts):
                continue
            scr = [self.screen_from_lps(q) for q in pts]
            p.setPen(QPen(QColor("#ffd84d"), 2))
            for a, b in zip(scr, scr[1:], strict=False):
                p.drawLine(a, b)
            for q in scr:
                p.drawEllipse(q, 3, 3)
            if text:
                anchor = scr[1] if len(scr) == 3 else (scr[0] + scr[1]) / 2
                p.setPen(QColor("#000000"))
                p.drawText(anchor + QPointF(9, -7), text)
                p.setPen(QColor("#ffd84d"))
                p.drawText(anchor + QPointF(8, -8), text)

    def _draw_annotations(self, p: QPainter, colour: QColor) -> None:
        m = self.mapping
        p.setFont(QFont(self.font().family(), 10))
        p.setPen(colour)
        p.drawText(QPointF(8, 18), self.plane.title())
        p.setPen(QColor("#c8d0dc"))
        p.drawText(QPointF(8, 36), f"Slice {self.slice_index + 1} / {m.n_slices}")
        w, lv = self.session.window
        p.drawText(QPointF(8, self.height() - 10), f"W {w:.0f}  L {lv:.0f}")
        if self.zoom != 1.0:
            p.drawText(QPointF(self.width() - 80, self.height() - 10), f"zoom {self.zoom:.1f}x")
        left, right, top, bottom = S.EDGE_LETTERS[self.plane]
        p.setFont(QFont(self.font().family(), 11, QFont.Weight.Bold))
        p.setPen(QColor("#e5e9f0"))
        p.drawText(QPointF(6, self.height() / 2 + 5), left)
        p.drawText(QPointF(self.width() - 16, self.height() / 2 + 5), right)
        p.drawText(QPointF(self.width() / 2 - 4, 18), top)
        p.drawText(QPointF(self.width() / 2 - 4, self.height() - 8), bottom)

    # -- interaction ----------------------------------------------------------------------------
    def wheelEvent(self, e) -> None:  # noqa: N802
        if self.mapping is None:
            return
        steps = 1 if e.angleDelta().y() > 0 else -1
        if e.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom = float(np.clip(self.zoom * (1.15 if steps > 0 else 1 / 1.15), 0.5, 20))
            self.update()
        else:
            self.step(steps)

    def mouseDoubleClickEvent(self, e) -> None:  # noqa: N802
        if self.tools.tool == "navigate":
            self.zoom, self.pan = 1.0, QPointF(0, 0)
            self.update()

    def mousePressEvent(self, e) -> None:  # noqa: N802
        if self.mapping is None:
            return
        pos = e.position()
        if e.button() == Qt.MouseButton.RightButton:
            self._drag = ("wl", pos, self.session.window)
        elif e.button() == Qt.MouseButton.MiddleButton or (
                e.button() == Qt.MouseButton.LeftButton and e.modifiers() & Qt.KeyboardModifier.ShiftModifier):
            self._drag = ("pan", pos, QPointF(self.pan))
        elif e.button() == Qt.MouseButton.LeftButton:
            self._drag = ("tool", pos, None)
            self._tool_press(pos)

    def mouseMoveEvent(self, e) -> None:  # noqa: N802
        if self.mapping is None:
            return
        pos = e.position()
        self._mouse = pos
        if self._drag is not None:
            kind, start, value = self._drag
            d = pos - start
            if kind == "wl":
                self.session.set_window(value[0] + d.x() * 4.0, value[1] - d.y() * 2.0)
            elif kind == "pan":
                self.pan = value + d
            elif kind == "tool":
                self._tool_drag(pos)
        self._report_hover(pos)
        if self.tools.edits or (self._drag is not None and self._drag[0] == "pan"):
            self.update()  # brush outline / pan; the crosshair and W/L repaint through the session

    def mouseReleaseEvent(self, e) -> None:  # noqa: N802
        if self._drag is not None and self._drag[0] == "tool" and self.tools.edits:
            self.editor.end_stroke()
        if self._drag is not None and self._drag[0] == "tool" and self.tools.picker_release is not None:
            self.tools.picker_release()
        self._drag = None

    def leaveEvent(self, _e) -> None:  # noqa: N802
        self._mouse = None
        self.update()

    def keyPressEvent(self, e) -> None:  # noqa: N802
        k = e.key()
        if k in (Qt.Key.Key_Up, Qt.Key.Key_PageUp):
            self.step(1)
        elif k in (Qt.Key.Key_Down, Qt.Key.Key_PageDown):
            self.step(-1)
        elif k == Qt.Key.Key_Escape:
            self._pending = []
            self.update()
        else:
            super().keyPressEvent(e)

    def _inside(self, lps) -> bool:
        kji = self.session.volume.world_to_index(lps)
        return bool(np.all(kji > -0.5) and np.all(kji < np.asarray(self.session.volume.shape) - 0.5))

    def _tool_press(self, pos: QPointF) -> None:
        lps = self.lps_from_screen(pos)
        tool = self.tools.tool
        if self.tools.picker is not None:
            if self._inside(lps):
                self.tools.picker(np.asarray(lps, float))
            return
        if tool == "navigate":
            self.session.set_crosshair(lps)
        elif tool in ("distance", "angle"):
            if not self._inside(lps):
                return
            self._pending.append(tuple(float(v) for v in lps))
            need = 2 if tool == "distance" else 3
            if len(self._pending) == need:
                self.session.case.add_measurement(Measurement(tool, self._pending, self.plane))
                self._pending = []
            self.update()
        elif self.tools.edits:
            self.editor.begin_stroke(self.plane)
            self._tool_drag(pos)

    def _tool_drag(self, pos: QPointF) -> None:
        lps = self.lps_from_screen(pos)
        if self.tools.picker is not None:
            if self.tools.picker_drag is not None and self._inside(lps):
                self.tools.picker_drag(np.asarray(lps, float))
            return
        if self.tools.tool == "navigate":
            self.session.set_crosshair(lps)
        elif self.tools.edits and self._inside(lps):
            self.editor.dab(self.session.volume.world_to_index(lps), self.mapping.slice_axis)

    def _report_hover(self, pos: QPointF) -> None:
        lps = self.lps_from_screen(pos)
        if not self._inside(lps):
            self.hovered.emit(lps, None, "")
            return
        k, j, i = np.rint(self.session.volume.world_to_index(lps)).astype(int)
        hu = self.session.volume.array[k, j, i]
        name = ""
        lab = self.session.labels
        if lab is not None:
            v = int(lab.array[k, j, i])
            if v and v in lab.labels:
                name = lab.labels[v].name
        self.hovered.emit(lps, float(hu), name)
