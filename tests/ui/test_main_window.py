"""The real main window driven with pytest-qt (runs under Xvfb through pytest-xvfb)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from tests.ui.conftest import wait_jobs

pytestmark = pytest.mark.gui


def _pt(p: QPointF) -> QPoint:
    return QPoint(int(round(p.x())), int(round(p.y())))


def _move(widget, pos, buttons=Qt.MouseButton.NoButton):
    """Deliver a mouse move (QTest.mouseMove does not reliably send one without a real cursor)."""
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    p = QPointF(pos)
    ev = QMouseEvent(QMouseEvent.Type.MouseMove, p, widget.mapToGlobal(p), Qt.MouseButton.NoButton, buttons,
                     Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def test_open_volume_shows_views_structures_and_meshes(loaded):
    win = loaded
    s = win.session
    assert s.volume.shape == (40, 72, 72)
    assert "NOT FOR CLINICAL USE" in win.windowTitle()
    table = win.panels["structures"].table
    assert table.rowCount() == 8
    assert table.item(0, 0).text() == "liver"
    # meshes were built from the case's labels and painted in 3D
    assert set(s.meshes) >= {"liver", "aorta", "vertebrae"}
    assert len(win.views.view3d.painter.actors) == len(s.meshes)
    # the axial view shows the image with the label overlay (liver colour present in the picture)
    img = win.views.slices["axial"].render_image()
    assert img is not None and img.width() == 72 and img.height() == 72


def test_status_bar_shows_hu_and_lps_under_cursor(loaded, qtbot):
    win = loaded
    view = win.views.slices["axial"]
    k, j, i = 20, 30, 25
    target = win.session.volume.index_to_world((k, j, i))
    win.session.set_crosshair(target)
    _move(view, _pt(view.screen_from_lps(target)))
    text = win.cursor_label.text()
    assert f"HU {win.session.volume.array[k, j, i]:.0f}" in text
    import re

    shown = [float(v) for v in re.search(r"LPS \(([-\d.]+), ([-\d.]+), ([-\d.]+)\) mm", text).groups()]
    assert np.allclose(shown, target, atol=1.0)  # within a pixel of the 4 mm voxel centre


def test_toggle_structure_hides_mesh_and_overlay(loaded, qtbot):
    win = loaded
    table = win.panels["structures"].table
    item = table.item(0, 0)  # liver
    item.setCheckState(Qt.CheckState.Unchecked)
    liver = win.session.display[1]
    assert liver.visible is False
    actor = win.views.view3d.painter.actors[("structure", "liver")]
    assert not actor.GetVisibility()
    view = win.views.slices["axial"]
    view.render_image()
    assert view._lut[1, 3] == 0  # hidden in the overlay
    item.setCheckState(Qt.CheckState.Checked)
    assert actor.GetVisibility()


def test_scroll_and_click_move_linked_crosshair(loaded, qtbot):
    win = loaded
    ax, cor = win.views.slices["axial"], win.views.slices["coronal"]
    k0 = ax.slice_index
    ax.step(3)
    assert ax.slice_index == k0 + 3
    # the coronal view's crosshair follows the axial slice
    y = cor.screen_from_lps(win.session.crosshair_lps).y()
    qtbot.mouseClick(cor, Qt.MouseButton.LeftButton, pos=QPoint(cor.width() // 3, int(y) - 40))
    assert ax.slice_index != k0 + 3


def test_window_level_drag_and_presets(loaded, qtbot):
    win = loaded
    view = win.views.slices["axial"]
    w0, l0 = win.session.window
    c = view.rect().center()
    qtbot.mousePress(view, Qt.MouseButton.RightButton, pos=c)
    _move(view, c + QPoint(50, 20), Qt.MouseButton.RightButton)
    qtbot.mouseRelease(view, Qt.MouseButton.RightButton, pos=c + QPoint(50, 20))
    w1, l1 = win.session.window
    assert w1 > w0 and l1 < l0
    win.preset_actions["Bone"].trigger()
    assert win.session.window == (1800.0, 400.0)


def test_measure_distance_in_axial_view(loaded, qtbot):
    win = loaded
    view = win.views.slices["axial"]
    win.tools.set(tool="distance")
    c = win.session.crosshair_lps
    a, b = c + np.array([-40.0, 0, 0]), c + np.array([0, 30.0, 0])
    for p in (a, b):
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=_pt(view.screen_from_lps(p)))
    assert len(win.session.measurements) == 1
    m = win.session.measurements[0]
    assert m.kind == "distance" and m.value == pytest.approx(50.0, abs=3.0)
    assert win.panels["tools"].list.count() == 1


def test_paint_then_undo_and_redo(loaded, qtbot):
    win = loaded
    labels = win.session.labels.array
    before = labels.copy()
    view = win.views.slices["axial"]
    win.panels["structures"].select_value(5)  # aorta
    assert win.tools.active_label == 5
    win.tools.set(tool="paint", brush_radius_mm=8.0)
    p0 = view.screen_from_lps(win.session.crosshair_lps + np.array([-60.0, -20.0, 0]))
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=_pt(p0))
    _move(view, _pt(p0 + QPointF(30, 0)), Qt.MouseButton.LeftButton)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=_pt(p0 + QPointF(30, 0)))
    painted = int(np.count_nonzero(labels != before))
    assert painted > 10
    assert np.all(labels[labels != before] == 5)
    assert win.editor.undo_stack.count() == 1
    win.act_undo.trigger()
    assert np.array_equal(labels, before)
    win.act_redo.trigger()
    assert int(np.count_nonzero(labels != before)) == painted
    # the edit triggers a mesh refresh of the painted structure
    qtbot.waitUntil(lambda: win.jobs.busy or not win._mesh_timer.isActive(), timeout=5000)
    wait_jobs(qtbot, win)


def test_keep_largest_island_is_undoable(loaded, qtbot):
    win = loaded
    labels = win.session.labels.array
    labels[0:2, 0:2, 0:2] = 1  # a stray liver island in a corner
    before = labels.copy()
    win.panels["structures"].select_value(1)
    win.label_operation("largest_island")
    assert labels[0, 0, 0] == 0
    win.act_undo.trigger()
    assert np.array_equal(labels, before)


def test_click_in_3d_moves_crosshair_onto_a_surface(loaded, qtbot):
    win = loaded
    v3 = win.views.view3d
    v3.standard_view("A")
    v3.render_now()
    before = win.session.crosshair_lps.copy()
    pl = v3.canvas
    lps = v3.pick_display(pl.width() / 2, pl.height() / 2)
    assert lps is not None
    assert np.allclose(win.session.crosshair_lps, win.session.volume.index_to_world(
        np.clip(win.session.volume.world_to_index(lps), 0, np.asarray(win.session.volume.shape) - 1)))
    assert not np.allclose(win.session.crosshair_lps, before)


def test_3d_view_is_a_raster_widget_driven_by_the_mouse(loaded, qtbot):
    """The 3D view renders offscreen into a plain widget (a QOpenGLWidget anywhere in the window makes
    Qt compose every repaint through OpenGL: ~30-50 ms per MPR slice step with a software renderer).
    Mouse drag rotates, wheel zooms, a click without drag picks, and grab() shows the scene."""
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtOpenGLWidgets import QOpenGLWidget
    from PySide6.QtWidgets import QApplication

    win = loaded
    assert not win.findChildren(QOpenGLWidget)
    v3 = win.views.view3d
    c = v3.canvas
    v3.standard_view("A")
    v3.render_now()
    img = c.grab().toImage()
    colours = {img.pixelColor(x, y).name() for x in range(0, img.width(), 5) for y in range(0, img.height(), 5)}
    assert len(colours) > 40  # shaded meshes, not a flat background
    cam = v3.plotter.camera
    mid = QPoint(c.width() // 2, c.height() // 2)
    d0 = np.subtract(cam.position, cam.focal_point)
    frames = v3.frames
    qtbot.mousePress(c, Qt.MouseButton.LeftButton, pos=mid)
    _move(c, mid + QPoint(80, 0), Qt.MouseButton.LeftButton)
    qtbot.mouseRelease(c, Qt.MouseButton.LeftButton, pos=mid + QPoint(80, 0))
    d1 = np.subtract(cam.position, cam.focal_point)
    assert np.degrees(np.arccos(np.dot(d0, d1) / np.linalg.norm(d0) / np.linalg.norm(d1))) > 10  # rotated
    p = QPointF(mid)
    QApplication.sendEvent(c, QWheelEvent(p, c.mapToGlobal(p), QPoint(), QPoint(0, 120), Qt.MouseButton.NoButton,
                                          Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False))
    assert np.linalg.norm(np.subtract(cam.position, cam.focal_point)) < np.linalg.norm(d1) * 0.99  # zoomed in
    assert c.grab().toImage() != img  # the widget shows the new frames
    v3.standard_view("A")
    v3.render_now()
    assert v3.frames > frames
    before = win.session.crosshair_lps.copy()
    qtbot.mouseClick(c, Qt.MouseButton.LeftButton, pos=mid)
    qtbot.waitUntil(lambda: not np.allclose(win.session.crosshair_lps, before), timeout=3000)


def test_layouts(loaded):
    win = loaded
    win.set_layout("1x3")
    assert win.views.view3d.isHidden() and win.views.slices["sagittal"].isVisible()
    win.set_layout("3d")
    assert win.views.view3d.isVisible() and win.views.slices["axial"].isHidden()
    win.set_layout("2x2")
    assert all(v.isVisible() for v in win.views.slices.values())


def _fake_segment(volume, delay_s=1.5):
    """A fake core segmentation: real CPU work in small steps, with progress and cancel, returning
    the phantom's labels as a core ``SegmentationResult``."""
    from surgtwin.core.progress import check, report
    from surgtwin.core.segmentation import SegmentationResult
    from surgtwin.services.demo import phantom

    labels = phantom(shape=volume.shape, spacing_mm=tuple(volume.spacing_mm))[1]

    def segment(volume, *, method="classical", progress=None, cancel=None, **_):
        t0 = time.perf_counter()
        a = np.random.default_rng(0).random(200_000)
        while time.perf_counter() - t0 < delay_s:
            a = np.sqrt(a * a + 1.0) - 1.0  # single-threaded numpy work, like a classical pipeline
            check(cancel)
            report(progress, (time.perf_counter() - t0) / delay_s, "thinking")
        return SegmentationResult(labels, [], "classical")

    return segment


