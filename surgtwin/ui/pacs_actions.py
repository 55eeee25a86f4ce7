"""File ▸ Open from PACS… (the PACS browser) and Send results to PACS… (the case's segmentation and
structures as DICOM SEG/RTSTRUCT, sent to a node). UI glue only: the work is
``surgtwin.services.pacs``, run on a snapshot of the case through the window's ``JobRunner``.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QVBoxLayout,
)

from surgtwin.core.errors import SurgtwinError
from surgtwin.ui.dialogs import error_box
from surgtwin.ui.handover_actions import DEIDENTIFY_TIP


class SendDialog(QDialog):
    """Which node to send the case's results to, de-identified or not."""

    def __init__(self, parent, nodes, *, case_name: str, current: str = "") -> None:
        super().__init__(parent)
        self.setObjectName("pacsSendDialog")
        self.setWindowTitle("Send results to PACS")
        self.nodes = list(nodes)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"The segmentation and structures of <b>{case_name}</b> as DICOM SEG and RTSTRUCT, "
                             "in the source study.", self))
        form = QFormLayout()
        self.node_combo = QComboBox(self)
        self.node_combo.setObjectName("pacsSendNode")
        self.node_combo.setMinimumWidth(320)
        self.node_combo.addItems([n.label for n in self.nodes])
        names = [n.name for n in self.nodes]
        self.node_combo.setCurrentIndex(names.index(current) if current in names else 0)
        form.addRow("Send to:", self.node_combo)
        lay.addLayout(form)
        self.deidentify = QCheckBox("De-identify (no patient name, ID or dates)", self)
        self.deidentify.setObjectName("pacsSendDeidentify")
        lay.addWidget(self.deidentify)
        self.snapshots = QCheckBox("Include 3D and MPR snapshots (Secondary Capture)", self)
        self.snapshots.setObjectName("pacsSendSnapshots")
        self.snapshots.setChecked(True)
        lay.addWidget(self.snapshots)
        self.node_combo.currentIndexChanged.connect(self._sync)
        self._sync()
        note = QLabel("Planning aid, not for clinical use.", self)
        note.setStyleSheet("color: #8891a5;")
        lay.addWidget(note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Send")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    def node(self):
        return self.nodes[self.node_combo.currentIndex()]

    def _sync(self, *_) -> None:
        """De-identified results go only to a research archive (in a clinical PACS they would be filed
        under a new, fake patient)."""
        research = bool(getattr(self.node(), "research", False))
        self.deidentify.setEnabled(research)
        if not research:
            self.deidentify.setChecked(False)
        self.deidentify.setToolTip(DEIDENTIFY_TIP if research else
                                   "Only to a node marked as a research archive (Edit nodes…): in a clinical "
                                   "PACS de-identified copies would appear as a new, fake patient")


def summary_text(result: dict) -> str:
    """``send_case_results``'s answer in a line: "SEG, RTSTRUCT, SC: 4 files stored"."""
    result = result or {}
    kinds = ", ".join(str(k).upper() for k in result.get("series_uids") or {})
    text = f"{kinds + ': ' if kinds else ''}{result.get('sent', 0)} files stored"
    if result.get("deidentified"):
        text += " (de-identified)"
    warnings = list(result.get("warnings") or [])
    return text + (f"; {len(warnings)} warning(s): {warnings[0]}" if warnings else "")


class PacsActions(QObject):
    """File ▸ Open from PACS… and Send results to PACS…, for the window."""

    #: results were sent (arg: the node's name)
    sent = Signal(str)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.win = window
        self.session = window.session
        self.browser = None  # the PacsBrowser, made on first use and kept (its results stay)
        self.last_dialog = None  # for tests

    def add_to(self, menu) -> None:
        """Add the PACS actions to ``menu`` (the File menu)."""
        from PySide6.QtGui import QKeySequence

        self.open_action = menu.addAction("Open from &PACS…", self.open_browser)
        self.open_action.setShortcut(QKeySequence("Ctrl+Shift+P"))
        self.open_action.setStatusTip("Search the hospital's PACS, retrieve a study or series and open it as a case")
        self.send_action = menu.addAction("Send results to PACS…", self.send_results_dialog)
        self.send_action.setStatusTip("The case's segmentation and structures (DICOM SEG, RTSTRUCT) to a PACS node")

    def open_browser(self):
        from surgtwin.ui.pacs_browser import PacsBrowser

        if self.browser is None:
            self.browser = PacsBrowser(self.win)
        else:
            self.browser.reload_nodes(self.browser.node().name if self.browser.node() else None)
        self.browser.show()
        self.browser.raise_()
        self.browser.activateWindow()
        return self.browser

    def _refusal(self) -> str | None:
        case = self.session.case
        if case is None:
            return "Open a case first"
        if case.labels is None:
            return "Nothing to send: segment the case or import labels first"
        if case.source.kind != "dicom":
            return ("Cannot send to PACS: this case was not made from a DICOM series (open it from its DICOM "
                    "folder or from PACS, then segment it)")
        return None

    def send_results_dialog(self) -> SendDialog | None:
        from surgtwin.services import pacs

        refusal = self._refusal()
        try:
            nodes = [] if refusal else pacs.load_nodes()
        except SurgtwinError as exc:
            self.last_dialog = error_box(self.win, "Send results to PACS", exc)
            return None
        if not refusal and not nodes:
            refusal = "No PACS node yet: add one in File ▸ Open from PACS… ▸ Edit nodes…"
        if refusal:
            self.win.statusBar().showMessage(refusal, 8000)
            return None
        dlg = SendDialog(self.win, nodes, case_name=self.session.case.name or "the case",
                         current=str(self.win.settings.value("pacs/node", "") or ""))
        self.last_dialog = dlg
        dlg.accepted.connect(lambda: self.send_results(dlg.node(), deidentify=dlg.deidentify.isChecked(),
                                                       snapshots=dlg.snapshots.isChecked()))
        dlg.open()
        return dlg

    def send_results(self, node, *, deidentify: bool = False, snapshots: bool = True, on_done=None) -> bool:
        """Send the case's results to ``node`` off the GUI thread (on a snapshot of the case)."""
        from surgtwin.services import pacs, recovery

        refusal = self._refusal()
        if refusal:
            self.win.statusBar().showMessage(refusal, 8000)
            return False
        snap = recovery.snapshot(self.session.case)

        def done(result) -> None:
            counts = summary_text(result)
            self.win.statusBar().showMessage(f"Results sent to {node.name}" + (f": {counts}" if counts else ""), 10000)
            self.sent.emit(node.name)
            if on_done is not None:
                on_done(result)

        return self.win.jobs.run(f"Sending results to {node.name}", pacs.send_case_results, snap, node,
                                 deidentify=deidentify, snapshots=None if snapshots else [], on_done=done) is not None
