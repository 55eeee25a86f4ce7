"""The surgtwin main window: menus, toolbar, views, docked panels, status bar and the pipeline actions.

Every action calls ``surgtwin.services`` (through ``JobRunner`` for long work); the window itself
computes no anatomy.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QToolButton

from surgtwin.core.case import LabelsEditedError
from surgtwin.core.errors import SurgtwinError
from surgtwin.render.presets import WINDOW_PRESETS
from surgtwin.services import pipeline, quality
from surgtwin.services.panels import default_registry
from surgtwin.services.session import Session
from surgtwin.ui.case_actions import FILE_FILTER, CaseActions
from surgtwin.ui.cohort_window import CohortActions
from surgtwin.ui.dialogs import NOT_FOR_CLINICAL_USE, about_box, error_box
from surgtwin.ui.editing import LabelEditor
from surgtwin.ui.handover_actions import HandoverActions
from surgtwin.ui.job_runner import JobRunner
from surgtwin.ui.pacs_actions import PacsActions
from surgtwin.ui.segmentation_choice import METHOD_TEXT, SegmentationChoice
from surgtwin.ui.settings import app_settings, recent_files
from surgtwin.ui.tool_state import ToolState
from surgtwin.ui.views import LAYOUTS, ViewArea


def registry_area(registry, panel_id: str) -> str:
    return next(s.area for s in registry.specs() if s.id == panel_id)


class MainWindow(QMainWindow):
    def __init__(self, session: Session | None = None, *, registry=None, settings=None,
                 ask_on_close: bool = False, autosave_minutes: float | None = None) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.session = session or Session()
        self.settings = settings or app_settings()
        self.ask_on_close = ask_on_close
        self.tools = ToolState(self)
        self.editor = LabelEditor(self.session, self.tools, self)
        self.jobs = JobRunner(self, self)
        self.cases = CaseActions(self, autosave_minutes=autosave_minutes)
        self.handover, self.pacs, self.cohort = HandoverActions(self), PacsActions(self), CohortActions(self)
        self.cases.opened.connect(self._opened)
        self.cases.items_loaded.connect(self._show_case_meshes)
        self.session.labels_replaced.connect(lambda: setattr(self, "_meshes_base_ok", False))
        self.cases.saved.connect(lambda *_: self._update_title())
        self.last_dialog, self._case_shown_at = None, 0.0
        self.last_segmentation = None  # core's SegmentationResult of the last Segment (structures, method)
        self._pending3d: list = []
        # the meshes matched the labels before the edits in _dirty_values: only then may a partial
        # refresh of the edited structures make them current again
        self._meshes_base_ok = False
        self._dirty_values: set[int] = set()
        self.views = ViewArea(self.session, self.tools, self.editor, self)
        self.setCentralWidget(self.views)
        self.panels, self.docks = {}, {}
        self._build_panels(registry or default_registry())
        self._build_actions()
        self._build_status()
        self.editor.message.connect(lambda m: self.statusBar().showMessage(m, 5000))
        self.editor.edited.connect(self._on_edited)
        self.views.view3d.picked.connect(self._on_pick3d)
        for v in self.views.slices.values():
            v.hovered.connect(self._on_hover)
        self._mesh_timer = QTimer(self)
        self._mesh_timer.setSingleShot(True)
        self._mesh_timer.setInterval(700)
        self._mesh_timer.timeout.connect(self._refresh_meshes)
        self.session.volume_changed.connect(self._update_title)
        self.session.items_changed.connect(lambda *_: self._stale_timer.start())
        self.session.labels_changed.connect(lambda *_: self._stale_timer.start())
        self.session.volume_changed.connect(lambda *_: self._stale_timer.start())
        self.session.modified.connect(lambda *_: self._stale_timer.start())
        self._stale_timer = QTimer(self)
        self._stale_timer.setSingleShot(True)
        self._stale_timer.setInterval(400)
        self._stale_timer.timeout.connect(self._update_stale)
        self.setAcceptDrops(True)
        self.resize(1500, 920)
        geo = self.settings.value("geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        self.set_layout(str(self.settings.value("layout", "2x2")))
        self._update_title()

    # -- construction ---------------------------------------------------------------------------
    def _build_panels(self, registry) -> None:
        areas = {"left": Qt.DockWidgetArea.LeftDockWidgetArea, "right": Qt.DockWidgetArea.RightDockWidgetArea,
                 "bottom": Qt.DockWidgetArea.BottomDockWidgetArea}
        tabbed = []
        for spec in registry.specs():
            widget = spec.load_factory()(self.session, self)
            dock = QDockWidget(spec.title, self)
            dock.setObjectName(f"dock_{spec.id}")
            dock.setWidget(widget)
            dock.setMinimumWidth(330)
            self.addDockWidget(areas[spec.area], dock)
            if spec.tab_with in self.docks:  # a tab beside another panel rather than a new row
                self.tabifyDockWidget(self.docks[spec.tab_with], dock)
                tabbed.append(spec.tab_with)
            self.panels[spec.id] = widget
            self.docks[spec.id] = dock
        for first in tabbed:
            self.docks[first].raise_()
        right = [d for sid, d in self.docks.items() if registry_area(registry, sid) == "right"
                 and next(s.tab_with for s in registry.specs() if s.id == sid) is None]
        if len(right) > 1:
            self.resizeDocks(right, [480] + [340] * (len(right) - 1), Qt.Orientation.Vertical)

    def _act(self, text, slot, shortcut=None, *, checkable=False, tip=None) -> QAction:
        a = QAction(text, self)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        a.setCheckable(checkable)
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(tip)
        a.triggered.connect(slot)
        self.addAction(a)
        return a

    def _build_actions(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self.act_open_file = self._act("Open &file…", self.open_file_dialog, "Ctrl+O")
        self.act_open_folder = self._act("Open &folder (DICOM)…", self.open_folder_dialog, "Ctrl+Shift+O")
        self.act_open_case = self._act("Open &case…", self.cases.open_dialog, "Ctrl+Alt+O")
        self.act_save_case = self._act("&Save case", lambda: self.cases.save(), "Ctrl+S")
        self.act_save_case_as = self._act("Save case &as…", self.cases.save_as_dialog, "Ctrl+Shift+S")
        for a in (self.act_open_case, self.act_open_file, self.act_open_folder):
            f.addAction(a)
        self.samples_menu, self.recent_menu = f.addMenu("Sample &cases"), f.addMenu("&Recent cases and images")
        f.addSeparator()
        f.addActions([self.act_save_case, self.act_save_case_as])
        self.handover.add_to(f)  # export meshes, report, DICOM; import SEG/RTSTRUCT
        self.pacs.add_to(f)  # open from / send results to a PACS
        self.cohort.add_to(f)  # the pipeline over many cases (Dask)
        f.addSeparator()
        f.addAction(self._act("&Quit", self.close, "Ctrl+Q"))
        self._fill_samples()
        self.fill_recent()

        e = mb.addMenu("&Edit")
        self.act_undo = self.editor.undo_stack.createUndoAction(self, "&Undo")
        self.act_undo.setShortcut(QKeySequence.StandardKey.Undo)
        self.act_redo = self.editor.undo_stack.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts([QKeySequence.StandardKey.Redo, QKeySequence("Ctrl+Y")])
        e.addAction(self.act_undo)
        e.addAction(self.act_redo)
        e.addSeparator()
        self.tool_actions = {}
        group = QActionGroup(self)
        from surgtwin.ui.tool_state import TOOLS
        from surgtwin.ui.tools_panel import SHORTCUTS

        for key, tip in TOOLS.items():
            a = self._act(key.title(), lambda _=False, k=key: self.tools.set(tool=k), SHORTCUTS[key], checkable=True,
                          tip=tip)
            group.addAction(a)
            e.addAction(a)
            self.tool_actions[key] = a
        self.tools.changed.connect(lambda: self.tool_actions[self.tools.tool].setChecked(True))
        self.tool_actions["navigate"].setChecked(True)

        v = mb.addMenu("&View")
        self.layout_actions = {}
        lg = QActionGroup(self)
        for n, (key, text) in enumerate(LAYOUTS.items()):
            a = self._act(text, lambda _=False, k=key: self.set_layout(k), f"F{n + 5}",
                          checkable=True)
            a.setIconText({"2x2": "2×2", "1x3": "1×3", "3d": "3D"}[key])
            lg.addAction(a)
            v.addAction(a)
            self.layout_actions[key] = a
        v.addSeparator()
        wl = v.addMenu("&Window/level preset")
        self.preset_actions = {}
        for n, (name, (w, lv)) in enumerate(WINDOW_PRESETS.items()):
            a = self._act(f"{name}  (W {w:.0f} / L {lv:.0f})", lambda _=False, w=w, lv=lv: self.session.set_window(w, lv),
                          f"Alt+{n + 1}")
            wl.addAction(a)
            self.preset_actions[name] = a
        self.act_overlay = self._act("Label &overlay", self._toggle_overlay, "O", checkable=True)
        self.act_overlay.setChecked(True)
        v.addAction(self.act_overlay)
        self.act_vr = self._act("&Volume rendering", lambda: self.views.view3d.toggle_volume_rendering(), "V")
        v.addAction(self.act_vr)
        v.addSeparator()
        for dock in self.docks.values():
            v.addAction(dock.toggleViewAction())

        p = mb.addMenu("&Pipeline")
        self.seg_choice = SegmentationChoice(self, self.settings)
        self.act_segment = self._act("&Segment", lambda _=False: self.segment(), "Ctrl+G")
        self.seg_choice.changed.connect(self._update_segment_tip)
        self._update_segment_tip()
        self.act_meshes = self._act("Build &meshes", self.build_meshes, "Ctrl+M", tip="Surface meshes of the structures")
        self.act_stats = self._act("Structure &statistics", self.compute_stats, "Ctrl+I")
        self.act_cancel = self._act("&Cancel running job", self.jobs.cancel, "Esc")
        p.addAction(self.act_segment)
        p.addMenu(self.seg_choice.menu)
        for a in (self.act_meshes, self.act_stats, self.act_cancel):
            p.addAction(a)

        h = mb.addMenu("&Help")
        h.addAction(self._act("&About surgtwin", lambda: setattr(self, "last_dialog", about_box(self)), "F1"))

        tb = self.addToolBar("Main")
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        samples = QToolButton(self)
        samples.setText("Sample cases ▾")
        samples.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        samples.setMenu(self.samples_menu)
        tb.addWidget(samples)
        for a in (self.act_open_folder, self.act_open_file):
            tb.addAction(a)
        tb.addSeparator()
        self.segment_button = QToolButton(self)
        self.segment_button.setObjectName("segmentButton")
        self.segment_button.setDefaultAction(self.act_segment)
        self.segment_button.setMenu(self.seg_choice.menu)  # the arrow picks the method, the button runs it
        self.segment_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        tb.addWidget(self.segment_button)
        tb.addAction(self.act_meshes)
        tb.addSeparator()
        for a in (self.act_undo, self.act_redo):
            tb.addAction(a)
        tb.addSeparator()
        for name in WINDOW_PRESETS:
            b = QToolButton(self)
            b.setText(name)
            b.setToolTip(f"CT window preset ({self.preset_actions[name].shortcut().toString()})")
            b.clicked.connect(self.preset_actions[name].trigger)
            tb.addWidget(b)
        tb.addSeparator()
        for a in self.layout_actions.values():
            b = QToolButton(self)
            b.setDefaultAction(a)
            tb.addWidget(b)

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.cursor_label = QLabel("")
        self.cursor_label.setObjectName("cursorInfo")
        self.cursor_label.setMinimumWidth(420)
        sb.addWidget(self.cursor_label, 1)
        sb.addPermanentWidget(self.jobs.widget)
        self.seg_info = QLabel("")  # how the labels on screen were made (method / model), until the image changes
        self.seg_info.setObjectName("segmentationInfo")
        self.seg_info.setStyleSheet("color: #8891a5;")
        sb.addPermanentWidget(self.seg_info)
        self.session.volume_changed.connect(lambda *_: self._set_seg_info(None))
        self.stale_info = QLabel("")  # which case items are out of date (e.g. meshes after a label edit)
        self.stale_info.setObjectName("staleInfo")
        self.stale_info.setStyleSheet("color: #ffb454;")
        sb.addPermanentWidget(self.stale_info)
        warn = QLabel(NOT_FOR_CLINICAL_USE)
        warn.setObjectName("notClinical")
        sb.addPermanentWidget(warn)

    def _fill_samples(self) -> None:
        self.samples_menu.clear()
        cases = pipeline.sample_cases()
        for c in cases:
            self.samples_menu.addAction(c.name, lambda p=c.folder: self.open_path(p))
        if not cases:
            a = self.samples_menu.addAction("(no sample cases in surgtwin/data/samples/)")
            a.setEnabled(False)

    def fill_recent(self) -> None:
        self.recent_menu.clear()
        items = recent_files(self.settings)
        for p in items:
            self.recent_menu.addAction(p, lambda p=p: self.open_path(p))
        self.recent_menu.setEnabled(bool(items))

    def _update_title(self) -> None:
        case = self.session.case
        name = (case.name or "unnamed case") if case is not None else "no image open"
        if self.session.case_path is not None:
            name = self.session.case_path.name
        dirty = " •" if case is not None and case.dirty else ""
        self.setWindowTitle(f"surgtwin — {name}{dirty} — {NOT_FOR_CLINICAL_USE}")

    def _update_stale(self) -> None:
        """Show which case items are out of date (the case knows; this only displays it)."""
        case = self.session.case
        stale = case.stale_items() if case is not None else {}
        if not stale:
            self.stale_info.setText("")
            self.stale_info.setToolTip("")
        else:
            self.stale_info.setText("⚠ out of date: " + ", ".join(stale))
            self.stale_info.setToolTip("\n".join(f"{k}: {'; '.join(r)}" for k, r in stale.items())
                                       + "\nRebuild them (Pipeline menu) before relying on them.")
        self._update_title()

    def view_state(self) -> dict:
        """The view settings saved with the case."""
        return self.session.view_state(layout=self.views.layout_name,
                                       volume_rendering=self.views.view3d.volume_preset)

    # -- opening --------------------------------------------------------------------------------
    def open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", str(self.settings.value("last_dir", "")), FILE_FILTER)
        if path:
            self.open_path(path)

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open DICOM folder", str(self.settings.value("last_dir", "")))
        if path:
            self.open_path(path)

    def open_path(self, path, *, series_uid=None) -> None:
        """Open a case, a case/DICOM folder (via the series browser) or an image file."""
        self.cases.open_path(path, series_uid=series_uid)

    def _opened(self, case) -> None:
        view = case.view
        if view.get("layout") in LAYOUTS:
            self.set_layout(view["layout"])
        self.views.repaint()  # the image first: before the 3D view's VTK start-up or any mesh work
        self._case_shown_at = time.monotonic()
        self._update_title()
        v = case.volume
        self.statusBar().showMessage(f"Opened {case.name or 'case'}: {v.shape[0]}×{v.shape[1]}×{v.shape[2]} "
                                     f"voxels, spacing {', '.join(f'{x:.2f}' for x in v.spacing_mm)} mm", 8000)
        if self.cases.loading:
            return  # its meshes are still being read (items_loaded follows)
        self._show_case_meshes(case)

    def _show_case_meshes(self, case) -> None:
        """Display copies of the case's meshes; without meshes, build them from the labels."""
        if case is not self.session.case:
            return
        self._dirty_values = set()
        self._meshes_base_ok = bool(case.meshes) and not case.is_stale("meshes")
        if case.meshes:
            self.jobs.run("Preparing the 3D view", pipeline.display_meshes, dict(case.meshes),
                          n_structures=len(case.labels.labels) if case.labels is not None else None,
                          on_done=self.session.set_meshes)
        elif case.labels is not None and len(case.labels.labels):
            self.build_meshes()

    # -- pipeline -------------------------------------------------------------------------------
    def _need_volume(self) -> bool:
        if self.session.volume is None:
            self.statusBar().showMessage("Open an image first (File → Open, or a sample case)", 5000)
            return False
        return True

    def _update_segment_tip(self, *_) -> None:
        for set_tip in (self.act_segment.setToolTip, self.act_segment.setStatusTip):
            set_tip(f"Label the organs with the {self.seg_choice.describe()} (choose the method with the arrow)")

    def segment(self, method: str | None = None) -> None:
        """Run segmentation with ``method`` ("bundled", "hospital", "classical"; "model" = bundled),
        choosing it first; None = the current choice (Pipeline → Segmentation method)."""
        if method is not None:
            key = {"model": "bundled"}.get(method, method)
            if key not in METHOD_TEXT:
                raise ValueError(f"unknown segmentation method {method!r}")
            self.seg_choice.set_method(key)
            if self.seg_choice.method != key:  # e.g. a hospital bundle still to be chosen
                return
        if not self._need_volume():
            return
        used = self.seg_choice.describe()
        self.cases.autosave()  # a long step: keep what the user has before it
        job = self.prepare_step("segment", **self.seg_choice.segment_kwargs())
        if job is not None:
            self.jobs.run("Segmenting", job.compute, on_done=lambda out: self._segmented(out, used))

    def prepare_step(self, step: str, **options):
        """``pipeline.prepare_step`` with its refusal (missing or stale inputs) shown to the user."""
        try:
            return pipeline.prepare_step(self.session.case, step, **options)
        except SurgtwinError as exc:
            self.last_dialog = error_box(self, step.capitalize(), exc)
            return None

    def _segmented(self, out, used: str = "") -> None:
        """Put a segmentation into the case (asking first if the labels were edited meanwhile)."""
        try:
            out.apply_to(self.session.case)
        except LabelsEditedError:
            box = QMessageBox(QMessageBox.Icon.Question, "Segmentation finished",
                              "You edited the labels while the segmentation ran. Replace your edits with the "
                              "new segmentation?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                              self)
            box.setObjectName("replaceEditsBox")
            box.button(QMessageBox.StandardButton.Yes).setText("Replace my edits")
            box.button(QMessageBox.StandardButton.No).setText("Keep my edits")
            box.setDefaultButton(QMessageBox.StandardButton.No)

            def answered(button) -> None:
                if box.standardButton(button) == QMessageBox.StandardButton.Yes:
                    out.based_on_revision = None
                    self._segmented(out, used)

            box.buttonClicked.connect(answered)
            box.show()
            self.last_dialog = box
            return
        from surgtwin.ui.segmentation_choice import result_message

        result = out.result
        self.last_segmentation = result
        used, msg = result_message(result, used)
        self.statusBar().showMessage(msg, 15000)
        self._set_seg_info(result, used)
        self.build_meshes()

    def _set_seg_info(self, result, used: str = "") -> None:
        """The status-bar note of how the labels were made, with each structure's ml and confidence."""
        if not used:
            self.seg_info.setText("")
            self.seg_info.setToolTip("")
            return
        self.seg_info.setText(f"Labels: {used.split(' (')[0]}")
        lines = [f"Segmented with the {used}. Planning aid, not for clinical use."]
        for s in getattr(result, "structures", None) or []:
            conf = "" if s.confidence is None else f", confidence {s.confidence:.2f}"
            lines.append(f"{s.name.replace('_', ' ')}: {s.volume_ml:.1f} ml{conf}")
        self.seg_info.setToolTip("\n".join(lines))

    def build_meshes(self, *, allow_stale: bool = False) -> None:
        """The mesh step on the case (full-resolution surfaces), then their display copies."""
        if not self._need_volume():
            return
        if self.session.labels is None or not len(self.session.labels.labels):
            self.statusBar().showMessage("No structures to mesh: run Segment or open a case with labels", 5000)
            return
        self._dirty_values = set()
        self.cases.autosave()  # a long step: keep what the user has before it
        job = self.prepare_step("mesh", allow_stale=allow_stale, **quality.usable_structures(self.session.case))
        if job is not None:
            self.jobs.run("Building meshes", _mesh_and_display, job, len(self.session.labels.labels),
                          on_done=self._meshed)

    def _meshed(self, result, *, merge: bool = False) -> None:
        out, display = result
        out.apply_to(self.session.case)
        self._meshes_base_ok = True  # edits made while it ran are in _dirty_values
        if merge:
            names = set(out.items["meshes"][1].parameters.get("structures") or [])
            display = {**{k: m for k, m in self.session.meshes.items() if k not in names}, **display}
        self.session.set_meshes(display)

    def compute_stats(self) -> None:
        if not self._need_volume() or self.session.labels is None:
            return
        from dataclasses import replace

        from surgtwin.services.measure import structure_stats

        lab = self.session.labels
        self.jobs.run("Structure statistics", structure_stats, replace(lab, array=lab.array.copy()),
                      self.session.volume, on_done=self.session.set_stats)

    def _on_edited(self, values) -> None:
        if values:
            self._dirty_values |= set(values)
        if self.session.meshes:
            self._mesh_timer.start()

    def _refresh_meshes(self) -> None:
        """Re-mesh the structures touched by edits (after the user pauses)."""
        if self.jobs.busy:
            self._mesh_timer.start()
            return
        values = sorted(v for v in self._dirty_values if v in self.session.display)
        self._dirty_values = set()
        if not values or self.session.labels is None:
            return
        if not self._meshes_base_ok:
            return  # the meshes were out of date before these edits: a partial refresh cannot mend them
        names = [self.session.display[v].name for v in values]
        self._meshes_base_ok = False  # until the refresh lands
        job = self.prepare_step("mesh", structures=names, merge=True)
        if job is not None:
            self.jobs.run("Updating meshes", _mesh_and_display, job, len(self.session.labels.labels),
                          on_done=lambda res: self._meshed(res, merge=True))

    def label_operation(self, name: str) -> None:
        try:
            self.editor.run_operation(name, self.tools.active_label)
        except SurgtwinError as exc:
            self.last_dialog = error_box(self, name.replace("_", " ").capitalize(), exc)

    def centre_on_structure(self, value: int) -> None:
        from scipy import ndimage

        lab = self.session.labels
        if lab is None:
            return
        box = ndimage.find_objects((lab.array == value).astype(np.uint8))
        if box and box[0] is not None:
            centre = [(s.start + s.stop - 1) / 2 for s in box[0]]
            self.session.set_crosshair(lab.index_to_world(centre))

    # -- view state -----------------------------------------------------------------------------
    def set_layout(self, name: str) -> None:
        if name not in LAYOUTS:
            name = "2x2"
        self.views.set_layout(name)
        self.layout_actions[name].setChecked(True)
        self.settings.setValue("layout", name)
        if name != "1x3" and self.isVisible():
            QTimer.singleShot(0, self._ensure_3d)

    def _ensure_3d(self) -> None:
        """Create the 3D view once the first case is on screen (VTK's start-up would delay it)."""
        if self.jobs.busy and self.session.case is None:
            QTimer.singleShot(100, self._ensure_3d)
        elif time.monotonic() - self._case_shown_at < 0.3:  # let the first frame of the case reach the screen
            QTimer.singleShot(300, self._ensure_3d)
        else:
            self.views.view3d.ensure_plotter()

    def _toggle_overlay(self) -> None:
        self.tools.set(show_overlay=self.act_overlay.isChecked())

    def _on_hover(self, lps, hu, name) -> None:
        if hu is None:
            self.cursor_label.setText(f"LPS ({lps[0]:.1f}, {lps[1]:.1f}, {lps[2]:.1f}) mm — outside the image")
            return
        unit = "HU" if (self.session.volume.modality or "CT") == "CT" else ""
        text = f"{unit} {hu:.0f}   LPS ({lps[0]:.1f}, {lps[1]:.1f}, {lps[2]:.1f}) mm"
        self.cursor_label.setText(text + (f"   {name.replace('_', ' ')}" if name else ""))

    def _on_pick3d(self, lps) -> None:
        from surgtwin.core.measure import Measurement

        if self.tools.tool not in ("distance", "angle"):
            return
        self._pending3d.append(tuple(float(v) for v in lps))
        need = 2 if self.tools.tool == "distance" else 3
        if len(self._pending3d) >= need:
            self.session.case.add_measurement(Measurement(self.tools.tool, self._pending3d[:need], None))
            self._pending3d = []

    # -- Qt events ------------------------------------------------------------------------------
    def showEvent(self, e) -> None:  # noqa: N802
        super().showEvent(e)
        if self.views.layout_name != "1x3":
            # let the first frame reach the screen before VTK is imported and the GL view is made
            QTimer.singleShot(60, self._ensure_3d)

    def dragEnterEvent(self, e) -> None:  # noqa: N802
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dropEvent(self, e) -> None:  # noqa: N802
        urls = [u.toLocalFile() for u in e.mimeData().urls() if u.isLocalFile()]
        if urls:
            e.acceptProposedAction()
            self.open_path(urls[0])

    def closeEvent(self, e) -> None:  # noqa: N802
        case = self.session.case
        if self.ask_on_close and case is not None and case.dirty and not self.cases.confirm_close():
            e.ignore()
            return
        self.jobs.cancel()
        if self.jobs.job is not None:
            self.jobs.job.wait(10)
        self.cases.close_case()
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.sync()
        self.views.view3d.close_plotter()
        super().closeEvent(e)

    def screenshot(self, path) -> Path:
        """Render every view and save a PNG of the whole window."""
        self.views.view3d.render_now()
        self.grab().save(str(path))
        return Path(path)


def _mesh_and_display(job, n_structures: int, *, progress=None, cancel=None):
    """Worker: the mesh step's compute, then display copies of what it built."""
    from surgtwin.core.progress import scaled

    out = job.compute(progress=scaled(progress, 0, 0.9), cancel=cancel)
    meshes = out.items["meshes"][0]
    return out, pipeline.display_meshes(meshes, n_structures=n_structures, progress=scaled(progress, 0.9, 1.0),
                                        cancel=cancel)
