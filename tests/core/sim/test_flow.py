"""0D blood-flow network (surgtwin.core.sim.flow) against analytic solutions, with numbers.

Units in the tests: mm, ml/s, mmHg, mmHg*s/ml, ml/mmHg (the API's); SI only where an analytic
formula is written out (Pa, m, m^3/s).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.sim.flow import (
    RCR,
    Network,
    PressureInlet,
    Segment,
    Stenosis,
    Waveform,
    assemble,
    solve_pulsatile,
    solve_steady,
    virtual_stent,
)
from surgtwin.core.sim.flow_model import ML_M3, MMHG_PA

MU, RHO = 0.0035, 1060.0
R_UNIT = MMHG_PA / ML_M3  # Pa s/m^3 per mmHg s/ml


def poiseuille_mmhg_s_ml(length_mm: float, radius_mm: float) -> float:
    return 8 * MU * length_mm * 1e-3 / (math.pi * (radius_mm * 1e-3) ** 4) / R_UNIT


RD_ONLY = RCR(0.0, 0.0, 1.0)
OUTLET = RCR(0.2, 0.1, 1.0)


def tube(radius_mm=2.0, length_mm=100.0, rcr=RD_ONLY, **kw) -> Network:
    return Network((Segment("tube", None, length_mm, radius_mm, **kw),), {"tube": rcr})


def bifurcation(r1=2.0, r2=2.0, l1=80.0, l2=80.0, bc1=OUTLET, bc2=OUTLET,
                stenosis=None) -> Network:
    segs = (Segment("parent", None, 60.0, 4.0, stenosis=stenosis),
            Segment("left", "parent", l1, r1), Segment("right", "parent", l2, r2))
    return Network(segs, {"left": bc1, "right": bc2})


def sine_wave(mean, amp, period=1.0, n=64) -> Waveform:
    t = np.arange(n) / n
    return Waveform(tuple(mean + amp * np.sin(2 * np.pi * t)), period)


# --- steady -----------------------------------------------------------------------------------

def test_straight_tube_matches_poiseuille():
    q = 5.0
    res = solve_steady(tube(), q)
    expected = poiseuille_mmhg_s_ml(100.0, 2.0) * q  # 8 mu L Q / (pi r^4) = 1.67 mmHg
    drop = res.pressure_drop_mmhg("tube")
    assert drop == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(2.089, abs=1e-3)
    assert res.mean_flow_ml_s[0] == pytest.approx(q, rel=1e-12)
    assert res.mean_pressure_mmhg[0, 1] == pytest.approx(q * 1.0, rel=1e-12)  # outlet: Q Rd


def test_tapered_profile_matches_integral():
    r1, r2, length = 3.0, 2.0, 100.0
    prof = tuple(np.linspace(r1, r2, 401))
    res = solve_steady(tube(radius_mm=r1, radius_profile_mm=prof), 5.0)
    # int_0^L dx / r(x)^4 for linear r: L (r1^2 + r1 r2 + r2^2) / (3 r1^3 r2^3)
    integral_m3 = (length * 1e-3) * ((r1**2 + r1 * r2 + r2**2) * 1e-6) / (
        3 * (r1 * 1e-3) ** 3 * (r2 * 1e-3) ** 3)
    expected = 8 * MU / math.pi * integral_m3 * 5.0 * ML_M3 / MMHG_PA
    assert res.pressure_drop_mmhg("tube") == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("r1,r2,l1,l2,bc1,bc2", [
    (2.0, 2.0, 80.0, 80.0, RCR(0.2, 0.1, 1.0), RCR(0.2, 0.1, 1.0)),
    (1.5, 2.5, 120.0, 60.0, RCR(0.1, 0.1, 0.8), RCR(0.3, 0.05, 3.0, pd_mmhg=0.0)),
])
def test_bifurcation_flow_split_follows_resistance_ratio(r1, r2, l1, l2, bc1, bc2):
    net = bifurcation(r1, r2, l1, l2, bc1, bc2)
    res = solve_steady(net, 10.0)
    rt1 = poiseuille_mmhg_s_ml(l1, r1) + bc1.rp_mmhg_s_ml + bc1.rd_mmhg_s_ml
    rt2 = poiseuille_mmhg_s_ml(l2, r2) + bc2.rp_mmhg_s_ml + bc2.rd_mmhg_s_ml
    q1, q2 = res.mean_flow_ml_s[1], res.mean_flow_ml_s[2]
    assert q1 / q2 == pytest.approx(rt2 / rt1, rel=1e-9)
    assert q1 + q2 == pytest.approx(10.0, rel=1e-12)  # mass conservation at the junction
    if r1 != r2:
        assert q1 / q2 == pytest.approx(1.3695, abs=1e-4)  # the asymmetric case: a real split
    # pressure continuity: both children start at the parent's distal pressure
    p = res.mean_pressure_mmhg
    assert p[1, 0] == p[2, 0] == p[0, 1]


def test_stenosis_drop_matches_young_tsai_by_hand():
    r0, rs, q = 4.0, 1.532, 20.0  # 61.7 % diameter stenosis
    sten = Stenosis(throat_radius_mm=rs)
    res = solve_steady(tube(radius_mm=r0, length_mm=50.0, stenosis=sten), q)
    d0, ds = 2 * r0 * 1e-3, 2 * rs * 1e-3
    a0, as_ = math.pi * (r0 * 1e-3) ** 2, math.pi * (rs * 1e-3) ** 2
    u = q * ML_M3 / a0
    kv = 32 * (0.83 * 2 * d0 + 1.64 * ds) / d0 * (a0 / as_) ** 2
    dp_pa = kv * MU / d0 * u + 1.52 * RHO / 2 * (a0 / as_ - 1) ** 2 * u * u
    expected = dp_pa / MMHG_PA + poiseuille_mmhg_s_ml(50.0, r0) * q
    assert res.pressure_drop_mmhg("tube") == pytest.approx(expected, rel=1e-9)
    assert dp_pa / MMHG_PA == pytest.approx(36.81, abs=0.01)
    assert 0.0 < res.stenosis_pressure_ratio["tube"] < 1.0


def test_stenosis_coefficient_overrides_and_percent():
    s = Stenosis.by_diameter_percent(4.0, 61.7, k_v=0.0, k_t=0.0)
    assert s.throat_radius_mm == pytest.approx(1.532)
    res = solve_steady(tube(radius_mm=4.0, length_mm=50.0, stenosis=s), 20.0)
    assert res.pressure_drop_mmhg("tube") == pytest.approx(
        poiseuille_mmhg_s_ml(50.0, 4.0) * 20.0, rel=1e-9)


def test_virtual_stent_reduces_the_drop():
    net = bifurcation(stenosis=Stenosis(throat_radius_mm=1.5))
    before = solve_steady(net, 30.0)
    partial = solve_steady(virtual_stent(net, "parent", 5.0), 30.0)
    full = solve_steady(virtual_stent(net, "parent", 8.0), 30.0)
    d0, d1, d2 = (r.pressure_drop_mmhg("parent") for r in (before, partial, full))
    assert d0 > d1 > d2
    assert d2 == pytest.approx(poiseuille_mmhg_s_ml(60.0, 4.0) * 30.0, rel=1e-9)
    assert before.stenosis_pressure_ratio["parent"] < partial.stenosis_pressure_ratio["parent"]
    assert "parent" not in full.stenosis_pressure_ratio
    assert net.segment("parent").stenosis.throat_radius_mm == 1.5  # the original is unchanged
    with pytest.raises(SurgtwinError, match="no stenosis"):
        virtual_stent(net, "left", 4.0)
    with pytest.raises(SurgtwinError, match="diameter_mm"):
        virtual_stent(net, "parent", 2.0)


def test_pressure_inlet_consistent_with_flow_inlet():
    net = bifurcation(stenosis=Stenosis(throat_radius_mm=2.0))
    by_flow = solve_steady(net, 12.0)
    p_in = by_flow.mean_pressure_mmhg[0, 0]
    by_p = solve_steady(net, inlet_pressure_mmhg=p_in)
    np.testing.assert_allclose(by_p.mean_flow_ml_s, by_flow.mean_flow_ml_s, rtol=1e-8)
    tr = solve_pulsatile(net, PressureInlet(p_in, period_s=0.5), cycles=6, steps_per_cycle=200)
    np.testing.assert_allclose(tr.mean_flow_ml_s, by_flow.mean_flow_ml_s, rtol=1e-6)


# --- pulsatile --------------------------------------------------------------------------------

def test_windkessel_step_response():
    rp, c, rd, q0 = 0.2, 1.0, 1.0, 10.0  # tau = Rd C = 1 s
    net = tube(radius_mm=5.0, length_mm=10.0, rcr=RCR(rp, c, rd), eh_n_m=1e6)
    res = solve_pulsatile(net, Waveform((q0,), 0.5), cycles=8, steps_per_cycle=500, start="rest")
    t = res.time_s
    rs = poiseuille_mmhg_s_ml(10.0, 5.0)
    analytic = q0 * (rs + rp + rd * (1 - np.exp(-t / (rd * c))))
    late = t > 0.05
    err = np.abs(res.pressure_mmhg[late, 0, 0] - analytic[late]) / analytic[late]
    assert err.max() < 0.01
    assert err.max() < 1e-4  # measured 4e-6
    assert res.pressure_mmhg[-1, 0, 0] == pytest.approx(q0 * (rs + rp + rd * (1 - math.exp(-4))),
                                                        rel=1e-3)


def test_windkessel_sinusoid_response():
    rp, c, rd, q0, q1 = 0.1, 1.0, 1.0, 10.0, 8.0
    net = tube(radius_mm=5.0, length_mm=10.0, rcr=RCR(rp, c, rd), eh_n_m=1e6)
    res = solve_pulsatile(net, sine_wave(q0, q1), cycles=10, steps_per_cycle=500)
    w = 2 * math.pi
    rs = poiseuille_mmhg_s_ml(10.0, 5.0)
    ls = RHO * 10e-3 / (math.pi * 5e-3**2) / R_UNIT  # inductance rho L / (pi r^2), mmHg s^2/ml
    z = rs + 1j * w * ls + rp + rd / (1 + 1j * w * rd * c)
    t = res.time_s[-501:]
    analytic = q0 * (rs + rp + rd) + q1 * abs(z) * np.sin(w * t + np.angle(z))
    err = np.abs(res.pressure_mmhg[-501:, 0, 0] - analytic).max() / (q1 * abs(z))
    assert err < 0.01
    assert err < 1e-3  # measured 1.4e-4


def tree() -> Network:
    segs = (Segment("aorta", None, 150.0, 10.0), Segment("a2", "aorta", 100.0, 8.0),
            Segment("renal_l", "aorta", 30.0, 2.5), Segment("renal_r", "aorta", 40.0, 2.5),
            Segment("iliac_l", "a2", 120.0, 4.0), Segment("iliac_r", "a2", 120.0, 4.5))
    bc = {"renal_l": RCR(0.6, 0.05, 6.0), "renal_r": RCR(0.6, 0.05, 6.0),
          "iliac_l": RCR(0.4, 0.15, 4.0), "iliac_r": RCR(0.4, 0.15, 4.0)}
    return Network(segs, bc)


def test_pulsatile_mean_equals_steady_for_linear_network():
    net = tree()
    wave = sine_wave(50.0, 40.0)
    res = solve_pulsatile(net, wave, cycles=10, steps_per_cycle=400)
    steady = solve_steady(net, 50.0)
    np.testing.assert_allclose(res.mean_flow_ml_s, steady.mean_flow_ml_s, rtol=1e-5)  # 2e-7
    np.testing.assert_allclose(res.mean_pressure_mmhg, steady.mean_pressure_mmhg, rtol=1e-5)


def test_pulsatile_matches_frequency_domain_exact_solution():
    net = tree()
    sysm = assemble(net)
    wave = sine_wave(50.0, 40.0)
    res = solve_pulsatile(net, wave, cycles=12, steps_per_cycle=1000)
    w = 2 * math.pi
    mean = np.linalg.solve(-sysm.a, sysm.b0 + sysm.e_in * 50.0 * ML_M3)
    amp = np.linalg.solve(1j * w * np.diag(sysm.m) - sysm.a, sysm.e_in * (-40j) * ML_M3)
    t = res.time_s[-1001:]
    x = mean[None, :] + np.real(np.outer(np.exp(1j * w * t), amp))
    p_exact = x[:, 1:7] / MMHG_PA  # distal node pressures
    p = res.pressure_mmhg[-1001:, :, 1]
    pulse = p_exact.max(axis=0) - p_exact.min(axis=0)
    assert (np.abs(p - p_exact).max(axis=0) / pulse).max() < 5e-3


def test_mass_conservation_at_junctions():
    net = tree()
    st = solve_steady(net, 50.0)
    q = dict(zip(st.segment_names, st.mean_flow_ml_s, strict=True))
    assert q["aorta"] == pytest.approx(q["a2"] + q["renal_l"] + q["renal_r"], rel=1e-12)
    assert q["a2"] == pytest.approx(q["iliac_l"] + q["iliac_r"], rel=1e-12)
    res = solve_pulsatile(net, sine_wave(50.0, 40.0), cycles=10, steps_per_cycle=400)
    q = dict(zip(res.segment_names, res.mean_flow_ml_s, strict=True))
    assert q["aorta"] == pytest.approx(50.0, rel=1e-4)
    assert q["aorta"] == pytest.approx(q["a2"] + q["renal_l"] + q["renal_r"], rel=1e-4)
    assert q["a2"] == pytest.approx(q["iliac_l"] + q["iliac_r"], rel=1e-4)


def test_pulsatile_stenosis_matches_radau_reference():
    from scipy.integrate import solve_ivp

    net = bifurcation(stenosis=Stenosis(throat_radius_mm=1.5))
    sysm = assemble(net)
    wave = sine_wave(20.0, 25.0)  # reverses flow through the stenosis in part of the cycle
    res = solve_pulsatile(net, wave, cycles=2, steps_per_cycle=1000)

    def rhs(t, x):
        u = wave.at(np.array([t]))[0] * ML_M3
        return (sysm.a @ x + sysm.b0 + sysm.e_in * u - sysm.g(x)) / sysm.m

    def jac(t, x):
        dg = np.zeros(x.size)
        dg[sysm.sten_rows] = 2 * sysm.sten_b * np.abs(x[sysm.sten_rows])
        return (sysm.a - np.diag(dg)) / sysm.m[:, None]

    t_eval = res.time_s[1000::50]
    ref = solve_ivp(rhs, (0.0, 2.0), _steady_x(net, 20.0), method="Radau", jac=jac, rtol=1e-7, atol=1e-12,
                    t_eval=t_eval)
    drop_ref = (ref.y[0] - ref.y[1]) / MMHG_PA
    drop = res.pressure_mmhg[1000::50, 0, 0] - res.pressure_mmhg[1000::50, 0, 1]
    assert np.min(res.flow_ml_s[:, 0]) < 0  # the reversal happened
    err = np.abs(drop - drop_ref).max() / np.abs(drop_ref).max()
    assert err < 1e-3  # measured 1.4e-5


def _steady_x(net: Network, q: float) -> np.ndarray:
    st = solve_steady(net, q)
    sysm = assemble(net)
    n_nodes = len(net.segments) + 1
    x = np.zeros(sysm.m.size)
    x[0] = st.pressure_mmhg[0, 0, 0] * MMHG_PA
    x[1:n_nodes] = st.pressure_mmhg[0, :, 1] * MMHG_PA
    x[n_nodes:2 * n_nodes - 1] = st.flow_ml_s[0] * ML_M3
    for k, (name, bc) in enumerate(net.outlets.items()):
        i = [s.name for s in net.segments].index(name)
        rp, _, _, _ = bc.si()
        x[2 * n_nodes - 1 + k] = x[i + 1] - rp * x[n_nodes + i]
    return x


def test_waveform_interpolates_its_samples():
    q = np.array([1.0, 5.0, 2.0, -1.0, 0.5])
    w = Waveform(tuple(q), 0.8)
    np.testing.assert_allclose(w.at(np.arange(5) * 0.16), q, atol=1e-12)
    np.testing.assert_allclose(w.at(np.arange(5) * 0.16 + 0.8), q, atol=1e-12)
    assert w.mean_ml_s == pytest.approx(1.5)
    w2 = Waveform((0.0, 2.0, 0.0, -2.0), 1.0)
    np.testing.assert_allclose(w2.at(np.array([0.0, 0.25, 0.5])), [0.0, 2.0, 0.0], atol=1e-12)


# --- validation -------------------------------------------------------------------------------

@pytest.mark.parametrize("make,field", [
    (lambda: Segment("a", None, 10.0, -1.0), "radius_mm"),
    (lambda: Segment("a", None, 0.0, 1.0), "length_mm"),
    (lambda: Segment("a", None, 10.0, 2.0, stenosis=Stenosis(2.5)), "throat_radius_mm"),
    (lambda: Segment("a", None, 10.0, 2.0, radius_profile_mm=(1.0,)), "radius_profile_mm"),
    (lambda: RCR(0.1, 1.0, 0.0), "rd_mmhg_s_ml"),
    (lambda: RCR(-0.1, 1.0, 1.0), "rp_mmhg_s_ml"),
    (lambda: Waveform((), 1.0), "flow_ml_s"),
    (lambda: Waveform((1.0,), 0.0), "period_s"),
    (lambda: Network((Segment("a", None, 10, 2), Segment("b", None, 10, 2)),
                     {"a": RCR(0, 0, 1), "b": RCR(0, 0, 1)}), "roots"),
    (lambda: Network((Segment("b", "a", 10, 2), Segment("a", None, 10, 2)),
                     {"b": RCR(0, 0, 1)}), "parent"),
    (lambda: Network((Segment("a", None, 10, 2), Segment("b", "a", 10, 2)), {}), "outlets"),
    (lambda: solve_steady(tube(), float("nan")), "finite"),
    (lambda: solve_steady(tube()), "exactly one"),
    (lambda: solve_pulsatile(tube(), Waveform((1.0,), 1.0), cycles=0), "cycles"),
    (lambda: solve_pulsatile(tube(), 5.0), "inlet"),
])
def test_bad_input_names_the_field(make, field):
    with pytest.raises(SurgtwinError, match=field):
        make()
