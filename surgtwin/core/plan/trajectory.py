"""Straight instrument trajectories: instruments, safety margins and the metrics of a path.

A trajectory runs from an **entry** to a **target** (LPS mm) with an ``Instrument`` from the
catalogue (``surgtwin/data/instruments/instruments.json``: name, diameter, length, tip). The
instrument is modelled as a capsule: its axis (the segment entry -> target) swept by a sphere of its
radius, so its *surface* distance to a structure is the axis distance less the radius.

Margins: the safety margin (mm) from the instrument's surface to each critical structure
(``default_margins(names)``: planning defaults from ``surgtwin/data/instruments/margins.json`` by
structure name, and the implant checks' vessel rule for other vessel names; overrides per plan).
The target's own structure is never critical for its trajectory.

Metrics (``evaluate(maps, entry, target, instrument, margins) -> TrajectoryMetrics``), from the
case's ``ClearanceMaps`` (``surgtwin.core.plan.clearance``: signed distance maps in mm with the real
spacing, computed once per case):

* ``length_mm``; ``instrument_ok``: the instrument is long enough;
* per critical structure (``StructureClearance``): the minimum distance from the instrument's
  surface along the path (axis sampled every ``step_mm`` <= 0.5 mm, then refined to 0.05 mm around
  the minimum), where (LPS and depth from the entry), ``passed`` (distance >= margin) and whether
  the axis enters it; a negative distance means the instrument overlaps the structure by that much;
* ``crossed``: every labelled structure the axis passes through, in order, with entry and exit
  depths (nearest-voxel labels every ``step_mm / 2``);
* ``entry_angles``: per surface (``"body"``: the skin's outer surface; a structure such as
  ``"skull"`` or ``"vertebrae"``) the angle (deg) between the path and the surface's inward normal
  where the path first enters it (0 = perpendicular to the surface), and that point and depth;
* ``passed``: every structure clears its margin and the instrument is long enough; ``verdict``
  ``"pass"`` or ``"fail"`` with ``reasons``.

``evaluate`` costs about a millisecond once the maps exist (the app calls it on every drag; the
rehearsal engine on every pose). ``compare(a, b)``: two trajectories' metrics side by side.

Targets: ``resolve_target(maps, target)`` takes a point or a structure name (its centroid, or
``"name:deepest"`` for its most interior point). ``pedicle_path(labels, level, side)``: the entry and
target of a pedicle screw path from ``surgtwin.core.plan.spine.pedicle_trajectory``.

Public API: ``Instrument``, ``instruments()``, ``instrument(name)``, ``default_margins(names)``,
``critical_margins(maps, margins=None, target_structure=None)``, ``StructureClearance``,
``Crossing``, ``EntryAngle``, ``TrajectoryMetrics`` (``to_json``/``from_json``, ``rows()``),
``evaluate``, ``compare``, ``resolve_target``, ``pedicle_path``, ``PediclePath``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.plan.clearance import BODY, ClearanceMaps

#: the axis is sampled at most this far apart (mm) for the metrics
STEP_MM = 0.5
#: the minimum is refined to this (mm)
REFINE_MM = 0.05
DEFAULT_INSTRUMENT = "biopsy-needle-14g"


# -- catalogue ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Instrument:
    """A straight instrument: ``name`` (catalogue key), ``label``, ``diameter_mm``, ``length_mm``
    (usable length), ``tip`` (bevel, trocar, rounded, blunt, side-window), ``kind``, ``source``."""

    name: str
    label: str
    diameter_mm: float
    length_mm: float
    tip: str = "bevel"
    kind: str = ""
    source: str = ""

    @property
    def radius_mm(self) -> float:
        return 0.5 * self.diameter_mm

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> Instrument:
        try:
            return cls(str(d["name"]), str(d.get("label") or d["name"]), float(d["diameter_mm"]),
                       float(d["length_mm"]), str(d.get("tip", "bevel")), str(d.get("kind", "")),
                       str(d.get("source", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise SurgtwinError(f"malformed instrument ({exc})",
                                hint="an instrument needs name, diameter_mm and length_mm") from None


def _data(name: str) -> dict:
    from surgtwin import resources

    path = resources.instruments_dir() / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SurgtwinError(f"cannot read the instrument data ({exc})", path=path) from None


@lru_cache(maxsize=1)
def _catalogue() -> dict:
    return {d["name"]: Instrument.from_json(d) for d in _data("instruments.json")["instruments"]}


def instruments() -> dict[str, Instrument]:
    """The instrument catalogue, by name."""
    return dict(_catalogue())


def instrument(name_or_obj=None) -> Instrument:
    """An instrument by catalogue name (default: the 14G biopsy needle), an ``Instrument``, or a
    dict (``Instrument.from_json``)."""
    if isinstance(name_or_obj, Instrument):
        return name_or_obj
    if isinstance(name_or_obj, dict):
        return Instrument.from_json(name_or_obj)
    name = DEFAULT_INSTRUMENT if name_or_obj is None else str(name_or_obj)
    cat = _catalogue()
    if name not in cat:
        raise SurgtwinError(f"no instrument {name!r}", hint="instruments: " + ", ".join(cat))
    return cat[name]


@lru_cache(maxsize=1)
def _margin_table() -> dict:
    return {str(k): float(v) for k, v in _data("margins.json")["margins_mm"].items()}


def default_margins(names) -> dict[str, float]:
    """Default margins (mm) of the critical structures among ``names`` (see the module text)."""
    from surgtwin.core.plan.checks import default_margins as vessel_margins

    names = list(names)
    table = _margin_table()
    out = vessel_margins(names)
    out.update({n: table[n] for n in names if n in table})
    return {n: out[n] for n in names if n in out}


def critical_margins(maps: ClearanceMaps, margins: dict | None = None, target_structure: str | None = None,
                     ) -> dict[str, float]:
    """The critical structures of a plan and their margins: the defaults for the label map's
    structures, updated by ``margins`` (a structure the map lacks is an error), less the target's
    structure; a margin below 0 removes a structure."""
    names = maps.structure_names()
    out = default_margins(names)
    unknown = [n for n in (margins or {}) if n not in names]
    if unknown:
        raise SurgtwinError(f"no structure {', '.join(map(repr, unknown))} to keep a margin from",
                            hint="known: " + ", ".join(names))
    out.update({str(k): float(v) for k, v in (margins or {}).items()})
    out.pop(target_structure, None)
    return {k: v for k, v in out.items() if v >= 0}


# -- results -----------------------------------------------------------------------------------------
def _r(v, n=2):
    """``v`` (a number or a vector) rounded to ``n`` decimals for JSON; ``None`` stays."""
    return None if v is None else np.round(np.asarray(v, float), n).tolist()


@dataclass
class StructureClearance:
    """One critical structure: the minimum distance (mm) from the instrument's surface along the
    path (negative: overlap), its margin, where (LPS, depth from the entry) and whether the axis
    enters the structure."""

    structure: str
    min_distance_mm: float
    margin_mm: float
    passed: bool
    nearest_lps: list
    depth_mm: float
    entered: bool


@dataclass
class Crossing:
    """A labelled structure the axis passes through, from ``enter_mm`` to ``exit_mm`` deep."""

    structure: str
    enter_mm: float
    exit_mm: float
    critical: bool = False


@dataclass
class EntryAngle:
    """The angle (deg) between the path and the inward normal of ``surface`` where the path first
    enters it (``point_lps`` at ``depth_mm`` from the entry); 0 = perpendicular to the surface.
    ``None`` when the path never enters the surface or starts deeper than two voxels inside it."""

    surface: str
    angle_deg: float | None
    point_lps: list | None
    depth_mm: float | None


@dataclass
class TrajectoryMetrics:
    entry_lps: list
    target_lps: list
    instrument: str
    diameter_mm: float
    instrument_length_mm: float
    length_mm: float
    instrument_ok: bool
    clearances: list
    crossed: list
    entry_angles: list
    passed: bool
    reasons: list = field(default_factory=list)
    elapsed_ms: float = 0.0

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    @property
    def entry_angle_deg(self) -> float | None:
        """The first surface's entry angle (the body's, unless chosen otherwise)."""
        return self.entry_angles[0].angle_deg if self.entry_angles else None

    def clearance(self, structure: str) -> StructureClearance:
        for c in self.clearances:
            if c.structure == structure:
                return c
        raise SurgtwinError(f"no clearance for {structure!r}",
                            hint="critical: " + ", ".join(c.structure for c in self.clearances))

    def worst_ratio(self) -> float:
        """The smallest clearance / margin over the critical structures (>= 1: all clear; inf: none)."""
        vals = [c.min_distance_mm / c.margin_mm if c.margin_mm > 0 else (np.inf if c.min_distance_mm >= 0 else -np.inf)
                for c in self.clearances]
        return float(min(vals)) if vals else float("inf")

    def to_json(self) -> dict:
        d = asdict(self)
        for k in ("entry_lps", "target_lps"):
            d[k] = _r(d[k], 3)
        d["length_mm"] = _r(self.length_mm)
        for c in d["clearances"]:
            c["min_distance_mm"], c["depth_mm"] = _r(c["min_distance_mm"]), _r(c["depth_mm"])
            c["nearest_lps"] = _r(c["nearest_lps"])
        for c in d["crossed"]:
            c["enter_mm"], c["exit_mm"] = _r(c["enter_mm"]), _r(c["exit_mm"])
        for a in d["entry_angles"]:
            a["angle_deg"], a["point_lps"], a["depth_mm"] = _r(a["angle_deg"], 1), _r(a["point_lps"]), _r(a["depth_mm"])
        d["verdict"] = self.verdict
        d["entry_angle_deg"] = _r(self.entry_angle_deg, 1)
        d["elapsed_ms"] = _r(self.elapsed_ms, 3)
        return d

    @classmethod
    def from_json(cls, d: dict) -> TrajectoryMetrics:
        try:
            return cls(list(d["entry_lps"]), list(d["target_lps"]), str(d["instrument"]), float(d["diameter_mm"]),
                       float(d["instrument_length_mm"]), float(d["length_mm"]), bool(d["instrument_ok"]),
                       [StructureClearance(**c) for c in d["clearances"]], [Crossing(**c) for c in d["crossed"]],
                       [EntryAngle(**a) for a in d["entry_angles"]], bool(d["passed"]), list(d.get("reasons", [])),
                       float(d.get("elapsed_ms", 0.0)))
        except (KeyError, TypeError) as exc:
            raise SurgtwinError(f"malformed trajectory metrics ({exc})") from None

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(item, value, limit, PASS/FAIL/-) rows for a table."""
        ok = lambda b: "PASS" if b else "FAIL"  # noqa: E731
        out = [("length", f"{self.length_mm:.1f} mm", f"<= {self.instrument_length_mm:g} mm (instrument)",
                ok(self.instrument_ok))]
        for c in self.clearances:
            where = f"at {c.depth_mm:.1f} mm deep" + (", axis enters it" if c.entered else "")
            out.append((f"clearance {c.structure}", f"{c.min_distance_mm:.2f} mm {where}", f">= {c.margin_mm:g} mm",
                        ok(c.passed)))
        for a in self.entry_angles:
            val = "entry not on it" if a.angle_deg is None else f"{a.angle_deg:.1f} deg at {a.depth_mm:.1f} mm deep"
            out.append((f"entry angle to {a.surface} normal", val, "-", "-"))
        if self.crossed:
            out.append(("crosses", " > ".join(f"{c.structure}{'!' if c.critical else ''}" for c in self.crossed),
                        "-", "-"))
        return out


