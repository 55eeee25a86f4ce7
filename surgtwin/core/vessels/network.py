"""The reduced-order (0D) flow network of a centerline graph.

Each branch becomes a :class:`~surgtwin.core.sim.flow_model.Segment` with its radius profile;
a branch with stenoses is cut into pieces (between consecutive stenoses) so that each piece holds
at most one, which becomes the piece's Young-Tsai :class:`~surgtwin.core.sim.flow_model.Stenosis`
(throat radius, length). The piece's radius profile is the healthy calibre across the narrowing
(the profile with the narrowing replaced by the reference radius), so that the stenosis is not
counted twice (its viscous term is Poiseuille flow through the throat).

Inlet: the root branch's proximal end (the graph's root: the end of the widest vessel, or one the
caller chose when extracting). Outlets: one three-element Windkessel (RCR) per terminal branch.

Outlet parameters (defaults; every one can be given):

* the inflow is split between the outlets by Murray's law, flow fraction ``f_i = r_i^3 / sum r^3``
  (Murray 1926, PNAS 12:207), ``r_i`` the outlet branch's mean radius; each outlet gets
  ``R_i = R_total / f_i`` and ``C_i = C_total f_i`` (parallel resistances add up to R_total);
* ``R_total = (P_mean - P_venous) / Q_in``: the bed's resistance that gives a resting mean arterial
  pressure ``P_mean = 93 mmHg`` over a venous pressure of 5 mmHg at the inflow ``Q_in``. For the
  whole body (Q = cardiac output 5 L/min = 83 ml/s) this is 1.06 mmHg s/ml, the usual adult total
  peripheral resistance (1.0-1.2); a vascular bed carrying a share of the output has the
  correspondingly larger resistance;
* ``R_p = 0.09 R_i`` proximal, ``R_d = 0.91 R_i`` distal (the characteristic impedance is ~5-10 %
  of the peripheral resistance: Westerhof N et al. 2009, Med Biol Eng Comput 47:131, "The arterial
  Windkessel");
* ``C_total = 1.5 ml/mmHg x Q_in / 83 ml/s``: adult total arterial compliance ~1-2 ml/mmHg
  (Stergiopulos N, Westerhof BE, Westerhof N 1999, Am J Physiol 276:H81) shared in proportion to
  the bed's flow.

Inflow defaults (``default_inflow_ml_s``): 30 ml/s (1.8 L/min) for the infrarenal aorta at rest
(MR velocity mapping puts it at about 1.5-2 L/min in healthy adults, e.g. Bogren HG, Buonocore MH
1994, J Magn Reson Imaging 4:119) plus 9 ml/s per renal artery in the tree (the kidneys take about
20 % of the cardiac output, ~1 L/min for both). These are population defaults, not the patient's:
give the measured flow when known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.sim.flow_model import RCR, Blood, Network, Segment, Stenosis, Waveform
from surgtwin.core.vessels.graph import CenterlineGraph

MEAN_PRESSURE_MMHG = 93.0
VENOUS_PRESSURE_MMHG = 5.0
RP_FRACTION = 0.09
WHOLE_BODY_COMPLIANCE_ML_MMHG = 1.5
CARDIAC_OUTPUT_ML_S = 83.0
INFRARENAL_FLOW_ML_S = 30.0
RENAL_FLOW_ML_S = 9.0


def default_inflow_ml_s(renal_arteries: int = 0) -> float:
    """Resting inlet flow of an abdominal aorta tree: infrarenal flow + each renal artery's share."""
    return INFRARENAL_FLOW_ML_S + RENAL_FLOW_ML_S * int(renal_arteries)


@dataclass(frozen=True)
class VesselNetwork:
    """The flow network and how its segments map back to the centerline graph.

    ``segment_branch[i]``: the branch segment i comes from; ``segment_stenosis[i]``: the index of
    the graph's stenosis it carries (-1: none); ``segment_range[i]``: its point range in the branch.
    """

    network: Network
    segment_branch: tuple[int, ...]
    segment_stenosis: tuple[int, ...]
    segment_range: tuple[tuple[int, int], ...]
    outlet_fraction: dict
    parameters: dict

    def segment_for_stenosis(self, stenosis: int) -> str:
        for seg, st in zip(self.network.segments, self.segment_stenosis, strict=True):
            if st == stenosis:
                return seg.name
        raise SurgtwinError(f"no segment carries stenosis {stenosis}")

    def segments_of_branch(self, branch: int) -> list[str]:
        return [s.name for s, b in zip(self.network.segments, self.segment_branch, strict=True) if b == branch]


def _profile(r: np.ndarray, n: int) -> tuple[float, ...]:
    x = np.linspace(0.0, 1.0, len(r))
    xi = np.linspace(0.0, 1.0, max(2, min(n, len(r))))
    return tuple(float(v) for v in np.interp(xi, x, r))


