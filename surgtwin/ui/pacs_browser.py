"""File ▸ Open from PACS: pick a remote node, echo it, search its studies (patient ID, name, date,
modality), list a study's series, retrieve a study or series into the local cache (C-GET, or C-MOVE)
and open it as a case. UI only: every network call is ``surgtwin.services.pacs``, run through the
window's ``JobRunner`` (its progress bar and Cancel, mirrored here); a PACS error (server down, wrong
AE title, rejected association, timeout, incomplete series) is shown in the dialog's status line and
leaves the dialog usable.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QToolButton,
    QTreeWidgetItem,
    QVBoxLayout,
)

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.pacs.query import check_date
from surgtwin.services.jobs import CANCELLED, DONE, FAILED
from surgtwin.ui.job_runner import ProgressBar
from surgtwin.ui.pacs_nodes import ERROR_STYLE, OK_STYLE, NodeEditor
from surgtwin.ui.pacs_results import ResultsTree

MODALITIES = ("Any", "CT", "MR", "PT", "US", "XA", "CR", "DX", "NM", "SEG", "RTSTRUCT")
LIMIT = 500
INFO_STYLE = "color: #c8d0dc;"
DATE_PRESETS = (("Today", 0), ("Last 7 days", 7), ("Last 30 days", 30), ("Last 12 months", 365))


@dataclass
class Failure:
    """A PACS operation's user-facing error, handed back from the job to be shown in the dialog."""

    error: SurgtwinError


def guarded(call, *, progress=None, cancel=None):
    """``call(progress, cancel)`` in the job's thread; a SurgtwinError comes back as a ``Failure``
    (shown in the dialog's status line) instead of an error box over the window."""
    try:
        return call(progress, cancel)
    except SurgtwinError as exc:
        return Failure(exc)


def _error_text(exc: SurgtwinError) -> str:
    return exc.reason + (f"\nWhat to do: {exc.hint}" if exc.hint else "")


