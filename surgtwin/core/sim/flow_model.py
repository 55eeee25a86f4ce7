"""Reduced-order (0D) blood-flow network: the model (segments, stenoses, Windkessels, inlet).

Lumped-parameter elements in the style of svZeroDSolver (``BloodVessel``, ``WindkesselBC``); the
solvers are in :mod:`surgtwin.core.sim.flow`. Inputs use clinical units named in the fields
(mm, ml/s, mmHg, mmHg*s/ml, ml/mmHg); the element values (``*_si``) are SI: Pa, m^3/s, m.

Element formulas (per segment of length ``L`` and radius ``r``; a radius profile is integrated
along the length with the trapezoid rule):

* Poiseuille resistance ``R = 8 mu L / (pi r^4)``  [Pa s/m^3]
* inductance ``L_u = rho L / (pi r^2)``  [Pa s^2/m^3]
* compliance of a thin elastic tube ``C = 3 pi r^3 L / (2 E h)``  [m^3/Pa]; ``E h`` defaults to
  Olufsen (1999, Am J Physiol 276:H257): ``E h / r = k1 exp(k2 r) + k3`` with k1 = 2e6 Pa,
  k2 = -2253 1/m, k3 = 8.65e4 Pa.
* stenosis (Young DF, Tsai FY, J Biomech 6:395 and 6:547, 1973), written in flow ``Q``::

      dP = (K_v mu / D0) (Q / A0) + K_t rho / (2 A0^2) (A0/As - 1)^2 Q |Q|

  with ``K_v = 32 (La / D0) (A0/As)^2`` and ``La = 0.83 Ls + 1.64 Ds`` (Seeley & Young 1976,
  J Fluid Mech 78:257), which makes the viscous term Poiseuille flow through the throat over
  ``La``: ``8 mu La Q / (pi rs^4)``; ``K_t = 1.52``. Default stenosis length ``Ls = 2 D0``. The
  inertial term ``K_u rho Ls/A0 dU/dt`` is left out (it is small next to the segment inductance).

Blood: ``mu = 3.5 mPa s``, ``rho = 1060 kg/m^3``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from surgtwin.core.errors import SurgtwinError

MMHG_PA = 133.322387415
"""Pa per mmHg."""
ML_M3 = 1e-6
"""m^3 per ml."""
MM_M = 1e-3
"""m per mm."""
K_T_YOUNG_TSAI = 1.52
"""Young & Tsai's turbulent (expansion) loss coefficient."""
_OLUFSEN_K = (2.0e6, -2253.0, 8.65e4)  # Pa, 1/m, Pa


