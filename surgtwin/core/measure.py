"""Point measurements in LPS mm: distances and angles (no Qt, no VTK).

A ``Measurement`` belongs to a case (``surgtwin.core.case.Case.measurements``) and is saved with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surgtwin.core.errors import SurgtwinError

#: measurement kind -> number of points
KINDS = {"distance": 2, "angle": 3}


def distance_mm(p, q) -> float:
    return float(np.linalg.norm(np.asarray(p, float) - np.asarray(q, float)))


def angle_deg(a, vertex, c) -> float:
    """Angle at ``vertex`` between the rays to ``a`` and ``c`` in degrees."""
    u = np.asarray(a, float) - np.asarray(vertex, float)
    v = np.asarray(c, float) - np.asarray(vertex, float)
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        return 0.0
    return float(np.degrees(np.arccos(np.clip(np.dot(u, v) / (nu * nv), -1.0, 1.0))))


@dataclass
class Measurement:
    """A distance (2 points) or angle (3 points, vertex in the middle) in LPS mm.

    ``plane`` names the MPR view it was drawn in (None = 3D). ``id`` is given by the case.
    """

    kind: str
    points_lps: list[tuple[float, float, float]]
    plane: str | None = None
    id: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SurgtwinError(f"unknown measurement kind {self.kind!r}", hint=f"use one of {sorted(KINDS)}")
        pts = np.asarray(self.points_lps, dtype=float)
        if pts.shape != (KINDS[self.kind], 3) or not np.all(np.isfinite(pts)):
            raise SurgtwinError(f"a {self.kind} needs {KINDS[self.kind]} finite LPS points (x, y, z in mm)")
        self.points_lps = [tuple(float(v) for v in p) for p in pts]

    @property
    def value(self) -> float:
        """Distance in mm or angle in degrees."""
        if self.kind == "distance":
            return distance_mm(*self.points_lps)
        return angle_deg(*self.points_lps)

    @property
    def text(self) -> str:
        return f"{self.value:.1f} mm" if self.kind == "distance" else f"{self.value:.1f}°"

    def to_json(self) -> dict:
        return {"kind": self.kind, "points_lps": [list(p) for p in self.points_lps], "plane": self.plane}

    @classmethod
    def from_json(cls, d: dict) -> Measurement:
        return cls(d["kind"], [tuple(p) for p in d["points_lps"]], d.get("plane"))