def _dab(win, qtbot, value, radius_mm=8.0):
    """One paint click of ``value`` at the crosshair in the axial view."""
    win.tools.set(tool="paint", active_label=value, brush_radius_mm=radius_mm)
    view = win.views.slices["axial"]
    p = _pt(view.screen_from_lps(win.session.crosshair_lps))
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=p)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=p)


def test_segment_runs_in_worker_with_progress_and_gui_stays_responsive(loaded, qtbot, monkeypatch):
    from PySide6.QtCore import QTimer

    import surgtwin.core.segmentation as seg

    win = loaded
    monkeypatch.setattr(seg, "segment", _fake_segment(win.session.volume, 1.5))
    win.session.case.set_labels(None)
    qtbot.wait(500)  # let the views redraw first: only the job's time is measured
    stamps = []
    timer = QTimer()
    timer.timeout.connect(lambda: stamps.append(time.perf_counter()))
    timer.start(10)
    win.act_segment.trigger()
    job = win.jobs.job
    assert win.jobs.busy and win.jobs.widget.isVisible()
    qtbot.waitUntil(lambda: win.jobs.bar.value() > 0, timeout=5000)
    qtbot.waitUntil(lambda: not win.jobs.busy, timeout=20000)  # measured while the job runs
    timer.stop()
    assert win.session.labels is not None
    run_s = job.status().elapsed_s  # only the stamps taken while the worker ran
    stamps = [t for t in stamps if t - stamps[0] <= run_s]
    gaps = np.diff(stamps)
    assert len(stamps) > 50
    assert gaps.max() < 0.100, f"event loop blocked for {gaps.max() * 1000:.0f} ms"
    assert len(win.session.labels.labels) == 8
    wait_jobs(qtbot, win)  # meshes follow segmentation
    assert "liver" in win.session.meshes


