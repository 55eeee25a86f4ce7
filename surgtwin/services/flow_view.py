"""What the app shows of a flow result (no Qt): the vessel tree as tubes coloured by pressure or flow,
built from a case's ``centerlines:<tree>`` and ``flow:<tree>[:stent]`` items (see
:mod:`surgtwin.services.flow` for their arrays).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surgtwin.core.errors import SurgtwinError

#: colour fields: name -> (title, unit)
FIELDS = {"pressure": ("Mean pressure", "mmHg"), "flow": ("Mean flow", "ml/s")}


@dataclass(frozen=True)
class FlowResultView:
    """One flow result as the panel shows it."""

    key: str
    graph: object  # CenterlineGraph
    arrays: dict
    segment_names: list
    branch_names: list
    stale: bool

    def point_values(self, field: str) -> list[np.ndarray]:
        """Per branch, per centerline point: the mean pressure (linear along each segment between its
        proximal and distal mean pressure) or the segment's mean flow."""
        if field not in FIELDS:
            raise SurgtwinError(f"unknown flow field {field!r}", hint=", ".join(FIELDS))
        a = self.arrays
        out = [np.full(len(b.points_lps), np.nan) for b in self.graph.branches]
        for i, (b, (i0, i1)) in enumerate(zip(a["segment_branch"], a["segment_range"], strict=True)):
            vals = out[int(b)]
            n = int(i1) - int(i0) + 1
            if field == "pressure":
                p0, p1 = (float(x) for x in a["mean_pressure_mmhg"][i])
                vals[int(i0):int(i1) + 1] = np.linspace(p0, p1, n)
            else:
                vals[int(i0):int(i1) + 1] = float(a["mean_flow_ml_s"][i])
        for vals in out:  # points no segment covers (very short ends): nearest value
            bad = np.isnan(vals)
            if bad.all():
                vals[:] = 0.0
            elif bad.any():
                idx = np.flatnonzero(~bad)
                vals[bad] = vals[idx[np.abs(np.arange(len(vals))[bad, None] - idx[None, :]).argmin(axis=1)]]
        return out

    def tubes(self, field: str, *, offset_lps=(0.0, 0.0, 0.0), sides: int = 14):
        """(vertices, faces, face values) of the whole tree as tubes of the measured radius."""
        from surgtwin.render.glyphs import tube

        verts, faces, vals = [], [], []
        n = 0
        for b, pv in zip(self.graph.branches, self.point_values(field), strict=True):
            if len(b.points_lps) < 2:
                continue
            v, f, fp = tube(b.points_lps, np.maximum(b.radius_mm, 0.3), sides=sides)
            verts.append(v + np.asarray(offset_lps, float))
            faces.append(f + n)
            vals.append(0.5 * (pv[fp] + pv[np.minimum(fp + 1, len(pv) - 1)]))
            n += len(v)
        if not verts:
            raise SurgtwinError("the centerline graph has no branch to draw")
        return np.vstack(verts), np.vstack(faces), np.concatenate(vals)

    def rows(self) -> list[dict]:
        """One dict per segment: vessel, length, radius, stenosis, flow, pressure drop and ratio."""
        a = self.arrays
        rows = []
        for i, name in enumerate(self.segment_names):
            k = int(a["segment_stenosis"][i])
            st = self.graph.stenoses[k] if k >= 0 else None
            rows.append({"segment": name, "vessel": self.branch_names[int(a["segment_branch"][i])],
                         "length_mm": float(a["segment_length_mm"][i]),
                         "min_radius_mm": float(a["segment_min_radius_mm"][i]),
                         "stenosis": f"s{k}" if st is not None else None,
                         "stenosis_percent": float(st.diameter_percent) if st is not None else None,
                         "mean_flow_ml_s": float(a["mean_flow_ml_s"][i]),
                         "pressure_drop_mmhg": float(a["pressure_drop_mmhg"][i]),
                         "pressure_ratio": float(a["pressure_ratio"][i])})
        return rows


def flow_result(case, key: str) -> FlowResultView | None:
    """The flow item ``key`` (``flow:<tree>`` or ``flow:<tree>:stent``) with its centerlines; None when
    the case has not got it."""
    from surgtwin.core.vessels import CenterlineGraph

    it = case.item(key) if case is not None else None
    if it is None:
        return None
    cl_key = it.provenance.parameters.get("centerlines_item")
    cl = case.item(cl_key) if cl_key else None
    if cl is None:
        return None
    graph = CenterlineGraph.from_arrays(cl.value)
    names = list(cl.provenance.parameters.get("branch_names") or [f"b{b.index}" for b in graph.branches])
    return FlowResultView(key, graph, it.value, list(it.provenance.parameters.get("segment_names") or []), names,
                          bool(case.is_stale(key)))


def flow_keys(case) -> list[str]:
    """The case's flow results without their stent variants (``flow:<tree>``)."""
    if case is None:
        return []
    return sorted(k for k in case.keys() if k.startswith("flow:") and k.count(":") == 1)
