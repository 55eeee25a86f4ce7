"""File ▸ Open from PACS and Send results to PACS in the app, against the real Orthanc of
tests/pacs/conftest.py (seeded with the PHANTOM sample cases): echo, faults shown in the dialog with
the dialog usable again, search, series, retrieve (C-GET and C-MOVE), open as a case, results sent
back and found on the server, and the node editor writing the node list."""

from __future__ import annotations

from dataclasses import replace

import pytest

from surgtwin.core.pacs.node import PacsNode
from surgtwin.ui.pacs_results import DATA
from tests.pacs.conftest import free_port
from tests.ui.conftest import wait_jobs, window  # noqa: F401 - the main-window fixture

pytestmark = [pytest.mark.gui, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _isolated(pacs_env, monkeypatch):
    monkeypatch.setenv("SURGTWIN_SETTINGS", str(pacs_env / "settings.ini"))
    monkeypatch.setenv("SURGTWIN_RECOVERY_DIR", str(pacs_env / "recovery"))


def _browser(window, qtbot, *nodes):  # noqa: F811 - the imported fixture
    from surgtwin.services import pacs

    pacs.save_nodes(list(nodes))
    texts = [a.text() for a in window.menuBar().actions()[0].menu().actions()]
    assert "Open from &PACS…" in texts and "Send results to PACS…" in texts
    dlg = window.pacs.open_browser()
    qtbot.waitExposed(dlg)
    return dlg


def _idle(qtbot, dlg, timeout=60000):
    qtbot.waitUntil(lambda: not dlg.busy and not dlg.win.jobs.busy, timeout=timeout)


def _study(dlg, study_uid):
    items = [dlg.tree.topLevelItem(i) for i in range(dlg.tree.topLevelItemCount())]
    return next(it for it in items if it.data(0, DATA)["study_uid"] == study_uid)


def _series(study_item, series_uid):
    return next(study_item.child(i) for i in range(study_item.childCount())
                if study_item.child(i).data(0, DATA)["series_uid"] == series_uid)


def test_echo_and_faults_shown_in_the_dialog(window, qtbot, orthanc):  # noqa: F811 - the imported fixture
    closed = PacsNode(name="closed", ae_title="ORTHANC", host="127.0.0.1", port=free_port(), timeout_s=2, retries=0)
    wrong_ae = replace(orthanc.node, name="wrong AE", ae_title="NOT_ORTHANC")
    dlg = _browser(window, qtbot, orthanc.node, closed, wrong_ae)
    assert dlg.node_combo.count() == 3
    assert dlg.echo()
    _idle(qtbot, dlg)
    assert dlg.echo_label.text().startswith("OK ") and dlg.echo_label.text().endswith(" ms")
    for i, words in ((1, ("PACS closed", "C-ECHO", "refused")), (2, ("PACS wrong AE", "C-ECHO", "rejected"))):
        dlg.node_combo.setCurrentIndex(i)
        assert dlg.echo()
        _idle(qtbot, dlg)
        text = dlg.status.text()
        assert "no answer" in dlg.echo_label.text() and "What to do:" in text, text
        assert all(w in text for w in words), text
        assert dlg.echo_button.isEnabled() and dlg.search_button.isEnabled() and not dlg.cancel_button.isEnabled()
        assert window.last_dialog is None  # in the dialog, no box over the window
    # a server that stops answering: the node's timeout, then the message; the dialog stays usable
    dlg.node_combo.setCurrentIndex(0)
    slow = replace(orthanc.node, timeout_s=1.5)
    dlg.nodes[0] = slow
    orthanc.pause()
    try:
        dlg.search()
        _idle(qtbot, dlg)
    finally:
        orthanc.resume()
    assert "orthanc-test" in dlg.status.text() and "C-FIND" in dlg.status.text() and "1.5 s" in dlg.status.text()
    assert dlg.search_button.isEnabled() and dlg.tree.topLevelItemCount() == 0
    dlg.nodes[0] = orthanc.node
    assert dlg.echo()
    _idle(qtbot, dlg)
    assert dlg.echo_label.text().startswith("OK ")


def test_search_retrieve_with_get_and_open_as_a_case(window, qtbot, orthanc):  # noqa: F811 - the imported fixture
    head = orthanc.samples["head"]
    dlg = _browser(window, qtbot, orthanc.node)
    dlg.patient_id.setText("PHANTOM*")
    assert dlg.search()
    _idle(qtbot, dlg)
    names = {dlg.tree.topLevelItem(i).text(0) for i in range(dlg.tree.topLevelItemCount())}
    assert {"PHANTOM^HEAD", "PHANTOM^CARDIAC_CTA", "PHANTOM^ABDOMEN_PELVIS"} <= names
    study = _study(dlg, head.study_uid)
    assert study.text(1) == "PHANTOM-HEAD-3" and study.text(2) == "2026-01-01"
    dlg.tree.setCurrentItem(study)  # lists the study's series
    _idle(qtbot, dlg)
    series = _series(study, head.series_uid)
    assert series.text(4) == "CT" and series.text(5) == f"{head.n_instances} images"
    dlg.tree.setCurrentItem(series)
    assert dlg.method.currentText() == "C-GET" and dlg.retrieve()
    _idle(qtbot, dlg)
    assert series.text(7) == "✓ retrieved", dlg.status.text()
    folder = dlg.tree.local_folders(series)[0]
    assert len(list(folder.rglob("*.dcm"))) == head.n_instances or len(list(folder.iterdir())) == head.n_instances
    dlg.open_button.click()
    assert not dlg.isVisible()
    qtbot.waitUntil(lambda: window.session.volume is not None, timeout=60000)
    wait_jobs(qtbot, window)
    assert window.session.case.source.series_uid == head.series_uid
    assert window.session.volume.shape[0] == head.n_instances


def test_cancel_then_retrieve_a_study_with_move_then_open(window, qtbot, orthanc):  # noqa: F811 - the imported fixture
    cardiac = orthanc.samples["cardiac-cta"]
    dlg = _browser(window, qtbot, orthanc.node)
    dlg.patient_name.setText("PHANTOM^CARD*")
    dlg.modality.setCurrentText("CT")
    dlg.search()
    _idle(qtbot, dlg)
    assert dlg.tree.topLevelItemCount() == 1
    study = _study(dlg, cardiac.study_uid)
    dlg.tree.setCurrentItem(study)
    _idle(qtbot, dlg)
    dlg.method.setCurrentIndex(1)  # C-MOVE: Orthanc sends to our storage SCP
    assert dlg.retrieve()
    dlg.cancel_button.click()  # cancelled at once: nothing kept, the dialog usable
    _idle(qtbot, dlg)
    assert "cancelled" in dlg.status.text() and dlg.tree.local_folders(study) == [] and study.text(7) == ""
    assert dlg.retrieve_button.isEnabled() and not dlg.open_button.isEnabled()
    assert dlg.retrieve()
    _idle(qtbot, dlg)
    assert study.text(7) == "✓ retrieved", dlg.status.text()
    assert dlg.open_selected()
    qtbot.waitUntil(lambda: window.session.volume is not None, timeout=60000)
    wait_jobs(qtbot, window)
    assert window.session.case.source.series_uid == cardiac.series_uid


def test_send_results_back_and_find_the_seg(window, qtbot, orthanc):  # noqa: F811 - the imported fixture
    from surgtwin.resources import sample_root
    from surgtwin.services import pacs
    from surgtwin.services.pipeline import new_case

    head = orthanc.samples["head"]
    pacs.save_nodes([orthanc.node])
    window.pacs.send_results_dialog()  # no case: refused with a reason
    assert "Open a case" in window.statusBar().currentMessage()
    window.session.set_case(new_case(sample_root() / "head"))
    dlg = window.pacs.send_results_dialog()
    assert dlg.node().name == "orthanc-test"
    assert not dlg.deidentify.isEnabled()  # a clinical node: results go as they are
    dlg.snapshots.setChecked(False)  # SEG and RTSTRUCT only (the snapshots' rendering is tested elsewhere)
    sent = []
    window.pacs.sent.connect(sent.append)
    dlg.accept()
    wait_jobs(qtbot, window, timeout=180000)
    assert sent == ["orthanc-test"], (window.jobs.last_error, window.statusBar().currentMessage())
    assert window.statusBar().currentMessage().startswith("Results sent to orthanc-test: SEG, RTSTRUCT:")
    segs = pacs.find(orthanc.node, level="series", study_uid=head.study_uid, modality="SEG")
    assert segs and all(s["modality"] == "SEG" for s in segs)


def test_node_editor_writes_the_node_list(window, qtbot, orthanc, pacs_env):  # noqa: F811 - the imported fixture
    from surgtwin.services import pacs

    dlg = _browser(window, qtbot)
    assert dlg.node_combo.count() == 0 and "Edit nodes" in dlg.status.text()
    ed = dlg.edit_nodes()
    ed.add_node()
    for key, text in (("name", "local orthanc"), ("ae_title", "ORTHANC"), ("host", "127.0.0.1")):
        ed.edits[key].setText(text)
        ed.edits[key].textEdited.emit(text)
    ed.port.setValue(orthanc.dicom_port)
    ed.timeout.setValue(5)
    assert ed.save(), ed.message.text()
    assert (pacs_env / "pacs-nodes.json").is_file()
    (node,) = pacs.load_nodes()
    assert (node.name, node.ae_title, node.host, node.port, node.timeout_s) == (
        "local orthanc", "ORTHANC", "127.0.0.1", orthanc.dicom_port, 5.0)
    assert dlg.node_combo.currentText().startswith("local orthanc") and dlg.echo()
    _idle(qtbot, dlg)
    assert dlg.echo_label.text().startswith("OK ")


def test_open_from_pacs_segment_and_send_back(window, qtbot, orthanc):  # noqa: F811 - the imported fixture
    """The issue's whole path in the app: find, retrieve, open, Segment (bundled model), Send results."""
    from surgtwin.services import pacs

    head = orthanc.samples["head"]
    before = len(pacs.find(orthanc.node, level="series", study_uid=head.study_uid, modality="SEG"))
    dlg = _browser(window, qtbot, orthanc.node)
    dlg.patient_id.setText("PHANTOM-HEAD*")
    assert dlg.search()
    _idle(qtbot, dlg)
    study = _study(dlg, head.study_uid)
    dlg.tree.setCurrentItem(study)
    _idle(qtbot, dlg)
    dlg.tree.setCurrentItem(_series(study, head.series_uid))
    assert dlg.retrieve()
    _idle(qtbot, dlg)
    dlg.open_button.click()
    qtbot.waitUntil(lambda: window.session.volume is not None, timeout=60000)
    wait_jobs(qtbot, window)
    assert window.session.labels is None or not window.session.labels.array.any()  # pixels only
    window.act_segment.trigger()
    wait_jobs(qtbot, window, timeout=240000)
    assert window.session.labels is not None and "tumour" in window.session.labels.labels.names()
    wait_jobs(qtbot, window, timeout=240000)  # the meshes follow
    send = window.pacs.send_results_dialog()
    send.snapshots.setChecked(False)
    send.accept()
    wait_jobs(qtbot, window, timeout=180000)
    assert window.statusBar().currentMessage().startswith("Results sent to"), window.jobs.last_error
    after = pacs.find(orthanc.node, level="series", study_uid=head.study_uid, modality="SEG")
    assert len(after) == before + 1