def test_cancel_stops_the_job_and_keeps_state(loaded, qtbot, monkeypatch):
    import surgtwin.core.segmentation as seg

    win = loaded
    monkeypatch.setattr(seg, "segment", _fake_segment(win.session.volume, 30.0))
    labels = win.session.labels
    win.act_segment.trigger()
    qtbot.waitUntil(lambda: win.jobs.bar.value() > 0, timeout=5000)
    qtbot.mouseClick(win.jobs.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not win.jobs.busy, timeout=5000)
    assert win.jobs.last_state == "cancelled"
    assert win.session.labels is labels


def test_user_error_is_shown_in_a_dialog_not_raised(window, qtbot, tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not an image")
    window.open_path(bad)
    wait_jobs(qtbot, window)
    box = window.last_dialog
    assert box is not None and box.isVisible()
    assert "broken.nii.gz" in box.informativeText()
    assert "Traceback" not in box.informativeText()
    box.close()


def test_save_and_open_case_roundtrip(loaded, qtbot, tmp_path):
    from surgtwin.core.measure import Measurement

    win = loaded
    win.session.set_structure(2, visible=False, color=(10, 20, 30))
    win.session.labels.array[20, 30, 30] = 5
    win.session.case.notify_labels_edited()
    win.session.set_window(1800, 400)
    win.session.case.add_measurement(Measurement("distance", [(0, 0, 0), (3, 4, 0)], "axial"))
    win.set_layout("1x3")
    labels = win.session.labels.array.copy()
    folder = tmp_path / "case.stwin"
    assert win.cases.save(folder)
    wait_jobs(qtbot, win)
    assert (folder / "manifest.json").is_file() and not win.session.case.dirty
    assert str(folder) in [a.text() for a in win.recent_menu.actions()]  # File > Recent
    win.set_layout("2x2")
    win.session.clear()
    win.open_path(folder)
    qtbot.waitUntil(lambda: win.session.volume is not None, timeout=30000)
    wait_jobs(qtbot, win)
    s = win.session
    assert np.array_equal(s.labels.array, labels)
    assert s.display[2].visible is False and s.display[2].color == (10, 20, 30)
    assert s.window == (1800.0, 400.0) and win.views.layout_name == "1x3"
    assert [m.value for m in s.measurements] == [pytest.approx(5.0)]
    assert set(s.meshes) == set(s.case.meshes) and s.meshes
    assert s.case_path == folder and "case.stwin" in win.windowTitle()


def test_app_opens_a_headless_case_with_the_same_structures(window, qtbot, phantom_dir, tmp_path):
    from surgtwin.services import pipeline

    case = pipeline.new_case(phantom_dir / "image.nii.gz")
    pipeline.run_step(case, "mesh", structures=["liver", "aorta"])
    path = pipeline.save_case(case, tmp_path / "made_by_cli.stwin")
    window.open_path(path)
    qtbot.waitUntil(lambda: window.session.case is not None, timeout=30000)
    wait_jobs(qtbot, window)
    table = window.panels["structures"].table
    assert [table.item(r, 0).text() for r in range(table.rowCount())] == [
        n.replace("_", " ") for n in case.labels.labels.names()]
    assert set(window.session.meshes) == {"liver", "aorta"}  # the case's meshes, not rebuilt
    assert window.session.case.item("meshes").provenance.method == "surfaces"


def test_editing_labels_marks_the_meshes_stale_until_they_are_rebuilt(loaded, qtbot):
    win = loaded
    case = win.session.case
    assert not case.is_stale("meshes")
    win._mesh_timer.setInterval(60_000)  # hold the automatic refresh back to look at the stale state
    _dab(win, qtbot, 2)
    assert case.is_stale("meshes")
    qtbot.waitUntil(lambda: "meshes" in win.stale_info.text(), timeout=3000)
    win._mesh_timer.setInterval(10)
    win._mesh_timer.start()
    qtbot.waitUntil(lambda: not case.is_stale("meshes"), timeout=30000)
    wait_jobs(qtbot, win)
    qtbot.waitUntil(lambda: win.stale_info.text() == "", timeout=3000)


def test_undo_after_the_label_map_is_replaced_does_not_touch_the_new_map(loaded, qtbot):
    from dataclasses import replace

    win = loaded
    _dab(win, qtbot, 2, 10.0)
    assert win.editor.undo_stack.canUndo()
    new = replace(win.session.labels, array=np.full_like(win.session.labels.array, 3))
    win.session.case.set_labels(new)  # e.g. a new segmentation arrives
    assert not win.editor.undo_stack.canUndo()
    win.act_undo.trigger()
    assert np.all(win.session.labels.array == 3)  # not one voxel of the old map written into the new one


def test_painting_while_segmentation_runs_is_not_overwritten(loaded, qtbot, monkeypatch):
    import surgtwin.core.segmentation as seg

    win = loaded
    monkeypatch.setattr(seg, "segment", _fake_segment(win.session.volume, 1.5))
    win.act_segment.trigger()
    assert win.jobs.busy
    before = win.session.labels.array.copy()
    _dab(win, qtbot, 2)
    painted = win.session.labels.array.copy()
    assert not np.array_equal(painted, before)
    qtbot.waitUntil(lambda: win.last_dialog is not None and win.last_dialog.objectName() == "replaceEditsBox",
                    timeout=20000)
    assert np.array_equal(win.session.labels.array, painted)  # the result waits for the user's answer
    keep = win.last_dialog.button(win.last_dialog.StandardButton.No)
    qtbot.mouseClick(keep, Qt.MouseButton.LeftButton)
    assert np.array_equal(win.session.labels.array, painted)


def test_autosave_then_restore_after_a_crash(loaded, qtbot):
    from surgtwin.services import recovery
    from surgtwin.ui.main_window import MainWindow

    win = loaded
    case = win.session.case
    case.labels.array[10, 10, 10] = 7
    case.notify_labels_edited()
    assert win.cases.autosave(wait=True)
    assert [r.case_id for r in recovery.pending()] == [case.case_id]
    # a "crashed" app leaves the copy behind; the next window offers it
    win2 = MainWindow()
    qtbot.addWidget(win2)
    box = win2.cases.offer_recovery()
    assert box is not None and box.objectName() == "recoveryBox"
    qtbot.mouseClick(box.button(box.StandardButton.Yes), Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, win2)
    assert win2.jobs.last_error is None, win2.jobs.last_error
    qtbot.waitUntil(lambda: win2.session.case is not None, timeout=30000)
    wait_jobs(qtbot, win2)
    assert win2.session.case.labels.array[10, 10, 10] == 7 and win2.session.case.dirty
    win2.close()


def test_about_box_says_not_for_clinical_use(window):
    from surgtwin import __version__
    from surgtwin.ui.dialogs import about_box

    box = about_box(window)
    assert "NOT FOR CLINICAL USE" in box.text() and __version__ in box.text()
    box.close()


def test_default_layout_is_2x2_and_settings_stay_in_tmp(window, tmp_path):
    import os
    from pathlib import Path

    # no saved preference (a fresh settings file per test): 2x2 with axial, coronal, sagittal and 3D
    assert window.views.layout_name == "2x2"
    assert window.layout_actions["2x2"].isChecked()
    assert all(v.isVisible() for v in window.views.slices.values()) and window.views.view3d.isVisible()
    # preferences go to the test's own file, never to the user's real QSettings
    settings_file = Path(window.settings.fileName())
    assert settings_file == Path(os.environ["SURGTWIN_SETTINGS"])
    assert tmp_path in settings_file.parents


def test_slice_scrolling_does_not_render_3d_until_it_pauses(loaded, qtbot):
    win = loaded
    v3 = win.views.view3d
    v3.render_now()
    frames = v3.frames
    ax = win.views.slices["axial"]
    for n in range(6):
        ax.step(1 if n % 2 == 0 else -1)
        qtbot.wait(30)
    assert v3.frames == frames  # no software-rendered frame between wheel steps
    qtbot.waitUntil(lambda: v3.frames > frames, timeout=3000)  # one frame once scrolling stopped


def test_case_panel_shows_items_staleness_and_rebuilds(loaded, qtbot):
    win = loaded
    panel = win.panels["case"]
    case = win.session.case
    win._mesh_timer.setInterval(60_000)  # no automatic refresh: the panel's button rebuilds

    def rows():
        return {panel.table.item(r, 0).text(): panel.table.item(r, 2).text() for r in range(panel.table.rowCount())}

    qtbot.waitUntil(lambda: rows() == {"Label map": "current", "Surface meshes": "current"}, timeout=3000)
    assert not panel.rebuild_button.isEnabled()
    _dab(win, qtbot, 2)
    qtbot.waitUntil(lambda: rows() == {"Label map": "edited by hand", "Surface meshes": "out of date"}, timeout=3000)
    assert "unsaved changes" in panel.header.text()
    qtbot.mouseClick(panel.rebuild_button, Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, win)
    qtbot.waitUntil(lambda: rows()["Surface meshes"] == "current", timeout=3000)
    panel.notes.setPlainText("check the portal vein")
    qtbot.waitUntil(lambda: case.notes == "check the portal vein", timeout=3000)


def test_export_of_stale_meshes_asks_first(loaded, qtbot, tmp_path):
    win = loaded
    win._mesh_timer.setInterval(60_000)
    _dab(win, qtbot, 2)
    win.cases.export_meshes(tmp_path / "out", "stl")
    assert win.last_dialog.objectName() == "staleExportBox" and not (tmp_path / "out").exists()
    qtbot.mouseClick(win.last_dialog.button(win.last_dialog.StandardButton.Yes), Qt.MouseButton.LeftButton)
    wait_jobs(qtbot, win)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{n}.stl" for n in win.session.case.meshes)


def test_a_partial_refresh_does_not_mark_meshes_current_that_were_stale_before(loaded, qtbot, tmp_path):
    from surgtwin.services import pipeline

    win = loaded
    case = win.session.case
    liver = case.labels.labels.by_name("liver").value
    case.labels.array[case.labels.array == liver] = 0  # edited elsewhere, meshes not rebuilt
    case.notify_labels_edited()
    path = pipeline.save_case(case, tmp_path / "stale.stwin")
    win.open_path(path)
    qtbot.waitUntil(lambda: win.session.case is not None and win.session.case.case_id == case.case_id
                    and win.session.case is not case, timeout=30000)
    wait_jobs(qtbot, win)
    reopened = win.session.case
    assert reopened.is_stale("meshes")
    win._mesh_timer.setInterval(10)
    _dab(win, qtbot, 2)  # an edit of another structure: its refresh must not hide the liver's staleness
    qtbot.wait(300)
    wait_jobs(qtbot, win)
    assert reopened.is_stale("meshes")


def test_implant_panel_places_moves_and_checks_an_implant(loaded, qtbot):
    from PySide6.QtWidgets import QApplication

    from surgtwin.services.implants import placement

    win = loaded
    panel = win.panels["implants"]
    panel.family.setCurrentText("pedicle-screw")
    panel.size.setCurrentIndex(0)
    panel.target.clear()
    panel.target.addItem("crosshair")  # the phantom has no named vertebra levels: place at the crosshair
    panel.place()
    wait_jobs(qtbot, win)
    assert panel.list.count() == 1 and panel.selected_id() == "1"
    key = ("implant", "1")
    assert key in win.session.overlays and win.session.overlays[key].contour
    assert panel.checks.rowCount() > 0
    before = placement(win.session.case, "1").pose.translation_mm.copy()
    qtbot.mouseClick(panel.move_buttons[1], Qt.MouseButton.LeftButton)  # "L →": +1 mm along L
    after = placement(win.session.case, "1").pose.translation_mm
    assert np.allclose(after - before, [1.0, 0, 0])
    panel.step_mm.setValue(2.5)
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win, timeout=3000)
    qtbot.keyClick(win.views.slices["axial"], Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)  # 2.5 mm superior
    assert np.allclose(placement(win.session.case, "1").pose.translation_mm - after, [0, 0, 2.5])
    # the 3D handle reports a dragged pose through the same path
    qtbot.waitUntil(lambda: win.views.view3d._handle_key == key, timeout=3000)
    m = placement(win.session.case, "1").pose.matrix.copy()
    m[:3, 3] += [0, -4.0, 0]
    win.views.view3d._handle_cb(m)
    assert np.allclose(placement(win.session.case, "1").pose.translation_mm, m[:3, 3])
    assert win.session.case.item("implants").provenance.parameters["pose_method"] == "manual"
    panel.remove_selected()
    assert panel.list.count() == 0 and key not in win.session.overlays


