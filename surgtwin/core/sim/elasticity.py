"""Linear elasticity on P1 tetrahedra: vectorised assembly, AMG-CG solve, stress and energy.

Units: lengths in mm, forces in N, moduli and stresses in MPa (N/mm^2), strain energy density in
MPa (= mJ/mm^3 = MJ/m^3). Degrees of freedom are interleaved by node, ``3 * node + component``
(x, y, z = L, P, S in LPS), the order of scikit-fem's ``ElementVector(ElementTetP1())``.

Assembly (``assemble_stiffness``): the element stiffness of an isotropic material with Lame
parameters (lam, mu) on a linear tetrahedron of volume V with constant shape-function gradients g_a is

    K[a i, b j] = V (lam g_a,i g_b,j + mu (g_a,j g_b,i + delta_ij g_a . g_b)).

The node pairs (a, b) of all elements are numbered once (``StiffnessPattern``: one sort of M x 16
integer keys); each of the 9 (i, j) components is then computed for all elements at once with numpy
broadcasting and summed into the 3x3 blocks with ``np.bincount`` (block-sparse, BSR, converted to
CSR). It equals scikit-fem's ``asm`` of ``skfem.models.elasticity.linear_elasticity`` to round-off
(tests/core/sim) and is an order of magnitude faster.

Solve (``solve_elasticity``): Dirichlet degrees of freedom are eliminated symmetrically (their rows
and columns zeroed, the diagonal set to the mean diagonal, the right-hand side to diagonal x value),
so the system keeps its size and node blocks. Conjugate gradients preconditioned with pyamg smoothed
aggregation (3x3 node blocks, strength threshold 0.05, symmetric Gauss-Seidel, no candidate
smoothing) whose near-null space is the six rigid-body modes (three translations, three rotations;
zero at fixed dofs), to a relative residual ``rtol`` (default 1e-9, far below pyamg's
default, which left answers ~2 % off). The true residual ||f - K u|| / ||f|| is computed after the
solve and returned; a solve that does not reach ``rtol`` raises ``SurgtwinError``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import CancelToken, ProgressFn, check, report


def lame(e_mpa, nu):
    """Lame parameters (lam, mu) in MPa from Young's modulus and Poisson's ratio (arrays allowed)."""
    e_mpa = np.asarray(e_mpa, dtype=float)
    nu = np.asarray(nu, dtype=float)
    if not (np.all(np.isfinite(e_mpa)) and np.all(e_mpa > 0)) or np.any(nu <= -1.0) or np.any(nu >= 0.5):
        raise SurgtwinError("elastic constants out of range: need finite E > 0 and -1 < nu < 0.5")
    lam = e_mpa * nu / ((1.0 + nu) * (1.0 - 2.0 * nu))
    mu = e_mpa / (2.0 * (1.0 + nu))
    return lam, mu


def shape_gradients(nodes: np.ndarray, elements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(G, V)``: per-element gradients of the four barycentric shape functions ``G`` (M, 4, 3) in
    1/mm and element volumes ``V`` (M,) in mm^3 (either orientation; degenerate elements refused)."""
    p = np.asarray(nodes, float)[elements]
    d1, d2, d3 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]
    c23, c31, c12 = np.cross(d2, d3), np.cross(d3, d1), np.cross(d1, d2)
    det = np.einsum("ij,ij->i", d1, c23)
    scale = (np.einsum("ij,ij->i", d1, d1) + np.einsum("ij,ij->i", d2, d2) + np.einsum("ij,ij->i", d3, d3)) ** 1.5
    bad = np.abs(det) <= 1e-10 * scale
    if np.any(bad):
        raise SurgtwinError(f"{int(bad.sum())} tetrahedra have (nearly) zero volume; the mesh cannot be solved",
                            hint="rebuild the tet mesh (a coarser element size or smoother labels)")
    g = np.empty((len(p), 4, 3))
    g[:, 1], g[:, 2], g[:, 3] = c23 / det[:, None], c31 / det[:, None], c12 / det[:, None]
    g[:, 0] = -(g[:, 1] + g[:, 2] + g[:, 3])
    return g, np.abs(det) / 6.0


@dataclass(frozen=True, eq=False)
class StiffnessPattern:
    """The node-pair (3x3 block) sparsity of a tet mesh: ``inverse`` maps each element's 16 (a, b)
    node pairs to a block, ``rows``/``cols`` give each block's nodes, ``transpose`` the block (b, a)."""

    n_nodes: int
    inverse: np.ndarray  # (M * 16,)
    rows: np.ndarray
    cols: np.ndarray
    indptr: np.ndarray
    transpose: np.ndarray

    @property
    def n_blocks(self) -> int:
        return len(self.rows)


