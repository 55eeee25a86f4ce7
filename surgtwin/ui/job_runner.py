"""Runs services ``Job``s off the GUI thread with a status-bar progress bar and a Cancel button.

The worker thread never touches Qt: a 40 ms timer polls ``job.status()`` and, once the job is
finished, calls ``on_done(result)`` on the GUI thread or shows the error in a dialog.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from surgtwin.services.jobs import CANCELLED, DONE, FAILED, Job


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
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setObjectName("jobProgress")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("jobCancel")
        self.cancel_button.clicked.connect(self.cancel)
        lay.addWidget(self.label)
        lay.addWidget(self.bar)
        lay.addWidget(self.cancel_button)
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
        self.bar.setValue(0)
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
        self.bar.setValue(int(st.fraction * 1000))
        self.bar.setFormat(f"{st.fraction * 100:.0f}%  {st.message[:40]}")
        if not st.finished:
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
