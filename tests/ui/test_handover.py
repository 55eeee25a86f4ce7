"""File ▸ Export report / Export to DICOM / Import segmentation in the app, on the head sample case:
the dialogs, the jobs off the GUI thread, the files written, and a SEG read back into the case."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox

from tests.ui.conftest import wait_jobs

pytestmark = [pytest.mark.gui, pytest.mark.slow]


@pytest.fixture(scope="module")
def head_folder():
    from surgtwin.resources import sample_root

    return sample_root() / "head"


def _menu_texts(window) -> list[str]:
    file_menu = window.menuBar().actions()[0].menu()
    return [a.text() for a in file_menu.actions()]


def test_report_from_the_file_menu_dialog(window, qtbot, head_folder, tmp_path):
    from surgtwin.services.pipeline import new_case

    texts = _menu_texts(window)
    for t in ("&Export meshes (3D printing)…", "Export &report (PDF)…", "Export to &DICOM (SEG, RTSTRUCT)…",
              "&Import segmentation (DICOM SEG / RTSTRUCT)…"):
        assert t in texts
    window.handover.export_report_dialog()  # no case: says so, opens nothing
    assert window.handover.last_dialog is None and "Open an image" in window.statusBar().currentMessage()

    window.session.set_case(new_case(head_folder))
    window.handover.export_report_dialog()
    dlg = window.handover.last_dialog
    assert dlg.path_edit.text().endswith("_plan.pdf") and not dlg.snapshots.isVisible()
    out = tmp_path / "head plan"  # no suffix: .pdf is added
    dlg.path_edit.setText(str(out))
    dlg.deidentify.setChecked(True)
    written = []
    window.handover.exported.connect(written.append)
    dlg.accept()
    wait_jobs(qtbot, window, timeout=180000)
    pdf = tmp_path / "head plan.pdf"
    assert written == [str(pdf)]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 20_000
    assert b"PHANTOM" not in data  # de-identified (text streams are compressed: the header check is in
    # tests/services/test_report.py; here the raw bytes must not carry the name either)


def test_dicom_export_then_import_the_seg_back(window, qtbot, head_folder, tmp_path):
    from surgtwin.services.pipeline import new_case

    case = new_case(head_folder)
    original = case.labels.array.copy()
    window.session.set_case(case)
    done = []
    assert window.handover.export_dicom(tmp_path / "out", snapshots=False, on_done=done.append)
    wait_jobs(qtbot, window, timeout=180000)
    assert done, "the export job did not finish"
    segs = sorted((tmp_path / "out").rglob("*.dcm"))
    seg = [p for p in segs if "seg" in p.name.lower()]
    assert seg and any("rtstruct" in p.name.lower() for p in segs), [p.name for p in segs]

    # the user erases half the labels, then imports the exported SEG: asked first, then replaced
    case.labels.array[: case.labels.array.shape[0] // 2] = 0
    case.notify_labels_edited()
    assert window.handover.import_segmentation(seg[0])
    qtbot.waitUntil(lambda: isinstance(window.handover.last_dialog, QMessageBox), timeout=60000)
    box = window.handover.last_dialog
    assert box.objectName() == "replaceLabelsBox"
    box.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: window.session.case.labels.array.sum() == original.sum(), timeout=10000)
    got = window.session.case.labels
    assert np.array_equal(got.array, original)
    assert window.session.case.item("labels").provenance.method == "import"


def test_import_refuses_a_file_that_is_not_a_segmentation(window, qtbot, head_folder, tmp_path):
    from surgtwin.services.pipeline import new_case

    window.session.set_case(new_case(head_folder))
    ct = sorted((head_folder / "dicom").rglob("*.dcm"))[0]
    window.handover.import_segmentation(ct)
    wait_jobs(qtbot, window)
    assert "not a DICOM Segmentation or RT Structure Set" in str(window.jobs.last_error)
