"""The PACS browser, node editor and send action against a fake ``surgtwin.services.pacs`` and a small
stand-in window (a status bar, the real JobRunner): input checks, errors shown in the dialog with the
buttons usable again, cancel, busy runner, and what Open hands to the window. The real-server tests
are tests/pacs/test_pacs_browser.py."""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMainWindow, QMenu

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.pacs.node import PacsNode

pytestmark = pytest.mark.gui

NODE = PacsNode(name="main", ae_title="ORTHANC", host="127.0.0.1", port=4242)
STUDIES = [{"level": "study", "patient_name": "PHANTOM^HEAD", "patient_id": "PHANTOM-HEAD", "study_date": "20240102",
            "study_description": "Head CT", "modalities": "CT", "accession": "A1", "study_uid": "1.2.3",
            "n_series": 1, "n_instances": 5}]
SERIES = [{"level": "series", "series_uid": "1.2.3.4", "series_number": 2, "series_description": "Axial",
           "modality": "CT", "n_instances": 5, "study_uid": "1.2.3"}]


class FakePacs(types.ModuleType):
    def __init__(self, tmp: Path) -> None:
        super().__init__("surgtwin.services.pacs")
        self.nodes, self.calls, self.tmp, self.cache = [NODE], [], tmp, []
        self.gate = threading.Event()
        self.fail: dict[str, BaseException] = {}

    def _call(self, op, *args, **kw):
        self.calls.append((op, args, {k: v for k, v in kw.items() if k not in ("progress", "cancel")}))
        if op in self.fail:
            raise self.fail[op]

    def load_nodes(self):
        return list(self.nodes)

    def save_nodes(self, nodes):
        self._call("save_nodes", nodes)
        self.nodes = list(nodes)

    def echo(self, node):
        self._call("echo", node)
        return 3.2

    def find(self, node, *, level="study", cancel=None, **kw):
        self._call("find", node, level=level, **kw)
        return list(STUDIES if level == "study" else SERIES)

    def retrieve(self, node, study_uid, series_uid="", *, method="get", progress=None, cancel=None):
        self._call("retrieve", node, study_uid, series_uid, method=method)
        if "wait" in self.__dict__:
            while not cancel.cancelled:
                progress(0.4, "image 2 of 5")
                self.gate.wait(0.02)
            progress(0.4)  # raises Cancelled
        folder = self.tmp / "cache" / study_uid / (series_uid or "1.2.3.4")
        folder.mkdir(parents=True, exist_ok=True)
        self.cache.append({"study_uid": study_uid, "series_uid": series_uid or "1.2.3.4", "folder": str(folder)})
        return [folder]

    def cached_series(self):
        return list(self.cache)

    def send_case_results(self, case, node, *, deidentify=False, snapshots=None, progress=None, cancel=None):
        self._call("send_case_results", case, node, deidentify=deidentify, snapshots=snapshots)
        return {"sent": 4, "failed": 0, "skipped": 0, "study_uid": "1.2.3", "deidentified": deidentify,
                "series_uids": {"seg": "1.9.1", "rtstruct": "1.9.2", "sc": "1.9.3"}, "warnings": []}


class StandIn(QMainWindow):
    """What the dialog uses of the main window: jobs, settings, open_path, status bar, session."""

    def __init__(self, tmp: Path) -> None:
        from surgtwin.services.session import Session
        from surgtwin.ui.job_runner import JobRunner

        super().__init__()
        self.session = Session()
        self.settings = QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat)
        self.jobs = JobRunner(self, self)
        self.statusBar().addPermanentWidget(self.jobs.widget)
        self.last_dialog = None
        self.opened = []

    def open_path(self, path, *, series_uid=None) -> None:
        self.opened.append((Path(path), series_uid))


@pytest.fixture
def fake(tmp_path, monkeypatch):
    import surgtwin.services

    mod = FakePacs(tmp_path)
    monkeypatch.setitem(sys.modules, "surgtwin.services.pacs", mod)
    monkeypatch.setattr(surgtwin.services, "pacs", mod, raising=False)
    return mod


@pytest.fixture
def win(qtbot, tmp_path):
    w = StandIn(tmp_path)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.jobs.cancel()


@pytest.fixture
def browser(win, fake, qtbot):
    from surgtwin.ui.pacs_browser import PacsBrowser

    b = PacsBrowser(win)
    qtbot.addWidget(b)
    b.show()
    return b


def idle(qtbot, b):
    qtbot.waitUntil(lambda: not b.busy and not b.win.jobs.busy, timeout=10000)


def test_no_node_says_how_to_add_one(win, fake, qtbot):
    from surgtwin.ui.pacs_browser import PacsBrowser

    fake.nodes = []
    b = PacsBrowser(win)
    qtbot.addWidget(b)
    assert "Edit nodes" in b.status.text()
    assert not b.search_button.isEnabled() and not b.echo_button.isEnabled() and b.edit_button.isEnabled()


