"""Runs services ``Job``s off the GUI thread with a status-bar progress bar and a Cancel button.

The worker thread never touches Qt: a 40 ms timer polls ``job.status()`` and, once the job is
finished, calls ``on_done(result)`` on the GUI thread or shows the error in a dialog.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from surgtwin.services.jobs import CANCELLED, DONE, FAILED, Job


class ProgressBar(QWidget):
    """A progress bar that repaints asynchronously (QProgressBar.setValue repaints synchronously,
    which costs a whole-window GL composition per step when a 3D view is on screen)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._value, self._text = 0, ""
        self.setMinimumWidth(160)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(180, 18)

    def value(self) -> int:
        return self._value

    def text(self) -> str:
        return self._text

    def setValue(self, v: int, text: str = "") -> None:  # noqa: N802
        if v != self._value or text != self._text:
            self._value, self._text = int(v), text
            self.update()

    def paintEvent(self, _e) -> None:  # noqa: N802
        p = QPainter(self)
        r = QRectF(self.rect()).adjusted(0.5, 2.5, -0.5, -2.5)
        p.setPen(QColor("#3b4252"))
        p.setBrush(QColor("#1b1f27"))
        p.drawRoundedRect(r, 3, 3)
        done = QRectF(r.x(), r.y(), r.width() * self._value / 1000.0, r.height())
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#4da3ff"))
        p.drawRoundedRect(done, 3, 3)
        p.setPen(QColor("#e5e9f0"))
        p.drawText(r, Qt.AlignmentFlag.AlignCenter, self._text)
        p.end()


class JobRunner(QObject):
    started = Signal(str)
    finished = Signal(str, str)  # name, state

    def __init__(self, window, parent=None) -> None:
        super().__init__(parent)
        self.window = window
        self.job: Job | None = None
        self._on_done = None
        self.widget = QWidget()
        lay = QHBoxLayout(self.widget)
        lay.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel("")
        self.bar = ProgressBar()
        self.bar.setObjectName("jobProgress")
        self._last_paint = 0.0
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("jobCancel")
        self.cancel_button.clicked.connect(self.cancel)
        lay.addWidget(self.label)
        lay.addWidget(self.bar)
        lay.addWidget(self.cancel_button)
        # keep the status bar's height when the job widget appears, so the views (and the 3D render
        # window) are not resized and re-rendered at the start and end of every job
        pol = self.widget.sizePolicy()
        pol.setRetainSizeWhenHidden(True)
        self.widget.setSizePolicy(pol)
        self.widget.hide()
        self.timer = QTimer(self)
        self.timer.setInterval(40)
        self.timer.timeout.connect(self._poll)
        self.last_error: BaseException | None = None
        self.last_state: str | None = None

    @property
    def busy(self) -> bool:
        return self.job is not None

    def run(self, name: str, fn, *args, on_done=None, **kwargs) -> Job | None:
        if self.job is not None:
            self.window.statusBar().showMessage(f"Wait for “{self.job.name}” to finish (or cancel it)", 4000)
            return None
        self.job = Job(name, fn, *args, **kwargs)
        self._on_done = on_done
        self.label.setText(name + "…")
        self.bar.setValue(0, "starting")
        self._last_paint = 0.0
        self.cancel_button.setEnabled(True)
        self.widget.show()
        self.job.start()
        self.timer.start()
        self.started.emit(name)
        return self.job

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.cancel_button.setEnabled(False)
            self.label.setText(f"{self.job.name}: cancelling…")

    def _poll(self) -> None:
        job = self.job
        if job is None:
            self.timer.stop()
            return
        st = job.status()
        if not st.finished:
            now = time.monotonic()
            # every repaint is a whole-window flush (GL-composited once the 3D view exists: ~50 ms
            # on the software renderer), so progress is shown twice a second and only when it changed
            if now - self._last_paint >= 0.5:
                self._last_paint = now
                self.bar.setValue(max(1, int(st.fraction * 1000)), f"{st.fraction * 100:.0f}%")
                msg = st.message if len(st.message) <= 42 else st.message[:41] + "…"
                self.label.setText(f"{job.name}: {msg}" if msg else f"{job.name}…")
            return
        self.timer.stop()
        self.job, on_done = None, self._on_done
        self._on_done = None
        self.widget.hide()
        self.last_state = st.state
        sb = self.window.statusBar()
        if st.state == DONE:
            sb.showMessage(f"{job.name}: done in {st.elapsed_s:.1f} s", 5000)
            if on_done is not None:
                try:
                    on_done(job.result)
                except Exception as exc:  # noqa: BLE001 - shown to the user, not swallowed
                    import traceback

                    self._show_error(job.name, exc, traceback.format_exc())
        elif st.state == CANCELLED:
            sb.showMessage(f"{job.name}: cancelled", 5000)
        elif st.state == FAILED:
            self._show_error(job.name, job.error, job.error_traceback)
        self.finished.emit(job.name, st.state)

    def _show_error(self, name: str, exc, details: str) -> None:
        from surgtwin.ui.dialogs import error_box

        self.last_error = exc
        self.last_state = FAILED
        self.window.statusBar().showMessage(f"{name} failed: {exc}", 8000)
        self.window.last_dialog = error_box(self.window, name, exc, details)