def stiffness_pattern(elements: np.ndarray, n_nodes: int) -> StiffnessPattern:
    """The block sparsity of ``elements`` (M, 4) over ``n_nodes`` nodes (reuse it for several
    materials on one mesh: intact and implanted)."""
    el = np.asarray(elements, dtype=np.int64)
    a = np.repeat(el, 4, axis=1).ravel()
    b = np.tile(el, (1, 4)).ravel()
    key = a * n_nodes + b
    if n_nodes * n_nodes < 2**31:  # int32 keys sort faster
        key = key.astype(np.int32)
    uniq, inverse = np.unique(key, return_inverse=True)
    uniq = uniq.astype(np.int64)
    rows = uniq // n_nodes
    cols = uniq - rows * n_nodes
    indptr = np.zeros(n_nodes + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n_nodes), out=indptr[1:])
    transpose = np.searchsorted(uniq, cols * n_nodes + rows)
    return StiffnessPattern(int(n_nodes), inverse.ravel(), rows, cols, indptr, transpose)


def assemble_stiffness(nodes: np.ndarray, elements: np.ndarray, e_mpa, nu=0.3, *,
                       pattern: StiffnessPattern | None = None, fmt: str = "csr"):
    """Global stiffness (3N x 3N, N/mm) of P1 linear elasticity with per-element ``e_mpa`` and ``nu``
    (scalars or (M,) arrays). ``fmt``: ``"csr"`` or ``"bsr"`` (3x3 node blocks)."""
    import scipy.sparse as sp

    nodes = np.asarray(nodes, dtype=float)
    elements = np.asarray(elements, dtype=np.int64)
    m, n = len(elements), len(nodes)
    lam, mu = lame(np.broadcast_to(e_mpa, (m,)), np.broadcast_to(nu, (m,)))
    if pattern is None:
        pattern = stiffness_pattern(elements, n)
    elif pattern.n_nodes != n or len(pattern.inverse) != 16 * m:
        raise SurgtwinError("the stiffness pattern was made for another mesh")
    g, vol = shape_gradients(nodes, elements)
    gt = np.ascontiguousarray(g.transpose(2, 0, 1))  # (3, M, 4)
    lv, mv = (lam * vol)[:, None], (mu * vol)[:, None]
    dots = np.einsum("mai,mbi->mab", g, g) * mv[:, :, None]
    nb = pattern.n_blocks
    data = np.empty((nb, 3, 3))
    for i in range(3):
        for j in range(i, 3):
            s = (lv * gt[i])[:, :, None] * gt[j][:, None, :]
            s += (mv * gt[j])[:, :, None] * gt[i][:, None, :]
            if i == j:
                s += dots
            data[:, i, j] = np.bincount(pattern.inverse, weights=s.ravel(), minlength=nb)
            if i != j:  # K[b j, a i] = K[a i, b j]
                data[:, j, i] = data[pattern.transpose, i, j]
    k = sp.bsr_matrix((data, pattern.cols, pattern.indptr), shape=(3 * n, 3 * n))
    if fmt == "bsr":
        return k
    if fmt != "csr":
        raise SurgtwinError(f"unknown matrix format {fmt!r}", hint="use 'csr' or 'bsr'")
    out = k.tocsr()
    out.sort_indices()
    return out


def skfem_stiffness(nodes: np.ndarray, elements: np.ndarray, e_mpa, nu=0.3):
    """The same stiffness by scikit-fem's ``asm`` (the reference the fast assembly is checked against,
    and its baseline in scripts/bench/fem_bench.py): ``skfem.models.elasticity.linear_elasticity`` for
    scalar constants, the same bilinear form with per-element Lame parameters otherwise. CSR."""
    from skfem import Basis, BilinearForm, ElementTetP1, ElementVector, MeshTet, asm
    from skfem.helpers import ddot, eye, sym_grad, trace
    from skfem.models.elasticity import linear_elasticity

    mesh = MeshTet(np.ascontiguousarray(np.asarray(nodes, float).T), np.ascontiguousarray(np.asarray(elements).T))
    basis = Basis(mesh, ElementVector(ElementTetP1()))
    if np.ndim(e_mpa) == 0 and np.ndim(nu) == 0:
        return asm(linear_elasticity(*(float(v) for v in lame(e_mpa, nu))), basis).tocsr()

    @BilinearForm
    def hetero(u, v, w):
        eps = sym_grad(u)
        return ddot(2.0 * w.mu * eps + w.lam * eye(trace(eps), 3), sym_grad(v))

    m = len(elements)
    lam, mu = lame(np.broadcast_to(e_mpa, (m,)), np.broadcast_to(nu, (m,)))
    nqp = basis.X.shape[1]
    return asm(hetero, basis, lam=np.repeat(lam[:, None], nqp, 1), mu=np.repeat(mu[:, None], nqp, 1)).tocsr()


