"""The quality gate in the app: flagged structures marked in the Structures list with their reasons, a
banner naming them, a refused planning step, and confirmation from the panel."""

from __future__ import annotations

import pytest

from tests.services.test_quality_gate import _case
from tests.ui.conftest import wait_jobs

pytestmark = pytest.mark.gui


def test_flagged_structures_show_in_the_list_and_banner_and_can_be_confirmed(window, qtbot):
    case = _case(liver_left=True)  # a liver left of the spleen: both flagged
    window.session.set_case(case)
    panel = window.panels["structures"]
    assert panel.banner.isVisible() and "flagged" in panel.banner.text()
    assert "liver" in panel.banner.text() and "spleen" in panel.banner.text()
    names = {panel.table.item(r, 0).text() for r in range(panel.table.rowCount())}
    assert "⚠ liver" in names and "⚠ spleen" in names and "kidney left" in names
    row = [panel.table.item(r, 0).text() for r in range(panel.table.rowCount())].index("⚠ liver")
    assert "flagged" in panel.table.item(row, 0).toolTip()
    # a planning step is refused with the reason in a dialog, the app goes on
    assert window.prepare_step("mesh") is None
    box = window.last_dialog
    assert box is not None and "liver" in box.text() + box.informativeText() + box.detailedText()
    window.last_dialog.close()
    # the app meshes what it may use now: the flagged structures wait
    window.build_meshes()
    wait_jobs(qtbot, window)
    assert window.jobs.last_state == "done", window.jobs.last_error
    assert set(case.meshes) == {"kidney_left"}
    # confirm one, then all: the banner goes and the step is allowed
    panel.table.selectRow(row)
    panel.confirm_selected()
    assert "⚠ liver" not in {panel.table.item(r, 0).text() for r in range(panel.table.rowCount())}
    assert panel.banner.isVisible() and "spleen" in panel.banner.text()
    panel.confirm_all()
    assert not panel.banner.isVisible() and not panel.confirm_all_button.isVisible()
    # confirming re-meshes with the confirmed structures (after the previous confirmation's meshing)
    qtbot.waitUntil(lambda: set(case.meshes) == {"kidney_left", "liver", "spleen"}, timeout=30000)
    assert window.prepare_step("mesh") is not None
