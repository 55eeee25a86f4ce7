"""File ▸ Cohort…: the pipeline's steps over many cases (``surgtwin.services.cohort``), from the app.

A non-modal window: the cohort's cases (DICOM studies, sample case folders, ``.stwin`` cases, a
``cohort.json``, or a virtual cohort from the phantom generator), the steps to run, where (in this
process, a local Dask cluster of N workers, or an existing Dask scheduler) and the output folder. Run
runs ``cohort.run_and_write`` (the cases, then the results table and the PDF report) in a
services ``Job`` off the GUI thread, with the window's own progress bar and Cancel (a cohort may run for
hours; the main window and its job runner stay free meanwhile). The results table is
shown by ``cohort_results.ResultsPanel`` (sortable; a case opens in the main window). UI only.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from surgtwin.core.errors import SurgtwinError
from surgtwin.services import cohort
from surgtwin.services.jobs import CANCELLED, DONE, FAILED, Job
from surgtwin.ui.cohort_results import ResultsPanel, error_text
from surgtwin.ui.dialogs import NOT_FOR_CLINICAL_USE, error_box
from surgtwin.ui.job_runner import ProgressBar
from surgtwin.ui.pacs_nodes import ERROR_STYLE, OK_STYLE

INFO_STYLE = "color: #c8d0dc;"
#: the steps ticked for a new cohort; a virtual cardiac cohort adds TAVR sizing
DEFAULT_STEPS, CARDIAC_STEPS = ("segment", "mesh"), ("segment", "mesh", "tavr")
#: seconds between reloads of the table while a cohort runs (new rows as cases finish)
LIVE_REFRESH_S = 3.0


class VirtualCohortDialog(QDialog):
    """Kind, number of patients, first seed, grid spacing and trial arms of a virtual cohort."""

    def __init__(self, parent) -> None:
        from surgtwin.core.phantom import CASE_KINDS

        super().__init__(parent)
        self.setObjectName("virtualCohortDialog")
        self.setWindowTitle("Virtual cohort")
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Synthetic patients from the phantom generator, their anatomy varied within its\n"
                             "documented ranges; their known truth gives each measurement's error.", self))
        form = QFormLayout()
        self.kind = QComboBox(self)
        self.kind.addItems(list(CASE_KINDS))
        self.count = self._spin(1, 100_000, 20)
        self.first_seed = self._spin(0, 2**31 - 1, 0)
        self.pixel_mm = self._mm(5.0, "from the seed (0.6–1.5 mm)")
        self.slice_mm = self._mm(10.0, "from the seed (1–3 mm)")
        self.arms = QLineEdit(self)
        self.arms.setObjectName("virtualArms")
        self.arms.setPlaceholderText("optional, e.g. implant.size=2,4,6")
        self.arms.setToolTip("Trial arms: every patient once per value (STEP.KEY=V1,V2,...; several separated "
                             "by ';'), e.g. each patient with stem sizes 2, 4 and 6")
        for text, w in (("Kind:", self.kind), ("Patients:", self.count), ("First seed:", self.first_seed),
                        ("Pixel spacing:", self.pixel_mm), ("Slice spacing:", self.slice_mm),
                        ("Arms:", self.arms)):
            form.addRow(text, w)
        lay.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Add patients")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    def _spin(self, lo: int, hi: int, value: int) -> QSpinBox:
        s = QSpinBox(self)
        s.setRange(lo, hi)
        s.setValue(value)
        return s

    def _mm(self, hi: float, auto: str) -> QDoubleSpinBox:
        s = QDoubleSpinBox(self)
        s.setRange(0.0, hi)
        s.setSingleStep(0.25)
        s.setSuffix(" mm")
        s.setSpecialValueText(auto)  # 0: drawn from each patient's seed
        s.setMinimumWidth(200)
        return s

    def values(self) -> dict:
        return {"kind": self.kind.currentText(), "n": self.count.value(), "first_seed": self.first_seed.value(),
                "pixel_mm": self.pixel_mm.value() or None, "slice_mm": self.slice_mm.value() or None,
                "arms": [a for a in self.arms.text().split(";") if a.strip()]}


class CohortWindow(QWidget):
    """Its own top-level window (kept, not deleted, when closed: a running cohort goes on)."""

    def __init__(self, window) -> None:
        super().__init__(window, Qt.WindowType.Window)
        self.win = window
        self.setObjectName("cohortWindow")
        self.setWindowTitle(f"Cohort — surgtwin — {NOT_FOR_CLINICAL_USE}")
        self.resize(1280, 820)
        self.entries: list = []  # the cohort's CohortCase entries, in order
        self.job: Job | None = None
        self.last_state: str | None = None
        self.last_dialog = None
        self._run_dir: Path | None = None  # the output folder of the run in progress
        self._live = (0.0, "")  # (time, progress message) of the last live reload of the table
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(self._cases_box(), 5)
        top.addWidget(self._run_box(), 4)
        lay.addLayout(top)
        self.results = ResultsPanel(window, self)
        self.results.message.connect(lambda text, style: self.say(text, style or INFO_STYLE))
        lay.addWidget(self.results, 1)
        self.status = QLabel("", self)
        self.status.setObjectName("cohortStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.status)
        note = QLabel(f"{NOT_FOR_CLINICAL_USE}: research and in-silico trials only; the cohort's figures are "
                      "model estimates, not validated.", self)
        note.setObjectName("notClinical")
        lay.addWidget(note)
        self.timer = QTimer(self)
        self.timer.setInterval(100)
        self.timer.timeout.connect(self._poll)
        self._set_running(False)
        self._update_cases()

    # -- construction ------------------------------------------------------------------------------
    def _button(self, text: str, slot, row, *, tip: str = "", name: str = "") -> QPushButton:
        b = QPushButton(text, self)
        b.setAutoDefault(False)
        b.setObjectName(name or "cohort" + "".join(w.capitalize() for w in text.rstrip("…").split()))
        b.setToolTip(tip)
        b.clicked.connect(lambda *_: slot())
        row.addWidget(b)
        return b

    def _cases_box(self) -> QGroupBox:
        box = QGroupBox("Cases", self)
        lay = QVBoxLayout(box)
        self.case_list = QListWidget(box)
        self.case_list.setObjectName("cohortCases")
        self.case_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        lay.addWidget(self.case_list, 1)
        row = QHBoxLayout()
        self.add_button = self._button("Add studies…", self.add_folder_dialog, row,
                                       tip="A DICOM study folder, a sample case folder, or a folder of them "
                                           "(one case per study)")
        self.add_files_button = self._button("Add files…", self.add_files_dialog, row,
                                             tip="Saved .stwin cases, a cohort.json, or image files")
        self.virtual_button = self._button("Virtual cohort…", self.virtual_dialog, row,
                                           tip="N synthetic patients from the phantom generator (in-silico trial)")
        self.remove_button = self._button("Remove", self.remove_selected, row)
        self.clear_button = self._button("Clear", self.clear_cases, row)
        row.addStretch(1)
        lay.addLayout(row)
        return box

    def _run_box(self) -> QGroupBox:
        from surgtwin.services import pipeline

        box = QGroupBox("Run", self)
        lay = QVBoxLayout(box)
        grid = QGridLayout()
        self.step_boxes: dict[str, QCheckBox] = {}
        for i, (name, step) in enumerate(pipeline.steps().items()):  # pipeline order
            cb = QCheckBox(name, box)
            cb.setObjectName(f"cohortStep_{name}")
            cb.setToolTip(step.help)
            cb.setChecked(name in DEFAULT_STEPS)
            grid.addWidget(cb, i // 4, i % 4)
            self.step_boxes[name] = cb
        lay.addWidget(QLabel("Steps (run in this order on every case):", box))
        lay.addLayout(grid)
        form = QFormLayout()
        self.workers = QSpinBox(box)
        self.workers.setObjectName("cohortWorkers")
        self.workers.setRange(0, 256)
        self.workers.setSpecialValueText("0 (in this process)")
        self.workers.setValue(int(self.win.settings.value("cohort/workers", min(4, max(1, (os.cpu_count() or 2) // 2)))))
        self.workers.setToolTip("Local Dask worker processes (one case each at a time); 0 runs the cases here, "
                                "one after another")
        self.memory = QSpinBox(box)
        self.memory.setRange(1, 1024)
        self.memory.setValue(6)
        self.memory.setSuffix(" GiB per worker")
        self.memory.setToolTip("A worker above this is restarted and its case retried")
        self.scheduler = QLineEdit(box)
        self.scheduler.setObjectName("cohortScheduler")
        self.scheduler.setPlaceholderText("tcp://host:8786 (optional: an existing Dask cluster)")
        self.scheduler.setToolTip("Its workers need surgtwin installed and must see the same paths")
        self.scheduler.textChanged.connect(lambda *_: self._set_running(self.job is not None))
        self.options = QLineEdit(box)
        self.options.setObjectName("cohortOptions")
        self.options.setPlaceholderText("optional: STEP.KEY=VALUE; … e.g. implant.family=hip-stem; implant.femur=left")
        self.options.setToolTip("Step options for every case (the command line's --option), separated by ';'; "
                                "they override a case's own options, e.g. tavr.family=self-expanding")
        out_row = QHBoxLayout()
        self.out_edit = QLineEdit(box)
        self.out_edit.setObjectName("cohortOut")
        parent = Path(str(self.win.settings.value("cohort/out_parent", "") or Path.home() / "surgtwin_cohorts"))
        self.out_edit.setText(str(parent / time.strftime("cohort-%Y%m%d-%H%M")))
        self.out_edit.setToolTip("A rerun into the same folder skips the cases that are already complete")
        out_row.addWidget(self.out_edit, 1)
        self._button("Browse…", self.choose_out_dialog, out_row, name="cohortBrowseOut")
        for text, w in (("Workers:", self.workers), ("Memory:", self.memory), ("Dask scheduler:", self.scheduler),
                        ("Step options:", self.options), ("Output folder:", out_row)):
            form.addRow(text, w)
        lay.addLayout(form)
        row = QHBoxLayout()
        self.run_button = self._button("Run", self.run, row, tip="Run the steps over every case (resumable)")
        self.run_button.setDefault(True)
        self.bar = ProgressBar(box)
        self.bar.setObjectName("cohortProgress")
        row.addWidget(self.bar, 1)
        self.cancel_button = self._button("Cancel", self.cancel, row,
                                          tip="Stop the run: the finished cases are kept, a rerun resumes")
        lay.addLayout(row)
        self.progress_line = QLabel("", box)
        self.progress_line.setObjectName("cohortProgressLine")
        lay.addWidget(self.progress_line)
        lay.addStretch(1)
        return box

    # -- messages ----------------------------------------------------------------------------------
    def say(self, text: str, style: str = INFO_STYLE) -> None:
        self.status.setStyleSheet(style)
        self.status.setText(text)

    def show_error(self, title: str, exc: BaseException, details: str = "") -> None:
        """A user's error inline (the window stays as it was); an unexpected one also in an error box."""
        if isinstance(exc, SurgtwinError):
            self.say(f"{title}: {error_text(exc)}", ERROR_STYLE)
            return
        self.say(f"{title} failed unexpectedly: {type(exc).__name__}: {exc}", ERROR_STYLE)
        self.last_dialog = error_box(self, title, exc, details)

    def _set_running(self, running: bool) -> None:
        for w in (self.add_button, self.add_files_button, self.virtual_button, self.remove_button,
                  self.clear_button, self.run_button, self.out_edit, self.scheduler, self.options,
                  *self.step_boxes.values()):
            w.setEnabled(not running)
        self.workers.setEnabled(not running and not self.scheduler.text().strip())
        self.memory.setEnabled(not running and not self.scheduler.text().strip())
        self.cancel_button.setEnabled(running)
        self.results.set_busy(running)

    # -- the cases ---------------------------------------------------------------------------------
    def add_inputs(self, paths) -> int:
        """Add the cases ``cohort.discover`` finds in ``paths``; returns how many were added."""

        try:
            found = cohort.discover([str(p) for p in paths])
        except SurgtwinError as exc:
            self.show_error("Add studies", exc)
            return 0
        return self._add(found)

    def add_virtual(self, kind: str, n: int, *, first_seed: int = 0, pixel_mm=None, slice_mm=None, arms=()) -> int:
        """Add ``n`` virtual patients (each once per trial arm: ``arms`` like ``["implant.size=2,4,6"]``)."""
        try:
            found = cohort.virtual_cohort(kind, n, first_seed=first_seed, pixel_mm=pixel_mm, slice_mm=slice_mm)
            found = cohort.expand_arms(found, cohort.parse_arms(arms))
        except SurgtwinError as exc:
            self.show_error("Virtual cohort", exc)
            return 0
        if kind == "cardiac-cta":
            self.set_steps(set(self.selected_steps()) | set(CARDIAC_STEPS))
        return self._add(found)

    def _add(self, found) -> int:
        """Append new entries; an entry already listed is skipped, a clashing id gets a suffix."""
        from dataclasses import replace

        def key(e) -> str:  # the same study in another trial arm is another case
            return json.dumps({**e.to_json(), "case_id": None}, sort_keys=True, default=str)

        ids, sources = {e.case_id for e in self.entries}, {key(e) for e in self.entries}
        added = 0
        for e in found:
            if key(e) in sources:
                continue
            cid, k = e.case_id, 2
            while cid in ids:
                cid, k = f"{e.case_id}-{k}", k + 1
            ids.add(cid)
            sources.add(key(e))
            self.entries.append(replace(e, case_id=cid))
            added += 1
        self._update_cases()
        self.say(f"Added {added} case(s)" + (f" ({len(found) - added} already listed)" if added < len(found) else ""),
                 OK_STYLE if added else INFO_STYLE)
        return added

    def remove_selected(self) -> None:
        rows = sorted({self.case_list.row(i) for i in self.case_list.selectedItems()}, reverse=True)
        for r in rows:
            del self.entries[r]
        self._update_cases()

    def clear_cases(self) -> None:
        self.entries.clear()
        self._update_cases()

    def _update_cases(self) -> None:
        self.case_list.clear()
        for e in self.entries:
            self.case_list.addItem(f"{e.case_id}    {e.label}")
        self.case_list.parentWidget().setTitle(f"Cases ({len(self.entries)})")

    def add_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add studies: a study folder, or a folder of studies",
                                                  str(self.win.settings.value("last_dir", "") or ""))
        if folder:
            self.add_inputs([folder])

    def add_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Add cases", str(self.win.settings.value("last_dir", "") or ""),
            "Cases, cohorts and images (*.stwin *.json *.nii *.nii.gz *.nrrd *.mha *.dcm);;All files (*)")
        if files:
            self.add_inputs(files)

    def virtual_dialog(self) -> VirtualCohortDialog:
        dlg = VirtualCohortDialog(self)
        self.last_dialog = dlg
        dlg.accepted.connect(lambda: self.add_virtual(**dlg.values()))
        dlg.open()
        return dlg

    # -- running -----------------------------------------------------------------------------------
    def selected_steps(self) -> list[str]:
        return [name for name, cb in self.step_boxes.items() if cb.isChecked()]

    def set_steps(self, names) -> None:
        for name, cb in self.step_boxes.items():
            cb.setChecked(name in set(names))

    def choose_out_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder of the cohort", self.out_edit.text())
        if folder:
            self.out_edit.setText(folder)

    def run(self) -> Job | None:
        if self.job is not None:
            return None
        steps, out = self.selected_steps(), self.out_edit.text().strip()
        refusal = ("Add cases first: studies, case files, a cohort.json or a virtual cohort" if not self.entries
                   else "Choose at least one step" if not steps else "Choose an output folder" if not out else None)
        if refusal:
            self.say(refusal, ERROR_STYLE)
            return None
        try:
            options = cohort.parse_options([o for o in self.options.text().split(";") if o.strip()])
            cohort.check_options(options, steps)
        except SurgtwinError as exc:
            self.show_error("Step options", exc)
            return None
        out_dir = Path(out).expanduser()
        scheduler = self.scheduler.text().strip() or None
        self.win.settings.setValue("cohort/workers", self.workers.value())
        self.win.settings.setValue("cohort/out_parent", str(out_dir.parent))
        self.job = Job("Cohort", cohort.run_and_write, list(self.entries), steps, out_dir, options=options,
                       scheduler=scheduler,
                       workers=None if scheduler else self.workers.value(),
                       memory_limit=None if scheduler else f"{self.memory.value()}GiB")
        self._run_dir, self._live = out_dir, (0.0, "")
        self.bar.setValue(0, "starting")
        self.progress_line.setText(f"0/{len(self.entries)} cases")
        where = scheduler or (f"{self.workers.value()} local Dask workers" if self.workers.value() else "this process")
        self.say(f"Running {', '.join(steps)} on {len(self.entries)} case(s) in {where}, into {out_dir}")
        self._set_running(True)
        self.job.start()
        self.timer.start()
        return self.job

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.cancel_button.setEnabled(False)
            self.progress_line.setText(self.progress_line.text() + " — cancelling…")

    def _poll(self) -> None:
        job = self.job
        if job is None:
            self.timer.stop()
            return
        st = job.status()
        if not st.finished:
            self.bar.setValue(max(1, int(st.fraction * 1000)), f"{st.fraction * 100:.0f}%")
            if not job.cancel_token.cancelled:
                self.progress_line.setText(st.message or "starting…")
            if st.message != self._live[1] and time.monotonic() - self._live[0] > LIVE_REFRESH_S:
                self._live = (time.monotonic(), st.message)
                self.results.load(self._run_dir, quiet=True)  # the rows of the cases finished so far
            return
        self.timer.stop()
        self.job = None
        self.last_state = st.state
        self._set_running(False)
        if st.state == DONE:
            try:
                self._finished(*job.result)
            except Exception as exc:  # noqa: BLE001 - shown to the user; the window stays usable
                import traceback

                self.show_error("Cohort results", exc, traceback.format_exc())
        elif st.state == CANCELLED:
            self.results.load(self._run_dir, quiet=True)
            self.bar.setValue(self.bar.value(), "cancelled")
            self.progress_line.setText(f"Cancelled after {st.elapsed_s:.0f} s")
            self.say(f"Cancelled: the cases finished so far are kept in {self._run_dir}; Run again to resume.")
        elif st.state == FAILED:
            self.bar.setValue(0, "failed")
            self.progress_line.setText("")
            self.show_error("Cohort run", job.error, job.error_traceback)

    def _finished(self, run, written, write_error) -> None:
        self.results.load(run.out_dir)
        ok, bad = len(run.ok), len(run.failed)
        n = len(run.records)
        self.bar.setValue(1000, "done")
        self.progress_line.setText(f"{n}/{n} cases, {bad} failed")
        text = (f"{ok}/{n} cases ok, {bad} failed" + (f", {len(run.skipped)} already complete" if run.skipped else "")
                + f" in {run.seconds:.0f} s ({run.scheduler}).")
        if written:
            report = written.get("report") or self.results.report_path
            text += f" Table: {Path(written['csv']).name}" + (f"; report: {Path(report).name}" if report else "")
        if write_error is not None:
            self.say(f"{text}\nThe table or report could not be written: {error_text(write_error)}", ERROR_STYLE)
        else:
            self.say(text, ERROR_STYLE if bad else OK_STYLE)


class CohortActions(QObject):
    """File ▸ Cohort…: the Cohort window, made on first use and kept (a run goes on while it is closed)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.win = window
        self.cohort_window: CohortWindow | None = None

    def add_to(self, menu) -> None:
        menu.addSeparator()
        self.open_action = menu.addAction("Co&hort…", self.open_window)
        self.open_action.setStatusTip("The pipeline's steps over many cases or a virtual cohort (in-silico trial), "
                                      "on Dask, with a results table and report")

    def open_window(self) -> CohortWindow:
        if self.cohort_window is None:
            self.cohort_window = CohortWindow(self.win)
        self.cohort_window.show()
        self.cohort_window.raise_()
        self.cohort_window.activateWindow()
        return self.cohort_window