class PacsBrowser(QDialog):
    """Non-modal: the window stays usable while it is open; one PACS job at a time."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.win = window
        self.setObjectName("pacsBrowser")
        self.setWindowTitle("Open from PACS")
        self.setModal(False)
        self.resize(1180, 640)
        self.nodes: list = []
        self.found_on = None  # the node the shown results came from
        self.node_editor: NodeEditor | None = None
        self._job = None
        self._open_after: QTreeWidgetItem | None = None  # retrieved, to open once its job has finished
        lay = QVBoxLayout(self)

        top = QHBoxLayout()
        top.addWidget(QLabel("PACS:", self))
        self.node_combo = QComboBox(self)
        self.node_combo.setObjectName("pacsNode")
        self.node_combo.setMinimumWidth(320)
        self.node_combo.currentIndexChanged.connect(self._node_changed)
        top.addWidget(self.node_combo)
        self.edit_button = self._button("Edit nodes…", self.edit_nodes, top)
        self.echo_button = self._button("Echo", self.echo, top, tip="Check the node answers (DICOM C-ECHO)")
        self.echo_label = QLabel("", self)
        self.echo_label.setObjectName("pacsEcho")
        top.addWidget(self.echo_label, 1)
        lay.addLayout(top)

        row = QHBoxLayout()
        self.patient_id = self._field(row, "Patient ID:", "pacsPatientId", "e.g. PHANTOM*", 130)
        self.patient_name = self._field(row, "Name:", "pacsPatientName", "DOE^J*", 150)
        self.patient_name.setToolTip("Family^Given; wildcards: * any characters, ? one character")
        self.study_date = self._field(row, "Study date:", "pacsDate", "YYYYMMDD-YYYYMMDD", 170)
        self.study_date.setToolTip("YYYYMMDD, or a range YYYYMMDD-YYYYMMDD (either end may be left out)")
        presets = QToolButton(self)
        presets.setText("Recent")
        presets.setToolTip("Today, the last 7 or 30 days, the last 12 months")
        presets.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(presets)
        for text, days in DATE_PRESETS:
            menu.addAction(text, lambda d=days: self.set_recent_days(d))
        menu.addAction("Any date", lambda: self.study_date.clear())
        presets.setMenu(menu)
        row.addWidget(presets)
        row.addWidget(QLabel("Modality:", self))
        self.modality = QComboBox(self)
        self.modality.setObjectName("pacsModality")
        self.modality.addItems(MODALITIES)
        row.addWidget(self.modality)
        row.addStretch(1)
        self.search_button = self._button("Search", self.search, row, tip="Find the node's studies (C-FIND)")
        self.search_button.setDefault(True)
        lay.addLayout(row)

        self.tree = ResultsTree(self)
        self.tree.itemExpanded.connect(self._expanded)
        self.tree.itemSelectionChanged.connect(self._selected)
        self.tree.itemDoubleClicked.connect(self._double_clicked)
        lay.addWidget(self.tree, 1)
        self.status = QLabel("", self)
        self.status.setObjectName("pacsStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.status)

        bottom = QHBoxLayout()
        self.retrieve_button = self._button("Retrieve", lambda: self.retrieve(), bottom,
                                            tip="Copy the selected study or series into the local cache")
        self.method = QComboBox(self)
        self.method.setObjectName("pacsMethod")
        for text, data in (("C-GET", "get"), ("C-MOVE", "move")):
            self.method.addItem(text, data)
        self.method.setToolTip("C-GET fetches over this connection; C-MOVE asks the node to send to this app's AE")
        bottom.addWidget(self.method)
        self.bar = ProgressBar(self)
        self.bar.setObjectName("pacsProgress")
        pol = self.bar.sizePolicy()
        pol.setRetainSizeWhenHidden(True)
        self.bar.setSizePolicy(pol)
        bottom.addWidget(self.bar, 1)
        self.cancel_button = self._button("Cancel", self.cancel, bottom)
        self.open_button = self._button("Open", lambda: self.open_selected(), bottom,
                                        tip="Open the retrieved series as a case")
        self._button("Close", self.close, bottom)
        lay.addLayout(bottom)

        self.timer = QTimer(self)
        self.timer.setInterval(100)
        self.timer.timeout.connect(self._poll)
        window.jobs.finished.connect(self._job_finished)
        self.reload_nodes()

    def _button(self, text: str, slot, row, *, tip: str = "") -> QPushButton:
        b = QPushButton(text, self)
        b.setAutoDefault(False)
        b.setObjectName("pacs" + text.split()[0].rstrip("…"))
        b.setToolTip(tip)
        b.clicked.connect(slot)
        row.addWidget(b)
        return b

    def _field(self, row, text: str, name: str, placeholder: str, width: int) -> QLineEdit:
        row.addWidget(QLabel(text, self))
        edit = QLineEdit(self)
        edit.setObjectName(name)
        edit.setPlaceholderText(placeholder)
        edit.setMinimumWidth(width)
        edit.returnPressed.connect(self.search)
        row.addWidget(edit)
        return edit

    # -- nodes -----------------------------------------------------------------------------------
    def reload_nodes(self, select: str | None = None) -> None:
        from surgtwin.services import pacs

        try:
            self.nodes = list(pacs.load_nodes())
        except SurgtwinError as exc:
            self.nodes = []
            self.say(_error_text(exc), ERROR_STYLE)
        select = select or str(self.win.settings.value("pacs/node", "") or "")
        self.node_combo.blockSignals(True)
        self.node_combo.clear()
        self.node_combo.addItems([n.label for n in self.nodes])
        names = [n.name for n in self.nodes]
        self.node_combo.setCurrentIndex(names.index(select) if select in names else (0 if names else -1))
        self.node_combo.blockSignals(False)
        if not self.nodes and not self.status.text():
            self.say("No PACS node yet: add one with Edit nodes… (its AE title, host and port come from your "
                     "PACS administrator).", INFO_STYLE)
        self._node_changed()

    def node(self):
        i = self.node_combo.currentIndex()
        return self.nodes[i] if 0 <= i < len(self.nodes) else None

    def _node_changed(self, *_) -> None:
        self.echo_label.clear()
        if self.node() is not None:
            self.win.settings.setValue("pacs/node", self.node().name)
        self._sync()

    def edit_nodes(self) -> NodeEditor:
        self.node_editor = NodeEditor(self.nodes, self)
        current = self.node()
        self.node_editor.saved.connect(lambda nodes: self.reload_nodes(current.name if current else None))
        self.node_editor.saved.connect(lambda nodes: self.say(f"{len(nodes)} PACS node(s) saved.", OK_STYLE))
        self.node_editor.open()
        return self.node_editor

    # -- operations (each one job) -----------------------------------------------------------------
    def echo(self) -> bool:
        from surgtwin.services import pacs

        node = self.node()

        def failed(exc) -> None:
            self.echo_label.setStyleSheet(ERROR_STYLE)
            self.echo_label.setText("✗ no answer")

        def ok(ms) -> None:
            self.echo_label.setStyleSheet(OK_STYLE)
            self.echo_label.setText(f"OK {ms:.0f} ms")
            self.say(f"{node.label} answered the echo in {ms:.0f} ms.", OK_STYLE)

        self.echo_label.clear()
        return self._start(f"Echo {node.name}", lambda p, c: pacs.echo(node), ok, failed)

    def search(self) -> bool:
        from surgtwin.services import pacs

        node = self.node()
        if node is None or self._job is not None:
            return False
        try:
            date = check_date(self.study_date.text().replace(" ", ""), "study date")
        except SurgtwinError as exc:
            self.say(_error_text(exc), ERROR_STYLE)
            self.study_date.setFocus()
            return False
        query = {"patient_id": self.patient_id.text().strip(), "patient_name": self.patient_name.text().strip(),
                 "study_date": date, "modality": "" if self.modality.currentIndex() == 0 else self.modality.currentText()}

        def found(answer) -> None:
            studies, cached = answer
            self.found_on = node
            self.tree.remember_cache(cached)
            self.tree.show_studies(studies)
            more = f" (the first {LIMIT}: narrow the search)" if getattr(studies, "truncated", False) else ""
            self.say(f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'} on {node.name}{more}."
                     + (" Expand one to list its series." if studies else ""), OK_STYLE if studies else INFO_STYLE)

        return self._start(f"Searching {node.name}", lambda p, c: (pacs.find(
            node, level="study", limit=LIMIT, cancel=c, **query), pacs.cached_series()), found)

    def list_series(self, item: QTreeWidgetItem) -> bool:
        from surgtwin.services import pacs

        study, node = self.tree.record(item), self.found_on

        def found(series) -> None:
            self.tree.show_series(item, series)
            self.say(f"{len(series)} series in {study.get('study_description') or 'the study'}"
                     f" of {study.get('patient_name') or study.get('patient_id') or 'the patient'}.", INFO_STYLE)

        return self._start("Listing series", lambda p, c: pacs.find(
            node, level="series", study_uid=study["study_uid"], cancel=c), found)

    def retrieve(self, *, then_open: bool = False) -> bool:
        from surgtwin.services import pacs

        item = self.tree.currentItem()
        if item is None or self.found_on is None:
            return False
        d, node, method = self.tree.record(item), self.found_on, self.method.currentData()
        series_uid = d.get("series_uid") or "" if self.tree.is_series(item) else ""
        what = f"series #{d.get('series_number') or '?'}" if series_uid else "study"

        def got(answer) -> None:
            folders, cached = answer
            self.tree.remember_cache(cached)
            if not folders:
                self.say(f"{node.name} sent nothing for this {what}.", ERROR_STYLE)
                return
            n_files = sum(int(e.get("n_instances") or 0) for e in self.tree.cached.values()
                          if Path(e["folder"]) in {Path(f) for f in folders})
            size = f"{n_files} images" if series_uid else f"{len(folders)} series, {n_files} images"
            self.say(f"Retrieved the {what} ({size}) into the local cache."
                     + ("" if then_open else " Open loads it as a case."), OK_STYLE)
            self._open_after = item if then_open else None

        return self._start(f"Retrieving the {what} ({self.method.currentText()})", lambda p, c: (pacs.retrieve(
            node, d["study_uid"], series_uid, method=method, progress=p, cancel=c), pacs.cached_series()), got)

    def open_selected(self, item: QTreeWidgetItem | None = None, *, retrieve_first: bool = False) -> bool:
        """Open the selected (retrieved) study or series as a case and close the dialog."""
        item = item or self.tree.currentItem()
        folders = self.tree.local_folders(item)
        if item is None or self._job is not None:
            return False
        if not folders:
            return self.retrieve(then_open=True) if retrieve_first else False
        if len(folders) == 1:
            self.win.open_path(folders[0], series_uid=self.tree.cache_entries(item)[0]["series_uid"])
        else:  # a study's series, side by side in its cache folder: chosen in the series browser
            self.win.open_path(Path(os.path.commonpath(folders)))
        self.accept()
        return True

    def cancel(self) -> None:
        if self._job is not None:
            self.win.jobs.cancel()
            self.say("Cancelling…", INFO_STYLE)

    def set_recent_days(self, days: int) -> None:
        today = dt.date.today()
        start = today - dt.timedelta(days=days)
        self.study_date.setText(today.strftime("%Y%m%d") if days == 0 else
                                f"{start:%Y%m%d}-{today:%Y%m%d}")

    # -- plumbing --------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """A job of this dialog's is running."""
        return self._job is not None

    def say(self, text: str, style: str = INFO_STYLE) -> None:
        self.status.setStyleSheet(style)
        self.status.setText(text)

    def _start(self, title: str, call, on_ok, on_fail=None) -> bool:
        if self._job is not None:
            return False

        def done(result) -> None:
            if isinstance(result, Failure):
                self.say(_error_text(result.error), ERROR_STYLE)
                if on_fail is not None:
                    on_fail(result.error)
            else:
                on_ok(result)

        job = self.win.jobs.run(title, guarded, call, on_done=done)
        if job is None:
            other = self.win.jobs.job.name if self.win.jobs.job is not None else "the running job"
            self.say(f"Wait for “{other}” to finish (or cancel it), then try again.", ERROR_STYLE)
            return False
        self._job = job
        self.say(title + "…", INFO_STYLE)
        self.bar.setValue(0, "")
        self.timer.start()
        self._sync()
        return True

    def _poll(self) -> None:
        if self._job is not None:
            st = self._job.status()
            self.bar.setValue(max(1, int(st.fraction * 1000)), st.message or f"{st.fraction * 100:.0f}%")

    def _job_finished(self, name: str, state: str) -> None:
        job = self._job
        if job is None or not job.status().finished:
            return
        self._job = None
        self.timer.stop()
        if state == CANCELLED:
            self.say(f"{name}: cancelled.", INFO_STYLE)
        elif state == FAILED:
            self.say(f"{name} failed: {self.win.jobs.last_error}", ERROR_STYLE)
        self._sync()
        item, self._open_after = self._open_after, None
        if item is not None and state == DONE:
            self.open_selected(item)

    def _double_clicked(self, item: QTreeWidgetItem, _col: int) -> None:
        if self.tree.is_series(item):  # a series: retrieve it if needed, then open it (a study just expands)
            self.open_selected(retrieve_first=True)

    def _expanded(self, item: QTreeWidgetItem | None) -> None:
        """Expanding or selecting a study lists its series (once; not while another job runs)."""
        if item is not None and not self.tree.is_series(item) and not self.tree.listed(item) and self._job is None:
            self.list_series(item)

    def _selected(self) -> None:
        self._expanded(self.tree.currentItem())
        self._sync()

    def _sync(self) -> None:
        busy, item = self._job is not None, self.tree.currentItem()
        self.echo_button.setEnabled(not busy and self.node() is not None)
        self.search_button.setEnabled(not busy and self.node() is not None)
        self.node_combo.setEnabled(not busy)
        self.retrieve_button.setEnabled(not busy and item is not None and self.found_on is not None)
        self.open_button.setEnabled(not busy and bool(self.tree.local_folders(item)))
        self.cancel_button.setEnabled(busy)
        self.bar.setVisible(busy)