# -- targets -----------------------------------------------------------------------------------------
def as_point(p, what: str = "point") -> np.ndarray:
    try:
        a = np.asarray(p, float).reshape(3)
    except (TypeError, ValueError):
        raise SurgtwinError(f"the {what} is not an LPS point x, y, z (mm): {p!r}") from None
    if not np.all(np.isfinite(a)):
        raise SurgtwinError(f"the {what} has a non-finite coordinate: {p!r}")
    return a


def resolve_target(maps: ClearanceMaps, target) -> tuple[np.ndarray, str | None]:
    """``(point_lps, structure or None)`` of a target: a point, a structure name (its centroid) or
    ``"name:deepest"`` (its most interior point) or ``{"structure": name, "mode": "centroid"|"deepest"}``."""
    if isinstance(target, dict):
        if "structure" in target:
            target = f"{target['structure']}:{target.get('mode', 'centroid')}"
        else:
            target = target.get("point_lps") or target.get("lps")
    if isinstance(target, str):
        name, _, mode = target.partition(":")
        mode = mode or "centroid"
        if mode not in ("centroid", "deepest"):
            raise SurgtwinError(f"target mode {mode!r} is not centroid or deepest", hint="e.g. tumour:deepest")
        maps.value_of(name)
        return (maps.centroid(name) if mode == "centroid" else maps.deepest_point(name)), name
    return as_point(target, "target"), None


