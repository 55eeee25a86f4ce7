"""The vectorised P1 elasticity assembly equals scikit-fem's ``asm``; the AMG-CG solve equals SuperLU."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.sim.elasticity import (
    assemble_stiffness,
    element_strains,
    element_stresses,
    rigid_body_modes,
    shape_gradients,
    skfem_stiffness,
    solve_elasticity,
    stiffness_pattern,
    strain_energy_density,
    von_mises,
)
from surgtwin.core.sim.loads import node_dofs
from tests.core.sim.meshes import box


def _skfem_stiffness(mesh, e_mpa, nu):
    """scikit-fem's assembly (``linear_elasticity`` for constants, the same form per element otherwise),
    whose vector dofs are interleaved by node like ours."""
    from skfem import Basis, ElementTetP1, ElementVector

    basis = Basis(mesh.to_skfem(), ElementVector(ElementTetP1()))
    assert np.array_equal(basis.nodal_dofs, node_dofs(np.arange(len(mesh.nodes))).reshape(-1, 3).T)
    return skfem_stiffness(mesh.nodes, mesh.elements, e_mpa, nu)


def _distorted_box(seed=0):
    rng = np.random.default_rng(seed)
    m = box(np.linspace(0, 3, 5), np.linspace(0, 2, 4), np.linspace(0, 1.5, 4))
    m.nodes = m.nodes + rng.uniform(-0.08, 0.08, m.nodes.shape)  # a general (non-lattice) geometry
    return m


def _rel(a, b) -> float:
    return float(abs(a - b).max() / abs(b).max())


def test_equals_skfem_homogeneous():
    m = _distorted_box()
    k = assemble_stiffness(m.nodes, m.elements, 17_000.0, 0.3)
    ks = _skfem_stiffness(m, 17_000.0, 0.3)
    assert k.shape == ks.shape == (3 * len(m.nodes),) * 2
    assert _rel(k, ks) < 1e-10


def test_equals_skfem_heterogeneous_and_with_a_reused_pattern():
    m = _distorted_box(1)
    rng = np.random.default_rng(2)
    e = rng.uniform(5.0, 110_000.0, len(m.elements))
    nu = rng.uniform(0.2, 0.4, len(m.elements))
    ks = _skfem_stiffness(m, e, nu)
    pattern = stiffness_pattern(m.elements, len(m.nodes))
    for k in (assemble_stiffness(m.nodes, m.elements, e, nu),
              assemble_stiffness(m.nodes, m.elements, e, nu, pattern=pattern),
              assemble_stiffness(m.nodes, m.elements, e, nu, pattern=pattern, fmt="bsr").tocsr()):
        assert _rel(k, ks) < 1e-10
        assert abs(k - k.T).max() < 1e-9 * abs(k).max()


def test_either_orientation_and_degenerate_refused():
    m = _distorted_box()
    flipped = m.elements[:, [0, 2, 1, 3]]
    a = assemble_stiffness(m.nodes, m.elements, 1000.0, 0.25)
    b = assemble_stiffness(m.nodes, flipped, 1000.0, 0.25)
    assert _rel(a, b) < 1e-12
    flat = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0.0]])
    with pytest.raises(SurgtwinError, match="zero volume"):
        assemble_stiffness(flat, np.array([[0, 1, 2, 3]]), 1000.0, 0.3)
    with pytest.raises(SurgtwinError, match="out of range"):
        assemble_stiffness(m.nodes, m.elements, -1.0, 0.3)


def test_rigid_body_modes_are_the_null_space():
    m = _distorted_box()
    k = assemble_stiffness(m.nodes, m.elements, 1000.0, 0.3)
    b = rigid_body_modes(m.nodes)
    assert np.linalg.matrix_rank(b) == 6
    assert abs(k @ b).max() < 1e-9 * abs(k).max()


def _heterogeneous_problem(n=6):
    m = box(np.linspace(0, 40, 4 * n + 1), np.linspace(0, 10, n + 1), np.linspace(0, 10, n + 1))
    c = m.nodes[m.elements].mean(axis=1)
    e = np.where(np.linalg.norm(c[:, 1:] - 5.0, axis=1) < 2.5, 110_000.0, 20.0 + 400.0 * c[:, 0])  # a stiff core
    k = assemble_stiffness(m.nodes, m.elements, e, 0.3)
    fixed = node_dofs(np.flatnonzero(m.nodes[:, 0] < 1e-9))
    f = np.zeros((len(m.nodes), 3))
    end = np.flatnonzero(m.nodes[:, 0] > 40 - 1e-9)
    f[end] = [30.0, -100.0, 250.0]
    return m, k, f.ravel(), fixed


def test_amg_cg_matches_the_direct_solve():
    m, k, f, fixed = _heterogeneous_problem()
    u_amg, info = solve_elasticity(k, f, fixed, m.nodes, rtol=1e-9)
    u_lu, info_lu = solve_elasticity(k, f, fixed, m.nodes, method="direct")
    assert info.method == "pyamg-sa-cg" and info_lu.method == "superlu"
    assert info.residual <= 1e-9  # the true residual, computed after the solve
    assert np.linalg.norm(u_amg - u_lu) / np.linalg.norm(u_lu) < 1e-6
    assert np.all(u_amg[fixed] == 0) and np.all(u_lu[fixed] == 0)
    # the equations hold at the free dofs: K u = f
    free = np.setdiff1d(np.arange(len(f)), fixed)
    assert np.linalg.norm((k @ u_amg - f)[free]) / np.linalg.norm(f) < 1e-8


def test_block_and_csr_eliminations_agree():
    from surgtwin.core.sim.elasticity import apply_dirichlet

    m, k, f, fixed = _heterogeneous_problem(3)
    kb = assemble_stiffness(m.nodes, m.elements, np.full(len(m.elements), 500.0), 0.3, fmt="bsr")
    a_csr, b_csr = apply_dirichlet(kb.tocsr(), f, fixed[::2], np.linspace(0, 1, len(fixed[::2])))
    a_bsr, b_bsr = apply_dirichlet(kb, f, fixed[::2], np.linspace(0, 1, len(fixed[::2])))
    assert a_bsr.format == "bsr" and a_csr.format == "csr"
    assert abs(a_bsr.tocsr() - a_csr).max() < 1e-12 * abs(a_csr).max() and np.allclose(b_bsr, b_csr)
    u1, _ = solve_elasticity(kb, f, fixed[::2], m.nodes, fixed_values=np.linspace(0, 1, len(fixed[::2])))
    u2, _ = solve_elasticity(kb.tocsr(), f, fixed[::2], m.nodes, fixed_values=np.linspace(0, 1, len(fixed[::2])),
                             method="direct")
    assert np.linalg.norm(u1 - u2) / np.linalg.norm(u2) < 1e-6


def test_prescribed_displacements():
    m = box(np.linspace(0, 10, 6), np.linspace(0, 2, 3), np.linspace(0, 2, 3))
    k = assemble_stiffness(m.nodes, m.elements, 1000.0, 0.0)
    left = np.flatnonzero(m.nodes[:, 0] < 1e-9)
    right = np.flatnonzero(m.nodes[:, 0] > 10 - 1e-9)
    fixed = np.r_[node_dofs(left), 3 * right]
    values = np.r_[np.zeros(3 * len(left)), np.full(len(right), 0.1)]
    u, _ = solve_elasticity(k, np.zeros(k.shape[0]), fixed, m.nodes, fixed_values=values)
    # a uniform stretch of 1 %: u_x = 0.01 x everywhere (nu = 0)
    assert np.allclose(u.reshape(-1, 3)[:, 0], 0.01 * m.nodes[:, 0], atol=1e-8)


def test_unsupported_body_refused():
    m, k, f, _ = _heterogeneous_problem(2)
    with pytest.raises(SurgtwinError, match="move freely"):
        solve_elasticity(k, f, np.array([], int), m.nodes)


def test_fields_of_a_uniform_stress_state():
    m = _distorted_box()
    e, nu, s = 2000.0, 0.3, 4.0  # uniaxial stress s along x: u = (s/E x, -nu s/E y, -nu s/E z)
    u = np.column_stack([s / e * m.nodes[:, 0], -nu * s / e * m.nodes[:, 1], -nu * s / e * m.nodes[:, 2]])
    g, _ = shape_gradients(m.nodes, m.elements)
    strain = element_strains(g, m.elements, u.ravel())
    stress = element_stresses(strain, e, nu)
    assert np.allclose(stress[:, 0, 0], s) and np.allclose(stress[:, 1:, 1:], 0, atol=1e-12)
    assert np.allclose(von_mises(stress), s)
    assert np.allclose(strain_energy_density(stress, strain), s * s / (2 * e))
