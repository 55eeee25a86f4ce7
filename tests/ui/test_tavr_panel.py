"""The TAVR panel on the cardiac sample case: the annulus from the labels and from three hinge points
clicked in the MPR views, the reslice, the chart, the valve re-placed by family/size/depth."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.ui.conftest import wait_jobs

pytestmark = [pytest.mark.gui, pytest.mark.slow]


@pytest.fixture(scope="module")
def cardiac():
    from surgtwin.resources import sample_root

    folder = sample_root() / "cardiac-cta"
    text = (folder / "PROVENANCE.md").read_text()
    known = json.loads(re.search(r"```json\n(.*?)```", text, re.S).group(1))
    return folder, known


def _case(cardiac):
    from surgtwin.services.pipeline import new_case

    return new_case(cardiac[0])


def test_tavr_panel_measures_shows_and_replaces_the_valve(window, qtbot, cardiac):
    _, known = cardiac
    case = _case(cardiac)
    window.session.set_case(case)
    panel = window.panels["tavr"]
    assert panel.measurements.rowCount() == 0 and "No annulus yet" in panel.result.text()
    panel.measure()
    wait_jobs(qtbot, window, timeout=120000)
    assert window.jobs.last_state == "done", window.jobs.last_error
    rec = case.item("tavr").value
    m = rec["measurement"]
    assert m["perimeter_mm"] == pytest.approx(known["annulus_perimeter_mm"], rel=0.02)
    # the table shows the record's numbers; the reslice shows the annulus plane with its contour
    assert panel.measurements.item(0, 1).text() == f"{m['perimeter_mm']:.1f} mm"
    assert panel.oblique.plane is not None and len(panel.oblique.outlines[0][0]) == len(m["contour_lps"])
    img = panel.oblique._pixels
    assert img.shape[0] == img.shape[1] and img[img.shape[0] // 2, img.shape[1] // 2] > 150  # contrast lumen
    # the chart of the chosen family, the recommendation in bold green
    assert panel.chart.rowCount() == 4
    recommended = [panel.chart.item(r, 0).text() for r in range(4) if panel.chart.item(r, 3).text() == "recommended"]
    assert recommended == [f"{rec['sizing'][panel.family.currentText()]['recommended']} mm"]
    assert "mean gradient" in panel.result.text() and "Paravalvular-leak indicator" in panel.result.text()
    # the annulus plane (slab) and the valve frame are scene objects drawn in the MPR views too
    for key in (("tavr", "annulus"), ("tavr", "valve")):
        assert window.session.overlays[key].contour
    valve = window.session.overlays[("tavr", "valve")]
    assert np.allclose(valve.matrix, rec["valve"]["matrix_lps"])
    assert np.linalg.norm(np.asarray(window.session.crosshair_lps) - m["centre_lps"]) < 1.0
    # deeper: the frame moves along the annulus normal toward the ventricle by the difference
    before = np.asarray(rec["valve"]["matrix_lps"])[:3, 3]
    d0 = rec["valve"]["depth_mm"]
    panel.depth.setValue(d0 + 2.0)
    panel.depth.editingFinished.emit()
    after_rec = case.item("tavr").value
    moved = np.asarray(after_rec["valve"]["matrix_lps"])[:3, 3] - before
    assert float(moved @ np.asarray(m["normal_lps"])) == pytest.approx(-2.0, abs=1e-6)
    assert after_rec["measurement"] == m  # re-placing does not measure again
    # the other family: its own recommendation, chart and frame
    panel.family.setCurrentText("self-expanding")
    rec2 = case.item("tavr").value
    assert rec2["valve"]["family"] == "self-expanding"
    assert rec2["valve"]["size"] == rec2["sizing"]["self-expanding"]["recommended"]
    assert panel.size.currentText() == rec2["valve"]["size"]
    assert "Perimeter range" in panel.chart.horizontalHeaderItem(1).text()
    # see-through keeps the root in 3D and hides the rest there; off restores
    assert panel.see_through.isChecked()
    d = {x.name: x.opacity_3d for x in window.session.display.values()}
    assert d["aortic_root"] == pytest.approx(0.3) and d["lung_left"] == 0.0
    panel.see_through.setChecked(False)
    assert all(x.opacity_3d == 1.0 for x in window.session.display.values())


def test_tavr_panel_from_three_hinge_points_clicked_in_the_mpr(window, qtbot, cardiac):
    from PySide6.QtCore import QPoint, Qt

    _, known = cardiac
    case = _case(cardiac)
    window.session.set_case(case)
    panel = window.panels["tavr"]
    panel.hinge_button.setChecked(True)
    assert window.tools.picker is not None
    # a real click in the axial view goes to the panel, not to the crosshair
    view = window.views.slices["axial"]
    cross = np.asarray(window.session.crosshair_lps, float).copy()
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(view.width() // 2, view.height() // 2))
    assert len(panel.hinges) == 1 and np.allclose(window.session.crosshair_lps, cross)
    assert ("tavr", "hinge-0") in window.session.overlays
    panel.hinges.clear()
    # three hinge points on the designed annulus ellipse
    c = np.asarray(known["annulus_centre_lps"], float)
    n = np.asarray(known["annulus_normal_lps"], float)
    a = np.asarray(known["annulus_major_axis_lps"], float)
    b = np.cross(n, a)
    ra, rb = known["annulus_diameter_max_mm"] / 2, known["annulus_diameter_min_mm"] / 2
    for t in np.deg2rad([20.0, 140.0, 260.0]):
        window.tools.picker(c + ra * np.cos(t) * a + rb * np.sin(t) * b)
    assert window.tools.picker is None and not panel.hinge_button.isChecked()
    wait_jobs(qtbot, window, timeout=120000)
    assert window.jobs.last_state == "done", window.jobs.last_error
    m = case.item("tavr").value["measurement"]
    assert m["method"].startswith("hinge")
    assert m["perimeter_mm"] == pytest.approx(known["annulus_perimeter_mm"], rel=0.02)
    assert m["area_mm2"] == pytest.approx(known["annulus_area_mm2"], rel=0.02)
    assert abs(float(np.dot(m["normal_lps"], n))) > 0.995


def test_a_planned_case_shows_the_physiology_it_was_planned_with(window, cardiac):
    """A case planned elsewhere (e.g. a cohort's virtual patient) shows its cardiac output, heart rate and
    BSA, and where the BSA came from."""
    from surgtwin.services.pipeline import run_step

    case = _case(cardiac)
    run_step(case, "tavr", cardiac_output_l_min=4.2, heart_rate_bpm=88.0, bsa_m2=1.77)
    window.session.set_case(case)
    panel = window.panels["tavr"]
    panel.show_record()
    assert (panel.output.value(), panel.rate.value(), panel.bsa.value()) == (4.2, 88.0, 1.77)
    assert "given" in panel.bsa.toolTip()
    assert "mean gradient" in panel.result.text()
