"""Rehearsal of a planned straight trajectory: an instrument driven by commands, live readouts, collision events.

A ``Rehearsal`` (no case, no Qt) holds the instrument's state, the plan it follows and a clock:

* the instrument: the **entry** point where it went in (LPS mm), a unit **direction** and the
  **depth** inserted along it (mm, 0 = at the entry, at most the instrument's length); the tip is
  ``entry + depth * direction``. Its radius and length come from the trajectory catalogue's
  ``Instrument`` (``surgtwin.core.plan.trajectory.instrument``: a name, an ``Instrument`` or a dict;
  default the 14G biopsy needle);
* the plan (``PlannedPath``): planned entry and target in LPS mm;
* the clock: ``clock()`` -> seconds (default ``time.monotonic``); every command also takes ``t=``
  (seconds since the start), which scripts and tests use instead.

Commands (each returns the new ``Readouts``): ``advance(mm)``, ``retract(mm)`` (depth clamped to
``[0, length]``), ``pivot(d_angle_a_deg, d_angle_b_deg)`` (turns the direction about the entry point
by two angles about the axes ``a``, ``b`` of ``pivot_axes(direction)``, the tip following at the same
depth), ``set_pose(tip_lps, direction, entry_lps=None)`` (a tracked or dragged pose: the entry
becomes the given one, else the current entry projected onto the new axis; depth = distance entry ->
tip) and ``insert_at(entry_lps, direction=None)`` (a new insertion: depth 0, aimed at the planned
target unless a direction is given).

Geometry is injected: the ``clearance`` object answers ``segment_clearance(start_lps, end_lps,
radius_mm) -> {structure: mm}``, the signed distance from the **surface** of the instrument (a capsule of
``radius_mm`` around the inserted segment entry -> tip) to each critical structure, negative when it
penetrates (minus the penetration depth), and lists the names in ``structures``. ``AnalyticClearance``
(spheres and boxes) is the exact stand-in the tests use; the services layer wraps the case's clearance
maps (``surgtwin.services.rehearsal``).

Readouts (``Readouts``, computed in well under 5 ms; ``elapsed_ms`` says how long):
``depth_mm``; ``tip_to_target_mm`` (|target - tip|); ``distances_mm`` per structure (surface
clearance as above); ``violations`` (structures closer than their margin, including those
penetrated) and ``collisions`` (penetrated: distance < 0); deviation from the plan:

* ``entry_error_mm``: |entry - planned entry|;
* ``target_error_mm``: the perpendicular distance of the planned target from the instrument's axis
  (a line): how far the instrument's line misses the target, whatever the depth;
* ``tip_to_target_mm``: the tip-to-target distance (the error when the tip is where it stops);
* ``depth_to_target_mm``: (target - tip) . direction, what is left to advance (negative = past it);
* ``angle_deg``: the angle between the instrument's direction and the planned path (entry -> target).

Collision events (``CollisionEvent``: time, kind, structure, depth, tip LPS, distance): each structure
is *clear*, *in its margin* (0 <= distance < margin) or *inside* (distance < 0); a change of state logs
``enter_margin``/``enter`` going in and ``exit``/``exit_margin`` coming out, once per crossing (not
per frame); a jump clear -> inside logs ``enter_margin`` then ``enter``. A command's motion is
checked at intermediate poses ``sweep_step_mm`` apart (at most ``MAX_SWEEP`` of them) so that a large
pivot does not jump over a thin structure. Signals (``surgtwin.core.events.Signal``): ``changed``
(Readouts) after every command, ``collision`` (CollisionEvent) per event (the app flashes the
structure).

Every command is recorded (``recording()`` -> ``surgtwin.core.plan.rehearsal_record.Recording``);
``run_script(rehearsal, script)`` drives it headless from a JSON list of timed commands or poses.
Scores and progress: ``surgtwin.core.plan.rehearsal_score``. Planning and teaching aid: not validated,
NOT FOR CLINICAL USE.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.events import Signal
from surgtwin.core.plan.trajectory import Instrument
from surgtwin.core.plan.trajectory import instrument as catalogue_instrument

#: default safety margin (mm) for a structure without its own
DEFAULT_MARGIN_MM = 2.0
#: intermediate poses checked per command at most (sweep for collision events)
MAX_SWEEP = 4
#: event kinds, in the order a crossing produces them
EVENT_KINDS = ("enter_margin", "enter", "exit", "exit_margin")
CLEAR, MARGIN, INSIDE = 0, 1, 2


def unit(v, what: str = "the direction") -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(3)
    n = float(np.linalg.norm(v))
    if not np.isfinite(n) or n < 1e-9:
        raise SurgtwinError(f"{what} must be a non-zero, finite 3-vector, got {v.tolist()}")
    return v / n


def point(v, what: str) -> np.ndarray:
    p = np.asarray(v, dtype=np.float64).reshape(-1)
    if p.shape != (3,) or not np.all(np.isfinite(p)):
        raise SurgtwinError(f"{what} must be three finite numbers (LPS mm), got {np.asarray(v).tolist()}")
    return p


def pivot_axes(direction) -> tuple[np.ndarray, np.ndarray]:
    """Two unit axes ``a``, ``b`` perpendicular to ``direction`` (and to each other), stable for a
    given direction: ``a`` is the LPS axis least parallel to it, made perpendicular; ``b = d x a``.
    ``pivot(da, db)`` turns by ``da`` about ``a`` then ``db`` about ``b``."""
    d = unit(direction)
    hint = np.eye(3)[int(np.argmin(np.abs(d)))]
    a = unit(hint - np.dot(hint, d) * d, "the pivot axis")
    return a, np.cross(d, a)


def rotate(v: np.ndarray, axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """``v`` turned by ``angle_deg`` about the unit ``axis`` (Rodrigues)."""
    th = math.radians(angle_deg)
    c, s = math.cos(th), math.sin(th)
    return v * c + np.cross(axis, v) * s + axis * np.dot(axis, v) * (1.0 - c)


def angle_between_deg(u, v) -> float:
    c = float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


@dataclass(frozen=True)
class PlannedPath:
    """The plan a rehearsal follows: ``entry_lps`` -> ``target_lps`` (mm)."""

    entry_lps: tuple
    target_lps: tuple

    def __post_init__(self) -> None:
        e, t = point(self.entry_lps, "the planned entry"), point(self.target_lps, "the planned target")
        if np.linalg.norm(t - e) < 1e-6:
            raise SurgtwinError("the planned entry and target are the same point")
        object.__setattr__(self, "entry_lps", tuple(float(x) for x in e))
        object.__setattr__(self, "target_lps", tuple(float(x) for x in t))

    @property
    def entry(self) -> np.ndarray:
        return np.array(self.entry_lps)

    @property
    def target(self) -> np.ndarray:
        return np.array(self.target_lps)

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(self.target - self.entry))

    @property
    def direction(self) -> np.ndarray:
        return unit(self.target - self.entry)

    def to_record(self) -> dict:
        return {"entry_lps": list(self.entry_lps), "target_lps": list(self.target_lps)}

    @classmethod
    def from_record(cls, d: dict) -> PlannedPath:
        return cls(tuple(d["entry_lps"]), tuple(d["target_lps"]))


@dataclass(frozen=True)
class CollisionEvent:
    """The instrument entered (or left) a structure or its margin."""

    t_s: float
    kind: str  # one of EVENT_KINDS
    structure: str
    depth_mm: float
    tip_lps: tuple
    distance_mm: float

    def to_record(self) -> dict:
        return {"t_s": round(self.t_s, 4), "kind": self.kind, "structure": self.structure,
                "depth_mm": round(self.depth_mm, 3), "tip_lps": [round(float(x), 3) for x in self.tip_lps],
                "distance_mm": round(self.distance_mm, 3)}

    @classmethod
    def from_record(cls, d: dict) -> CollisionEvent:
        return cls(float(d["t_s"]), str(d["kind"]), str(d["structure"]), float(d["depth_mm"]),
                   tuple(float(x) for x in d["tip_lps"]), float(d["distance_mm"]))

    def describe(self) -> str:
        what = {"enter_margin": "entered the margin of", "enter": "ENTERED", "exit": "left",
                "exit_margin": "cleared the margin of"}[self.kind]
        return (f"{self.t_s:7.2f} s  {what} {self.structure} at depth {self.depth_mm:.1f} mm "
                f"(clearance {self.distance_mm:+.1f} mm)")


@dataclass
class Readouts:
    """The instrument's pose and what the trainee sees (see the module text for each number)."""

    t_s: float
    entry_lps: np.ndarray
    direction: np.ndarray
    depth_mm: float
    tip_lps: np.ndarray
    tip_to_target_mm: float
    depth_to_target_mm: float
    distances_mm: dict[str, float]
    margins_mm: dict[str, float]
    violations: list[str]
    collisions: list[str]
    entry_error_mm: float
    target_error_mm: float
    angle_deg: float
    elapsed_ms: float = 0.0

    def state(self, name: str) -> int:
        d = self.distances_mm.get(name, math.inf)
        return INSIDE if d < 0 else MARGIN if d < self.margins_mm.get(name, DEFAULT_MARGIN_MM) else CLEAR

    def to_record(self) -> dict:
        def num(x):
            return round(float(x), 4) if math.isfinite(x) else None

        return {"t_s": num(self.t_s), "entry_lps": [num(x) for x in self.entry_lps],
                "direction": [num(x) for x in self.direction], "depth_mm": num(self.depth_mm),
                "tip_lps": [num(x) for x in self.tip_lps], "tip_to_target_mm": num(self.tip_to_target_mm),
                "depth_to_target_mm": num(self.depth_to_target_mm),
                "distances_mm": {k: num(v) for k, v in self.distances_mm.items()},
                "violations": list(self.violations), "collisions": list(self.collisions),
                "entry_error_mm": num(self.entry_error_mm), "target_error_mm": num(self.target_error_mm),
                "angle_deg": num(self.angle_deg), "elapsed_ms": num(self.elapsed_ms)}


