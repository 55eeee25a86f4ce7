"""Start the Qt app: ``run_app(path, screenshot=..., quit_after=...)`` (used by ``surgtwin gui``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

#: longest wait for loading + meshing + the first 3D frame before ``--screenshot`` saves anyway
SCREENSHOT_TIMEOUT_S = 300.0


def create_app():
    from PySide6.QtWidgets import QApplication

    from surgtwin.ui.theme import apply_theme

    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
    if not app.property("surgtwin_themed"):
        app.setApplicationName("surgtwin")
        app.setOrganizationName("surgtwin")
        apply_theme(app)
        app.setProperty("surgtwin_themed", True)
    return app


def default_path():
    """The first sample case, or None when there is none."""
    from surgtwin.services.pipeline import sample_cases

    cases = sample_cases()
    return cases[0].folder if cases else None


def run_app(path=None, *, screenshot=None, quit_after=None, window_size=None, panel=None) -> int:
    """Open the main window on ``path`` (default: the first sample case); optionally save a screenshot
    once loading, meshing and rendering are done, and quit after ``quit_after`` seconds."""
    t0 = time.perf_counter()
    app = create_app()
    from PySide6.QtCore import QTimer

    from surgtwin.ui.main_window import MainWindow

    win = MainWindow(ask_on_close=not screenshot and quit_after is None)
    if window_size:
        win.resize(*window_size)
    if panel:
        from surgtwin.core.errors import SurgtwinError

        if panel not in win.docks:
            raise SurgtwinError(f"no panel {panel!r}", hint=f"panels: {', '.join(win.docks)}")
        win.docks[panel].show()
        win.docks[panel].raise_()
    win.show()
    target = Path(path) if path else default_path()
    if not screenshot and win.cases.offer_recovery() is not None and not path:
        target = None  # the user answers the recovery question first
    if target is not None:
        win.open_path(target)
    else:
        win.statusBar().showMessage("No sample cases found (surgtwin/data/samples/). Use File → Open to load an image, or drop "
                                    "a DICOM folder on the window.")
    state = {"shot": False, "idle_since": None, "frames_at_mesh": None}
    v3 = win.views.view3d
    win.session.meshes_changed.connect(lambda: state.update(frames_at_mesh=v3.frames))

    def take_shot() -> None:
        if state["shot"] or not screenshot:
            return
        state["shot"] = True
        app.processEvents()
        win.screenshot(screenshot)
        busy = f" (still busy: {win.jobs.job.name})" if win.jobs.busy else ""
        print(f"surgtwin: screenshot saved to {screenshot} ({time.perf_counter() - t0:.1f} s after start){busy}")
        QTimer.singleShot(100, app.quit)  # --quit-after is the deadline; done once the picture is saved

    def ready() -> bool:
        """Loaded, meshed (when there are labels) and the 3D view has drawn the meshes."""
        if win.jobs.busy:
            return False
        if win.jobs.last_state == "failed":
            return True  # shows the error dialog
        if win.views.layout_name == "1x3":
            return True
        if v3.plotter is None:
            return False
        s = win.session
        if s.labels is not None and len(s.labels.labels) and not s.meshes:
            return False  # meshing has not started or finished yet
        if s.meshes and (state["frames_at_mesh"] is None or v3.frames <= state["frames_at_mesh"]):
            v3.render()  # the first frame with the meshes
            return False
        return True

    def poll() -> None:
        now = time.perf_counter()
        if ready():
            state["idle_since"] = state["idle_since"] or now
            if now - state["idle_since"] > 0.6:
                take_shot()
        else:
            state["idle_since"] = None

    if screenshot:
        timer = QTimer(win)
        timer.timeout.connect(poll)
        timer.start(100)
        # the upper bound: --quit-after (minus a second to save the picture), else 5 minutes
        deadline = (quit_after - 1.0) if quit_after is not None else SCREENSHOT_TIMEOUT_S
        QTimer.singleShot(int(max(0.0, deadline) * 1000), take_shot)
    if quit_after is not None:
        QTimer.singleShot(int(quit_after * 1000), app.quit)
    rc = app.exec()
    failed = win.jobs.last_state == "failed" and win.jobs.last_error is not None
    if failed:
        print(f"surgtwin: error: {win.jobs.last_error}", file=sys.stderr)
    win.close()
    return 2 if failed and rc == 0 else int(rc)
