"""File-menu actions over cases: open (image, DICOM folder or case), save / save as, recent cases,
autosave and crash recovery. UI glue only: the work is ``surgtwin.services.pipeline`` and
``surgtwin.services.recovery``; long work runs through the window's ``JobRunner``.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox

from surgtwin.core.case import SUFFIX
from surgtwin.core.errors import SurgtwinError
from surgtwin.services import pipeline, recovery
from surgtwin.ui.settings import add_recent

FILE_FILTER = "Images (*.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd *.dcm);;All files (*)"


class CaseActions(QObject):
    """Opens and saves the window's case; owns the autosave timer."""

    #: a case was opened or created (arg: the Case)
    opened = Signal(object)
    #: the rest of an opened case (meshes, results) has been read (arg: the Case)
    items_loaded = Signal(object)
    saved = Signal(str)

    def __init__(self, window, *, autosave_minutes: float | None = None) -> None:
        super().__init__(window)
        self.win = window
        self.session = window.session
        self.autosaver = recovery.Autosaver()
        self.loading = False  # True while the rest of an opened case is being read
        self.timer = QTimer(self)
        minutes = recovery.AUTOSAVE_MINUTES if autosave_minutes is None else autosave_minutes
        self.timer.setInterval(max(1, int(minutes * 60_000)))
        self.timer.timeout.connect(self.autosave)
        self.timer.start()

    # -- opening --------------------------------------------------------------------------------
    def open_path(self, path, *, series_uid=None) -> None:
        """Open a case (``.stwin`` or an old session folder), a DICOM folder (through the series
        browser), a sample case folder, or an image file."""
        path = Path(path)
        self.win.settings.setValue("last_dir", str(path.parent))
        if pipeline.is_case_path(path):
            self.win.jobs.run(f"Opening {path.name}", pipeline.load_case_staged, path,
                              on_done=lambda res: self._show_staged(*res, path))
        elif path.is_dir() and series_uid is None and pipeline.find_case_for(path) is None:
            self.win.jobs.run("Scanning for series", pipeline.find_series, path,
                              on_done=lambda cands: self._choose_series(path, cands))
        else:
            self.win.jobs.run(f"Opening {path.name}", pipeline.new_case, path, series_uid=series_uid,
                              on_done=lambda case: self._show(case, None, path))

    def _choose_series(self, folder: Path, candidates) -> None:
        from surgtwin.ui.series_dialog import SeriesDialog

        ok = [c for c in candidates if getattr(c, "refusal", None) is None]
        if not candidates:
            raise SurgtwinError("no DICOM series found in this folder", path=folder,
                                hint="choose the folder that holds the .dcm files")
        if len(candidates) == 1 and ok and not ok[0].warnings:
            self.open_path(folder, series_uid=ok[0].series_uid)
            return
        dlg = SeriesDialog(folder, candidates, self.win)
        self.win.last_dialog = dlg
        dlg.accepted.connect(lambda: dlg.selected() is not None and self.open_path(
            folder, series_uid=dlg.selected().series_uid))
        dlg.open()

    def _show_staged(self, case, deferred, path: Path) -> None:
        """Show the image and labels at once, then read the rest of the case (meshes, results)."""
        self.loading = bool(deferred)
        self._show(case, path if path.name.endswith(SUFFIX) else None, path)
        if deferred:
            def done(loaded) -> None:
                self.loading = False
                if self.session.case is case:
                    deferred.apply_to(case, loaded)
                    self.items_loaded.emit(case)

            job = self.win.jobs.run(f"Reading {path.name}", deferred.load, case.volume, on_done=done)
            if job is None:  # another job holds the runner: read the rest here rather than lose it
                done(deferred.load(case.volume))

    def _show(self, case, case_path, opened_from: Path) -> None:
        old = self.session.case
        if old is not None and old.dirty:
            self.autosaver.save_now(old, self.session.case_path, wait=True)  # never lose the previous case
        self.session.set_case(case, path=case_path)
        self.remember(opened_from)
        self.opened.emit(case)

    def remember(self, path) -> None:
        self.win.settings.setValue("recent", add_recent(self.win.settings, str(path)))
        self.win.fill_recent()

    def open_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self.win, f"Open case ({SUFFIX} folder)",
                                                str(self.win.settings.value("last_dir", "")))
        if path:
            self.open_path(path)

    # -- saving ---------------------------------------------------------------------------------
    def save(self, path=None, *, on_done=None) -> bool:
        """Save the case (to ``path``, else where it was saved, else ask). False when nothing to save."""
        case = self.session.case
        if case is None:
            self.win.statusBar().showMessage("Nothing to save: open an image or a case first", 5000)
            return False
        if path is None and self.session.case_path is None:
            return self.save_as_dialog()
        target = Path(path) if path is not None else self.session.case_path
        if not target.name.endswith(SUFFIX):
            target = target.with_name(target.name + SUFFIX)
        case.set_view(self.win.view_state())
        snap, count = recovery.snapshot(case), case.change_count

        def done(saved_path) -> None:
            if case.change_count == count:
                case.mark_saved()
            self.session.case_path = Path(saved_path)
            recovery.discard(case.case_id, folder=self.autosaver.folder)
            self.remember(saved_path)
            self.saved.emit(str(saved_path))
            if on_done is not None:
                on_done(saved_path)

        return self.win.jobs.run("Saving case", pipeline.save_case, snap, target, on_done=done) is not None

    def save_as_dialog(self) -> bool:
        case = self.session.case
        if case is None:
            return False
        start = Path(str(self.win.settings.value("last_dir", ""))) / f"{case.name or 'case'}{SUFFIX}"
        path, _ = QFileDialog.getSaveFileName(self.win, "Save case", str(start), f"surgtwin case (*{SUFFIX})")
        return bool(path) and self.save(path)

    # -- autosave and recovery ------------------------------------------------------------------
    def autosave(self, *, wait: bool = False) -> bool:
        """Autosave the case into the recovery folder if it has unsaved changes."""
        case = self.session.case
        if case is None or not case.dirty:
            return False
        case.set_view(self.win.view_state())
        return self.autosaver.save_now(case, self.session.case_path, wait=wait)

    def offer_recovery(self) -> QMessageBox | None:
        """After a crash: ask whether to restore the newest recovery copy (non-blocking box)."""
        found = recovery.pending(folder=self.autosaver.folder)
        if not found:
            return None
        rec = found[0]
        box = QMessageBox(QMessageBox.Icon.Question, "Restore unsaved work?",
                          "surgtwin did not close normally last time. An autosaved copy of your work is "
                          f"available:\n\n{rec.describe()}\n\nRestore it?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Discard
                          | QMessageBox.StandardButton.Ignore, self.win)
        box.setObjectName("recoveryBox")
        box.button(QMessageBox.StandardButton.Yes).setText("Restore")
        box.button(QMessageBox.StandardButton.Ignore).setText("Later")

        def answered(button) -> None:
            role = box.standardButton(button)
            if role == QMessageBox.StandardButton.Yes:
                self.restore(rec)
            elif role == QMessageBox.StandardButton.Discard:
                recovery.discard(rec.case_id, folder=self.autosaver.folder)

        box.buttonClicked.connect(answered)
        box.show()
        self.win.last_dialog = box
        return box

    def restore(self, rec) -> None:
        case_path = Path(rec.case_path) if rec.case_path else None
        self.win.jobs.run("Restoring autosaved work", recovery.restore, rec,
                          on_done=lambda case: self._show(case, case_path, case_path or rec.folder))

    def close_case(self) -> None:
        """On a normal close: a case with unsaved changes keeps a recovery copy (offered next start)."""
        self.timer.stop()
        case = self.session.case
        if case is not None and case.dirty:
            self.autosave(wait=True)
        elif case is not None:
            recovery.discard(case.case_id, folder=self.autosaver.folder)
        self.autosaver.wait(30)

    # -- export ---------------------------------------------------------------------------------
    def export_meshes_dialog(self) -> None:
        """File > Export meshes: the case's surfaces (full resolution, LPS mm) for 3D printing."""
        from PySide6.QtWidgets import QInputDialog

        from surgtwin.core.mesh import EXPORT_FORMATS

        case = self.session.case
        if case is None or not case.meshes:
            self.win.statusBar().showMessage("No meshes to export: build them first (Pipeline → Build meshes)", 6000)
            return
        folder = QFileDialog.getExistingDirectory(self.win, "Export meshes to folder",
                                                  str(self.win.settings.value("last_dir", "")))
        if not folder:
            return
        formats = [f for f in ("stl", "3mf", "obj", "ply", "vtp") if f in EXPORT_FORMATS]
        fmt, ok = QInputDialog.getItem(self.win, "Export meshes", "File format:", formats, 0, False)
        if ok:
            self.export_meshes(folder, fmt)

    def export_meshes(self, folder, fmt: str = "stl", *, allow_stale: bool = False) -> None:
        """Export, asking first when the meshes are out of date (never silently)."""
        case = self.session.case
        reasons = case.stale_reasons("meshes")
        if reasons and not allow_stale:
            box = QMessageBox(QMessageBox.Icon.Warning, "Meshes out of date",
                              "The meshes no longer match the case: " + "; ".join(reasons) + ".\n\nRebuild them "
                              "first (Pipeline → Build meshes), or export these out-of-date meshes anyway?",
                              QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self.win)
            box.setObjectName("staleExportBox")
            box.button(QMessageBox.StandardButton.Yes).setText("Export anyway")
            box.setDefaultButton(QMessageBox.StandardButton.Cancel)
            box.buttonClicked.connect(lambda b: box.standardButton(b) == QMessageBox.StandardButton.Yes
                                      and self.export_meshes(folder, fmt, allow_stale=True))
            box.show()
            self.win.last_dialog = box
            return
        self.win.jobs.run("Exporting meshes", _export_job, case, Path(folder), fmt, allow_stale,
                          on_done=lambda written: self.win.statusBar().showMessage(
                              f"Exported {len(written)} surface(s) ({fmt.upper()}, LPS mm) to {folder}", 8000))

    def confirm_close(self) -> bool:
        """Ask about unsaved changes before the window closes (modal); True to go on closing."""
        case = self.session.case
        ans = QMessageBox.question(self.win, "Unsaved changes", f"Save the changes to {case.name or 'this case'}?",
                                   QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                                   | QMessageBox.StandardButton.Cancel)
        if ans == QMessageBox.StandardButton.Cancel:
            return False
        if ans == QMessageBox.StandardButton.Discard:
            recovery.discard(case.case_id, folder=self.autosaver.folder)
            case.mark_saved()
            return True
        target = self.session.case_path
        if target is None:
            path, _ = QFileDialog.getSaveFileName(self.win, "Save case", f"{case.name or 'case'}{SUFFIX}",
                                                  f"surgtwin case (*{SUFFIX})")
            if not path:
                return False
            target = Path(path)
        try:
            case.set_view(self.win.view_state())
            self.session.case_path = pipeline.save_case(case, target)
        except SurgtwinError as exc:
            from surgtwin.ui.dialogs import error_box

            self.win.last_dialog = error_box(self.win, "Save", exc)
            return False
        recovery.discard(case.case_id, folder=self.autosaver.folder)
        return True


def _export_job(case, folder: Path, fmt: str, allow_stale: bool, *, progress=None, cancel=None) -> dict:
    return pipeline.export_meshes(case, folder, fmt=fmt, allow_stale=allow_stale)

