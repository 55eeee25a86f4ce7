"""6-DOF implant poses in patient LPS millimetres and placed implants (the case's "implants" slot).

A ``Pose`` maps the implant's local frame to LPS: ``x_lps = R @ x_local + t`` with ``R`` a proper
rotation (det +1) and ``t`` in mm: the LPS position of the local origin. Its JSON holds the 4x4
matrix (row-major) and, for people and other tools, the same pose as a rotation vector in degrees
(axis times angle) plus the translation; ``from_json`` accepts either, or an origin and a +z axis.

A ``PlacedImplant`` is an implant with a pose, an id and a name; the case stores a list of
``PlacedImplant.to_json()`` dicts in its ``implants`` item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.plan.implants import Implant


def _unit(v, what: str) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(3)
    n = float(np.linalg.norm(v))
    if not np.isfinite(n) or n < 1e-9:
        raise SurgtwinError(f"{what} must be a non-zero, finite 3-vector, got {v.tolist()}")
    return v / n


def frame_from_axis(z_axis, x_hint=None) -> np.ndarray:
    """A rotation whose third column is ``z_axis`` and whose first lies in the plane of ``z_axis``
    and ``x_hint`` (default: the LPS axis least parallel to z)."""
    z = _unit(z_axis, "the insertion axis")
    if x_hint is None:
        x_hint = np.eye(3)[int(np.argmin(np.abs(z)))]
    x = np.asarray(x_hint, np.float64) - np.dot(x_hint, z) * z
    if np.linalg.norm(x) < 1e-9:
        x = np.eye(3)[int(np.argmin(np.abs(z)))] - z * z[int(np.argmin(np.abs(z)))]
    x = _unit(x, "the x direction")
    return np.column_stack([x, np.cross(z, x), z])


@dataclass(frozen=True, eq=False)
class Pose:
    """A rigid transform from an implant's local frame to LPS mm (``matrix`` 4x4)."""

    matrix: np.ndarray = field(default_factory=lambda: np.eye(4))

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.shape != (4, 4) or not np.all(np.isfinite(m)):
            raise SurgtwinError("a pose must be a finite 4x4 matrix")
        if not np.allclose(m[3], [0, 0, 0, 1]):
            raise SurgtwinError("a pose's last row must be [0, 0, 0, 1]")
        r = m[:3, :3]
        if not np.allclose(r.T @ r, np.eye(3), atol=1e-6) or np.linalg.det(r) < 0:
            raise SurgtwinError("a pose's rotation must be orthonormal with determinant +1 (no scaling or mirroring)")
        object.__setattr__(self, "matrix", m)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_rotvec(cls, rotation_vector_deg=(0.0, 0.0, 0.0), translation_mm=(0.0, 0.0, 0.0)) -> Pose:
        from scipy.spatial.transform import Rotation

        m = np.eye(4)
        m[:3, :3] = Rotation.from_rotvec(np.asarray(rotation_vector_deg, float), degrees=True).as_matrix()
        m[:3, 3] = np.asarray(translation_mm, float)
        return cls(m)

    @classmethod
    def from_axis(cls, origin_lps, z_axis_lps, *, x_hint_lps=None, roll_deg: float = 0.0) -> Pose:
        """Origin at ``origin_lps``, local +z along ``z_axis_lps``; local +x toward ``x_hint_lps``
        (then turned by ``roll_deg`` about +z)."""
        r = frame_from_axis(z_axis_lps, x_hint_lps)
        if roll_deg:
            c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
            r = r @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = np.asarray(origin_lps, float).reshape(3)
        return cls(m)

    # -- views ----------------------------------------------------------------------------------
    @property
    def rotation(self) -> np.ndarray:
        return self.matrix[:3, :3].copy()

    @property
    def translation_mm(self) -> np.ndarray:
        return self.matrix[:3, 3].copy()

    @property
    def rotation_vector_deg(self) -> np.ndarray:
        from scipy.spatial.transform import Rotation

        return Rotation.from_matrix(self.matrix[:3, :3]).as_rotvec(degrees=True)

    @property
    def axis_lps(self) -> np.ndarray:
        """The local +z (insertion axis) in LPS."""
        return self.matrix[:3, 2].copy()

    def apply(self, points_local) -> np.ndarray:
        """(N, 3) or (3,) local points -> LPS mm."""
        p = np.asarray(points_local, np.float64)
        return (p.reshape(-1, 3) @ self.matrix[:3, :3].T + self.matrix[:3, 3]).reshape(p.shape)

    def inverse(self) -> Pose:
        m = np.eye(4)
        m[:3, :3] = self.matrix[:3, :3].T
        m[:3, 3] = -m[:3, :3] @ self.matrix[:3, 3]
        return Pose(m)

    def then(self, other: Pose) -> Pose:
        """This pose followed by ``other`` (``other.matrix @ self.matrix``)."""
        return Pose(other.matrix @ self.matrix)

    def moved(self, *, translate_lps=(0.0, 0.0, 0.0), rotate_deg_local=(0.0, 0.0, 0.0)) -> Pose:
        """Rotated about the implant's own origin by a rotation vector in its local frame (degrees),
        then shifted by ``translate_lps`` mm: what a drag or a nudge in the app does."""
        delta = Pose.from_rotvec(rotate_deg_local).matrix
        m = self.matrix @ delta
        m[:3, 3] += np.asarray(translate_lps, float)
        return Pose(m)

    # -- JSON -----------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"matrix": [[float(v) for v in row] for row in self.matrix],
                "rotation_vector_deg": [round(float(v), 6) for v in self.rotation_vector_deg],
                "translation_mm": [float(v) for v in self.matrix[:3, 3]]}

    @classmethod
    def from_json(cls, d, *, source: str = "pose") -> Pose:
        """From ``{"matrix": 4x4}``, ``{"rotation_vector_deg", "translation_mm"}`` or
        ``{"origin_lps", "axis_lps"[, "x_hint_lps", "roll_deg"]}``."""
        if not isinstance(d, dict):
            raise SurgtwinError(f"{source} must be a JSON object", hint=_POSE_HINT)
        try:
            if "matrix" in d:
                return cls(np.asarray(d["matrix"], dtype=np.float64))
            if "origin_lps" in d or "axis_lps" in d:
                return cls.from_axis(d["origin_lps"], d["axis_lps"], x_hint_lps=d.get("x_hint_lps"),
                                     roll_deg=float(d.get("roll_deg", 0.0)))
            if "translation_mm" in d or "rotation_vector_deg" in d:
                rv = np.asarray(d.get("rotation_vector_deg", [0, 0, 0]), np.float64).reshape(3)
                t = np.asarray(d.get("translation_mm", [0, 0, 0]), np.float64).reshape(3)
                if not (np.all(np.isfinite(rv)) and np.all(np.isfinite(t))):
                    raise ValueError("non-finite numbers")
                return cls.from_rotvec(rv, t)
        except SurgtwinError as exc:
            raise SurgtwinError(f"{source}: {exc.reason}", hint=_POSE_HINT) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise SurgtwinError(f"{source} is malformed ({exc})", hint=_POSE_HINT) from None
        raise SurgtwinError(f"{source} has none of matrix, rotation_vector_deg/translation_mm, origin_lps/axis_lps",
                            hint=_POSE_HINT)

    def __repr__(self) -> str:
        t = ", ".join(f"{v:.2f}" for v in self.translation_mm)
        r = ", ".join(f"{v:.2f}" for v in self.rotation_vector_deg)
        return f"Pose(translation_mm=({t}), rotation_vector_deg=({r}))"


