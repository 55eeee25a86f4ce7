"""Which segmentation the Segment action runs: the bundled model, a hospital's MONAI bundle, or classical.

The choice (and the last hospital bundle folder) is kept in the app's QSettings. A hospital bundle is
validated off the GUI thread (``pipeline.check_bundle``) before it is taken; a refusal is shown in the
usual error dialog naming the folder and the reason, and the previous choice stays.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QFileDialog, QMenu

from surgtwin.services import pipeline

BUNDLED, HOSPITAL, CLASSICAL = "bundled", "hospital", "classical"
METHOD_TEXT = {
    BUNDLED: "Bundled model (surgtwin_ct_multiorgan)",
    HOSPITAL: "Hospital MONAI bundle…",
    CLASSICAL: "Classical (bone + contrast vessels, no model)",
}
KEY_METHOD = "segmentation/method"
KEY_HOSPITAL = "segmentation/hospital_bundle"


class SegmentationChoice(QObject):
    """The exclusive method actions (``actions[key]``), their ``menu``, and the options of the segment step."""

    changed = Signal(str)

    def __init__(self, window, settings) -> None:
        super().__init__(window)
        self.window, self.settings = window, settings
        self.bundled_available = pipeline.bundled_model_available()
        self.hospital_folder: str | None = str(settings.value(KEY_HOSPITAL, "") or "") or None
        self.hospital_name: str | None = None  # "name version" once validated in this run
        self.menu = QMenu("Segmentation &method", window)
        self.menu.setObjectName("segmentationMethodMenu")
        self.menu.setToolTipsVisible(True)
        self.group = QActionGroup(self)
        self.group.setExclusive(True)
        self.actions: dict[str, QAction] = {}
        for key, text in METHOD_TEXT.items():
            a = QAction(text, self)
            a.setObjectName(f"segmentMethod_{key}")
            a.setCheckable(True)
            self.group.addAction(a)
            self.menu.addAction(a)
            self.actions[key] = a
        self.actions[BUNDLED].triggered.connect(lambda _=False: self.set_method(BUNDLED))
        self.actions[CLASSICAL].triggered.connect(lambda _=False: self.set_method(CLASSICAL))
        self.actions[HOSPITAL].triggered.connect(lambda _=False: self.choose_hospital_bundle())
        if not self.bundled_available:
            self.actions[BUNDLED].setEnabled(False)
            where = pipeline.bundled_model_dir()
            self.actions[BUNDLED].setToolTip(f"Not installed (no weights in {where})" if where else "Not installed")
        else:
            self.actions[BUNDLED].setToolTip(f"The model shipped with surgtwin ({pipeline.bundled_model_dir()})")
        self.actions[CLASSICAL].setToolTip("Bone by HU threshold and contrast-filled vessels; no model")
        stored = str(settings.value(KEY_METHOD, "") or "")
        if stored == HOSPITAL and self.hospital_folder:
            method = HOSPITAL  # kept even if the folder went away: segmenting then says so, no silent fallback
        elif stored == CLASSICAL or not self.bundled_available:
            method = CLASSICAL
        else:
            method = BUNDLED
        self.method = method
        self._sync()

    # -- state ----------------------------------------------------------------------------------
    def set_method(self, key: str) -> None:
        if key not in METHOD_TEXT:
            raise ValueError(f"unknown segmentation method {key!r}")
        if key == BUNDLED and not self.bundled_available:
            key = CLASSICAL
        if key == HOSPITAL and not self.hospital_folder:
            self.choose_hospital_bundle()
            return
        self.method = key
        self.settings.setValue(KEY_METHOD, key)
        self._sync()
        self.changed.emit(key)

    def _sync(self) -> None:
        self.actions[self.method].setChecked(True)
        tip = "Choose a folder with a MONAI bundle (configs/, models/) made for CT"
        if self.hospital_folder:
            tip += f"\nLast chosen: {self.hospital_folder}"
        self.actions[HOSPITAL].setToolTip(tip)

    def segment_kwargs(self) -> dict:
        """Keyword arguments for the segment step (``pipeline.prepare_step``) for the current choice."""
        if self.method == CLASSICAL:
            return {"method": "classical"}
        if self.method == HOSPITAL:
            return {"method": "model", "bundle": self.hospital_folder}
        return {"method": "model"}

    def describe(self) -> str:
        if self.method == CLASSICAL:
            return "classical method (bone + contrast vessels, no model)"
        if self.method == HOSPITAL:
            name = self.hospital_name or Path(self.hospital_folder or "").name
            return f"hospital bundle {name} ({self.hospital_folder})"
        return "bundled model surgtwin_ct_multiorgan"

    # -- hospital bundle ------------------------------------------------------------------------
    def choose_hospital_bundle(self, folder=None) -> None:
        """Ask for a bundle folder (unless given), validate it in a job, then take it."""
        self._sync()  # the checked action stays the current method until the folder is validated
        if folder is None:
            start = self.hospital_folder or str(self.settings.value("last_dir", ""))
            folder = QFileDialog.getExistingDirectory(self.window, "Choose a hospital MONAI bundle folder", start)
        if not folder:
            return
        folder = str(folder)
        self.window.jobs.run("Checking the hospital MONAI bundle", pipeline.check_bundle, Path(folder),
                             on_done=lambda bundle: self._accept_hospital(folder, bundle))

    def _accept_hospital(self, folder: str, bundle) -> None:
        self.hospital_folder = folder
        self.hospital_name = f"{bundle.name} {bundle.version}"
        self.settings.setValue(KEY_HOSPITAL, folder)
        self.set_method(HOSPITAL)
        warn = "; ".join(getattr(bundle, "warnings", []) or [])
        self.window.statusBar().showMessage(
            f"Segment will use hospital bundle {self.hospital_name} ({folder})" + (f" — {warn}" if warn else ""),
            10000)


def result_message(result, used: str) -> tuple[str, str]:
    """(how the labels were made, the status-bar message) for core's ``SegmentationResult``."""
    model = getattr(result, "model", None)
    if model and used.startswith("bundled model"):
        used = f"bundled model {model}"
    elif model and model not in used:
        used = f"{used}, {model}"
    msg = f"Segmented with the {used}" if used else "Segmented"
    structures = result.structures
    if structures:
        msg += f": {len(structures)} structures"
        rated = [s for s in structures if s.confidence is not None]
        if rated:
            low = min(rated, key=lambda s: s.confidence)
            msg += f"; lowest confidence {low.name.replace('_', ' ')} {low.confidence:.2f}"
        warnings = list(getattr(result, "warnings", []) or [])
        if warnings:
            msg += f"; {'; '.join(warnings)}"
    return used, msg + " — planning aid, not for clinical use"