@pytest.mark.slow  # two FE solves (~10 s)
def test_simulation_panel_runs_fe_shows_the_table_colour_map_and_a_what_if(window, qtbot, tmp_path):
    from surgtwin.core.case import Case
    from surgtwin.services import pipeline
    from tests.core.sim.synthetic import femur

    labels, ct = femur(spacing=2.5)
    case = Case(ct, name="synthetic femur")
    case.set_labels(labels)
    pipeline.run_step(case, "implant", family="hip-stem", size="2", femur="left")
    window.session.set_case(case)
    panel = window.panels["fem"]
    assert panel.implant.count() == 1 and panel.load.currentText() == "walking"
    panel.mesh_size.setValue(4.0)
    panel.run()
    wait_jobs(qtbot, window, timeout=120000)
    assert window.jobs.last_state == "done", window.jobs.last_error
    assert "fem:1" in case.keys() and panel.table.rowCount() >= 5
    assert "safety factor" in panel.summary.text()
    key = ("fem", "fem:1")
    obj = window.session.overlays[key]
    assert obj.scalars is not None and len(obj.scalars) == len(obj.faces) and obj.clim == (-100.0, 100.0)
    panel.field.setCurrentText("von Mises implanted MPa")
    assert window.session.overlays[key].clim[0] == 0.0
    panel.size_b.setCurrentText("3")
    panel.compare()
    wait_jobs(qtbot, window, timeout=180000)
    assert window.jobs.last_state == "done", window.jobs.last_error
    assert panel.table.columnCount() == 3 and "size 3" in panel.table.horizontalHeaderItem(2).text()
    assert "shields" in panel.summary.text() or "strain energy" in panel.summary.text()
    b = window.session.overlays[("fem", "fem:1:size-3")]
    assert b.vertices[:, 0].min() > obj.vertices[:, 0].max()  # drawn beside A, not on top of it
