#!/usr/bin/env python
"""0D blood-flow figures: pulsatile solve of 10 cycles on a 24-segment aorta-like tree.

    python scripts/bench/flow_bench.py [--runs 5] [--cycles 10] [--steps 500] [--json OUT.json]

The tree: ascending aorta, arch (3 parts) with brachiocephalic, left carotid and left subclavian
outlets, thoracic aorta (2), celiac, SMA, suprarenal aorta with both renals, an infrarenal aorta
with a 61.7 % diameter stenosis, distal aorta with IMA, common iliacs splitting into external and
internal iliacs. Radii/lengths are adult values (mm); the RCR outlets share 1.12 mmHg s/ml total
resistance (Rp 9 %) and 1.5 ml/mmHg compliance by flow fraction. Inflow: a half-sine systole
(0.3 s of a 1 s cycle), mean 83 ml/s.

Baseline, same ODE: ``scipy.integrate.solve_ivp`` with its default RK45 (rtol 1e-3); a tight
Radau run (untimed) is the accuracy reference. Ours: BDF2 with a once-inverted matrix, Newton
on the stenotic flows only.
Figures are the median of ``--runs`` runs. Goal (issue 14): <= 1 s for 10 cycles of ~20 segments.

Second part (``--tree-runs``, 0 skips it): the abdomen-pelvis sample's aorta tree (aorta + iliac
arteries; labels read once, untimed): centerline extraction (``extract_centerlines``: mask, skeleton,
graph, cross-sections, stenoses) + network + steady solve + 10-cycle pulsatile solve, against the
plain baseline of ``skimage.morphology.skeletonize`` alone on the same cropped mask. Goal: <= 5 s.
``EXTRA_TIMINGS``: further timed parts; the TAVR measurement on the cardiac sample (goal <= 2 s) is one.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from surgtwin.core.sim.flow import (  # noqa: E402
    RCR,
    Network,
    Segment,
    Stenosis,
    Waveform,
    assemble,
    solve_pulsatile,
    solve_steady,
    virtual_stent,
)
from surgtwin.core.sim.flow_model import ML_M3, MMHG_PA  # noqa: E402

# name, parent, length_mm, radius_mm, outlet flow fraction (None: not an outlet)
TREE = [
    ("asc_aorta", None, 50, 14.0, None),
    ("arch1", "asc_aorta", 20, 13.0, None),
    ("brachiocephalic", "arch1", 40, 6.0, 0.12),
    ("arch2", "arch1", 15, 12.0, None),
    ("l_carotid", "arch2", 90, 3.5, 0.06),
    ("arch3", "arch2", 15, 11.5, None),
    ("l_subclavian", "arch3", 60, 4.5, 0.06),
    ("thoracic1", "arch3", 100, 10.5, None),
    ("thoracic2", "thoracic1", 100, 9.5, None),
    ("celiac", "thoracic2", 20, 3.5, 0.12),
    ("abd_aorta", "thoracic2", 20, 9.0, None),
    ("sma", "abd_aorta", 60, 3.5, 0.12),
    ("suprarenal", "abd_aorta", 20, 8.7, None),
    ("l_renal", "suprarenal", 30, 2.7, 0.11),
    ("r_renal", "suprarenal", 40, 2.7, 0.11),
    ("infrarenal", "suprarenal", 40, 8.0, None),
    ("distal_aorta", "infrarenal", 40, 7.5, None),
    ("ima", "distal_aorta", 40, 1.8, 0.02),
    ("l_common_iliac", "distal_aorta", 60, 4.5, None),
    ("r_common_iliac", "distal_aorta", 60, 4.5, None),
    ("l_external_iliac", "l_common_iliac", 100, 3.8, 0.09),
    ("l_internal_iliac", "l_common_iliac", 50, 2.8, 0.05),
    ("r_external_iliac", "r_common_iliac", 100, 3.8, 0.09),
    ("r_internal_iliac", "r_common_iliac", 50, 2.8, 0.05),
]
STENOTIC = "infrarenal"
STENOSIS_PERCENT = 61.7
R_TOTAL = 1.12  # mmHg s/ml
C_TOTAL = 1.5  # ml/mmHg
MEAN_FLOW = 83.0  # ml/s


def aorta_network() -> Network:
    segs, outlets = [], {}
    for name, parent, length, radius, frac in TREE:
        sten = (Stenosis.by_diameter_percent(radius, STENOSIS_PERCENT) if name == STENOTIC
                else None)
        segs.append(Segment(name, parent, length, radius, stenosis=sten))
        if frac is not None:
            r = R_TOTAL / frac
            outlets[name] = RCR(0.09 * r, C_TOTAL * frac, 0.91 * r, pd_mmhg=5.0)
    return Network(tuple(segs), outlets)


def inflow(steps: int) -> Waveform:
    t = np.arange(steps) / steps
    q = np.where(t < 0.3, np.sin(np.pi * np.clip(t, 0, 0.3) / 0.3), 0.0)
    return Waveform(tuple(q * MEAN_FLOW / q.mean()), 1.0)


def baseline(net: Network, wave: Waveform, cycles: int, **kw):
    """solve_ivp on the same ODE (default RK45; ``kw`` e.g. a tight Radau for a reference)."""
    from scipy.integrate import solve_ivp

    sysm = assemble(net)
    grid = np.linspace(0.0, wave.period_s, 4001)
    ug = wave.at(grid) * ML_M3
    x0 = np.linalg.solve(-sysm.a, sysm.b0 + sysm.e_in * wave.mean_ml_s * ML_M3)

    def rhs(t, x):
        u = np.interp(t % wave.period_s, grid, ug)
        return (sysm.a @ x + sysm.b0 + sysm.e_in * u - sysm.g(x)) / sysm.m

    return solve_ivp(rhs, (0.0, cycles * wave.period_s), x0, **kw)


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _tavr(runs: int) -> dict:
    """The TAVR measurement on the cardiac sample (scripts/bench/tavr_bench.py, same run)."""
    import tavr_bench

    fig = tavr_bench.run(runs)
    tavr_bench.show(fig)
    return fig


#: further timed parts: (name, fn(runs) -> dict of figures), run after the tree part
EXTRA_TIMINGS: list = [("tavr", _tavr)]


def tree_figures(runs: int, cycles: int, steps: int) -> dict:
    """Centerline + 0D solve of the abdomen sample's aorta tree vs skeletonize alone (medians)."""
    from skimage.morphology import skeletonize

    from surgtwin.core.vessels import extract_centerlines, inflow_waveform, network_from_centerlines
    from surgtwin.core.vessels.centerline import prepare_mask, spacing_of
    from surgtwin.services import pipeline

    case = pipeline.new_case(pipeline.sample_root() / "abdomen-pelvis")
    lab = case.labels
    mask = np.isin(lab.array, [lab.labels.by_name(n).value
                               for n in ("aorta", "iliac_artery_left", "iliac_artery_right")])
    out = {}

    def centerlines():
        out["graph"] = extract_centerlines(mask, lab.affine, labels=lab.array)

    def solves():
        vn = network_from_centerlines(out["graph"], inflow_ml_s=30.0)
        out["steady"] = solve_steady(vn.network, 30.0)
        out["pulsatile"] = solve_pulsatile(vn.network, inflow_waveform(30.0, samples=steps), cycles=cycles,
                                           steps_per_cycle=steps)
        out["vn"] = vn

    crop = prepare_mask(mask, spacing_of(lab.affine)).mask
    t_cl = median_time(centerlines, runs)
    t_solve = median_time(solves, runs)
    t_skel = median_time(lambda: skeletonize(crop), runs)
    g = out["graph"]
    s0 = g.stenoses[0] if g.stenoses else None
    return {"tree_voxels": int(mask.sum()), "tree_branches": len(g.branches),
            "tree_segments": len(out["vn"].network.segments),
            "centerline_s": t_cl, "solve_steady_plus_pulsatile_s": t_solve, "tree_total_s": t_cl + t_solve,
            "baseline_skeletonize_s": t_skel, "centerline_over_skeletonize": t_cl / t_skel,
            "stenosis_percent_measured": None if s0 is None else s0.diameter_percent,
            "stenosis_pressure_ratio_pulsatile": (None if s0 is None else
                                                  out["pulsatile"].stenosis_pressure_ratio.get(
                                                      out["vn"].segment_for_stenosis(0)))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--tree-runs", type=int, default=3, help="repeats of the aorta-tree part (0: skip)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    net = aorta_network()
    wave = inflow(args.steps)
    n_states = assemble(net).m.size
    print(f"tree: {len(net.segments)} segments, {len(net.outlets)} RCR outlets, "
          f"{n_states} unknowns; {args.cycles} cycles x {args.steps} steps")
    res = solve_pulsatile(net, wave, cycles=args.cycles, steps_per_cycle=args.steps)
    t_ours = median_time(lambda: solve_pulsatile(net, wave, cycles=args.cycles,
                                                 steps_per_cycle=args.steps), args.runs)
    ivp = baseline(net, wave, args.cycles)
    t_base = median_time(lambda: baseline(net, wave, args.cycles), args.runs)
    ref = baseline(net, wave, args.cycles, method="Radau", rtol=1e-9, atol=1e-12)
    i = res.index(STENOTIC)
    p_ivp = ivp.y[:net.segments.__len__() + 1, -1] / MMHG_PA
    stented = virtual_stent(net, STENOTIC, 2 * net.segment(STENOTIC).radius_mm)
    res_st = solve_pulsatile(stented, wave, cycles=args.cycles, steps_per_cycle=args.steps)
    steady = solve_steady(net, wave.mean_ml_s)
    p_end = res.pressure_mmhg[-1, 0, 0]
    figures = {
        "segments": len(net.segments),
        "unknowns": n_states,
        "ours_s": t_ours,
        "baseline_rk45_s": t_base,
        "baseline_rk45_steps": int(ivp.t.size - 1),
        "speedup": t_base / t_ours,
        "inlet_p_end_ours_mmhg": float(p_end),
        "inlet_p_end_rk45_mmhg": float(p_ivp[0]),
        "inlet_p_end_radau_1e-9_mmhg": float(ref.y[0, -1] / MMHG_PA),
        "stenosis_pressure_ratio": res.stenosis_pressure_ratio[STENOTIC],
        "stenosis_pressure_ratio_steady": steady.stenosis_pressure_ratio[STENOTIC],
        "stenosis_drop_mmhg": res.pressure_drop_mmhg(STENOTIC),
        "stented_drop_mmhg": res_st.pressure_drop_mmhg(STENOTIC),
        "inlet_pressure_max_min_mean_mmhg": [float(res.pressure_mmhg[-args.steps:, 0, 0].max()),
                                             float(res.pressure_mmhg[-args.steps:, 0, 0].min()),
                                             float(res.mean_pressure_mmhg[0, 0])],
    }
    print(f"ours (BDF2, reduced Newton):   {t_ours * 1e3:8.1f} ms  (median of {args.runs})")
    print(f"baseline solve_ivp RK45:       {t_base * 1e3:8.1f} ms  ({figures['baseline_rk45_steps']}"
          f" steps; median of {args.runs})")
    print(f"speedup: {figures['speedup']:.1f}x; inlet pressure at t_end: ours {p_end:.2f} mmHg,"
          f" RK45 {p_ivp[0]:.2f} mmHg, Radau rtol 1e-9 reference "
          f"{figures['inlet_p_end_radau_1e-9_mmhg']:.2f} mmHg")
    mx, mn, mean = figures["inlet_pressure_max_min_mean_mmhg"]
    print(f"inlet pressure last cycle: {mx:.1f}/{mn:.1f} mmHg, mean {mean:.1f} mmHg; "
          f"mean flow {res.mean_flow_ml_s[0]:.1f} ml/s")
    print(f"stenosis {STENOTIC} ({STENOSIS_PERCENT} % diameter): mean pressure ratio "
          f"Pd/Pp = {figures['stenosis_pressure_ratio']:.4f} (steady at mean flow "
          f"{figures['stenosis_pressure_ratio_steady']:.4f}); drop "
          f"{figures['stenosis_drop_mmhg']:.2f} mmHg, after virtual stent "
          f"{figures['stented_drop_mmhg']:.2f} mmHg; flow {res.mean_flow_ml_s[i]:.1f} ml/s")
    if args.tree_runs > 0:
        tf = tree_figures(args.tree_runs, args.cycles, args.steps)
        figures.update(tf)
        print(f"abdomen-pelvis aorta tree: {tf['tree_voxels']} voxels, {tf['tree_branches']} branches, "
              f"{tf['tree_segments']} segments (median of {args.tree_runs})")
        print(f"  centerlines (skeleton, graph, cross-sections, stenoses): {tf['centerline_s'] * 1e3:8.1f} ms "
              f"= {tf['centerline_over_skeletonize']:.1f}x skeletonize alone ({tf['baseline_skeletonize_s'] * 1e3:.1f} ms)")
        print(f"  network + steady + {args.cycles}-cycle pulsatile solve:         "
              f"{tf['solve_steady_plus_pulsatile_s'] * 1e3:8.1f} ms")
        print(f"  total {tf['tree_total_s']:.2f} s (goal <= 5 s); stenosis measured "
              f"{tf['stenosis_percent_measured']:.1f} % (designed 61.7 %), pulsatile Pd/Pp "
              f"{tf['stenosis_pressure_ratio_pulsatile']:.4f}")
    for name, fn in EXTRA_TIMINGS:
        figures[name] = fn(args.runs)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if math.isfinite(t_ours) else 1


if __name__ == "__main__":
    sys.exit(main())