# -- metrics -----------------------------------------------------------------------------------------
def _path(entry, target, step_mm):
    v = target - entry
    length = float(np.linalg.norm(v))
    if length < 1e-6:
        raise SurgtwinError("the entry and the target are the same point", hint="move one of them")
    n = max(2, int(np.ceil(length / step_mm)) + 1)
    t = np.linspace(0.0, length, n)
    return v / length, length, t


def _refine(m, entry, d, length, t0, step, radius):
    """Local refinement of a sampled minimum at depth ``t0``: (distance, depth)."""
    t = np.clip(np.linspace(t0 - step, t0 + step, int(np.ceil(2 * step / REFINE_MM)) + 1), 0.0, length)
    vals = m.distance(entry + t[:, None] * d) - radius
    k = int(np.argmin(vals))
    return float(vals[k]), float(t[k])


def _crossings(maps, entry, d, t, critical):
    lab = maps.label_at(entry + t[:, None] * d)
    out = []
    if len(lab) == 0:
        return out
    change = np.flatnonzero(np.diff(lab)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(lab)]])
    for s, e in zip(starts, ends, strict=True):
        v = int(lab[s])
        if v == 0:
            continue
        name = maps.name_of(v)
        enter = 0.0 if s == 0 else 0.5 * (t[s - 1] + t[s])
        exit_ = t[-1] if e == len(lab) else 0.5 * (t[e - 1] + t[e])
        out.append(Crossing(name, float(enter), float(exit_), name in critical))
    return out