def _positive(value: float, name: str, *, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SurgtwinError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise SurgtwinError(f"{name} must be finite and {bound}, got {value!r}")
    return v


@dataclass(frozen=True)
class Blood:
    """Newtonian blood: viscosity in Pa s (3.5 mPa s) and density in kg/m^3."""

    viscosity_pa_s: float = 0.0035
    density_kg_m3: float = 1060.0

    def __post_init__(self) -> None:
        _positive(self.viscosity_pa_s, "Blood.viscosity_pa_s")
        _positive(self.density_kg_m3, "Blood.density_kg_m3")


@dataclass(frozen=True)
class Stenosis:
    """A focal narrowing inside a segment: throat radius (mm), length (mm; default 2 D0), K_t, K_v.

    ``k_v=None`` computes ``K_v = 32 (La/D0)(A0/As)^2`` from the geometry (see module docstring).
    """

    throat_radius_mm: float
    length_mm: float | None = None
    k_t: float = K_T_YOUNG_TSAI
    k_v: float | None = None

    def __post_init__(self) -> None:
        _positive(self.throat_radius_mm, "Stenosis.throat_radius_mm")
        if self.length_mm is not None:
            _positive(self.length_mm, "Stenosis.length_mm")
        _positive(self.k_t, "Stenosis.k_t", allow_zero=True)
        if self.k_v is not None:
            _positive(self.k_v, "Stenosis.k_v", allow_zero=True)

    @staticmethod
    def by_diameter_percent(reference_radius_mm: float, percent: float, **kw) -> Stenosis:
        """A stenosis that narrows the diameter by ``percent`` (e.g. 61.7) of the reference radius."""
        p = float(percent)
        if not 0.0 < p < 100.0:
            raise SurgtwinError(f"stenosis percent must lie in (0, 100), got {percent!r}")
        return Stenosis(throat_radius_mm=reference_radius_mm * (1.0 - p / 100.0), **kw)

    def coefficients_si(self, r0_m: float, blood: Blood) -> tuple[float, float]:
        """(viscous a [Pa s/m^3], turbulent b [Pa s^2/m^6]) so that ``dP = a Q + b Q|Q|``."""
        rs = self.throat_radius_mm * MM_M
        d0, ds = 2.0 * r0_m, 2.0 * rs
        a0, as_ = math.pi * r0_m**2, math.pi * rs**2
        ls = 2.0 * d0 if self.length_mm is None else self.length_mm * MM_M
        kv = self.k_v
        if kv is None:
            kv = 32.0 * (0.83 * ls + 1.64 * ds) / d0 * (a0 / as_) ** 2
        a = kv * blood.viscosity_pa_s / (d0 * a0)
        b = self.k_t * blood.density_kg_m3 / (2.0 * a0**2) * (a0 / as_ - 1.0) ** 2
        return a, b


@dataclass(frozen=True)
class RCR:
    """Three-element Windkessel outlet: Rp, Rd in mmHg*s/ml, C in ml/mmHg, distal pressure mmHg."""

    rp_mmhg_s_ml: float
    c_ml_mmhg: float
    rd_mmhg_s_ml: float
    pd_mmhg: float = 0.0

    def __post_init__(self) -> None:
        _positive(self.rp_mmhg_s_ml, "RCR.rp_mmhg_s_ml", allow_zero=True)
        _positive(self.c_ml_mmhg, "RCR.c_ml_mmhg", allow_zero=True)
        _positive(self.rd_mmhg_s_ml, "RCR.rd_mmhg_s_ml")
        if not math.isfinite(float(self.pd_mmhg)):
            raise SurgtwinError(f"RCR.pd_mmhg must be finite, got {self.pd_mmhg!r}")

    def si(self) -> tuple[float, float, float, float]:
        """(Rp [Pa s/m^3], C [m^3/Pa], Rd [Pa s/m^3], Pd [Pa])."""
        r = MMHG_PA / ML_M3
        return (self.rp_mmhg_s_ml * r, self.c_ml_mmhg / r, self.rd_mmhg_s_ml * r,
                self.pd_mmhg * MMHG_PA)


@dataclass(frozen=True)
class Segment:
    """A vessel segment: name, parent segment name (None for the root), length and radius in mm.

    ``radius_profile_mm`` (radii at equally spaced points from proximal to distal end) replaces
    ``radius_mm`` in R, L and C when given; ``eh_n_m`` is the wall's E*h in N/m (None: Olufsen).
    """

    name: str
    parent: str | None
    length_mm: float
    radius_mm: float
    radius_profile_mm: tuple[float, ...] | None = None
    eh_n_m: float | None = None
    stenosis: Stenosis | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SurgtwinError(f"Segment.name must be a non-empty string, got {self.name!r}")
        _positive(self.length_mm, f"Segment {self.name!r}: length_mm")
        _positive(self.radius_mm, f"Segment {self.name!r}: radius_mm")
        if self.radius_profile_mm is not None:
            prof = tuple(float(v) for v in self.radius_profile_mm)
            if len(prof) < 2:
                raise SurgtwinError(f"Segment {self.name!r}: radius_profile_mm needs >= 2 values")
            for v in prof:
                _positive(v, f"Segment {self.name!r}: radius_profile_mm")
            object.__setattr__(self, "radius_profile_mm", prof)
        if self.eh_n_m is not None:
            _positive(self.eh_n_m, f"Segment {self.name!r}: eh_n_m")
        if self.stenosis is not None and self.stenosis.throat_radius_mm >= self.radius_mm:
            raise SurgtwinError(f"Segment {self.name!r}: stenosis.throat_radius_mm "
                                f"({self.stenosis.throat_radius_mm}) must be < radius_mm "
                                f"({self.radius_mm})")

    def elements_si(self, blood: Blood) -> tuple[float, float, float]:
        """(R [Pa s/m^3], L [Pa s^2/m^3], C [m^3/Pa]) of the segment (stenosis not included)."""
        length = self.length_mm * MM_M
        prof = self.radius_profile_mm or (self.radius_mm, self.radius_mm)
        r = np.asarray(prof, dtype=float) * MM_M
        x = np.linspace(0.0, length, r.size)
        if self.eh_n_m is None:
            k1, k2, k3 = _OLUFSEN_K
            eh = (k1 * np.exp(k2 * r) + k3) * r
        else:
            eh = np.full_like(r, self.eh_n_m)
        res = np.trapezoid(8.0 * blood.viscosity_pa_s / (math.pi * r**4), x)
        ind = np.trapezoid(blood.density_kg_m3 / (math.pi * r**2), x)
        comp = np.trapezoid(3.0 * math.pi * r**3 / (2.0 * eh), x)
        return float(res), float(ind), float(comp)


@dataclass(frozen=True)
class Network:
    """A tree of segments (exactly one root, parents listed before children) and RCR outlets.

    Every segment without children needs an entry in ``outlets`` (segment name -> RCR).
    """

    segments: tuple[Segment, ...]
    outlets: dict[str, RCR]
    blood: Blood = field(default_factory=Blood)

    def __post_init__(self) -> None:
        segs = tuple(self.segments)
        object.__setattr__(self, "segments", segs)
        if not segs:
            raise SurgtwinError("Network.segments is empty: give at least one Segment")
        seen: set[str] = set()
        roots = 0
        for s in segs:
            if not isinstance(s, Segment):
                raise SurgtwinError(f"Network.segments holds {type(s).__name__}, not a Segment")
            if s.name in seen:
                raise SurgtwinError(f"Network.segments: the name {s.name!r} occurs twice")
            if s.parent is None:
                roots += 1
            elif s.parent not in seen:
                raise SurgtwinError(f"Segment {s.name!r}: parent {s.parent!r} is not listed "
                                    "before it (list parents first)")
            seen.add(s.name)
        if roots != 1:
            raise SurgtwinError(f"Network.segments has {roots} roots (parent=None); need exactly 1")
        leaves = {s.name for s in segs} - {s.parent for s in segs if s.parent is not None}
        missing = sorted(leaves - set(self.outlets))
        if missing:
            raise SurgtwinError(f"Network.outlets has no RCR for the terminal segments {missing}")
        extra = sorted(set(self.outlets) - leaves)
        if extra:
            raise SurgtwinError(f"Network.outlets names {extra}, which are not terminal segments")
        for name, bc in self.outlets.items():
            if not isinstance(bc, RCR):
                raise SurgtwinError(f"Network.outlets[{name!r}] must be an RCR")

    def segment(self, name: str) -> Segment:
        for s in self.segments:
            if s.name == name:
                return s
        raise SurgtwinError(f"no segment named {name!r}; known: {[s.name for s in self.segments]}")


def virtual_stent(network: Network, segment: str, diameter_mm: float) -> Network:
    """What if: the network with the stenosis of ``segment`` widened to ``diameter_mm``.

    A diameter at or above the segment's diameter removes the stenosis; a smaller one leaves a
    residual stenosis with that throat diameter. The segment itself is not widened.
    """
    _positive(diameter_mm, "virtual_stent: diameter_mm")
    seg = network.segment(segment)
    if seg.stenosis is None:
        raise SurgtwinError(f"virtual_stent: segment {segment!r} has no stenosis to stent")
    r = 0.5 * float(diameter_mm)
    if r <= seg.stenosis.throat_radius_mm:
        raise SurgtwinError(f"virtual_stent: diameter_mm {diameter_mm} does not widen the throat "
                            f"({2 * seg.stenosis.throat_radius_mm:.3g} mm)")
    new_sten = None if r >= seg.radius_mm else replace(seg.stenosis, throat_radius_mm=r)
    new_seg = replace(seg, stenosis=new_sten)
    segs = tuple(new_seg if s.name == segment else s for s in network.segments)
    return replace(network, segments=segs, outlets=dict(network.outlets))


@dataclass(frozen=True)
class Waveform:
    """Periodic inflow: ``flow_ml_s`` sampled at equal steps over one cycle of ``period_s``.

    Samples start at t = 0 and exclude the end point (t = period). Between samples the waveform is
    the trigonometric interpolant, so its mean is exactly the mean of the samples.
    """

    flow_ml_s: tuple[float, ...]
    period_s: float

    def __post_init__(self) -> None:
        q = np.atleast_1d(np.asarray(self.flow_ml_s, dtype=float))
        if q.ndim != 1 or q.size < 1 or not np.all(np.isfinite(q)):
            raise SurgtwinError("Waveform.flow_ml_s must be a 1-D list of finite numbers")
        object.__setattr__(self, "flow_ml_s", tuple(q.tolist()))
        _positive(self.period_s, "Waveform.period_s")

    @property
    def mean_ml_s(self) -> float:
        return float(np.mean(self.flow_ml_s))

    def at(self, t_s: np.ndarray) -> np.ndarray:
        """Flow in ml/s at times ``t_s`` (periodic trigonometric interpolation)."""
        q = np.asarray(self.flow_ml_s)
        n = q.size
        c = np.fft.rfft(q) / n
        t = np.asarray(t_s, dtype=float)
        k = np.arange(c.size)
        w = 2.0 * math.pi * k / self.period_s
        weight = np.full(c.size, 2.0)
        weight[0] = 1.0
        if n % 2 == 0 and n > 1:
            weight[-1] = 1.0  # Nyquist term counted once (cosine part only)
        ph = np.outer(t, w)
        out = np.cos(ph) @ (weight * c.real) - np.sin(ph) @ (weight * c.imag)
        return out.reshape(t.shape)


@dataclass(frozen=True)
class PressureInlet:
    """A constant inlet pressure in mmHg (``period_s`` sets the output cycle length)."""

    pressure_mmhg: float
    period_s: float = 1.0

    def __post_init__(self) -> None:
        if not math.isfinite(float(self.pressure_mmhg)):
            raise SurgtwinError(f"PressureInlet.pressure_mmhg must be finite, "
                                f"got {self.pressure_mmhg!r}")
        _positive(self.period_s, "PressureInlet.period_s")
