"""A rehearsal's recording (timestamped poses, clearances, collision events) and its replay.

``Recording`` holds one sample per command (``Rehearsal.recording()``): time ``t_s`` [n] (s from the
start), the command name, ``entry_lps`` [n, 3], unit ``direction`` [n, 3], ``depth_mm`` [n] and the
clearance of each structure ``distances_mm`` {name: [n]} (mm from the instrument's surface, negative
inside), with the plan, the instrument, the margins and the events. ``to_record()`` gives plain JSON
(exactly the fields below); ``from_record`` reads it back:

* ``schema``: 1
* ``plan``: {"entry_lps" [3], "target_lps" [3]}; ``instrument``: ``Instrument.to_json()`` ({"name", "label",
  "diameter_mm", "length_mm", "tip", "kind", "source"}); ``margins_mm``: {structure: mm}
* ``samples``: {"t_s" [n], "cmd" [n] (start | advance | retract | pivot | pose | insert),
  "entry_lps" [[x, y, z] x n], "direction" [[x, y, z] x n], "depth_mm" [n],
  "distances_mm" {structure: [n] (null where not evaluated)}}
* ``events``: [{"t_s", "kind" (enter_margin | enter | exit | exit_margin), "structure", "depth_mm",
  "tip_lps" [3], "distance_mm"}]

``Replay(recording, clearance=None)``: ``duration_s``, ``at(t)`` -> ``Readouts`` of the pose
interpolated between the samples around ``t`` (entry and depth linearly, the direction normalised
linearly, i.e. along the great circle for the small turns between samples); the clearances are
interpolated too, or recomputed exactly when a ``clearance`` object is given; ``timeline()`` the
events in time order, ``events_until(t)``, ``frames(fps)`` poses at a fixed rate for playback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.plan.rehearsal import (
    CollisionEvent,
    PlannedPath,
    Readouts,
    as_events,
    make_readouts,
    unit,
)
from surgtwin.core.plan.trajectory import Instrument

SCHEMA = 1


def _num(x: float, nd: int = 4):
    x = float(x)
    return round(x, nd) if math.isfinite(x) else None


@dataclass
class Recording:
    """Timestamped instrument poses of one rehearsal (see the module text)."""

    plan: PlannedPath
    instrument: Instrument
    margins_mm: dict
    t_s: np.ndarray
    commands: list
    entry_lps: np.ndarray
    direction: np.ndarray
    depth_mm: np.ndarray
    distances_mm: dict = field(default_factory=dict)
    events: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.t_s = np.asarray(self.t_s, np.float64).reshape(-1)
        n = len(self.t_s)
        self.entry_lps = np.asarray(self.entry_lps, np.float64).reshape(n, 3)
        self.direction = np.asarray(self.direction, np.float64).reshape(n, 3)
        self.depth_mm = np.asarray(self.depth_mm, np.float64).reshape(n)
        self.distances_mm = {k: np.asarray(v, np.float64).reshape(n) for k, v in self.distances_mm.items()}
        self.commands = list(self.commands) if self.commands else ["pose"] * n
        if n == 0:
            raise SurgtwinError("a recording needs at least one sample")
        if np.any(np.diff(self.t_s) < 0):
            raise SurgtwinError("a recording's times must not decrease")
        self.events = as_events(self.events)

    def __len__(self) -> int:
        return len(self.t_s)

    @property
    def duration_s(self) -> float:
        return float(self.t_s[-1] - self.t_s[0])

    @property
    def tip_lps(self) -> np.ndarray:
        return self.entry_lps + self.depth_mm[:, None] * self.direction

    def readouts(self, i: int) -> Readouts:
        """The readouts of sample ``i`` (as recorded)."""
        return make_readouts(self.plan, self.margins_mm, self.entry_lps[i], self.direction[i], float(self.depth_mm[i]),
                             {k: float(v[i]) for k, v in self.distances_mm.items()}, float(self.t_s[i]))

    def final(self) -> Readouts:
        return self.readouts(len(self) - 1)

    def to_record(self) -> dict:
        return {
            "schema": SCHEMA, "plan": self.plan.to_record(), "instrument": self.instrument.to_json(),
            "margins_mm": {k: float(v) for k, v in self.margins_mm.items()},
            "samples": {"t_s": [_num(x) for x in self.t_s], "cmd": list(self.commands),
                        "entry_lps": [[_num(x) for x in p] for p in self.entry_lps],
                        "direction": [[_num(x, 6) for x in p] for p in self.direction],
                        "depth_mm": [_num(x) for x in self.depth_mm],
                        "distances_mm": {k: [_num(x) for x in v] for k, v in self.distances_mm.items()}},
            "events": [e.to_record() for e in self.events],
        }

    @classmethod
    def from_record(cls, d: dict) -> Recording:
        if not isinstance(d, dict) or int(d.get("schema", 0)) != SCHEMA:
            raise SurgtwinError(f"not a rehearsal recording of schema {SCHEMA}",
                                hint="record the rehearsal again with this surgtwin")

        def arr(v):
            return np.array([math.inf if x is None else x for x in v], np.float64)

        s = d["samples"]
        return cls(PlannedPath.from_record(d["plan"]), Instrument.from_json(d["instrument"]),
                   {k: float(v) for k, v in d.get("margins_mm", {}).items()}, np.asarray(s["t_s"], np.float64),
                   list(s.get("cmd") or []), np.asarray(s["entry_lps"], np.float64),
                   np.asarray(s["direction"], np.float64), np.asarray(s["depth_mm"], np.float64),
                   {k: arr(v) for k, v in s.get("distances_mm", {}).items()},
                   [CollisionEvent.from_record(e) for e in d.get("events", [])])


class Replay:
    """Play a ``Recording`` back: ``at(t)`` -> interpolated ``Readouts`` (see the module text)."""

    def __init__(self, recording: Recording, clearance=None) -> None:
        self.recording = recording
        self.clearance = clearance

    @property
    def start_s(self) -> float:
        return float(self.recording.t_s[0])

    @property
    def duration_s(self) -> float:
        return self.recording.duration_s

    def timeline(self) -> list[CollisionEvent]:
        return sorted(self.recording.events, key=lambda e: e.t_s)

    def events_until(self, t_s: float) -> list[CollisionEvent]:
        return [e for e in self.timeline() if e.t_s <= t_s]

    def at(self, t_s: float) -> Readouts:
        """The pose and readouts at ``t_s`` (seconds on the recording's clock; clamped to its span)."""
        rec = self.recording
        t = min(float(rec.t_s[-1]), max(float(rec.t_s[0]), float(t_s)))
        j = int(np.searchsorted(rec.t_s, t, side="right"))
        if j >= len(rec):
            return self._pose(len(rec) - 1, len(rec) - 1, 0.0, t)
        i = max(0, j - 1)
        span = float(rec.t_s[j] - rec.t_s[i])
        f = 0.0 if span <= 0 else (t - float(rec.t_s[i])) / span
        return self._pose(i, j, f, t)

    def _pose(self, i: int, j: int, f: float, t: float) -> Readouts:
        rec = self.recording
        entry = (1 - f) * rec.entry_lps[i] + f * rec.entry_lps[j]
        d = (1 - f) * rec.direction[i] + f * rec.direction[j]
        d = unit(d) if np.linalg.norm(d) > 1e-6 else rec.direction[j]
        depth = float((1 - f) * rec.depth_mm[i] + f * rec.depth_mm[j])
        if self.clearance is not None:
            dist = self.clearance.segment_clearance(entry, entry + depth * d, rec.instrument.radius_mm)
        else:
            dist = {k: float((1 - f) * v[i] + f * v[j]) if np.isfinite(v[i]) and np.isfinite(v[j]) else float(v[j])
                    for k, v in rec.distances_mm.items()}
        return make_readouts(rec.plan, rec.margins_mm, entry, d, depth, dist, t)

    def frames(self, fps: float = 10.0) -> list[Readouts]:
        """Readouts at ``fps`` frames per second over the whole recording (playback)."""
        n = max(1, int(math.floor(self.duration_s * fps)) + 1)
        return [self.at(self.start_s + k / fps) for k in range(n)]