def make_readouts(plan: PlannedPath, margins_mm: dict, entry, direction, depth_mm: float,
                  distances_mm: dict, t_s: float) -> Readouts:
    """Readouts of a pose whose clearances are known (the rehearsal and the replay share it)."""
    entry = np.asarray(entry, np.float64)
    d = np.asarray(direction, np.float64)
    tip = entry + depth_mm * d
    target = plan.target
    to_target = target - tip
    rel = target - entry
    lateral = rel - np.dot(rel, d) * d
    viol = [n for n, v in distances_mm.items() if v < margins_mm.get(n, DEFAULT_MARGIN_MM)]
    return Readouts(float(t_s), entry, d, float(depth_mm), tip, float(np.linalg.norm(to_target)),
                    float(np.dot(to_target, d)), dict(distances_mm), margins_mm, viol,
                    [n for n in viol if distances_mm[n] < 0], float(np.linalg.norm(entry - plan.entry)),
                    float(np.linalg.norm(lateral)), angle_between_deg(d, plan.direction))


class AnalyticClearance:
    """Exact clearances to analytic structures (the tests' stand-in for the case's distance maps):
    ``spheres`` {name: (centre_lps, radius_mm)}, ``boxes`` {name: (min_corner_lps, max_corner_lps)}."""

    def __init__(self, spheres: dict | None = None, boxes: dict | None = None, *, box_step_mm: float = 0.25):
        self.spheres = {n: (point(c, f"sphere {n!r} centre"), float(r)) for n, (c, r) in (spheres or {}).items()}
        self.boxes = {n: (point(lo, f"box {n!r}"), point(hi, f"box {n!r}")) for n, (lo, hi) in (boxes or {}).items()}
        self.box_step_mm = float(box_step_mm)
        self.structures = [*self.spheres, *self.boxes]

    def segment_clearance(self, start_lps, end_lps, radius_mm: float) -> dict[str, float]:
        a, b = np.asarray(start_lps, np.float64), np.asarray(end_lps, np.float64)
        ab = b - a
        ll = float(np.dot(ab, ab))
        out = {}
        for n, (c, r) in self.spheres.items():
            s = 0.0 if ll < 1e-12 else min(1.0, max(0.0, float(np.dot(c - a, ab)) / ll))
            out[n] = float(np.linalg.norm(a + s * ab - c)) - r - radius_mm
        if self.boxes:
            k = max(2, int(math.ceil(math.sqrt(ll) / self.box_step_mm)) + 1)
            pts = a + np.linspace(0.0, 1.0, k)[:, None] * ab
            for n, (lo, hi) in self.boxes.items():
                centre, half = (lo + hi) / 2, (hi - lo) / 2
                q = np.abs(pts - centre) - half
                sdf = np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(axis=1), 0.0)
                out[n] = float(sdf.min()) - radius_mm
        return out