def test_echo_ok_and_failure_inline_with_buttons_back(browser, fake, win, qtbot):
    assert browser.echo()
    assert not browser.echo_button.isEnabled() and browser.cancel_button.isEnabled()
    idle(qtbot, browser)
    assert browser.echo_label.text() == "OK 3 ms" and "7bd88f" in browser.echo_label.styleSheet()
    fake.fail["echo"] = SurgtwinError("main (ORTHANC@127.0.0.1:4242): echo failed: connection refused",
                                      hint="check the PACS is running")
    browser.echo()
    idle(qtbot, browser)
    assert "no answer" in browser.echo_label.text() and "ff6b6b" in browser.status.styleSheet()
    assert "connection refused" in browser.status.text() and "check the PACS is running" in browser.status.text()
    assert win.last_dialog is None  # shown in the dialog, not a box over the window
    assert browser.echo_button.isEnabled() and browser.search_button.isEnabled()
    assert not browser.cancel_button.isEnabled()


def test_bad_date_is_refused_before_any_network_call(browser, fake):
    for bad in ("20240230", "20240131-20240101", "2024"):
        browser.study_date.setText(bad)
        assert not browser.search()
        assert "is not a date or date range" in browser.status.text() and "YYYYMMDD" in browser.status.text()
    assert not fake.calls and browser.search_button.isEnabled()


def test_search_series_retrieve_and_open(browser, fake, win, qtbot):
    browser.patient_id.setText("PHANTOM*")
    browser.modality.setCurrentText("CT")
    browser.set_recent_days(7)
    browser.study_date.setText(browser.study_date.text().replace("-", " - "))  # spaces are forgiven
    assert browser.search()
    idle(qtbot, browser)
    op, _, kw = fake.calls[-1]
    assert op == "find" and kw["level"] == "study" and kw["patient_id"] == "PHANTOM*" and kw["modality"] == "CT"
    assert len(kw["study_date"]) == 17
    assert browser.tree.topLevelItemCount() == 1 and "1 study" in browser.status.text()
    study = browser.tree.topLevelItem(0)
    assert study.text(0) == "PHANTOM^HEAD" and study.text(2) == "2024-01-02"
    browser.tree.setCurrentItem(study)  # selecting a study lists its series
    idle(qtbot, browser)
    assert study.childCount() == 1 and study.child(0).text(3) == "#2 Axial"
    assert not browser.open_button.isEnabled()
    browser.tree.setCurrentItem(study.child(0))
    browser.method.setCurrentIndex(1)
    assert browser.retrieve()
    idle(qtbot, browser)
    assert fake.calls[-1] == ("retrieve", (NODE, "1.2.3", "1.2.3.4"), {"method": "move"})
    assert study.child(0).text(7) == "✓ retrieved" and browser.open_button.isEnabled()
    browser.open_button.click()
    assert win.opened == [(fake.tmp / "cache" / "1.2.3" / "1.2.3.4", "1.2.3.4")]
    assert not browser.isVisible()


def test_double_click_on_a_series_retrieves_then_opens(browser, fake, win, qtbot):
    browser.search()
    idle(qtbot, browser)
    study = browser.tree.topLevelItem(0)
    study.setExpanded(True)  # expanding lists the series too
    idle(qtbot, browser)
    browser.tree.setCurrentItem(study.child(0))
    browser.tree.itemDoubleClicked.emit(study.child(0), 0)
    qtbot.waitUntil(lambda: bool(win.opened), timeout=10000)
    assert win.opened[0][1] == "1.2.3.4"


def test_cancel_a_retrieval_leaves_the_dialog_usable(browser, fake, qtbot):
    fake.wait = True
    browser.search()
    idle(qtbot, browser)
    browser.tree.setCurrentItem(browser.tree.topLevelItem(0))
    idle(qtbot, browser)
    browser.retrieve()
    qtbot.waitUntil(lambda: browser.bar.text() == "image 2 of 5", timeout=5000)
    assert browser.bar.isVisible() and not browser.retrieve_button.isEnabled()
    browser.cancel_button.click()
    idle(qtbot, browser)
    assert "cancelled" in browser.status.text() and not browser.bar.isVisible()
    assert browser.retrieve_button.isEnabled() and not browser.open_button.isEnabled()


def test_busy_runner_and_unexpected_errors(browser, fake, win, qtbot):
    gate = threading.Event()
    win.jobs.run("Segmenting", lambda progress=None, cancel=None: gate.wait(10))
    assert not browser.search()
    assert "Wait for “Segmenting”" in browser.status.text() and browser.search_button.isEnabled()
    gate.set()
    idle(qtbot, browser)
    fake.fail["find"] = RuntimeError("boom")  # a bug, not a PACS error: the runner's box, and the dialog recovers
    browser.search()
    idle(qtbot, browser)
    assert "failed: boom" in browser.status.text() and browser.search_button.isEnabled()
    assert win.last_dialog is not None and win.last_dialog.objectName() == "errorBox"
    win.last_dialog.close()


