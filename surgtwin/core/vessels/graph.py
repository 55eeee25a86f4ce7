"""The centerline graph of a vessel tree: branches (ordered points in LPS mm with radius), the
nodes they join at, and the stenoses found along them; stored as plain numeric arrays.

``CenterlineGraph.to_arrays()`` gives npz-friendly arrays (numbers only, no pickling) and
``CenterlineGraph.from_arrays()`` reads them back. Array names (P points over all branches, B
branches, K nodes, S stenoses):

* ``points_lps`` (P, 3) float64, ``radius_mm`` (P,) (cross-section equivalent radius, interpolated
  where no clean cross-section exists), ``radius_inscribed_mm`` (P,) (distance map: the largest
  inscribed sphere), ``arclength_mm`` (P,) (from the branch's proximal end), ``valid`` (P,) uint8
  (1: a clean perpendicular cross-section was measured there; 0: near a junction or an end);
* ``branch_offsets`` (B + 1,) int64: branch b's points are ``[offsets[b], offsets[b + 1])``;
  ``branch_parent`` (B,) int32 (-1: the root branch), ``branch_nodes`` (B, 2) int32 (proximal,
  distal node), ``branch_label`` (B,) int32 (the label value most of the branch lies in; 0 if
  unknown), ``branch_length_mm``, ``branch_mean_radius_mm``, ``branch_min_radius_mm`` (B,);
* ``node_lps`` (K, 3), ``node_degree`` (K,) int32 (1: an end, >= 3: a bifurcation), ``root_node``
  () int32 (the inlet end);
* ``stenosis_branch`` (S,) int32, ``stenosis_point`` (S,) int64 (index into the points),
  ``stenosis_lps`` (S, 3), ``stenosis_arclength_mm``, ``stenosis_min_diameter_mm``,
  ``stenosis_reference_diameter_mm``, ``stenosis_diameter_percent``, ``stenosis_area_percent``,
  ``stenosis_length_mm`` (S,).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from surgtwin.core.errors import SurgtwinError


@dataclass(frozen=True)
class Branch:
    """One vessel branch from its proximal to its distal node (points in LPS mm)."""

    index: int
    parent: int  # -1 for the root branch
    nodes: tuple[int, int]  # (proximal, distal)
    points_lps: np.ndarray  # (n, 3)
    radius_mm: np.ndarray  # (n,)
    radius_inscribed_mm: np.ndarray  # (n,)
    valid: np.ndarray  # (n,) bool
    label: int = 0

    @property
    def arclength_mm(self) -> np.ndarray:
        seg = np.linalg.norm(np.diff(self.points_lps, axis=0), axis=1)
        return np.concatenate([[0.0], np.cumsum(seg)])

    @property
    def length_mm(self) -> float:
        return float(self.arclength_mm[-1])

    def _stat_radius(self) -> np.ndarray:
        return self.radius_mm[self.valid] if np.any(self.valid) else self.radius_mm

    @property
    def mean_radius_mm(self) -> float:
        """Length-weighted mean of the radius over the clean cross-sections (all points if none)."""
        return float(np.mean(self._stat_radius()))

    @property
    def min_radius_mm(self) -> float:
        return float(np.min(self._stat_radius()))


@dataclass(frozen=True)
class StenosisFinding:
    """A focal narrowing on a branch: where, how narrow against the healthy vessel, how long.

    ``reference_diameter_mm`` is the healthy diameter at the throat, interpolated linearly
    between the healthy vessel proximal and distal to the narrowing; percentages are
    ``100 (1 - d_min/d_ref)`` (diameter) and ``100 (1 - (d_min/d_ref)^2)`` (area); the length is
    the stretch where the narrowing is at least half its peak (full width at half maximum).
    """

    branch: int
    point: int  # index into the branch's points
    position_lps: np.ndarray
    arclength_mm: float
    min_diameter_mm: float
    reference_diameter_mm: float
    length_mm: float

    @property
    def diameter_percent(self) -> float:
        return float(100.0 * (1.0 - self.min_diameter_mm / self.reference_diameter_mm))

    @property
    def area_percent(self) -> float:
        return float(100.0 * (1.0 - (self.min_diameter_mm / self.reference_diameter_mm) ** 2))

    def as_dict(self) -> dict:
        return {"branch": self.branch, "position_lps": [round(float(v), 2) for v in self.position_lps],
                "arclength_mm": round(self.arclength_mm, 2), "min_diameter_mm": round(self.min_diameter_mm, 2),
                "reference_diameter_mm": round(self.reference_diameter_mm, 2),
                "diameter_percent": round(self.diameter_percent, 1), "area_percent": round(self.area_percent, 1),
                "length_mm": round(self.length_mm, 1)}


@dataclass(frozen=True)
class CenterlineGraph:
    """Branches in tree order (parents before children; branch 0 starts at the root end)."""

    branches: tuple[Branch, ...]
    node_lps: np.ndarray  # (K, 3)
    node_degree: np.ndarray  # (K,)
    root_node: int
    stenoses: tuple[StenosisFinding, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    def children(self, index: int) -> list[int]:
        return [b.index for b in self.branches if b.parent == index]

    def terminal_branches(self) -> list[int]:
        parents = {b.parent for b in self.branches}
        return [b.index for b in self.branches if b.index not in parents]

    @property
    def total_length_mm(self) -> float:
        return float(sum(b.length_mm for b in self.branches))

    def table(self) -> list[dict]:
        """One row per branch: id, parent, label, length, mean/min radius, worst stenosis."""
        rows = []
        for b in self.branches:
            worst = max((s.diameter_percent for s in self.stenoses if s.branch == b.index), default=0.0)
            rows.append({"branch": b.index, "parent": b.parent, "label": b.label,
                         "length_mm": round(b.length_mm, 1), "mean_radius_mm": round(b.mean_radius_mm, 2),
                         "min_radius_mm": round(b.min_radius_mm, 2), "stenosis_percent": round(worst, 1),
                         "start_lps": [round(float(v), 1) for v in b.points_lps[0]]})
        return rows

    # -- arrays ------------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Numeric arrays (see the module docstring for the names)."""
        bs = self.branches
        offsets = np.zeros(len(bs) + 1, np.int64)
        offsets[1:] = np.cumsum([len(b.points_lps) for b in bs])
        cat = (lambda f: np.concatenate([f(b) for b in bs]))  # noqa: E731
        st = self.stenoses
        return {
            "points_lps": cat(lambda b: b.points_lps).astype(np.float64).reshape(-1, 3),
            "radius_mm": cat(lambda b: b.radius_mm).astype(np.float64),
            "radius_inscribed_mm": cat(lambda b: b.radius_inscribed_mm).astype(np.float64),
            "arclength_mm": cat(lambda b: b.arclength_mm).astype(np.float64),
            "valid": cat(lambda b: b.valid).astype(np.uint8),
            "branch_offsets": offsets,
            "branch_parent": np.array([b.parent for b in bs], np.int32),
            "branch_nodes": np.array([b.nodes for b in bs], np.int32).reshape(-1, 2),
            "branch_label": np.array([b.label for b in bs], np.int32),
            "branch_length_mm": np.array([b.length_mm for b in bs]),
            "branch_mean_radius_mm": np.array([b.mean_radius_mm for b in bs]),
            "branch_min_radius_mm": np.array([b.min_radius_mm for b in bs]),
            "node_lps": np.asarray(self.node_lps, np.float64).reshape(-1, 3),
            "node_degree": np.asarray(self.node_degree, np.int32),
            "root_node": np.array(self.root_node, np.int32),
            "stenosis_branch": np.array([s.branch for s in st], np.int32),
            "stenosis_point": np.array([offsets[s.branch] + s.point for s in st], np.int64),
            "stenosis_lps": np.array([s.position_lps for s in st], np.float64).reshape(-1, 3),
            "stenosis_arclength_mm": np.array([s.arclength_mm for s in st], np.float64),
            "stenosis_min_diameter_mm": np.array([s.min_diameter_mm for s in st], np.float64),
            "stenosis_reference_diameter_mm": np.array([s.reference_diameter_mm for s in st], np.float64),
            "stenosis_diameter_percent": np.array([s.diameter_percent for s in st], np.float64),
            "stenosis_area_percent": np.array([s.area_percent for s in st], np.float64),
            "stenosis_length_mm": np.array([s.length_mm for s in st], np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays) -> CenterlineGraph:
        """The graph from ``to_arrays()``'s arrays (e.g. a case's ``centerlines:<name>`` item)."""
        need = ("points_lps", "radius_mm", "radius_inscribed_mm", "valid", "branch_offsets", "branch_parent",
                "branch_nodes", "node_lps", "node_degree", "root_node")
        missing = [k for k in need if k not in arrays]
        if missing:
            raise SurgtwinError(f"not a centerline graph: arrays {', '.join(missing)} are missing")
        a = {k: np.asarray(v) for k, v in arrays.items()}
        off = a["branch_offsets"].astype(np.int64)
        labels = a.get("branch_label", np.zeros(len(off) - 1, np.int32))
        branches = []
        for i in range(len(off) - 1):
            sl = slice(int(off[i]), int(off[i + 1]))
            branches.append(Branch(i, int(a["branch_parent"][i]), tuple(int(v) for v in a["branch_nodes"][i]),
                                   a["points_lps"][sl].astype(np.float64), a["radius_mm"][sl].astype(np.float64),
                                   a["radius_inscribed_mm"][sl].astype(np.float64), a["valid"][sl].astype(bool),
                                   int(labels[i])))
        stenoses = []
        for j in range(len(a.get("stenosis_branch", ()))):
            b = int(a["stenosis_branch"][j])
            stenoses.append(StenosisFinding(
                b, int(a["stenosis_point"][j] - off[b]), a["stenosis_lps"][j].astype(np.float64),
                float(a["stenosis_arclength_mm"][j]), float(a["stenosis_min_diameter_mm"][j]),
                float(a["stenosis_reference_diameter_mm"][j]), float(a["stenosis_length_mm"][j])))
        return cls(tuple(branches), a["node_lps"].astype(np.float64), a["node_degree"].astype(np.int32),
                   int(a["root_node"]), tuple(stenoses))