def network_from_centerlines(graph: CenterlineGraph, *, inflow_ml_s: float,
                             mean_pressure_mmhg: float = MEAN_PRESSURE_MMHG,
                             venous_pressure_mmhg: float = VENOUS_PRESSURE_MMHG,
                             total_resistance_mmhg_s_ml: float | None = None,
                             total_compliance_ml_mmhg: float | None = None,
                             rp_fraction: float = RP_FRACTION, blood: Blood | None = None,
                             profile_points: int = 32, min_segment_mm: float = 1.0) -> VesselNetwork:
    """The 0D network of ``graph`` (see the module docstring for the outlet model and defaults)."""
    q = float(inflow_ml_s)
    if not (math.isfinite(q) and q > 0):
        raise SurgtwinError(f"the inflow must be a positive number of ml/s, got {inflow_ml_s!r}")
    if not graph.branches:
        raise SurgtwinError("the centerline graph has no branch")
    if not 0.0 <= rp_fraction < 1.0:
        raise SurgtwinError(f"rp_fraction must lie in [0, 1), got {rp_fraction}")
    r_total = (total_resistance_mmhg_s_ml if total_resistance_mmhg_s_ml is not None
               else (mean_pressure_mmhg - venous_pressure_mmhg) / q)
    c_total = (total_compliance_ml_mmhg if total_compliance_ml_mmhg is not None
               else WHOLE_BODY_COMPLIANCE_ML_MMHG * q / CARDIAC_OUTPUT_ML_S)
    if not (r_total > 0 and c_total >= 0):
        raise SurgtwinError("the total resistance must be > 0 and the compliance >= 0 "
                            "(is the mean pressure above the venous pressure?)")
    segments: list[Segment] = []
    seg_branch, seg_sten, seg_range = [], [], []
    last_of_branch: dict[int, str] = {}
    for b in graph.branches:
        s = b.arclength_mm
        r = b.radius_mm.copy()
        stens = sorted(((k, st) for k, st in enumerate(graph.stenoses) if st.branch == b.index),
                       key=lambda kv: kv[1].arclength_mm)
        healthy = r.copy()
        for _, st in stens:  # the healthy calibre across each narrowing
            lo = st.arclength_mm - 1.5 * st.length_mm  # the FWHM length: cover the shoulders too
            hi = st.arclength_mm + 1.5 * st.length_mm
            inside = (s > lo) & (s < hi)
            healthy[inside] = np.maximum(r[inside], 0.5 * st.reference_diameter_mm)
        cuts = [0]
        for (_, a), (_, c) in zip(stens, stens[1:], strict=False):
            mid = 0.5 * (a.arclength_mm + c.arclength_mm)
            cuts.append(int(np.searchsorted(s, mid)))
        cuts.append(len(s) - 1)
        parent = None if b.parent < 0 else last_of_branch[b.parent]
        pieces = list(zip(cuts[:-1], cuts[1:], strict=True))
        for j, (i0, i1) in enumerate(pieces):
            i1 = max(i1, i0 + 1)
            name = f"b{b.index}" if len(pieces) == 1 else f"b{b.index}.{j}"
            length = max(float(s[i1] - s[i0]), min_segment_mm)
            prof = healthy[i0:i1 + 1]
            sten_idx = -1
            stenosis = None
            if j < len(stens):
                sten_idx, st = stens[j]
                r0 = 0.5 * st.reference_diameter_mm
                throat = min(0.5 * st.min_diameter_mm, 0.999 * r0)
                stenosis = Stenosis(throat_radius_mm=throat, length_mm=max(st.length_mm, 0.1))
                radius = r0
            else:
                radius = float(np.mean(prof))
            segments.append(Segment(name, parent, length, radius, radius_profile_mm=_profile(prof, profile_points),
                                    stenosis=stenosis))
            seg_branch.append(b.index)
            seg_sten.append(sten_idx)
            seg_range.append((int(i0), int(i1)))
            parent = name
        last_of_branch[b.index] = parent
    terminal = graph.terminal_branches()
    cubes = {i: graph.branches[i].mean_radius_mm ** 3 for i in terminal}
    total = sum(cubes.values())
    outlets, fractions = {}, {}
    for i in terminal:
        f = cubes[i] / total
        ri = r_total / f
        name = last_of_branch[i]
        outlets[name] = RCR(rp_fraction * ri, c_total * f, (1.0 - rp_fraction) * ri, pd_mmhg=venous_pressure_mmhg)
        fractions[name] = f
    net = Network(tuple(segments), outlets, blood or Blood())
    params = {"inflow_ml_s": q, "total_resistance_mmhg_s_ml": r_total, "total_compliance_ml_mmhg": c_total,
              "rp_fraction": rp_fraction, "venous_pressure_mmhg": venous_pressure_mmhg,
              "mean_pressure_mmhg": mean_pressure_mmhg if total_resistance_mmhg_s_ml is None else None,
              "outlet_split": "murray r^3"}
    return VesselNetwork(net, tuple(seg_branch), tuple(seg_sten), tuple(seg_range), fractions, params)


def inflow_waveform(mean_ml_s: float, *, period_s: float = 1.0, samples: int = 200) -> Waveform:
    """An idealised infrarenal aortic inflow over one cycle, scaled to ``mean_ml_s``.

    Shape (not a measured curve): a systolic half-sine over the first 35 % of the cycle with a
    peak of ~4 x the mean, a brief early-diastolic reversal (peak -0.4 x the systolic peak's
    share) and a small positive diastolic flow; its mean is exactly ``mean_ml_s``.
    """
    t = np.arange(samples) / samples
    sys_ = np.where(t < 0.35, np.sin(np.pi * t / 0.35), 0.0)
    rev = np.where((t >= 0.35) & (t < 0.5), -0.15 * np.sin(np.pi * (t - 0.35) / 0.15), 0.0)
    dia = np.where(t >= 0.5, 0.08, 0.0)
    shape = sys_ + rev + dia
    q = shape / shape.mean() * float(mean_ml_s)
    return Waveform(tuple(q), float(period_s))
