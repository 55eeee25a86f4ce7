"""Reduced-order (0D) blood flow in a vessel tree: steady and pulsatile solves, stenosis ratios.

Model (dataclasses, element formulas, units, references): :mod:`surgtwin.core.sim.flow_model`.

Discretisation. Node 0 is the root inlet; node ``i + 1`` is the distal end of segment ``i``; a
child's proximal node is its parent's distal node (junction: one pressure, so pressure
continuity; the node equation is mass conservation). The unknowns are (SI) node pressures ``P``
[Pa], segment flows ``Q`` [m^3/s] and Windkessel capacitor pressures ``Pc`` [Pa]::

    C_node dP_j/dt = sum(Q into j) - sum(Q out of j) [+ Q_in(t) at node 0] [- (P_j - Pc)/Rp]
    L_s dQ_s/dt    = P_up - P_down - R_s Q_s - (a_s Q_s + b_s Q_s|Q_s|)      (stenosis: a, b)
    C_wk dPc/dt    = (P_j - Pc)/Rp - (Pc - Pd)/Rd

Each segment's compliance is split half to each of its end nodes. With ``Rp = 0`` the outlet
capacitor sits on the node itself. A ``PressureInlet`` replaces node 0's equation by
``P_0 = P_in``. Steady state: the same equations with d/dt = 0, solved by Newton.

Time stepping: BDF2 (L-stable, 2nd order; first step backward Euler) with a fixed step. The
linear part's iteration matrix ``J0`` is inverted once; with k stenoses the nonlinear step
reduces to k unknowns (the stenotic flows; Newton on a k x k system, scalar for k = 1), so each
step costs two mat-vecs.

Public API: ``solve_steady(network, inflow_ml_s=..., inlet_pressure_mmhg=...)``,
``solve_pulsatile(network, inlet, cycles=10, steps_per_cycle=500)`` -> ``FlowResult``;
``Segment``, ``Stenosis``, ``RCR``, ``Network``, ``Blood``, ``Waveform``, ``PressureInlet``,
``virtual_stent`` are re-exported from ``flow_model``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import CancelToken, ProgressFn, check, report
from surgtwin.core.sim.flow_model import (
    ML_M3,
    MMHG_PA,
    RCR,
    Blood,
    Network,
    PressureInlet,
    Segment,
    Stenosis,
    Waveform,
    virtual_stent,
)

__all__ = ["RCR", "Blood", "FlowResult", "Network", "PressureInlet", "Segment", "Stenosis",
           "Waveform", "assemble", "solve_pulsatile", "solve_steady", "virtual_stent"]


@dataclass(frozen=True)
class System:
    """The assembled ODE/DAE ``M x' = A x + b0 + e_in u(t) - g(x)`` (SI, see module docstring)."""

    m: np.ndarray  # (n,) diagonal of M
    a: np.ndarray  # (n, n)
    b0: np.ndarray  # (n,) constant forcing (distal pressures)
    e_in: np.ndarray  # (n,) where the inlet value u(t) enters
    sten_rows: np.ndarray  # (k,) indices of the stenotic segments' Q unknowns
    sten_b: np.ndarray  # (k,) turbulent coefficients b [Pa s^2/m^6]
    n_nodes: int
    n_seg: int
    up: np.ndarray  # (n_seg,) proximal node of each segment
    pressure_inlet: bool

    def g(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros_like(x)
        q = x[self.sten_rows]
        out[self.sten_rows] = self.sten_b * q * np.abs(q)
        return out


def assemble(network: Network, *, pressure_inlet: bool = False) -> System:
    """The network's equations as matrices (SI units)."""
    segs = network.segments
    blood: Blood = network.blood
    ns = len(segs)
    nn = ns + 1
    index = {s.name: i for i, s in enumerate(segs)}
    up = np.array([0 if s.parent is None else index[s.parent] + 1 for s in segs], dtype=int)
    outs = [(index[name], bc.si()) for name, bc in network.outlets.items()]
    wk = [(i, si) for i, si in outs if si[0] > 0.0]
    n = nn + ns + len(wk)
    m = np.zeros(n)
    a = np.zeros((n, n))
    b0 = np.zeros(n)
    rows, coeff_b = [], []
    for i, s in enumerate(segs):
        res, ind, comp = s.elements_si(blood)
        q = nn + i
        if s.stenosis is not None:
            av, bt = s.stenosis.coefficients_si(s.radius_mm * 1e-3, blood)
            res += av
            if bt > 0.0:
                rows.append(q)
                coeff_b.append(bt)
        m[up[i]] += 0.5 * comp
        m[i + 1] += 0.5 * comp
        m[q] = ind
        a[q, up[i]] += 1.0
        a[q, i + 1] -= 1.0
        a[q, q] -= res
        a[up[i], q] -= 1.0
        a[i + 1, q] += 1.0
    k = nn + ns
    for i, (rp, c, rd, pd) in outs:
        j = i + 1
        if rp > 0.0:
            a[j, j] -= 1.0 / rp
            a[j, k] += 1.0 / rp
            a[k, j] += 1.0 / rp
            a[k, k] -= 1.0 / rp + 1.0 / rd
            b0[k] += pd / rd
            m[k] = c
            k += 1
        else:
            m[j] += c
            a[j, j] -= 1.0 / rd
            b0[j] += pd / rd
    e_in = np.zeros(n)
    e_in[0] = 1.0
    if pressure_inlet:
        m[0] = 0.0
        a[0, :] = 0.0
        a[0, 0] = -1.0
    return System(m=m, a=a, b0=b0, e_in=e_in, sten_rows=np.array(rows, dtype=int),
                  sten_b=np.array(coeff_b), n_nodes=nn, n_seg=ns, up=up,
                  pressure_inlet=pressure_inlet)


@dataclass(frozen=True)
class FlowResult:
    """Pressures (mmHg) at both ends of each segment and segment flows (ml/s) over time.

    ``pressure_mmhg`` has shape (n_times, n_segments, 2): [..., 0] proximal, [..., 1] distal end.
    ``flow_ml_s`` has shape (n_times, n_segments). The means are over the last cycle (pulsatile)
    or the single state (steady); ``stenosis_pressure_ratio`` maps each stenotic segment to its
    distal/proximal mean pressure (an FFR-like ratio).
    """

    segment_names: tuple[str, ...]
    time_s: np.ndarray
    pressure_mmhg: np.ndarray
    flow_ml_s: np.ndarray
    mean_pressure_mmhg: np.ndarray
    mean_flow_ml_s: np.ndarray
    stenosis_pressure_ratio: dict[str, float]
    steps: int = 0

    def index(self, segment: str) -> int:
        try:
            return self.segment_names.index(segment)
        except ValueError:
            raise SurgtwinError(f"no segment named {segment!r} in the result") from None

    def pressure_drop_mmhg(self, segment: str) -> float:
        """Mean proximal minus mean distal pressure of ``segment``."""
        p = self.mean_pressure_mmhg[self.index(segment)]
        return float(p[0] - p[1])


def _result(network: Network, sysm: System, t: np.ndarray, xs: np.ndarray,
            last: slice, steps: int) -> FlowResult:
    nn, ns = sysm.n_nodes, sysm.n_seg
    p_nodes = xs[:, :nn] / MMHG_PA
    pres = np.stack([p_nodes[:, sysm.up], p_nodes[:, 1:]], axis=2)
    flow = xs[:, nn:nn + ns] / ML_M3
    mp = pres[last].mean(axis=0)
    mq = flow[last].mean(axis=0)
    ratios = {s.name: float(mp[i, 1] / mp[i, 0])
              for i, s in enumerate(network.segments) if s.stenosis is not None and mp[i, 0] != 0}
    return FlowResult(segment_names=tuple(s.name for s in network.segments), time_s=t,
                      pressure_mmhg=pres, flow_ml_s=flow, mean_pressure_mmhg=mp,
                      mean_flow_ml_s=mq, stenosis_pressure_ratio=ratios, steps=steps)


def _steady_state(sysm: System, u: float, *, tol: float = 1e-12, max_iter: int = 50) -> np.ndarray:
    a = -sysm.a
    rhs = sysm.b0 + sysm.e_in * u
    try:
        x = np.linalg.solve(a, rhs)
    except np.linalg.LinAlgError:
        raise SurgtwinError("the flow network is singular: every outlet needs Rd > 0") from None
    if sysm.sten_rows.size == 0:
        return x
    r = sysm.sten_rows
    for _ in range(max_iter):
        f = a @ x + sysm.g(x) - rhs
        jac = a.copy()
        jac[r, r] += 2.0 * sysm.sten_b * np.abs(x[r])
        dx = np.linalg.solve(jac, f)
        x -= dx
        if np.max(np.abs(dx[r])) <= tol * max(1e-12, np.max(np.abs(x[r]))):
            return x
    raise SurgtwinError("steady flow: the Newton solve did not converge (check the stenoses)")


def solve_steady(network: Network, inflow_ml_s: float | None = None, *,
                 inlet_pressure_mmhg: float | None = None) -> FlowResult:
    """Steady flow for a constant inflow (ml/s) or a constant inlet pressure (mmHg)."""
    if not isinstance(network, Network):
        raise SurgtwinError("solve_steady: network must be a Network")
    if (inflow_ml_s is None) == (inlet_pressure_mmhg is None):
        raise SurgtwinError("solve_steady: give exactly one of inflow_ml_s, inlet_pressure_mmhg")
    value = inflow_ml_s if inlet_pressure_mmhg is None else inlet_pressure_mmhg
    if not math.isfinite(float(value)):
        raise SurgtwinError(f"solve_steady: the inlet value must be finite, got {value!r}")
    pin = inlet_pressure_mmhg is not None
    sysm = assemble(network, pressure_inlet=pin)
    u = float(value) * (MMHG_PA if pin else ML_M3)
    x = _steady_state(sysm, u)
    return _result(network, sysm, np.zeros(1), x[None, :], slice(None), 0)


def solve_pulsatile(network: Network, inlet: Waveform | PressureInlet, *, cycles: int = 10,
                    steps_per_cycle: int = 500, start: str = "steady", newton_tol: float = 1e-10,
                    progress: ProgressFn | None = None,
                    cancel: CancelToken | None = None) -> FlowResult:
    """Time-periodic flow over ``cycles`` cardiac cycles (BDF2, fixed step period/steps_per_cycle).

    ``start="steady"`` begins from the steady solution for the mean inlet value (short
    transient); ``"rest"`` from zero pressure and flow (for step responses). Output holds every
    step including t = 0; means are over the last cycle.
    """
    if not isinstance(network, Network):
        raise SurgtwinError("solve_pulsatile: network must be a Network")
    if not isinstance(inlet, (Waveform, PressureInlet)):
        raise SurgtwinError("solve_pulsatile: inlet must be a Waveform or a PressureInlet")
    if int(cycles) != cycles or cycles < 1:
        raise SurgtwinError(f"solve_pulsatile: cycles must be an integer >= 1, got {cycles!r}")
    if int(steps_per_cycle) != steps_per_cycle or steps_per_cycle < 4:
        raise SurgtwinError(f"solve_pulsatile: steps_per_cycle must be an integer >= 4, "
                            f"got {steps_per_cycle!r}")
    if start not in ("steady", "rest"):
        raise SurgtwinError(f"solve_pulsatile: start must be 'steady' or 'rest', got {start!r}")
    pin = isinstance(inlet, PressureInlet)
    sysm = assemble(network, pressure_inlet=pin)
    period = inlet.period_s
    nsteps = int(cycles) * int(steps_per_cycle)
    dt = period / steps_per_cycle
    t = np.arange(nsteps + 1) * dt
    if pin:
        u = np.full(t.size, inlet.pressure_mmhg * MMHG_PA)
    else:
        u = inlet.at(t) * ML_M3
    n = sysm.m.size
    xs = np.empty((nsteps + 1, n))
    xs[0] = _steady_state(sysm, float(np.mean(u[:-1]))) if start == "steady" else 0.0
    forcing = sysm.b0[None, :] + u[:, None] * sysm.e_in[None, :]
    r = sysm.sten_rows
    bcoef = sysm.sten_b
    mdt = sysm.m / dt
    report(progress, 0.0, f"pulsatile flow: {nsteps} steps")
    # step 1: backward Euler, then BDF2: (1.5 M/dt - A) x = M (2 x_n - 0.5 x_{n-1})/dt + f - g(x)
    for order, c0 in ((1, 1.0), (2, 1.5)):
        jinv = np.linalg.inv(c0 * np.diag(mdt) - sysm.a)
        z = np.ascontiguousarray(jinv[:, r])
        zs = z[r, :]
        first, last = (1, 2) if order == 1 else (2, nsteps + 1)
        for step in range(first, last):
            x1 = xs[step - 1]
            if order == 1:
                hist = mdt * x1
                guess = x1
            else:
                x0 = xs[step - 2]
                hist = mdt * (2.0 * x1 - 0.5 * x0)
                guess = 2.0 * x1 - x0
            rhs = hist + forcing[step]
            if r.size == 0:
                xs[step] = jinv @ rhs
            else:
                xs[step] = _newton_step(jinv, z, zs, r, bcoef, rhs, guess, newton_tol)
            if step % steps_per_cycle == 0:
                check(cancel)
                report(progress, step / nsteps, f"cycle {step // steps_per_cycle}/{cycles}")
    report(progress, 1.0, "pulsatile flow solved")
    last_cycle = slice(nsteps - steps_per_cycle, nsteps)
    return _result(network, sysm, t, xs, last_cycle, nsteps)


def _newton_step(jinv, z, zs, r, bcoef, rhs, x, tol) -> np.ndarray:
    """Solve ``J0 x + g(x) = rhs`` (g: b Q|Q| on the rows r), reduced to the k stenosis flows.

    ``x = J0^-1 rhs - Z g(q)`` with ``Z = J0^-1[:, r]``, so only ``q = x[r]`` is unknown:
    ``h(q) = q - y_r + Zs g(q) = 0``, solved by Newton from the predictor ``x[r]``.
    """
    y = jinv @ rhs
    yr = y[r]
    if r.size == 1:
        b, zz, c = float(bcoef[0]), float(zs[0, 0]), float(yr[0])
        q = float(x[r[0]])
        for _ in range(50):
            aq = abs(q)
            dq = (q - c + zz * b * q * aq) / (1.0 + 2.0 * zz * b * aq)
            q -= dq
            if abs(dq) <= tol * max(abs(q), 1e-300):
                return y - z[:, 0] * (b * q * abs(q))
    else:
        q = x[r].copy()
        eye = np.eye(r.size)
        for _ in range(50):
            aq = np.abs(q)
            dq = np.linalg.solve(eye + zs * (2.0 * bcoef * aq)[None, :],
                                 q - yr + zs @ (bcoef * q * aq))
            q -= dq
            if np.max(np.abs(dq)) <= tol * max(np.max(np.abs(q)), 1e-300):
                return y - z @ (bcoef * q * np.abs(q))
    raise SurgtwinError("pulsatile flow: the Newton iteration did not converge; "
                        "use more steps_per_cycle")
