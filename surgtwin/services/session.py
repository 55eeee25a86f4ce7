"""The app's session state as an evented model (no Qt).

``Session`` holds the loaded volume, the label map, the structure meshes, the MPR crosshair, the
window/level, per-structure display settings and the measurements. Every setter emits a ``Signal``
(see ``surgtwin.services.events``); the Qt views subscribe and redraw. All positions are LPS mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.types import LabelMap, LabelTable, Volume
from surgtwin.services.events import Signal

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


@dataclass
class Measurement:
    """A distance (2 points) or angle (3 points, vertex in the middle) in LPS mm."""

    kind: str
    points_lps: list[tuple[float, float, float]]
    plane: str | None = None
    id: int = 0

    @property
    def value(self) -> float:
        from surgtwin.services.measure import angle_deg, distance_mm

        pts = np.asarray(self.points_lps, dtype=float)
        if self.kind == "distance":
            return distance_mm(pts[0], pts[1])
        if self.kind == "angle":
            return angle_deg(pts[0], pts[1], pts[2])
        raise SurgtwinError(f"unknown measurement kind {self.kind!r}")

    @property
    def text(self) -> str:
        return f"{self.value:.1f} mm" if self.kind == "distance" else f"{self.value:.1f}°"

    def to_json(self) -> dict:
        return {"kind": self.kind, "points_lps": [list(map(float, p)) for p in self.points_lps], "plane": self.plane}


@dataclass
class Session:
    """Evented state of one planning session."""

    volume: Volume | None = None
    source: dict = field(default_factory=dict)  # {"path": ..., "series_uid": ...}
    labels: LabelMap | None = None
    meshes: dict = field(default_factory=dict)  # name -> mesh with vertices/faces/value/name
    crosshair_lps: np.ndarray = field(default_factory=lambda: np.zeros(3))
    window: tuple[float, float] = (400.0, 40.0)  # (width, level) in HU
    display: dict[int, StructureDisplay] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    stats: dict[int, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.volume_changed = Signal("volume_changed")
        self.labels_changed = Signal("labels_changed")  # arg: bbox (tuple of slices) or None = all
        self.meshes_changed = Signal("meshes_changed")
        self.crosshair_changed = Signal("crosshair_changed")
        self.window_changed = Signal("window_changed")
        self.display_changed = Signal("display_changed")  # arg: label value or None = all
        self.measurements_changed = Signal("measurements_changed")
        self.stats_changed = Signal("stats_changed")
        self._next_measurement = 1

    # -- volume ---------------------------------------------------------------------------------
    def set_volume(self, volume: Volume, *, source: dict | None = None) -> None:
        self.volume = volume
        self.source = dict(source or {})
        self.labels = None
        self.meshes = {}
        self.display = {}
        self.measurements = []
        self.stats = {}
        centre = (np.asarray(volume.shape) - 1) / 2.0
        self.crosshair_lps = volume.index_to_world(centre)
        self.window = DEFAULT_WINDOW.get(volume.modality or "CT", _auto_window(volume))
        self.volume_changed.emit()
        self.labels_changed.emit(None)
        self.meshes_changed.emit()
        self.measurements_changed.emit()
        self.crosshair_changed.emit()
        self.window_changed.emit()

    def clear(self) -> None:
        self.volume = None
        self.labels = None
        self.meshes = {}
        self.display = {}
        self.measurements = []
        self.stats = {}
        self.volume_changed.emit()
        self.labels_changed.emit(None)
        self.meshes_changed.emit()
        self.measurements_changed.emit()

    # -- labels ---------------------------------------------------------------------------------
    def set_labels(self, labels: LabelMap | None) -> None:
        if labels is not None:
            if self.volume is None:
                raise SurgtwinError("open an image before loading labels")
            if labels.shape != self.volume.shape:
                raise SurgtwinError(
                    f"label map shape {labels.shape} does not match the image {self.volume.shape}",
                    hint="resample the labels onto the image grid",
                )
            if not labels.array.flags.writeable or labels.array.dtype.itemsize > 2:
                dtype = np.uint8 if labels.array.max(initial=0) < 256 else np.uint16
                labels = LabelMap(np.array(labels.array, dtype=dtype), labels.affine,
                                  labels.frame_of_reference_uid, labels.modality, dict(labels.metadata),
                                  labels=labels.labels)
        self.labels = labels
        self.stats = {}
        self._sync_display()
        self.labels_changed.emit(None)
        self.display_changed.emit(None)

    def notify_labels_edited(self, bbox=None) -> None:
        """Call after changing ``labels.array`` in place (label edits, undo/redo)."""
        self.stats = {}
        self.labels_changed.emit(bbox)

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

    # -- meshes ---------------------------------------------------------------------------------
    def set_meshes(self, meshes: dict) -> None:
        self.meshes = dict(meshes)
        self.meshes_changed.emit()

    # -- view state -----------------------------------------------------------------------------
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

    # -- measurements ---------------------------------------------------------------------------
    def add_measurement(self, m: Measurement) -> Measurement:
        m.id = self._next_measurement
        self._next_measurement += 1
        self.measurements.append(m)
        self.measurements_changed.emit()
        return m

    def remove_measurement(self, mid: int) -> None:
        self.measurements = [m for m in self.measurements if m.id != mid]
        self.measurements_changed.emit()

    def clear_measurements(self) -> None:
        self.measurements = []
        self.measurements_changed.emit()


def _auto_window(volume: Volume) -> tuple[float, float]:
    """Window from the 1st-99th percentile of a subsample (non-CT images)."""
    sub = np.asarray(volume.array[:: max(1, volume.shape[0] // 16), ::4, ::4], dtype=np.float32)
    lo, hi = np.percentile(sub, [1, 99]) if sub.size else (0.0, 1.0)
    return (max(1.0, float(hi - lo)), float((hi + lo) / 2))