def rigid_body_modes(nodes: np.ndarray) -> np.ndarray:
    """(3N, 6) rigid-body displacement modes (3 translations, 3 rotations about the centroid)."""
    x = np.asarray(nodes, float) - np.mean(nodes, axis=0)
    x = x / max(float(np.abs(x).max()), 1e-12)
    n = len(x)
    b = np.zeros((n, 3, 6))
    for c in range(3):
        b[:, c, c] = 1.0
    b[:, 1, 3], b[:, 2, 3] = -x[:, 2], x[:, 1]  # rotation about x: e_x cross r
    b[:, 0, 4], b[:, 2, 4] = x[:, 2], -x[:, 0]  # about y
    b[:, 0, 5], b[:, 1, 5] = -x[:, 1], x[:, 0]  # about z
    return b.reshape(3 * n, 6)


@dataclass
class SolveInfo:
    """How a solve went: method, CG iterations, the true relative residual, timings (s)."""

    method: str
    iterations: int
    residual: float
    setup_s: float
    solve_s: float

    def as_dict(self) -> dict:
        return {"method": self.method, "iterations": self.iterations, "relative_residual": float(self.residual),
                "setup_s": round(self.setup_s, 3), "solve_s": round(self.solve_s, 3)}


def apply_dirichlet(k, f: np.ndarray, fixed_dofs, fixed_values=None):
    """``(A, b)``: ``k`` with the ``fixed_dofs`` eliminated symmetrically (same size: their rows and
    columns zero, the diagonal the mean diagonal ``d``), ``b = f - K u0`` with ``b = d * u0`` there.
    A 3x3-block (BSR) ``k`` stays BSR (its blocks are scaled in place in a copy); anything else
    becomes CSR."""
    import scipy.sparse as sp

    n = k.shape[0]
    fixed = np.asarray(fixed_dofs, dtype=np.int64).ravel()
    u0 = np.zeros(n)
    if fixed_values is not None:
        u0[fixed] = np.asarray(fixed_values, float).ravel()
    free = np.ones(n)
    free[fixed] = 0.0
    rhs = np.asarray(f, float).ravel() - (k @ u0 if np.any(u0) else 0.0)
    if sp.issparse(k) and k.format == "bsr" and k.blocksize == (3, 3):
        k.sort_indices()
        rows = np.repeat(np.arange(n // 3), np.diff(k.indptr))
        diag_blocks = np.flatnonzero(rows == k.indices)
        if len(diag_blocks) != n // 3:
            raise SurgtwinError("the stiffness matrix lacks a diagonal block (a node in no element?)")
        dscale = float(np.mean(np.abs(k.data[diag_blocks][:, [0, 1, 2], [0, 1, 2]])))
        fb = free.reshape(-1, 3)
        data = k.data * fb[rows][:, :, None] * fb[k.indices][:, None, :]
        data[diag_blocks, [[0], [1], [2]], [[0], [1], [2]]] += (dscale * (1.0 - fb)).T
        a = sp.bsr_matrix((data, k.indices, k.indptr), shape=k.shape)
    else:
        k = k.tocsr()
        dscale = float(np.mean(np.abs(k.diagonal())))
        a = k.copy()
        rows = np.repeat(np.arange(n), np.diff(a.indptr))
        a.data *= free[rows] * free[a.indices]
        a = (a + sp.diags(dscale * (1.0 - free))).tocsr()
        a.eliminate_zeros()
        a.sort_indices()
    rhs = np.where(free > 0, rhs, dscale * u0)
    return a, rhs


def solve_elasticity(k, f: np.ndarray, fixed_dofs, nodes: np.ndarray, *, fixed_values=None,
                     rtol: float = 1e-9, maxiter: int = 5000, method: str = "amg",
                     progress: ProgressFn | None = None, cancel: CancelToken | None = None):
    """Solve ``K u = f`` with ``u[fixed_dofs] = fixed_values`` (default 0). ``method``: ``"amg"``
    (pyamg smoothed aggregation + CG, rigid-body near-null space) or ``"direct"`` (SuperLU on the
    same eliminated system). Returns the displacement (3N,) and a ``SolveInfo`` (true residual)."""
    fixed = np.unique(np.asarray(fixed_dofs, dtype=np.int64))
    if len(fixed) == 0:
        raise SurgtwinError("no fixed degrees of freedom: the body could move freely",
                            hint="fix some nodes (a support) before solving")
    t0 = time.perf_counter()
    a, b = apply_dirichlet(k, f, fixed_dofs, fixed_values)
    check(cancel)
    if method == "direct":
        import scipy.sparse.linalg as spla

        report(progress, 0.1, "direct solve (SuperLU)")
        t1 = time.perf_counter()
        u = spla.spsolve(a.tocsc(), b)
        setup, solve, its, name = t1 - t0, time.perf_counter() - t1, 1, "superlu"
    elif method == "amg":
        u, setup, solve, its = amg_cg(a, b, nodes, fixed, rtol=rtol, maxiter=maxiter, progress=progress,
                                      cancel=cancel)
        name = "pyamg-sa-cg"
    else:
        raise SurgtwinError(f"unknown solver {method!r}", hint="use 'amg' or 'direct'")
    bn = float(np.linalg.norm(b)) or 1.0
    res = float(np.linalg.norm(b - a @ u)) / bn
    if not res <= (rtol if method == "amg" else 1e-6):
        raise SurgtwinError(f"the solver did not converge (relative residual {res:.2e} after {its} iterations, "
                            f"asked {rtol:.0e})", hint="check that the supports hold the body; or use a cleaner mesh")
    report(progress, 1.0, f"solved ({its} iterations, residual {res:.1e})")
    return u, SolveInfo(name, its, res, setup, solve)


def amg_cg(a, b: np.ndarray, nodes: np.ndarray, fixed_dofs: np.ndarray, *, rtol: float = 1e-9,
           maxiter: int = 5000, progress: ProgressFn | None = None, cancel: CancelToken | None = None):
    """CG on SPD ``a`` preconditioned by pyamg smoothed aggregation (rigid-body near-null space).
    Returns ``(x, setup_s, solve_s, iterations)``; iterates until the true residual is below ``rtol``."""
    import pyamg
    import scipy.sparse.linalg as spla

    t0 = time.perf_counter()
    bmodes = rigid_body_modes(nodes)
    bmodes[fixed_dofs] = 0.0
    if a.shape[0] % 3 == 0 and a.format != "bsr":  # node blocks: aggregates of whole nodes (usual for elasticity)
        a = a.tobsr(blocksize=(3, 3))
    sweep = ("gauss_seidel", {"sweep": "symmetric"})
    ml = pyamg.smoothed_aggregation_solver(a, B=bmodes, symmetry="hermitian", improve_candidates=None,
                                           strength=("symmetric", {"theta": 0.05}), presmoother=sweep,
                                           postsmoother=sweep, max_coarse=500, coarse_solver="splu")
    prec = ml.aspreconditioner(cycle="V")
    t1 = time.perf_counter()
    report(progress, 0.2, f"AMG: {len(ml.levels)} levels; conjugate gradients")
    its = [0]

    def cb(_xk):
        its[0] += 1
        if its[0] % 10 == 0:
            check(cancel)
            report(progress, 0.2 + 0.75 * min(1.0, its[0] / 80), f"CG iteration {its[0]}")

    bn = float(np.linalg.norm(b)) or 1.0
    x = np.zeros_like(b)
    for _ in range(4):  # CG's own stopping test is on its recurrence; finish on the true residual
        r = b - a @ x
        res = float(np.linalg.norm(r)) / bn
        if res <= rtol or its[0] >= maxiter:
            break
        dx, _info = spla.cg(a, r, rtol=0.5 * rtol / max(res, 1e-300), atol=0.0, maxiter=maxiter - its[0],
                            M=prec, callback=cb)
        x += dx
    return x, t1 - t0, time.perf_counter() - t1, its[0]


# -- fields ----------------------------------------------------------------------------------------
def element_strains(g: np.ndarray, elements: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(M, 3, 3) small strain tensors (constant per P1 element) from nodal displacements ``u``."""
    ue = np.asarray(u, float).reshape(-1, 3)[elements]  # (M, 4, 3)
    grad = np.einsum("mai,maj->mij", ue, g)  # du_i/dx_j
    return 0.5 * (grad + grad.transpose(0, 2, 1))


def element_stresses(strain: np.ndarray, e_mpa, nu) -> np.ndarray:
    """(M, 3, 3) Cauchy stresses (MPa) of isotropic linear elasticity."""
    m = len(strain)
    lam, mu = lame(np.broadcast_to(e_mpa, (m,)), np.broadcast_to(nu, (m,)))
    tr = np.trace(strain, axis1=1, axis2=2)
    return 2.0 * mu[:, None, None] * strain + (lam * tr)[:, None, None] * np.eye(3)


def von_mises(stress: np.ndarray) -> np.ndarray:
    """(M,) von Mises equivalent stress (MPa)."""
    dev = stress - np.trace(stress, axis1=1, axis2=2)[:, None, None] / 3.0 * np.eye(3)
    return np.sqrt(1.5 * np.einsum("mij,mij->m", dev, dev))


def strain_energy_density(stress: np.ndarray, strain: np.ndarray) -> np.ndarray:
    """(M,) strain energy density 0.5 sigma : epsilon (MPa = mJ/mm^3)."""
    return 0.5 * np.einsum("mij,mij->m", stress, strain)
