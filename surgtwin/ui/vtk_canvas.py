"""A plain (raster) Qt widget that shows an offscreen VTK render window and forwards the mouse to it.

Why not pyvistaqt's ``QtInteractor``: it is a ``QOpenGLWidget``, and a window holding one (even hidden)
is composed by Qt through OpenGL on every update. With the software renderer (Mesa llvmpipe) that cost
~30-50 ms per repaint of *any* widget, so every MPR slice step paid for the 3D view. Here VTK renders
into its own offscreen framebuffer (a ``pv.Plotter(off_screen=True)``); after each frame the pixels are
read back (< 1 ms at viewport size) and painted as a ``QImage``, so the rest of the window stays on
Qt's raster path and ``QWidget.grab()`` (screenshots) shows the 3D scene as it is.

Mouse buttons, drags, wheel and enter/leave go to the plotter's ``vtkGenericRenderWindowInteractor``
(trackball camera: left = rotate, middle or Shift+left = pan, right-drag or wheel = zoom), whose
renders land here through the render window's ``EndEvent``. Keys are not forwarded: pyvista binds
single letters (``q`` closes the plotter) and the main window owns the keyboard shortcuts.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget


class OffscreenVTKCanvas(QWidget):
    """Shows ``self.plotter`` (an offscreen ``pyvista.Plotter``); call :meth:`render` to draw a frame."""

    #: the widget's size changed; the owner should schedule a render (the old frame is shown meanwhile)
    resized = Signal()

    def __init__(self, parent=None, *, multi_samples: int = 0, background: str = "#1d2330") -> None:
        super().__init__(parent)
        import pyvista as pv
        import vtk

        self.setObjectName("vtkCanvas")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.setFocusPolicy(Qt.FocusPolicy.WheelFocus)
        self._background = QColor(background)
        w, h = self._pixel_size()
        self.plotter = pv.Plotter(off_screen=True, window_size=[w, h])
        self.render_window = self.plotter.render_window
        self.render_window.SetMultiSamples(int(multi_samples))
        self.iren = self.plotter.iren.interactor
        self.iren.UpdateSize(w, h)
        self.iren.Enable()  # widgets (the implant handle) only see events of an enabled interactor
        self._pixels = vtk.vtkUnsignedCharArray()
        self._image: QImage | None = None
        self._buf = None
        self._stale = False  # a frame was rendered since the last read-back
        self._frame_observer = self.render_window.AddObserver("EndEvent", self._on_frame)

    # -- frames ---------------------------------------------------------------------------------
    def _pixel_size(self) -> tuple[int, int]:
        r = self.devicePixelRatioF()
        return max(1, round(self.width() * r)), max(1, round(self.height() * r))

    def render(self) -> None:  # type: ignore[override]
        """Render a frame now (synchronously) and repaint the widget with it."""
        if self.render_window is not None:
            self.render_window.Render()

    def _on_frame(self, *_) -> None:
        self._stale = True
        self.update()

    def frame_image(self) -> QImage | None:
        """The last rendered frame (read back from VTK's framebuffer when a new one exists)."""
        if self._stale and self.render_window is not None:
            from vtkmodules.util.numpy_support import vtk_to_numpy

            w, h = self.render_window.GetSize()
            if w > 0 and h > 0:
                self.render_window.GetPixelData(0, 0, w - 1, h - 1, 1, self._pixels, 0)
                rgb = vtk_to_numpy(self._pixels).reshape(h, w, -1)[::-1, :, :3]  # GL rows run bottom-up
                self._buf = np.ascontiguousarray(rgb)
                self._image = QImage(self._buf.data, w, h, 3 * w, QImage.Format.Format_RGB888)
                self._image.setDevicePixelRatio(self.devicePixelRatioF())
            self._stale = False
        return self._image

    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        img = self.frame_image()
        if img is None:
            p.fillRect(self.rect(), self._background)
        else:
            r = img.devicePixelRatio()
            target = QRectF(0, 0, img.width() / r, img.height() / r)
            if target.width() < self.width() or target.height() < self.height():
                p.fillRect(self.rect(), self._background)  # resized, the next frame is on its way
            p.drawImage(target, img)
        p.end()

    def resizeEvent(self, e) -> None:  # noqa: N802
        super().resizeEvent(e)
        if self.render_window is not None:
            w, h = self._pixel_size()
            self.iren.UpdateSize(w, h)  # also resizes the render window
            self.resized.emit()

    def close_vtk(self) -> None:
        """Free VTK's window and GL resources (the widget stays, blank)."""
        if self.render_window is None:
            return
        self.render_window.RemoveObserver(self._frame_observer)
        self.plotter.close()
        self.render_window = None
        self.iren = None

    # -- mouse -> VTK interactor ----------------------------------------------------------------
    def _event_info(self, e, repeat: int = 0) -> None:
        r = self.devicePixelRatioF()
        pos = e.position()
        mods = e.modifiers()
        self.iren.SetEventInformationFlipY(round(pos.x() * r), round(pos.y() * r),
                                           bool(mods & Qt.KeyboardModifier.ControlModifier),
                                           bool(mods & Qt.KeyboardModifier.ShiftModifier), "\0", repeat, None)
        self.iren.SetAltKey(bool(mods & Qt.KeyboardModifier.AltModifier))

    _PRESS = {Qt.MouseButton.LeftButton: "LeftButtonPressEvent", Qt.MouseButton.MiddleButton: "MiddleButtonPressEvent",
              Qt.MouseButton.RightButton: "RightButtonPressEvent"}
    _RELEASE = {Qt.MouseButton.LeftButton: "LeftButtonReleaseEvent",
                Qt.MouseButton.MiddleButton: "MiddleButtonReleaseEvent",
                Qt.MouseButton.RightButton: "RightButtonReleaseEvent"}

    def mousePressEvent(self, e) -> None:  # noqa: N802
        name = self._PRESS.get(e.button())
        if self.iren is None or name is None:
            return
        self._event_info(e, repeat=int(e.type() == QEvent.Type.MouseButtonDblClick))
        getattr(self.iren, name)()

    mouseDoubleClickEvent = mousePressEvent  # noqa: N815

    def mouseReleaseEvent(self, e) -> None:  # noqa: N802
        name = self._RELEASE.get(e.button())
        if self.iren is None or name is None:
            return
        self._event_info(e)
        getattr(self.iren, name)()

    def mouseMoveEvent(self, e) -> None:  # noqa: N802
        if self.iren is None:
            return
        self._event_info(e)
        self.iren.MouseMoveEvent()

    def wheelEvent(self, e) -> None:  # noqa: N802
        if self.iren is None:
            return
        dy = e.angleDelta().y()
        if dy == 0:
            return
        self._event_info(e)
        if dy > 0:
            self.iren.MouseWheelForwardEvent()
        else:
            self.iren.MouseWheelBackwardEvent()

    def enterEvent(self, _e) -> None:  # noqa: N802
        if self.iren is not None:
            self.iren.EnterEvent()

    def leaveEvent(self, _e) -> None:  # noqa: N802
        if self.iren is not None:
            self.iren.LeaveEvent()
