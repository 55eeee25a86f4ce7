"""The active interaction tool shared by the MPR views and the tools panel (UI state, not session)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

TOOLS = {
    "navigate": "Navigate (click sets the crosshair)",
    "distance": "Distance: click two points",
    "angle": "Angle: click three points (vertex second)",
    "paint": "Paint the active structure",
    "erase": "Erase (any structure)",
    "threshold": "Threshold paint (only voxels inside the HU range)",
}


class ToolState(QObject):
    changed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.tool = "navigate"
        self.brush_radius_mm = 5.0
        self.active_label = 0  # label value painted; 0 = none chosen yet
        self.hu_range = (100.0, 3000.0)
        self.show_overlay = True
        #: a panel collecting points (TAVR hinge points): called with each LPS point clicked in an MPR
        #: view instead of the active tool, until ``stop_picking``
        self.picker = None
        self.picker_drag = None  # called with each LPS point while the button is held after a pick
        self.picker_release = None

    def pick_points(self, callback, *, on_drag=None, on_release=None) -> None:
        """Send the next clicks in the MPR views to ``callback(lps)`` (a panel asking for points);
        with ``on_drag``, moves with the button held go to ``on_drag(lps)`` and the release to
        ``on_release()`` (dragging a trajectory's entry or target)."""
        self.picker, self.picker_drag, self.picker_release = callback, on_drag, on_release
        self.changed.emit()

    def stop_picking(self) -> None:
        self.picker = self.picker_drag = self.picker_release = None
        self.changed.emit()

    def set(self, **kw) -> None:
        for k, v in kw.items():
            if not hasattr(self, k):
                raise AttributeError(k)
            setattr(self, k, v)
        self.changed.emit()

    @property
    def edits(self) -> bool:
        return self.tool in ("paint", "erase", "threshold")
