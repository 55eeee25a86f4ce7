"""The 0D network built from centerlines: segments, stenoses, Murray-split outlets, solves."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.sim.flow import solve_pulsatile, solve_steady, virtual_stent
from surgtwin.core.vessels import (
    Branch,
    CenterlineGraph,
    StenosisFinding,
    inflow_waveform,
    network_from_centerlines,
)


def straight(index, parent, nodes, start, direction, length, radius, n=41):
    pts = np.asarray(start, float) + np.linspace(0, length, n)[:, None] * np.asarray(direction, float)
    r = np.full(n, float(radius))
    return Branch(index, parent, nodes, pts, r, r.copy(), np.ones(n, bool))


def y_graph(r_left=4.0, r_right=3.0, stenosis=None):
    trunk = straight(0, -1, (0, 1), (0, 0, 0), (0, 0, -1), 100.0, 8.0)
    left = straight(1, 0, (1, 2), (0, 0, -100), (1, 0, 0), 80.0, r_left)
    right = straight(2, 0, (1, 3), (0, 0, -100), (-1, 0, 0), 80.0, r_right)
    nodes = np.array([[0, 0, 0], [0, 0, -100], [80, 0, -100], [-80, 0, -100]], float)
    sts = ()
    if stenosis is not None:
        r = trunk.radius_mm.copy()
        s = trunk.arclength_mm
        r *= 1 - stenosis * np.exp(-0.5 * ((s - 50) / 5) ** 2)
        trunk = Branch(0, -1, (0, 1), trunk.points_lps, r, r.copy(), trunk.valid)
        sts = (StenosisFinding(0, 20, trunk.points_lps[20], 50.0, 2 * float(r.min()), 16.0, 12.0),)
    return CenterlineGraph((trunk, left, right), nodes, np.array([1, 3, 1, 1]), 0, sts)


def test_murray_split_and_total_resistance():
    vn = network_from_centerlines(y_graph(), inflow_ml_s=30.0)
    f = vn.outlet_fraction
    assert f["b1"] / f["b2"] == pytest.approx((4 / 3) ** 3)
    res = solve_steady(vn.network, 30.0)
    q = dict(zip(res.segment_names, res.mean_flow_ml_s, strict=True))
    assert q["b1"] + q["b2"] == pytest.approx(30.0)
    assert q["b1"] / q["b2"] == pytest.approx((4 / 3) ** 3, rel=0.02)  # the vessels add little
    # mean inlet pressure ~ the target mean pressure (93 mmHg) at this inflow
    assert res.mean_pressure_mmhg[0, 0] == pytest.approx(93.0, abs=1.0)
    r_total = vn.parameters["total_resistance_mmhg_s_ml"]
    assert r_total == pytest.approx(88.0 / 30.0)
    rsum = 1.0 / sum(1.0 / (bc.rp_mmhg_s_ml + bc.rd_mmhg_s_ml) for bc in vn.network.outlets.values())
    assert rsum == pytest.approx(r_total)


def test_stenosis_becomes_a_young_tsai_term_and_stent_removes_it():
    g = y_graph(stenosis=0.6)
    vn = network_from_centerlines(g, inflow_ml_s=30.0)
    seg = vn.network.segment("b0")
    assert seg.stenosis is not None and seg.radius_mm == pytest.approx(8.0)
    assert seg.stenosis.throat_radius_mm == pytest.approx(8.0 * 0.4, rel=0.02)
    assert min(seg.radius_profile_mm) >= 7.8  # the narrowing is not counted twice
    res = solve_steady(vn.network, 30.0)
    assert res.stenosis_pressure_ratio["b0"] < 1.0
    stented = solve_steady(virtual_stent(vn.network, vn.segment_for_stenosis(0), 16.0), 30.0)
    assert stented.pressure_drop_mmhg("b0") < res.pressure_drop_mmhg("b0")


def test_two_stenoses_on_a_branch_make_two_segments():
    g = y_graph()
    t = g.branches[0]
    sts = (StenosisFinding(0, 8, t.points_lps[8], 20.0, 8.0, 16.0, 8.0),
           StenosisFinding(0, 32, t.points_lps[32], 80.0, 10.0, 16.0, 8.0))
    g2 = CenterlineGraph(g.branches, g.node_lps, g.node_degree, 0, sts)
    vn = network_from_centerlines(g2, inflow_ml_s=30.0)
    names = [s.name for s in vn.network.segments]
    assert names[:2] == ["b0.0", "b0.1"] and vn.segment_stenosis[:2] == (0, 1)
    assert vn.network.segment("b1").parent == "b0.1"
    assert sum(vn.network.segment(n).length_mm for n in names[:2]) == pytest.approx(100.0, abs=1.5)


def test_pulsatile_waveform_mean_and_solve():
    w = inflow_waveform(30.0)
    assert w.mean_ml_s == pytest.approx(30.0)
    assert min(w.flow_ml_s) < 0 < max(w.flow_ml_s)
    vn = network_from_centerlines(y_graph(stenosis=0.5), inflow_ml_s=30.0)
    res = solve_pulsatile(vn.network, w, cycles=4, steps_per_cycle=200)
    assert res.mean_flow_ml_s[0] == pytest.approx(30.0, rel=0.01)
    p = res.pressure_mmhg[-200:, 0, 0]
    assert p.max() - p.min() > 10.0  # a pulse pressure


def test_bad_inflow_is_refused():
    with pytest.raises(SurgtwinError, match="inflow"):
        network_from_centerlines(y_graph(), inflow_ml_s=-1)
