"""File ▸ Cohort… in the app: a 2-patient virtual cohort run in this process to the end (results table
with volumes, the report, a case opened in the main window), an empty folder refused inline with the
window still usable, and Cancel stopping a run."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.ui.conftest import wait_jobs

pytestmark = [pytest.mark.gui]


def _open_cohort_window(window):
    file_menu = window.menuBar().actions()[0].menu()
    action = next(a for a in file_menu.actions() if a.text() == "Co&hort…")
    action.trigger()
    cw = window.cohort.cohort_window
    assert cw is not None and cw.isVisible()
    return cw


def _virtual(cw, out, n=2):
    assert cw.add_virtual("cardiac-cta", n, pixel_mm=3.0, slice_mm=3.0) == n
    cw.set_steps(["segment"])
    cw.workers.setValue(0)  # in this process
    cw.out_edit.setText(str(out))


def test_a_virtual_cohort_runs_and_a_case_opens(window, qtbot, tmp_path, monkeypatch):
    import surgtwin.ui.cohort_results as cohort_results

    cw = _open_cohort_window(window)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cw.add_inputs([empty]) == 0  # refused inline, nothing added, no dialog
    assert "holds no study" in cw.status.text() and not cw.entries and cw.last_dialog is None
    assert cw.add_button.isEnabled() and cw.run_button.isEnabled()

    _virtual(cw, tmp_path / "out")
    assert cw.selected_steps() == ["segment"]
    assert cw.run() is not None
    assert not cw.run_button.isEnabled() and cw.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: cw.job is None, timeout=120000)
    assert cw.last_state == "done", cw.status.text()
    m = cw.results.model
    assert m.rowCount() == 2 and [m.status(r) for r in range(2)] == ["ok", "ok"]
    assert m.columns[:3] == ["case_id", "status", "seconds"]
    vols = [c for c in m.columns if c.startswith("volume_ml:")]
    assert vols and all(m.value(r, vols[0]) > 0 for r in range(2))
    assert cw.progress_line.text().startswith("2/2 cases, 0 failed")
    assert (tmp_path / "out" / "cohort_results.csv").is_file()
    assert cw.results.report_path is not None and cw.results.report_path.read_bytes().startswith(b"%PDF")
    opened = []
    monkeypatch.setattr(cohort_results, "open_url", lambda p: opened.append(p) or True)
    assert cw.results.open_report() and opened == [cw.results.report_path]

    cw.results.table.sortByColumn(m.columns.index("case_id"), Qt.SortOrder.DescendingOrder)  # sortable
    assert [m.case_id(r) for r in range(2)] == ["cardiac-cta-0001", "cardiac-cta-0000"]
    cw.results.table.selectRow(0)
    assert cw.results.open_case()
    qtbot.waitUntil(lambda: window.session.case_path is not None, timeout=60000)
    wait_jobs(qtbot, window)
    assert window.session.case_path.name == "cardiac-cta-0001.stwin"
    assert window.session.labels is not None

    # reopening the folder shows the same table without running anything
    cw.results.model.set_frame(None)
    assert cw.results.load(tmp_path / "out") and m.rowCount() == 2


def test_an_unreachable_scheduler_is_said_inline_and_cancel_stops_a_run(window, qtbot, tmp_path):
    cw = _open_cohort_window(window)
    _virtual(cw, tmp_path / "out", n=3)
    cw.scheduler.setText("tcp://127.0.0.1:9")  # nothing listens there
    assert not cw.workers.isEnabled()
    cw.run()
    qtbot.waitUntil(lambda: cw.job is None, timeout=60000)
    assert cw.last_state == "failed" and "cannot reach the Dask scheduler" in cw.status.text()
    assert cw.last_dialog is None and cw.run_button.isEnabled()  # inline, no error box

    cw.scheduler.clear()
    assert cw.workers.isEnabled() and cw.workers.value() == 0
    cw.run()
    qtbot.wait(1500)
    cw.cancel()
    qtbot.waitUntil(lambda: cw.job is None, timeout=60000)
    assert cw.last_state == "cancelled"
    assert "Cancelled" in cw.status.text()
    assert cw.run_button.isEnabled() and not cw.cancel_button.isEnabled()
    m = cw.results.model
    assert sum(m.status(r) == "ok" for r in range(m.rowCount())) < 3


def test_the_results_model_orders_formats_and_marks_failures(qapp):
    import pandas as pd

    from surgtwin.ui.cohort_results import ResultsModel, header_text

    df = pd.DataFrame([
        {"case_id": "a", "status": "ok", "failed_step": None, "error": None, "seconds": 12.345,
         "volume_ml:left_ventricle": 101.26, "tavr:mean_gradient_mmhg": 10.08, "truth:seed": 1.0},
        {"case_id": "b", "status": "failed", "failed_step": "open", "error": "open: not a DICOM file",
         "seconds": 0.4, "volume_ml:left_ventricle": float("nan"), "tavr:mean_gradient_mmhg": None,
         "truth:seed": 2.0}])
    m = ResultsModel()
    m.set_frame(df)
    assert m.columns[:4] == ["case_id", "status", "seconds", "tavr:mean_gradient_mmhg"]
    assert m.columns[-1] == "truth:seed" and m.counts() == (2, 1)
    assert header_text("volume_ml:left_ventricle") == "left ventricle\nml"
    assert header_text("tavr:cardiac_output_l_min") == "TAVR\ncardiac output l/min"
    assert header_text("tavr:bsa_m2") == "TAVR\nBSA m²" and header_text("flow:min_pd_pp") == "Flow\nmin Pd/Pp"
    status, vol = m.columns.index("status"), m.columns.index("volume_ml:left_ventricle")
    assert m.data(m.index(1, status)) == "failed (open)"
    assert m.data(m.index(1, vol), Qt.ItemDataRole.ToolTipRole) == "open: not a DICOM file"
    assert m.data(m.index(1, vol)) == "" and m.data(m.index(0, vol)) == "101.3"
    assert m.data(m.index(1, 0), Qt.ItemDataRole.BackgroundRole) is not None
    assert m.data(m.index(0, 0), Qt.ItemDataRole.BackgroundRole) is None
    m.sort(vol, Qt.SortOrder.DescendingOrder)  # missing values stay last
    assert [m.case_id(r) for r in range(2)] == ["a", "b"]
    m.sort(m.columns.index("seconds"), Qt.SortOrder.AscendingOrder)
    assert [m.case_id(r) for r in range(2)] == ["b", "a"]


def test_the_virtual_cohort_dialog_adds_every_patient_in_every_arm(window):
    cw = _open_cohort_window(window)
    dlg = cw.virtual_dialog()
    dlg.kind.setCurrentText("abdomen-pelvis")
    dlg.count.setValue(2)
    dlg.arms.setText("implant.size=2,4,6")
    dlg.accept()
    assert [e.case_id for e in cw.entries] == [f"abdomen-pelvis-000{s}-size{z}" for s in (0, 1) for z in (2, 4, 6)]
    assert cw.case_list.count() == 6 and "[implant.size=4]" in cw.case_list.item(1).text()
    # a bad arm is refused inline, nothing added
    dlg = cw.virtual_dialog()
    dlg.arms.setText("implant.size")
    dlg.accept()
    assert len(cw.entries) == 6 and "STEP.KEY=VALUE" in cw.status.text()
    # the run's step options (the command line's --option): refused inline before anything runs
    cw.set_steps(["segment"])
    cw.options.setText("implant.family=hip-stem; implant.femur=left")
    assert cw.run() is None and "a step that is not run: implant" in cw.status.text() and cw.job is None
    cw.options.setText("implant")
    assert cw.run() is None and "is not STEP.KEY=VALUE" in cw.status.text() and cw.run_button.isEnabled()
