"""Shared pieces of the placement helpers: axis fits, mask look-ups along lines, pose proposals.

``propose_pose(labels, implant, target)`` dispatches to the helper for the target:
``{"femur": "left"|"right"}`` (a hip stem along the femoral canal, ``surgtwin.core.plan.femur``) or
``{"vertebra": "L4", "side": "left"|"right"}`` (a pedicle screw, ``surgtwin.core.plan.spine``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from surgtwin.core.errors import SurgtwinError

SIDES = ("left", "right")


@dataclass(frozen=True, eq=False)
class Axis:
    """A line fitted to points: ``point_lps`` (their centroid), unit ``direction_lps``, the number
    of points and their RMS distance from the line (mm)."""

    point_lps: np.ndarray
    direction_lps: np.ndarray
    n_points: int
    rms_mm: float

    def to_json(self) -> dict:
        return {"point_lps": [round(float(v), 3) for v in self.point_lps],
                "direction_lps": [round(float(v), 5) for v in self.direction_lps],
                "n_points": self.n_points, "rms_mm": round(self.rms_mm, 3)}


def fit_axis(points_lps, *, toward=None) -> Axis:
    """Principal axis of (N, 3) points (PCA); ``toward``: a vector the direction is turned to meet."""
    p = np.asarray(points_lps, np.float64).reshape(-1, 3)
    if len(p) < 3:
        raise SurgtwinError("too few points to fit an axis")
    c = p.mean(axis=0)
    _, _, vt = np.linalg.svd(p - c, full_matrices=False)
    d = vt[0]
    if toward is not None and np.dot(d, toward) < 0:
        d = -d
    off = (p - c) - np.outer((p - c) @ d, d)
    return Axis(c, d, len(p), float(np.sqrt(np.mean(np.sum(off * off, axis=1)))))


def perpendicular(v, axis) -> np.ndarray:
    """The part of ``v`` perpendicular to the unit ``axis``."""
    v = np.asarray(v, np.float64)
    return v - np.dot(v, axis) * axis


def side_of(side: str, what: str = "side") -> str:
    s = str(side).lower()
    if s not in SIDES:
        raise SurgtwinError(f"{what} must be 'left' or 'right', got {side!r}")
    return s


def inside_along(mask: np.ndarray, affine: np.ndarray, start_lps, direction_lps, *, max_mm: float,
                 step_mm: float = 0.5, gap_mm: float = 2.0) -> float:
    """How far (mm) from ``start_lps`` along ``direction_lps`` the line stays in ``mask`` (voxel
    nearest each step), bridging gaps up to ``gap_mm``; 0 when it starts outside."""
    d = np.asarray(direction_lps, float) / np.linalg.norm(direction_lps)
    s = np.arange(0.0, max_mm + step_mm, step_mm)
    idx = np.rint((np.asarray(start_lps, float) + np.outer(s, d)) @ np.linalg.inv(affine)[:3, :3].T
                  + np.linalg.inv(affine)[:3, 3]).astype(np.int64)
    ok = np.all((idx >= 0) & (idx < mask.shape), axis=1)
    inside = np.zeros(len(s), bool)
    inside[ok] = mask[tuple(idx[ok].T)]
    if not inside[0]:
        return 0.0
    last, gap = 0.0, 0.0
    for n in range(1, len(s)):
        if inside[n]:
            last, gap = s[n], 0.0
        else:
            gap += step_mm
            if gap > gap_mm:
                break
    return float(last)


@dataclass(frozen=True, eq=False)
class Proposal:
    """A proposed start pose with the anatomy it was derived from (JSON-able ``notes``)."""

    pose: object  # surgtwin.core.plan.pose.Pose
    target: dict
    notes: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def propose_pose(labels, implant, target: dict) -> Proposal:
    """A start pose for ``implant`` from the anatomy named by ``target``."""
    if not isinstance(target, dict) or not target:
        raise SurgtwinError("an automatic pose needs a target",
                            hint='e.g. {"femur": "left"} or {"vertebra": "L4", "side": "left"}')
    if "femur" in target:
        from surgtwin.core.plan.femur import propose_stem_pose

        return propose_stem_pose(labels, implant, target["femur"])
    if "vertebra" in target:
        from surgtwin.core.plan.spine import propose_screw_pose

        return propose_screw_pose(labels, implant, target["vertebra"], target.get("side", ""))
    raise SurgtwinError(f"unknown placement target {sorted(target)}", hint="use femur or vertebra (+ side)")