def _entry_angle(maps, surface, entry, d, t):
    m = maps.solid_map(surface)
    phi = m.distance(entry + t[:, None] * d)
    inside = phi <= 0
    if not inside.any():
        return EntryAngle(surface, None, None, None)
    k = int(np.argmax(inside))
    if k == 0:
        if phi[0] < -2.0 * float(np.max(maps.spacing_mm)):  # the entry lies inside the surface already
            return EntryAngle(surface, None, None, None)
        depth = 0.0
    else:  # linear interpolation of the zero crossing
        a, b = float(phi[k - 1]), float(phi[k])
        depth = float(t[k - 1] + (t[k] - t[k - 1]) * a / max(a - b, 1e-9))
    p = entry + depth * d
    n = maps.normal(surface, p[None])[0]
    cosang = float(np.clip(-(n @ d), -1.0, 1.0))
    return EntryAngle(surface, float(np.degrees(np.arccos(cosang))), p.tolist(), depth)


def evaluate(maps: ClearanceMaps, entry_lps, target_lps, instrument_=None, margins: dict | None = None, *,
             target_structure: str | None = None, surfaces=None, step_mm: float = STEP_MM) -> TrajectoryMetrics:
    """The metrics of the path ``entry_lps -> target_lps`` (see the module text). ``instrument_``:
    an ``Instrument`` or catalogue name; ``margins``: overrides of the default margins (mm);
    ``target_structure``: the structure aimed at (never critical); ``surfaces``: the surfaces for
    entry angles (default ``("body", "skull")`` where the map has a skull, else ``("body",)``)."""
    t0 = time.perf_counter()
    ins = instrument(instrument_)
    entry, target = as_point(entry_lps, "entry"), as_point(target_lps, "target")
    step = min(float(step_mm), STEP_MM)
    d, length, t = _path(entry, target, step)
    pts = entry + t[:, None] * d
    crit = critical_margins(maps, margins, target_structure)
    r = ins.radius_mm
    crossed = _crossings(maps, entry, d, np.linspace(0.0, length, 2 * len(t) - 1), crit)
    entered = {c.structure for c in crossed}
    clearances = []
    for name, margin in crit.items():
        m = maps.map(name)
        vals = m.distance(pts) - r
        k = int(np.argmin(vals))
        dist, depth = _refine(m, entry, d, length, t[k], step, r)
        if vals[k] < dist:
            dist, depth = float(vals[k]), float(t[k])
        clearances.append(StructureClearance(name, dist, margin, dist >= margin, (entry + depth * d).tolist(), depth,
                                             name in entered))
    if surfaces is None:
        surfaces = (BODY, "skull") if maps.has("skull") else (BODY,)
    angles = [_entry_angle(maps, s, entry, d, t) for s in surfaces if maps.has(s)]
    ok_len = length <= ins.length_mm
    reasons = [f"{c.structure}: {c.min_distance_mm:.1f} mm < margin {c.margin_mm:g} mm" for c in clearances
               if not c.passed]
    if not ok_len:
        reasons.append(f"the path ({length:.0f} mm) is longer than the {ins.label} ({ins.length_mm:g} mm)")
    out = TrajectoryMetrics(entry.tolist(), target.tolist(), ins.name, ins.diameter_mm, ins.length_mm, length, ok_len,
                            clearances, crossed, angles, ok_len and all(c.passed for c in clearances), reasons)
    out.elapsed_ms = (time.perf_counter() - t0) * 1000.0
    return out


