"""A double-oblique reslice view: the CT on a plane of any orientation (the TAVR annulus plane), with
outlines and measured lines drawn on it. The image comes from ``surgtwin.render.slices.oblique``;
the view only paints.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from surgtwin.render import slices as S


class ObliqueView(QWidget):
    def __init__(self, session, parent=None, *, half_size_mm: float = 25.0, spacing_mm: float = 0.2) -> None:
        super().__init__(parent)
        self.session = session
        self.setObjectName("obliqueView")
        self.setMinimumSize(220, 220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.half, self.spacing = float(half_size_mm), float(spacing_mm)
        self.plane = None  # (centre, u, v)
        self.outlines: list = []  # (points (N, 3) LPS, colour, closed)
        self.lines: list = []  # (a, b, colour, text)
        self.caption = ""
        self._pixels = None
        self._image: QImage | None = None
        session.window_changed.connect(self._invalidate)
        session.volume_changed.connect(self.clear)

    def clear(self, *_) -> None:
        self.plane, self.outlines, self.lines, self._pixels, self._image = None, [], [], None, None
        self.update()

    def set_plane(self, centre, u, v, *, outlines=(), lines=(), caption: str = "") -> None:
        """Reslice through ``centre`` spanned by unit ``u`` (screen right) and ``v`` (screen down)."""
        vol = self.session.volume
        if vol is None:
            self.clear()
            return
        self.plane = tuple(np.asarray(x, float) for x in (centre, u, v))
        self.outlines, self.lines, self.caption = list(outlines), list(lines), caption
        self._pixels = S.oblique(vol.array, vol.affine, *self.plane, half_size_mm=self.half,
                                 spacing_mm=self.spacing)
        self._invalidate()

    def _invalidate(self, *_) -> None:
        self._image = None
        self.update()

    def _render_image(self) -> QImage | None:
        if self._pixels is None:
            return None
        if self._image is None:
            w, lv = self.session.window
            bgra = np.ascontiguousarray(S.gray_to_bgra(S.window_to_gray(self._pixels, w, lv)))
            h, wd = bgra.shape[:2]
            self._buf = bgra
            self._image = QImage(bgra.data, wd, h, 4 * wd, QImage.Format.Format_RGB32)
        return self._image

    def _screen(self, pts, rect: QRectF) -> list[QPointF]:
        c, u, v = self.plane
        rc = S.oblique_pixel(c, u, v, np.atleast_2d(pts), half_size_mm=self.half, spacing_mm=self.spacing)
        n = self._pixels.shape[0]
        sx, sy = rect.width() / n, rect.height() / n
        return [QPointF(rect.x() + (col + 0.5) * sx, rect.y() + (row + 0.5) * sy) for row, col in rc]

    @staticmethod
    def _label(p: QPainter, at: QPointF, text: str, colour) -> None:
        """Text on a dark box, readable over the bright contrast lumen."""
        r = p.fontMetrics().boundingRect(text)
        p.fillRect(QRectF(at.x() - 2, at.y() - r.height() + 2, r.width() + 4, r.height() + 2), QColor(0, 0, 0, 170))
        p.setPen(QColor(colour))
        p.drawText(at, text)

    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#000000"))
        img = self._render_image()
        if img is None:
            p.setPen(QColor("#8891a5"))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No annulus plane yet")
            return
        side = min(self.width(), self.height())
        rect = QRectF((self.width() - side) / 2, (self.height() - side) / 2, side, side)
        p.drawImage(rect, img)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        for pts, colour, closed in self.outlines:
            poly = QPolygonF(self._screen(pts, rect))
            p.setPen(QPen(QColor(colour), 2))
            if closed:
                p.drawPolygon(poly)
            else:
                p.drawPolyline(poly)
        p.setFont(QFont(self.font().family(), 9, QFont.Weight.Bold))
        for a, b, colour, text in self.lines:
            qa, qb = self._screen([a, b], rect)
            p.setPen(QPen(QColor(colour), 1.5, Qt.PenStyle.DashLine))
            p.drawLine(qa, qb)
            if text:
                self._label(p, qb + QPointF(4, -4), text, colour)
        p.setFont(QFont(self.font().family(), 9))
        if self.caption:
            box = QRectF(rect.x() + 4, rect.y() + 4, min(rect.width() - 8, 8.0 * max(map(len, self.caption.splitlines())) + 10), 34)
            p.fillRect(box, QColor(0, 0, 0, 170))
            p.setPen(QColor("#d8dee9"))
            p.drawText(box.adjusted(4, 2, -4, -2), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, self.caption)
        # a 10 mm scale bar
        px = 10.0 / (2 * self.half) * rect.width()
        y = rect.bottom() - 10
        p.setPen(QPen(QColor("#d8dee9"), 2))
        p.drawLine(QPointF(rect.x() + 10, y), QPointF(rect.x() + 10 + px, y))
        p.drawText(QPointF(rect.x() + 14 + px, y + 4), "10 mm")
