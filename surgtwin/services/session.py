"""The app's view state over a ``Case`` (no Qt).

The patient's twin (image, labels, meshes, measurements, plans) lives in the ``Case``
(``surgtwin.core.case``). ``Session`` is what one app window shows of it: the MPR crosshair, the
window/level, per-structure display settings (visibility, colour, opacity), the lighter display
copies of the case's meshes, and where the case is saved. Its signals are what the Qt views
subscribe to; the case's own signals are forwarded, so a view never re-subscribes when another
case is opened. All positions are LPS mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from surgtwin.core.case import Case
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.events import Signal
from surgtwin.core.types import LabelTable, Volume

#: body-wall structures that hide everything inside them: listed but not drawn until switched on
ENVELOPE_STRUCTURES = {"skin", "fat", "subcutaneous_fat", "muscle", "skeletal_muscle", "body", "body_trunc",
                       "body_extremities", "torso_fat"}

#: window (width, level) used when a volume is opened, by modality
DEFAULT_WINDOW = {"CT": (400.0, 40.0)}


@dataclass
class StructureDisplay:
    """How one structure is drawn: colour (RGB 0-255), visibility and opacities (0-1)."""

    value: int
    name: str
    color: tuple[int, int, int]
    visible: bool = True
    opacity_2d: float = 0.45
    opacity_3d: float = 1.0

    def to_json(self) -> dict:
        return {"value": self.value, "visible": self.visible, "color": list(self.color),
                "opacity_2d": self.opacity_2d, "opacity_3d": self.opacity_3d}


@dataclass
class Session:
    """Evented view state of one window over ``case``."""

    case: Case | None = None
    case_path: Path | None = None  # where the case is saved (None: not saved yet)
    meshes: dict = field(default_factory=dict)  # display copies of the case's meshes: name -> StructureMesh
    crosshair_lps: np.ndarray = field(default_factory=lambda: np.zeros(3))
    window: tuple[float, float] = (400.0, 40.0)  # (width, level) in HU
    display: dict[int, StructureDisplay] = field(default_factory=dict)
    stats: dict[int, dict] = field(default_factory=dict)
    #: scene objects besides the structures (implants, FE results): key -> render.scene.SceneObject
    overlays: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.volume_changed = Signal("volume_changed")  # another case (or none) is shown
        self.labels_changed = Signal("labels_changed")  # arg: bbox (tuple of slices) or None = all
        self.labels_replaced = Signal("labels_replaced")
        self.meshes_changed = Signal("meshes_changed")  # the display meshes
        self.items_changed = Signal("items_changed")  # arg: case item key (provenance, staleness)
        self.crosshair_changed = Signal("crosshair_changed")
        self.window_changed = Signal("window_changed")
        self.display_changed = Signal("display_changed")  # arg: label value or None = all
        self.measurements_changed = Signal("measurements_changed")
        self.stats_changed = Signal("stats_changed")
        self.modified = Signal("modified")  # the case changed (unsaved changes)
        self.overlays_changed = Signal("overlays_changed")  # arg: the overlay key
        self._forward = {
            "modified": self.modified.emit,
            "labels_changed": self._on_labels_changed,
            "labels_replaced": self._on_labels_replaced,
            "items_changed": self.items_changed.emit,
            "measurements_changed": self.measurements_changed.emit,
        }
        if self.case is not None:
            case, self.case = self.case, None
            self.set_case(case, path=self.case_path)

    # -- the case -------------------------------------------------------------------------------
    @property
    def volume(self) -> Volume | None:
        return None if self.case is None else self.case.volume

    @property
    def labels(self):
        return None if self.case is None else self.case.labels

    @property
    def measurements(self) -> list:
        return [] if self.case is None else self.case.measurements

    def set_case(self, case: Case | None, *, path=None) -> None:
        """Show ``case`` (None: nothing); view settings come from ``case.view`` when it has them."""
        if self.case is not None:
            for name, fn in self._forward.items():
                getattr(self.case, name).disconnect(fn)
        self.case = case
        self.case_path = Path(path) if path is not None else None
        self.meshes = {}
        self.display = {}
        self.stats = {}
        for key in list(self.overlays):
            self.set_overlay(key, None)
        if case is not None:
            for name, fn in self._forward.items():
                getattr(case, name).connect(fn)
            vol = case.volume
            centre = (np.asarray(vol.shape) - 1) / 2.0
            self.crosshair_lps = vol.index_to_world(centre)
            self.window = DEFAULT_WINDOW.get(vol.modality or "CT", _auto_window(vol))
            self._sync_display()
            self.apply_view(case.view)
        self.volume_changed.emit()
        self.labels_changed.emit(None)
        self.display_changed.emit(None)
        self.meshes_changed.emit()
        self.measurements_changed.emit()
        self.crosshair_changed.emit()
        self.window_changed.emit()

    def clear(self) -> None:
        self.set_case(None)

    def _on_labels_changed(self, bbox=None) -> None:
        self.stats = {}
        self.labels_changed.emit(bbox)

    def _on_labels_replaced(self) -> None:
        self._sync_display()
        self.labels_replaced.emit()
        self.display_changed.emit(None)

    # -- view settings saved with the case ------------------------------------------------------
    def view_state(self, **extra) -> dict:
        """The view settings to store in ``case.view`` (``extra``: e.g. the window layout)."""
        return {"crosshair_lps": [float(v) for v in self.crosshair_lps], "window": [float(v) for v in self.window],
                "structures": [d.to_json() for d in self.display.values()], **extra}

    def apply_view(self, view: dict) -> None:
        """Restore settings from ``view`` (as ``view_state`` wrote them; unknown values are ignored)."""
        for s in view.get("structures", []) or []:
            if isinstance(s, dict) and s.get("value") in self.display:
                self.set_structure(s["value"], visible=s.get("visible"), color=s.get("color"),
                                   opacity_2d=s.get("opacity_2d"), opacity_3d=s.get("opacity_3d"))
        if len(view.get("window") or []) == 2:
            self.set_window(*view["window"])
        if len(view.get("crosshair_lps") or []) == 3:
            self.set_crosshair(view["crosshair_lps"])

    # -- structures -----------------------------------------------------------------------------
    def label_table(self) -> LabelTable:
        return self.labels.labels if self.labels is not None else LabelTable()

    def _sync_display(self) -> None:
        table = self.label_table()
        old = self.display
        self.display = {}
        for lab in table:
            prev = old.get(lab.value)
            self.display[lab.value] = prev if prev is not None and prev.name == lab.name else StructureDisplay(
                lab.value, lab.name, tuple(lab.color), visible=lab.name.lower() not in ENVELOPE_STRUCTURES
            )

    def set_structure(self, value: int, *, visible=None, color=None, opacity_2d=None, opacity_3d=None) -> None:
        d = self.display.get(value)
        if d is None:
            raise SurgtwinError(f"no structure with label value {value}")
        if visible is not None:
            d.visible = bool(visible)
        if color is not None:
            d.color = tuple(int(c) for c in color[:3])
        if opacity_2d is not None:
            d.opacity_2d = float(np.clip(opacity_2d, 0, 1))
        if opacity_3d is not None:
            d.opacity_3d = float(np.clip(opacity_3d, 0, 1))
        self.display_changed.emit(value)

    def set_stats(self, stats: dict[int, dict]) -> None:
        self.stats = dict(stats)
        self.stats_changed.emit()

    def set_meshes(self, meshes: dict) -> None:
        """The display copies of the case's meshes (see ``pipeline.display_meshes``)."""
        self.meshes = dict(meshes)
        self.meshes_changed.emit()

    def set_overlay(self, key, obj) -> None:
        """Show scene object ``obj`` (None removes it) under ``key`` = (kind, name)."""
        if obj is None:
            if self.overlays.pop(key, None) is None:
                return
        else:
            self.overlays[key] = obj
        self.overlays_changed.emit(key)

    # -- crosshair and window -------------------------------------------------------------------
    def set_crosshair(self, lps) -> None:
        p = np.asarray(lps, dtype=float).reshape(3)
        if self.volume is not None:
            kji = np.clip(self.volume.world_to_index(p), 0, np.asarray(self.volume.shape) - 1)
            p = self.volume.index_to_world(kji)
        if np.allclose(p, self.crosshair_lps):
            return
        self.crosshair_lps = p
        self.crosshair_changed.emit()

    def crosshair_index(self) -> tuple[int, int, int]:
        """Nearest voxel (k, j, i) to the crosshair."""
        if self.volume is None:
            return (0, 0, 0)
        kji = np.rint(self.volume.world_to_index(self.crosshair_lps)).astype(int)
        kji = np.clip(kji, 0, np.asarray(self.volume.shape) - 1)
        return tuple(int(v) for v in kji)  # type: ignore[return-value]

    def set_window(self, width: float, level: float) -> None:
        width = max(1.0, float(width))
        if (width, float(level)) == self.window:
            return
        self.window = (width, float(level))
        self.window_changed.emit()


def _auto_window(volume: Volume) -> tuple[float, float]:
    """Window from the 1st-99th percentile of a subsample (non-CT images)."""
    sub = np.asarray(volume.array[:: max(1, volume.shape[0] // 16), ::4, ::4], dtype=np.float32)
    lo, hi = np.percentile(sub, [1, 99]) if sub.size else (0.0, 1.0)
    return (max(1.0, float(hi - lo)), float((hi + lo) / 2))