def test_node_editor_checks_fields_then_saves(browser, fake, qtbot):
    ed = browser.edit_nodes()
    ed.add_node()
    ed.edits["name"].setText("backup")
    ed.edits["name"].textEdited.emit("backup")
    ed.edits["ae_title"].textEdited.emit("BAD\\AE")
    ed.edits["host"].textEdited.emit("pacs.local")
    assert not ed.save()
    assert "backup: ae_title" in ed.message.text() and ed.list.currentRow() == 1 and not fake.calls
    ed.edits["ae_title"].textEdited.emit("BACKUP")
    ed.edits["name"].textEdited.emit("MAIN")  # names are unique, whatever the case
    assert not ed.save() and "two nodes are called" in ed.message.text()
    ed.edits["name"].textEdited.emit("backup")
    ed.port.setValue(11112)
    ed.research.setChecked(True)
    assert ed.save()
    saved = fake.calls[-1][1][0]
    assert [n.name for n in saved] == ["main", "backup"] and saved[1].port == 11112 and saved[1].ae_title == "BACKUP"
    assert saved[1].research and not saved[0].research
    assert browser.node_combo.count() == 2 and "2 PACS node(s) saved" in browser.status.text()
    ed = browser.edit_nodes()
    ed.list.setCurrentRow(0)
    ed.remove_node()
    assert ed.save() and [n.name for n in fake.nodes] == ["backup"]


def test_send_refusals_and_send(win, fake, qtbot, tmp_path):
    import numpy as np

    from surgtwin.core.case.model import Case, SourceRef
    from surgtwin.core.types import LabelMap, Volume
    from surgtwin.ui.pacs_actions import PacsActions, summary_text

    actions = PacsActions(win)
    menu = QMenu()
    actions.add_to(menu)
    assert [a.text() for a in menu.actions()] == ["Open from &PACS…", "Send results to PACS…"]
    assert menu.actions()[0].shortcut().toString() == "Ctrl+Shift+P"
    assert actions.send_results_dialog() is None and "Open a case" in win.statusBar().currentMessage()
    vol = Volume(np.zeros((4, 4, 4), np.int16), np.eye(4))
    win.session.set_case(Case(vol, SourceRef(path=str(tmp_path / "x.nii.gz"), kind="image")))
    assert actions.send_results_dialog() is None and "Nothing to send" in win.statusBar().currentMessage()
    win.session.case.set_labels(LabelMap(np.ones((4, 4, 4), np.uint8), np.eye(4)))
    assert actions.send_results_dialog() is None and "not made from a DICOM series" in win.statusBar().currentMessage()
    case = Case(vol, SourceRef(path=str(tmp_path), kind="dicom"), name="head")
    case.set_labels(LabelMap(np.ones((4, 4, 4), np.uint8), np.eye(4)))
    win.session.set_case(case)
    fake.nodes = []
    assert actions.send_results_dialog() is None and "No PACS node" in win.statusBar().currentMessage()
    fake.nodes = [NODE, PacsNode(name="backup", ae_title="B", host="h", port=104, research=True)]
    win.settings.setValue("pacs/node", "backup")
    dlg = actions.send_results_dialog()
    assert dlg.node().name == "backup"
    dlg.node_combo.setCurrentIndex(0)  # a clinical node: never de-identified copies
    assert not dlg.deidentify.isEnabled() and "research" in dlg.deidentify.toolTip()
    dlg.node_combo.setCurrentIndex(1)
    dlg.deidentify.setChecked(True)
    dlg.snapshots.setChecked(False)
    sent = []
    actions.sent.connect(sent.append)
    dlg.accept()
    qtbot.waitUntil(lambda: not win.jobs.busy, timeout=10000)
    op, (snap, node), kw = fake.calls[-1]
    assert op == "send_case_results" and node.name == "backup" and kw == {"deidentify": True, "snapshots": []}
    assert snap is not case and snap.labels.array.sum() == 64  # a snapshot: the user may go on editing
    assert sent == ["backup"]
    assert win.statusBar().currentMessage() == "Results sent to backup: SEG, RTSTRUCT, SC: 4 files stored (de-identified)"
    assert summary_text({"sent": 2, "series_uids": {"seg": "1"}, "warnings": ["w1", "w2"]}) == (
        "SEG: 2 files stored; 2 warning(s): w1")


def test_what_the_cache_holds_is_marked_and_a_study_opens_from_it(browser, fake, win, qtbot):
    folder = fake.tmp / "cache" / "1.2.3" / "1.2.3.4"
    folder.mkdir(parents=True)
    fake.cache = [{"study_uid": "1.2.3", "series_uid": "1.2.3.4", "folder": str(folder)}]  # an earlier session's
    browser.search()
    idle(qtbot, browser)
    study = browser.tree.topLevelItem(0)
    assert study.text(7) == "✓ retrieved" and browser.tree.local_folders(study) == [folder]
    browser.tree.setCurrentItem(study)
    idle(qtbot, browser)
    assert study.child(0).text(7) == "✓ retrieved" and browser.open_button.isEnabled()
    assert browser.open_selected(study)
    assert win.opened == [(folder, "1.2.3.4")]