def compare(a: TrajectoryMetrics, b: TrajectoryMetrics) -> list[tuple[str, str, str, str]]:
    """Two trajectories side by side: (item, a, b, better: "a", "b" or "=") rows (length, worst
    clearance ratio, each structure's clearance, entry angles, verdict)."""

    def better(x, y, higher=True):
        if x is None or y is None or abs(x - y) < 1e-6:
            return "="
        return ("a" if x > y else "b") if higher else ("a" if x < y else "b")

    rows = [("verdict", a.verdict, b.verdict, better(float(a.passed), float(b.passed))),
            ("length mm", f"{a.length_mm:.1f}", f"{b.length_mm:.1f}", better(a.length_mm, b.length_mm, False))]
    ra, rb = a.worst_ratio(), b.worst_ratio()
    rows.append(("worst clearance / margin", f"{ra:.2f}", f"{rb:.2f}", better(ra, rb)))
    cb = {c.structure: c for c in b.clearances}
    for c in a.clearances:
        o = cb.get(c.structure)
        rows.append((f"{c.structure} mm", f"{c.min_distance_mm:.2f}", "-" if o is None else f"{o.min_distance_mm:.2f}",
                     better(c.min_distance_mm, None if o is None else o.min_distance_mm)))
    ab = {e.surface: e for e in b.entry_angles}
    for e in a.entry_angles:
        o = ab.get(e.surface)
        fa = "-" if e.angle_deg is None else f"{e.angle_deg:.1f}"
        fb = "-" if o is None or o.angle_deg is None else f"{o.angle_deg:.1f}"
        rows.append((f"entry angle {e.surface} deg", fa, fb,
                     better(e.angle_deg, None if o is None else o.angle_deg, False)))
    return rows


# -- pedicle paths -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PediclePath:
    """A pedicle screw path: entry (where the pedicle axis leaves the bone posteriorly) and target
    (``depth_mm`` along the axis), with the spine's notes (width, chord, medial angle)."""

    level: str
    side: str
    entry_lps: np.ndarray
    target_lps: np.ndarray
    depth_mm: float
    notes: dict


def pedicle_path(labels, level: str, side: str, *, depth_mm: float | None = None,
                 chord_fraction: float = 0.8) -> PediclePath:
    """The pedicle path of ``level``/``side``: from ``spine.pedicle_trajectory``'s entry along its
    axis, ``depth_mm`` deep (default ``chord_fraction`` of the bone chord)."""
    from surgtwin.core.plan.spine import pedicle_trajectory, vertebra_levels

    spine = vertebra_levels(labels)
    tr = pedicle_trajectory(labels, level, side, spine=spine)
    depth = float(depth_mm) if depth_mm is not None else chord_fraction * tr.bone_chord_mm
    if depth <= 0:
        raise SurgtwinError(f"the pedicle path depth must be positive, not {depth:g} mm")
    target = tr.entry_lps + depth * tr.direction_lps
    notes = {**tr.to_json(), "levels": spine.names(), "level_assumption": spine.assumption,
             "warnings": list(spine.warnings)}
    return PediclePath(tr.level, tr.side, np.asarray(tr.entry_lps, float), target, depth, notes)
