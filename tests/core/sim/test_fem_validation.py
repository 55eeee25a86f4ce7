"""Analytic validation of the FE core (P1 tetrahedra, AMG-CG), with the numbers.

* cantilever (Timoshenko beam, L/h = 5, nu = 0): tip deflection error 17.7 % -> 5.1 % -> 1.3 % at
  4, 8, 16 elements through the depth (second order: each halving of h cuts it ~3.5-4x);
* axially loaded bar (roller supports, a uniform stress state): exact for P1 (error < 1e-8);
* two-material bar vs springs in series, moduli from CT numbers through ``BoneMaterial``;
* Lame thick-walled cylinder under internal pressure, plane strain (8 x 24 elements across x around):
  radial stress -0.6 %, hoop stress +0.3 % at mid-thickness, inner-wall radial displacement -0.8 %
  (4 x 12: -2.3, +1.3, -3.0 %; 16 x 48: -0.16, +0.07, -0.20 %).
"""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.sim.elasticity import (
    assemble_stiffness,
    element_strains,
    element_stresses,
    shape_gradients,
    solve_elasticity,
)
from surgtwin.core.sim.loads import node_dofs, pressure_on_faces, traction_on_faces
from surgtwin.core.sim.materials import BoneMaterial, DensityCalibration
from tests.core.sim.meshes import box, faces_where, quarter_annulus


def _solve(mesh, e, nu, forces, fixed_dofs):
    k = assemble_stiffness(mesh.nodes, mesh.elements, e, nu)
    u, info = solve_elasticity(k, forces.ravel(), fixed_dofs, mesh.nodes, rtol=1e-10)
    assert info.residual <= 1e-10
    return u.reshape(-1, 3)


# -- cantilever -------------------------------------------------------------------------------------
L_BEAM, H_BEAM, E_BEAM, P_TIP = 50.0, 10.0, 10_000.0, 100.0