_POSE_HINT = ('e.g. {"origin_lps": [x, y, z], "axis_lps": [dx, dy, dz]} or '
              '{"translation_mm": [x, y, z], "rotation_vector_deg": [rx, ry, rz]} or {"matrix": 4x4}')


@dataclass(frozen=True, eq=False)
class PlacedImplant:
    """An implant placed on the patient: ``id`` (unique in the case), ``name`` (for people), the
    implant, its pose, and how it was placed (``target``: e.g. ``{"femur": "left"}`` or
    ``{"vertebra": "L4", "side": "left"}``; ``method``: "auto" or "manual")."""

    id: str
    name: str
    implant: Implant
    pose: Pose
    target: dict = field(default_factory=dict)
    method: str = "manual"

    def world_mesh(self):
        """The implant surface in LPS mm (a new ``StructureMesh``)."""
        from surgtwin.core.mesh.structure import StructureMesh

        m = self.implant.mesh()
        r = self.pose.rotation
        normals = None if m.normals is None else m.normals @ r.T
        return StructureMesh(f"implant_{self.id}", 0, m.color, self.pose.apply(m.vertices), m.faces.copy(),
                             normals, m.quality)

    def with_pose(self, pose: Pose) -> PlacedImplant:
        return replace(self, pose=pose, method="manual")

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "implant": self.implant.to_json(), "pose": self.pose.to_json(),
                "target": dict(self.target), "method": self.method}

    @classmethod
    def from_json(cls, d: dict, *, source: str = "implant placement") -> PlacedImplant:
        if not isinstance(d, dict) or not isinstance(d.get("id"), str) or not isinstance(d.get("implant"), dict):
            raise SurgtwinError(f"{source} needs an id and an implant", hint="place the implant again")
        return cls(d["id"], str(d.get("name", d["id"])), Implant.from_json(d["implant"], source=source),
                   Pose.from_json(d.get("pose"), source=f"{source} pose"), dict(d.get("target") or {}),
                   str(d.get("method", "manual")))


def placements_from_json(value, *, source: str = "the case's implants") -> list[PlacedImplant]:
    """The case item's value (a list of placement dicts) -> ``PlacedImplant``s."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise SurgtwinError(f"{source} must be a list of placements")
    out = [PlacedImplant.from_json(d, source=f"{source}[{n}]") for n, d in enumerate(value)]
    ids = [p.id for p in out]
    if len(set(ids)) != len(ids):
        raise SurgtwinError(f"{source} holds an implant id twice")
    return out


def placements_to_json(placements) -> list[dict]:
    return [p.to_json() for p in placements]


def next_id(placements) -> str:
    """The smallest positive integer (as text) not used as an id."""
    used = {p.id for p in placements}
    n = 1
    while str(n) in used:
        n += 1
    return str(n)
