"""The Blood flow panel: centerlines + flow from the app, the table, the tree coloured in 3D, a virtual
stent with before/after side by side."""

from __future__ import annotations

import numpy as np
import pytest

from tests.services.test_flow_step import y_case
from tests.ui.conftest import wait_jobs

pytestmark = pytest.mark.gui


def test_flow_panel_runs_shows_the_tree_and_a_virtual_stent(window, qtbot):
    case = y_case()
    window.session.set_case(case)
    panel = window.panels["flow"]
    assert panel.table.rowCount() == 0 and "No flow result" in panel.summary.text()
    panel.run()
    wait_jobs(qtbot, window, timeout=120000)
    assert window.jobs.last_state == "done", window.jobs.last_error
    assert "flow:aorta" in case.keys() and "centerlines:aorta" in case.keys()
    assert panel.table.rowCount() >= 3
    rows = [panel.table.item(r, 0).text() for r in range(panel.table.rowCount())]
    assert "aorta" in rows and "iliac L" in rows
    # the stenosis is found, offered for stenting and shown in the summary
    assert panel.stenosis.count() >= 1 and panel.stenosis.currentData() == "s0"
    assert "s0 aorta" in panel.summary.text() and "Pd/Pp" in panel.summary.text()
    obj = window.session.overlays[("flow", "flow:aorta")]
    assert obj.scalars is not None and len(obj.scalars) == len(obj.faces)
    lo, hi = obj.clim
    assert hi - lo > 0.1  # pressure falls along the tree
    assert panel.see_through.isChecked()  # the tree shows through the anatomy after a run
    # a virtual stent: before/after columns and the stented tree drawn beside the original
    panel.stent_diameter.setValue(18.0)
    panel.stent()
    wait_jobs(qtbot, window, timeout=120000)
    assert window.jobs.last_state == "done", window.jobs.last_error
    heads = [panel.table.horizontalHeaderItem(c).text() for c in range(panel.table.columnCount())]
    assert "ΔP stent" in heads and "Pd/Pp stent" in heads
    r = rows.index("aorta")
    before = float(panel.table.item(r, heads.index("ΔP")).text())
    after = float(panel.table.item(r, heads.index("ΔP stent")).text())
    assert after < before
    b = window.session.overlays[("flow", "flow:aorta:stent")]
    a = window.session.overlays[("flow", "flow:aorta")]
    assert b.vertices[:, 0].min() > a.vertices[:, 0].max()
    # colour by flow; off removes the tree
    panel.field.setCurrentText("flow")
    assert window.session.overlays[("flow", "flow:aorta")].scalar_title.startswith("Mean flow")
    panel.field.setCurrentText("off")
    assert not [k for k in window.session.overlays if k[0] == "flow"]
    # selecting a segment moves the crosshair onto its centerline
    panel.table.selectRow(r)
    cl = np.vstack([br.points_lps for br in panel.results()[0].graph.branches])
    assert np.min(np.linalg.norm(cl - np.asarray(window.session.crosshair_lps), axis=1)) < 1e-6
    # see-through off restores the structures' opacity
    panel.see_through.setChecked(False)
    assert all(d.opacity_3d == 1.0 for d in window.session.display.values())


def test_flow_panel_without_labels_says_what_to_do(window):
    panel = window.panels["flow"]
    panel.run()
    assert "label map" in panel.summary.text()