class Rehearsal:
    """The instrument driven by commands over an injected clearance (see the module text)."""

    def __init__(self, plan: PlannedPath, clearance, *, instrument: Instrument | str | dict | None = None,
                 margins_mm: dict | None = None, default_margin_mm: float = DEFAULT_MARGIN_MM,
                 clock: Callable[[], float] | None = None, sweep_step_mm: float = 2.0,
                 entry_lps=None, direction=None) -> None:
        self.plan = plan
        self.clearance = clearance
        self.instrument = catalogue_instrument(instrument)
        names = list(getattr(clearance, "structures", []) or [])
        margins = dict(margins_mm or {})
        self.margins_mm = {n: float(margins.get(n, default_margin_mm)) for n in names}
        self.margins_mm.update({n: float(v) for n, v in margins.items()})
        self.sweep_step_mm = float(sweep_step_mm)
        self._clock = clock or time.monotonic
        self._t0 = self._clock()
        self.changed = Signal("changed")  # arg: Readouts
        self.collision = Signal("collision")  # arg: CollisionEvent
        self.events: list[CollisionEvent] = []
        self.timings_ms: list[float] = []  # readout time of each command (ms)
        self._states: dict[str, int] = {}
        self._samples: list[tuple] = []  # (t, cmd, entry, direction, depth, distances)
        self.entry = point(plan.entry if entry_lps is None else entry_lps, "the entry point")
        self.direction = (unit(plan.target - self.entry, "the direction to the target") if direction is None
                          else unit(direction))
        self.depth_mm = 0.0
        self.readouts = self._update("start", None, sweep=False)

    # -- time -----------------------------------------------------------------------------------
    def now(self) -> float:
        """Seconds since the rehearsal started, by its clock."""
        return float(self._clock() - self._t0)

    # -- commands -------------------------------------------------------------------------------
    def advance(self, mm: float, *, t: float | None = None) -> Readouts:
        """Push the instrument ``mm`` deeper along its direction (clamped to its length)."""
        self.depth_mm = min(self.instrument.length_mm, max(0.0, self.depth_mm + float(mm)))
        return self._update("advance", t)

    def retract(self, mm: float, *, t: float | None = None) -> Readouts:
        """Pull it back ``mm`` (not past the entry: depth >= 0)."""
        self.depth_mm = min(self.instrument.length_mm, max(0.0, self.depth_mm - float(mm)))
        return self._update("retract", t)

    def pivot(self, d_angle_a_deg: float, d_angle_b_deg: float = 0.0, *, t: float | None = None) -> Readouts:
        """Turn the direction about the entry point: ``d_angle_a_deg`` about axis ``a``, then
        ``d_angle_b_deg`` about ``b`` of ``pivot_axes(direction)`` (degrees, right-handed)."""
        a, b = pivot_axes(self.direction)
        d = rotate(self.direction, a, float(d_angle_a_deg))
        self.direction = unit(rotate(d, b, float(d_angle_b_deg)))
        return self._update("pivot", t)

    def set_pose(self, tip_lps, direction, *, entry_lps=None, t: float | None = None) -> Readouts:
        """Put the instrument at a pose: tip and direction (LPS). The entry is ``entry_lps`` or the
        current entry projected onto the new axis; the depth is the entry -> tip distance (>= 0)."""
        tip, d = point(tip_lps, "the tip"), unit(direction)
        if entry_lps is None:
            entry = tip - max(0.0, float(np.dot(tip - self.entry, d))) * d
        else:
            entry = point(entry_lps, "the entry point")
        depth = float(np.dot(tip - entry, d))
        if depth < -1e-6:
            raise SurgtwinError("the tip lies behind the entry point along the direction",
                                hint="give a direction from the entry toward the tip")
        self.entry, self.direction = entry, d
        self.depth_mm = min(self.instrument.length_mm, max(0.0, depth))
        return self._update("pose", t)

    def insert_at(self, entry_lps, direction=None, *, t: float | None = None) -> Readouts:
        """A new insertion at ``entry_lps`` (depth 0), aimed at the planned target unless ``direction``."""
        entry = point(entry_lps, "the entry point")
        self.direction = (unit(self.plan.target - entry, "the direction to the target") if direction is None
                          else unit(direction))
        self.entry, self.depth_mm = entry, 0.0
        return self._update("insert", t)

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self, entry, direction, depth_mm: float) -> dict[str, float]:
        """Clearances of a pose (the injected ``clearance``), without changing the state."""
        tip = entry + depth_mm * direction
        return self.clearance.segment_clearance(entry, tip, self.instrument.radius_mm)

    def _update(self, cmd: str, t: float | None, *, sweep: bool = True) -> Readouts:
        t0 = time.perf_counter()
        t_s = 0.0 if not self._samples else max(self._samples[-1][0], self.now() if t is None else float(t))
        if sweep and self._samples:
            self._sweep(t_s)
        dist = self.evaluate(self.entry, self.direction, self.depth_mm)
        r = make_readouts(self.plan, self.margins_mm, self.entry.copy(), self.direction.copy(), self.depth_mm,
                          dist, t_s)
        new_events = self._log_events(r)
        r.elapsed_ms = (time.perf_counter() - t0) * 1e3
        if cmd != "start":
            self.timings_ms.append(r.elapsed_ms)
        self._samples.append((t_s, cmd, r.entry_lps, r.direction, r.depth_mm, dist))
        self.readouts = r
        for ev in new_events:
            self.collision.emit(ev)
        self.changed.emit(r)
        return r

    def _sweep(self, t_s: float) -> None:
        """Events along the motion from the last recorded pose to the new one (intermediate poses)."""
        _, _, e0, d0, z0, _ = self._samples[-1]
        tip0, tip1 = e0 + z0 * d0, self.entry + self.depth_mm * self.direction
        move = max(float(np.linalg.norm(tip1 - tip0)), float(np.linalg.norm(self.entry - e0)))
        n = min(MAX_SWEEP, int(move // max(self.sweep_step_mm, 1e-3)))
        if n < 1 or (np.allclose(d0, self.direction) and np.allclose(e0, self.entry)):
            return  # a pure advance/retract: the inserted segment grows or shrinks, nothing is skipped
        t_prev = self._samples[-1][0]
        for k in range(1, n + 1):
            f = k / (n + 1)
            e = (1 - f) * e0 + f * self.entry
            d = unit((1 - f) * d0 + f * self.direction) if np.dot(d0, self.direction) > -0.99 else self.direction
            z = (1 - f) * z0 + f * self.depth_mm
            r = make_readouts(self.plan, self.margins_mm, e, d, z, self.evaluate(e, d, z),
                              t_prev + f * (t_s - t_prev))
            self._log_events(r)

    def _log_events(self, r: Readouts) -> list[CollisionEvent]:
        out = []
        for name in r.distances_mm:
            old, new = self._states.get(name, CLEAR), r.state(name)
            if old == new:
                continue
            kinds = (["enter_margin", "enter"][old:new] if new > old else ["exit", "exit_margin"][2 - old:2 - new])
            for kind in kinds:
                ev = CollisionEvent(r.t_s, kind, name, r.depth_mm, tuple(float(x) for x in r.tip_lps),
                                    float(r.distances_mm[name]))
                self.events.append(ev)
                out.append(ev)
            self._states[name] = new
        return out

    # -- record ---------------------------------------------------------------------------------
    def recording(self):
        """Everything so far as a ``Recording`` (timestamped poses, clearances and events)."""
        from surgtwin.core.plan.rehearsal_record import Recording

        s = self._samples
        names = list(self.margins_mm)
        return Recording(
            plan=self.plan, instrument=self.instrument, margins_mm=dict(self.margins_mm),
            t_s=np.array([x[0] for x in s]), commands=[x[1] for x in s],
            entry_lps=np.array([x[2] for x in s]).reshape(-1, 3), direction=np.array([x[3] for x in s]).reshape(-1, 3),
            depth_mm=np.array([x[4] for x in s]),
            distances_mm={n: np.array([x[5].get(n, math.inf) for x in s]) for n in names},
            events=list(self.events))


# -- scripts -----------------------------------------------------------------------------------------
SCRIPT_COMMANDS = ("advance", "retract", "pivot", "pose", "insert")


def parse_script(script) -> list[dict]:
    """Check a script: a list (or JSON text) of steps ``{"t": s, "cmd": "advance"|"retract", "mm": x}``,
    ``{"t": s, "cmd": "pivot", "a_deg": x, "b_deg": y}``, ``{"t": s, "cmd": "insert", "entry": [..],
    "direction": [..] (optional)}`` or a pose ``{"t": s, "tip": [..], "direction": [..], "entry": [..]
    (optional)}``. Times are seconds from the start and must not decrease."""
    import json

    if isinstance(script, str):
        try:
            script = json.loads(script)
        except json.JSONDecodeError as exc:
            raise SurgtwinError(f"the script is not valid JSON ({exc})") from None
    if isinstance(script, dict) and "steps" in script:
        script = script["steps"]
    if not isinstance(script, list) or not script:
        raise SurgtwinError("a rehearsal script must be a non-empty JSON list of steps",
                            hint='e.g. [{"t": 0, "cmd": "advance", "mm": 5}]')
    out, last = [], -math.inf
    for i, step in enumerate(script):
        if not isinstance(step, dict):
            raise SurgtwinError(f"script step {i}: must be an object, got {step!r}")
        cmd = step.get("cmd", "pose" if "tip" in step else None)
        if cmd not in SCRIPT_COMMANDS:
            raise SurgtwinError(f"script step {i}: unknown command {cmd!r}", hint=f"use one of {SCRIPT_COMMANDS}")
        try:
            t = float(step["t"])
        except (KeyError, TypeError, ValueError):
            raise SurgtwinError(f"script step {i}: needs a time \"t\" in seconds") from None
        if not math.isfinite(t) or t < max(last, 0.0):
            raise SurgtwinError(f"script step {i}: time {step.get('t')} goes back (the previous step was at {last} s)")
        last = t
        need = {"advance": ("mm",), "retract": ("mm",), "pivot": (), "pose": ("tip", "direction"),
                "insert": ("entry",)}[cmd]
        missing = [k for k in need if k not in step]
        if missing:
            raise SurgtwinError(f"script step {i} ({cmd}): missing {', '.join(missing)}")
        out.append({**step, "cmd": cmd, "t": t})
    return out


def run_script(rehearsal: Rehearsal, script) -> list[Readouts]:
    """Drive ``rehearsal`` with a script (see ``parse_script``); the readouts after each step."""
    out = []
    for s in parse_script(script):
        t, cmd = s["t"], s["cmd"]
        try:
            if cmd == "advance":
                out.append(rehearsal.advance(float(s["mm"]), t=t))
            elif cmd == "retract":
                out.append(rehearsal.retract(float(s["mm"]), t=t))
            elif cmd == "pivot":
                out.append(rehearsal.pivot(float(s.get("a_deg", 0.0)), float(s.get("b_deg", 0.0)), t=t))
            elif cmd == "insert":
                out.append(rehearsal.insert_at(s["entry"], s.get("direction"), t=t))
            else:
                out.append(rehearsal.set_pose(s["tip"], s["direction"], entry_lps=s.get("entry"), t=t))
        except (TypeError, ValueError) as exc:
            raise SurgtwinError(f"script step at t={t} s ({cmd}): bad value ({exc})") from None
    return out


def straight_script(plan: PlannedPath, *, step_mm: float = 2.0, speed_mm_s: float = 2.0, t0: float = 0.0,
                    entry_lps=None, overshoot_mm: float = 0.0) -> list[dict]:
    """A script that inserts at the planned (or given) entry aimed at the target and advances to it
    in ``step_mm`` steps at ``speed_mm_s`` (a reference attempt; demos and tests)."""
    entry = plan.entry if entry_lps is None else point(entry_lps, "the entry point")
    total = float(np.linalg.norm(plan.target - entry)) + overshoot_mm
    steps: list[dict] = [{"t": t0, "cmd": "insert", "entry": [float(x) for x in entry]}]
    done, t = 0.0, t0
    while done < total - 1e-9:
        mm = min(step_mm, total - done)
        t += mm / speed_mm_s
        done += mm
        steps.append({"t": round(t, 6), "cmd": "advance", "mm": mm})
    return steps


def as_events(items: Iterable) -> list[CollisionEvent]:
    return [e if isinstance(e, CollisionEvent) else CollisionEvent.from_record(e) for e in items]


@dataclass
class ManualClock:
    """A clock for tests and scripts: ``clock()`` returns ``now``; ``advance(s)`` moves it on."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += float(seconds)
        return self.now
