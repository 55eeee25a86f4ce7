"""Fixtures for the desktop-app tests: a small synthetic CT with labels, isolated settings, a window."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory):
    from surgtwin.services.demo import write_phantom

    folder = tmp_path_factory.mktemp("phantom")
    write_phantom(folder, shape=(40, 72, 72), spacing_mm=(5.0, 4.0, 4.0))
    return folder


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("SURGTWIN_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("SURGTWIN_RECOVERY_DIR", str(tmp_path / "recovery"))
    empty = tmp_path / "no_samples"
    empty.mkdir()
    monkeypatch.setenv("SURGTWIN_SAMPLES", str(empty))


def wait_jobs(qtbot, win, timeout=60000):
    qtbot.waitUntil(lambda: not win.jobs.busy, timeout=timeout)


@pytest.fixture
def window(qtbot):
    from surgtwin.ui.app import create_app
    from surgtwin.ui.main_window import MainWindow

    create_app()
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    qtbot.waitUntil(lambda: win.views.view3d.plotter is not None, timeout=20000)
    yield win
    win.jobs.cancel()
    if win.jobs.job is not None:
        win.jobs.job.wait(10)
    win.close()


@pytest.fixture
def loaded(window, qtbot, phantom_dir):
    """The window with the phantom open and its meshes built."""
    window.open_path(phantom_dir / "image.nii.gz")
    qtbot.waitUntil(lambda: window.session.volume is not None, timeout=30000)
    wait_jobs(qtbot, window)
    return window