def cantilever_tip_error(n: int) -> float:
    """Relative error of the mean tip deflection of a clamped L x h x h beam (half model: the plane
    y = 0 is a symmetry plane) under a tip shear load, vs Timoshenko's P L^3 / (3 E I) + P L / (k G A)."""
    h = H_BEAM
    m = box(np.linspace(0, L_BEAM, 5 * n + 1), np.linspace(0, h / 2, n // 2 + 1), np.linspace(0, h, n + 1))
    end = faces_where(m, lambda p: np.isclose(p[:, 0], L_BEAM))
    f = traction_on_faces(len(m.nodes), m.nodes, end, [0.0, 0.0, -P_TIP / 2])
    clamp = node_dofs(np.flatnonzero(np.isclose(m.nodes[:, 0], 0.0)))
    sym = 3 * np.flatnonzero(np.isclose(m.nodes[:, 1], 0.0)) + 1
    u = _solve(m, E_BEAM, 0.0, f, np.r_[clamp, sym])
    tip = -u[np.isclose(m.nodes[:, 0], L_BEAM), 2].mean()
    inertia, g, area = h ** 4 / 12, E_BEAM / 2.0, h * h
    ref = P_TIP * L_BEAM ** 3 / (3 * E_BEAM * inertia) + P_TIP * L_BEAM / (5.0 / 6.0 * g * area)
    return (tip - ref) / ref


def test_cantilever_converges_to_timoshenko():
    errors = {n: cantilever_tip_error(n) for n in (4, 8, 16)}
    assert errors[4] == pytest.approx(-0.177, abs=0.01)  # P1 tetrahedra are stiff in bending
    assert abs(errors[8]) < abs(errors[4]) / 3 and abs(errors[16]) < abs(errors[8]) / 3
    assert abs(errors[16]) <= 0.02, errors


# -- bars -------------------------------------------------------------------------------------------
def _bar_supports(m):
    """Roller supports: u_x = 0 on x = 0, u_y = 0 on y = 0, u_z = 0 on z = 0 (free lateral contraction)."""
    n = m.nodes
    return np.r_[3 * np.flatnonzero(np.isclose(n[:, 0], 0)), 3 * np.flatnonzero(np.isclose(n[:, 1], 0)) + 1,
                 3 * np.flatnonzero(np.isclose(n[:, 2], 0)) + 2]


def test_axially_loaded_bar():
    length, a, e, nu, p = 100.0, 10.0, 17_000.0, 0.3, 2000.0
    m = box(np.linspace(0, length, 21), np.linspace(0, a, 3), np.linspace(0, a, 3))
    end = faces_where(m, lambda q: np.isclose(q[:, 0], length))
    u = _solve(m, e, nu, traction_on_faces(len(m.nodes), m.nodes, end, [p, 0, 0]), _bar_supports(m))
    elongation = u[np.isclose(m.nodes[:, 0], length), 0]
    ref = p * length / (e * a * a)
    assert np.max(np.abs(elongation - ref)) / ref < 1e-8
    # lateral contraction nu * strain, and the stress P / A in every element
    assert u[:, 1].min() == pytest.approx(-nu * p / (e * a * a) * a, rel=1e-8)
    g, _ = shape_gradients(m.nodes, m.elements)
    s = element_stresses(element_strains(g, m.elements, u.ravel()), e, nu)
    assert np.allclose(s[:, 0, 0], p / (a * a), rtol=1e-8)


def test_two_material_bar_against_springs_in_series():
    """Two bone densities along a bar (CT numbers 300 and 1200 HU) -> moduli from the calibration and
    Morgan 2003's femoral-neck law -> elongation of two springs in series, P (L1/E1 + L2/E2) / A."""
    l1, l2, a, p = 30.0, 50.0, 8.0, 1500.0
    m = box(np.linspace(0, l1 + l2, 17), np.linspace(0, a, 3), np.linspace(0, a, 3))
    cx = m.nodes[m.elements].mean(axis=1)[:, 0]
    hu = np.where(cx < l1, 300.0, 1200.0)
    bone = BoneMaterial(DensityCalibration(0.0, 0.001))
    e = bone.modulus_mpa(hu)
    e1, e2 = 6850.0 * 0.3 ** 1.49, 6850.0 * 1.2 ** 1.49  # by hand
    assert e[cx < l1][0] == pytest.approx(e1, rel=1e-12) and e[cx > l1][0] == pytest.approx(e2, rel=1e-12)
    end = faces_where(m, lambda q: np.isclose(q[:, 0], l1 + l2))
    # nu = 0: the two parts contract alike, so the state is uniaxial and the spring model exact
    u = _solve(m, e, 0.0, traction_on_faces(len(m.nodes), m.nodes, end, [p, 0, 0]), _bar_supports(m))
    ref = p / (a * a) * (l1 / e1 + l2 / e2)
    assert u[np.isclose(m.nodes[:, 0], l1 + l2), 0] == pytest.approx(np.full(9, ref), rel=1e-8)
    at_interface = u[np.isclose(m.nodes[:, 0], l1), 0]
    assert at_interface == pytest.approx(np.full(9, p / (a * a) * l1 / e1), rel=1e-8)


# -- Lame cylinder ----------------------------------------------------------------------------------
def test_lame_thick_walled_cylinder_plane_strain():
    """Quarter tube a = 10, b = 20 mm under p = 10 MPa inside; symmetry planes x = 0 and y = 0 and
    u_z = 0 on both ends (plane strain, exact in 3D). sigma_r = A - B / r^2, sigma_t = A + B / r^2 with
    A = p a^2 / (b^2 - a^2), B = p a^2 b^2 / (b^2 - a^2); compared at mid-thickness (the mean over the
    two element layers either side of r = 15 mm, which have the same number of elements)."""
    a, b, p, e, nu = 10.0, 20.0, 10.0, 200_000.0, 0.3
    m = quarter_annulus(a, b, 4.0, nr=8, nt=24, nz=1)  # every node on an end: u_z = 0 throughout
    n = m.nodes
    inner = faces_where(m, lambda q: np.isclose(np.hypot(q[:, 0], q[:, 1]), a))
    f = pressure_on_faces(len(n), n, inner, p)
    fixed = np.r_[3 * np.flatnonzero(np.isclose(n[:, 0], 0, atol=1e-9)),
                  3 * np.flatnonzero(np.isclose(n[:, 1], 0, atol=1e-9)) + 1,
                  3 * np.flatnonzero(np.isclose(n[:, 2], 0) | np.isclose(n[:, 2], 4.0)) + 2]
    u = _solve(m, e, nu, f, fixed)
    g, _ = shape_gradients(n, m.elements)
    s = element_stresses(element_strains(g, m.elements, u.ravel()), e, nu)
    c = n[m.elements].mean(axis=1)
    r = np.hypot(c[:, 0], c[:, 1])
    er = np.column_stack([c[:, 0] / r, c[:, 1] / r, np.zeros_like(r)])
    et = np.column_stack([-c[:, 1] / r, c[:, 0] / r, np.zeros_like(r)])
    s_r = np.einsum("mi,mij,mj->m", er, s, er)
    s_t = np.einsum("mi,mij,mj->m", et, s, et)
    rm, dr = 0.5 * (a + b), (b - a) / 8
    band = np.abs(r - rm) < dr  # the two layers either side of r = 15 mm
    big_a, big_b = p * a * a / (b * b - a * a), p * a * a * b * b / (b * b - a * a)
    assert s_r[band].mean() == pytest.approx(big_a - big_b / rm ** 2, rel=0.02)
    assert s_t[band].mean() == pytest.approx(big_a + big_b / rm ** 2, rel=0.02)
    # inner-wall radial displacement, plane strain: u = (1 + nu) / E ((1 - 2 nu) A r + B / r)
    ur = np.hypot(u[:, 0], u[:, 1])[np.isclose(np.hypot(n[:, 0], n[:, 1]), a)]
    assert ur.mean() == pytest.approx((1 + nu) / e * ((1 - 2 * nu) * big_a * a + big_b / a), rel=0.02)
