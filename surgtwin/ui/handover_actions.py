"""File-menu actions that hand the plan over: the PDF plan report, DICOM export (SEG, RTSTRUCT,
Secondary Capture) back to the hospital's archive, and importing a DICOM SEG or RTSTRUCT another
tool wrote. UI glue only: the work is ``surgtwin.services.report`` and
``surgtwin.services.dicom_export``; it runs on a snapshot of the case through the window's
``JobRunner`` (the surgeon can keep working while the report is written).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
)

from surgtwin.core.errors import SurgtwinError
from surgtwin.services import pipeline
from surgtwin.ui.dialogs import error_box

DEIDENTIFY_TIP = ("Removes the patient's name, ID, birth date, accession number, institution and physicians; "
                  "dates shifted, UIDs remapped (DICOM PS3.15 basic profile)")


class HandoverDialog(QDialog):
    """Where to write (a file or a folder) and how: de-identified or not, with snapshots or not."""

    def __init__(self, parent, title: str, *, target: str, folder: bool, file_filter: str = "",
                 snapshots: bool = False) -> None:
        super().__init__(parent)
        self.setObjectName("handoverDialog")
        self.setWindowTitle(title)
        self.folder, self.file_filter = folder, file_filter
        lay = QVBoxLayout(self)
        form = QFormLayout()
        row = QHBoxLayout()
        self.path_edit = QLineEdit(target, self)
        self.path_edit.setObjectName("handoverPath")
        self.path_edit.setMinimumWidth(380)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        form.addRow("Folder:" if folder else "File:", row)
        lay.addLayout(form)
        self.deidentify = QCheckBox("De-identify (no patient name, ID or dates)", self)
        self.deidentify.setObjectName("handoverDeidentify")
        self.deidentify.setToolTip(DEIDENTIFY_TIP)
        lay.addWidget(self.deidentify)
        self.snapshots = QCheckBox("Include 3D and MPR snapshots (Secondary Capture)", self)
        self.snapshots.setObjectName("handoverSnapshots")
        self.snapshots.setChecked(True)
        self.snapshots.setVisible(snapshots)
        lay.addWidget(self.snapshots)
        note = QLabel("Planning aid, not for clinical use.", self)
        note.setStyleSheet("color: #8891a5;")
        lay.addWidget(note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    def _browse(self) -> None:
        if self.folder:
            path = QFileDialog.getExistingDirectory(self, self.windowTitle(), self.path_edit.text())
        else:
            path, _ = QFileDialog.getSaveFileName(self, self.windowTitle(), self.path_edit.text(), self.file_filter)
        if path:
            self.path_edit.setText(path)

    def target(self) -> Path:
        return Path(self.path_edit.text().strip()).expanduser()


class HandoverActions(QObject):
    """File ▸ Export meshes, Export report, Export to DICOM and Import segmentation, for the window's case."""

    #: a file or folder was written (arg: its path)
    exported = Signal(str)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.win = window
        self.session = window.session
        self.last_dialog: HandoverDialog | QMessageBox | None = None  # for tests

    def add_to(self, menu) -> None:
        """Add the hand-over actions to ``menu`` (the File menu)."""
        from PySide6.QtGui import QAction, QKeySequence

        for text, slot, shortcut, tip in (
                ("&Export meshes (3D printing)…", self.win.cases.export_meshes_dialog, None,
                 "The case's surfaces at full resolution, in LPS mm"),
                ("Export &report (PDF)…", self.export_report_dialog, "Ctrl+P",
                 "The plan report a surgeon prints: snapshots, measurements, plan, provenance"),
                ("Export to &DICOM (SEG, RTSTRUCT)…", self.export_dicom_dialog, None,
                 "Segmentation, structures and snapshots as DICOM for the hospital's archive"),
                ("&Import segmentation (DICOM SEG / RTSTRUCT)…", self.import_dialog, None,
                 "Labels another tool wrote, on this case's frame of reference")):
            a = QAction(text, self.win)
            if shortcut:
                a.setShortcut(QKeySequence(shortcut))
            a.setStatusTip(tip)
            a.triggered.connect(slot)
            menu.addAction(a)

    def _case_or_say(self):
        case = self.session.case
        if case is None:
            self.win.statusBar().showMessage("Open an image or a case first", 5000)
        return case

    def _default_target(self, suffix: str) -> str:
        """Beside the saved case, else in the last folder used; never inside the installed program
        (the sample cases' folder) or a folder the user cannot write: then the home folder."""
        import os

        from surgtwin.resources import sample_root

        if self.session.case_path is not None:
            base = self.session.case_path.parent
        else:
            base = Path(str(self.win.settings.value("last_dir", "") or Path.home()))
        inside_program = base.resolve().is_relative_to(sample_root().resolve().parent)
        if inside_program or not base.is_dir() or not os.access(base, os.W_OK):
            base = Path.home()
        name = (self.session.case.name or "case") if self.session.case is not None else "case"
        return str(base / f"{name}{suffix}")

    # -- report -----------------------------------------------------------------------------------
    def export_report_dialog(self) -> None:
        if self._case_or_say() is None:
            return
        dlg = HandoverDialog(self.win, "Export plan report", target=self._default_target("_plan.pdf"),
                             folder=False, file_filter="PDF (*.pdf)")
        self.last_dialog = dlg
        dlg.accepted.connect(lambda: self.export_report(dlg.target(), deidentify=dlg.deidentify.isChecked()))
        dlg.open()

    def export_report(self, path, *, deidentify: bool = False, on_done=None) -> bool:
        """Write the report off the GUI thread (the ``report`` step reads a snapshot of the case)."""
        path = Path(path)
        if path.suffix.lower() != ".pdf":
            path = path.with_name(path.name + ".pdf")
        return self._run_step("Writing the plan report", "report", path, on_done, out=str(path),
                              deidentify=deidentify)

    def _run_step(self, title: str, name: str, target: Path, on_done, **options) -> bool:
        try:
            job = pipeline.prepare_step(self.session.case, name, **options)
        except SurgtwinError as exc:
            self.last_dialog = error_box(self.win, title, exc)
            return False

        def done(out) -> None:
            files = (out.summary or {}).get("files") or {}
            counts = " · ".join(f"{kind.upper()} {n}" for kind, n in files.items())
            self._written(target, title + (f" ({counts} files)" if counts else ""))
            if on_done is not None:
                on_done(out)

        return self.win.jobs.run(title, job.compute, on_done=done) is not None

    # -- DICOM ----------------------------------------------------------------------------------
    def export_dicom_dialog(self) -> None:
        case = self._case_or_say()
        if case is None:
            return
        if case.labels is None:
            self.win.statusBar().showMessage("Nothing to export: segment the image or import labels first", 6000)
            return
        dlg = HandoverDialog(self.win, "Export to DICOM", target=self._default_target("_dicom"), folder=True,
                             snapshots=True)
        self.last_dialog = dlg
        dlg.accepted.connect(lambda: self.export_dicom(dlg.target(), deidentify=dlg.deidentify.isChecked(),
                                                       snapshots=dlg.snapshots.isChecked()))
        dlg.open()

    def export_dicom(self, folder, *, deidentify: bool = False, snapshots: bool = True, on_done=None) -> bool:
        """SEG + RTSTRUCT (+ Secondary Capture snapshots) off the GUI thread (the ``export`` step)."""
        return self._run_step("DICOM export", "export", Path(folder), on_done, out=str(folder),
                              deidentify=deidentify, snapshots=snapshots)

    def import_dialog(self) -> None:
        if self._case_or_say() is None:
            return
        path, _ = QFileDialog.getOpenFileName(self.win, "Import DICOM SEG or RTSTRUCT",
                                              str(self.win.settings.value("last_dir", "")),
                                              "DICOM (*.dcm *.DCM);;All files (*)")
        if path:
            self.import_segmentation(path)

    def import_segmentation(self, path, *, replace_without_asking: bool = False, on_done=None) -> bool:
        """Read a SEG/RTSTRUCT onto the case's grid (a job), then replace the labels: asking first when
        the case has labels (the old ones stay in the saved case until the user saves)."""
        from surgtwin.services import dicom_export

        case = self.session.case
        path = Path(path)

        def apply(labels, revision) -> None:
            if case is not self.session.case:
                return  # another case was opened meanwhile
            if case.labels is not None and case.labels.array.any() and not replace_without_asking:
                box = QMessageBox(QMessageBox.Icon.Question, "Replace the labels?",
                                  f"{path.name} holds {len(labels.labels)} structures. Replace the case's current "
                                  "labels with them? (Until you save, the saved case keeps the current ones.)",
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self.win)
                box.setObjectName("replaceLabelsBox")
                box.button(QMessageBox.StandardButton.Yes).setText("Replace")
                self.last_dialog = box
                box.finished.connect(lambda r: r == QMessageBox.StandardButton.Yes and self._apply(labels, path, revision, on_done))
                box.open()
                return
            self._apply(labels, path, revision, on_done)

        revision = case.labels_revision
        return self.win.jobs.run(f"Importing {path.name}", dicom_export.import_segmentation, case, path,
                                 on_done=lambda labels: apply(labels, revision)) is not None

    def _apply(self, labels, path: Path, revision: int, on_done) -> None:
        from surgtwin.services import dicom_export

        try:
            dicom_export.apply_segmentation(self.session.case, labels, path=path, expected_revision=revision)
        except SurgtwinError as exc:  # edited meanwhile: the user's edits are kept
            self.last_dialog = error_box(self.win, "Import segmentation", exc)
            return
        self.win.statusBar().showMessage(f"Imported {len(labels.labels)} structures from {path.name}", 8000)
        if on_done is not None:
            on_done(labels)

    def _written(self, path, what: str) -> None:
        self.win.statusBar().showMessage(f"{what} written: {path}", 10000)
        self.exported.emit(str(path))
