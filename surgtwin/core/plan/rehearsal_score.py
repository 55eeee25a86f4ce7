"""The score of a recorded rehearsal (0-100, with its breakdown) and a trainee's progress across attempts.

A **planning and teaching score**: the weights and tolerances below are a reasonable default for
practice feedback, not a validated assessment of surgical skill. NOT FOR CLINICAL USE.

``score_recording(recording, settings=ScoreSettings())`` -> ``Score``: four components, each 0-100,
``clip(x) = min(1, max(0, x))``:

* **accuracy** = 100 * (0.6 * clip(1 - e_tip / tol_target) + 0.2 * clip(1 - e_entry / tol_entry)
  + 0.2 * clip(1 - angle / tol_angle)), with the final pose's tip-to-target distance ``e_tip`` (mm),
  entry error ``e_entry`` (mm) and angle to the planned path (deg); tolerances 10 mm, 10 mm, 20 deg.
* **safety** = 100 * clip(1 - 0.3 * n_enter - 0.1 * n_margin - worst / 5 mm - t_margin / 30 s), with
  ``n_enter`` the ``enter`` events (the instrument penetrated a structure), ``n_margin`` the
  ``enter_margin`` events, ``worst`` the deepest penetration (mm, 0 without one) and ``t_margin`` the
  time (s) with at least one structure closer than its margin (each sample held until the next).
* **time** = 100 * clip(t_ref / duration): full marks up to the reference time ``t_ref`` (default
  30 s + planned length / 2 mm/s), then falling as ``t_ref / duration``.
* **smoothness** = 100 * clip(1 - 0.15 * reversals - pivot / 45 deg), with ``reversals`` the changes
  between advancing and retracting once inserted and ``pivot`` the total turn of the direction (deg)
  while the instrument is inserted (aiming before insertion is free).

``total`` = 0.40 accuracy + 0.35 safety + 0.10 time + 0.15 smoothness (the weights sum to 1, so
``total`` is exactly this weighted sum of the components, 0-100). ``Score.to_record()``: ``total``,
``components`` {accuracy, safety, time, smoothness}, ``weights`` {same keys}, ``details`` (the
inputs above: ``tip_to_target_mm``, ``entry_error_mm``, ``target_error_mm``, ``angle_deg``,
``n_enter``, ``n_enter_margin``, ``structures_entered``, ``worst_penetration_mm``,
``time_in_margin_s``, ``time_inside_s``, ``duration_s``, ``reference_time_s``, ``reversals``,
``pivot_deg``), ``settings`` (``ScoreSettings`` as a dict) and ``note``.

``progress_table(attempts)``: a trainee's rehearsals of one trajectory (records with ``started``
and ``score``) -> ``{"rows": [{"attempt", "id", "date", "total", <components>}], "trend": {...}}``,
the trend being the least-squares slope of the total per attempt (points/attempt), the change from
the first to the last attempt, the best attempt and a word (improving | steady | declining).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from surgtwin.core.plan.rehearsal import angle_between_deg

COMPONENTS = ("accuracy", "safety", "time", "smoothness")
NOTE = "planning/teaching score with default weights; not a validated assessment. NOT FOR CLINICAL USE"


@dataclass(frozen=True)
class ScoreSettings:
    """Weights and tolerances of the score (see the module text for the formulas)."""

    w_accuracy: float = 0.40
    w_safety: float = 0.35
    w_time: float = 0.10
    w_smoothness: float = 0.15
    tol_target_mm: float = 10.0
    tol_entry_mm: float = 10.0
    tol_angle_deg: float = 20.0
    per_enter: float = 0.3
    per_margin: float = 0.1
    penetration_mm: float = 5.0
    margin_time_s: float = 30.0
    reference_time_s: float | None = None  # None: 30 s + planned length / 2 mm/s
    per_reversal: float = 0.15
    pivot_deg: float = 45.0

    def weights(self) -> dict:
        w = {"accuracy": self.w_accuracy, "safety": self.w_safety, "time": self.w_time,
             "smoothness": self.w_smoothness}
        s = sum(w.values())
        return {k: v / s for k, v in w.items()}


@dataclass
class Score:
    total: float
    components: dict
    weights: dict
    details: dict
    settings: dict

    def to_record(self) -> dict:
        return {"total": round(self.total, 2), "components": {k: round(v, 2) for k, v in self.components.items()},
                "weights": {k: round(v, 4) for k, v in self.weights.items()}, "details": self.details,
                "settings": self.settings, "note": NOTE}


def clip(x: float) -> float:
    return min(1.0, max(0.0, float(x)))


def held_time(t: np.ndarray, flags: np.ndarray) -> float:
    """Seconds during which ``flags`` holds, each sample held until the next."""
    if len(t) < 2:
        return 0.0
    return float(np.sum(np.diff(t)[flags[:-1]]))


def motion_stats(recording) -> tuple[int, float]:
    """``(reversals, pivot_deg)`` of a recording (see the module text)."""
    z = recording.depth_mm
    dz = np.diff(z)
    inserted = (z[:-1] > 1e-6) | (z[1:] > 1e-6)
    signs = np.sign(dz[inserted & (np.abs(dz) > 1e-6)])
    reversals = int(np.sum(signs[1:] != signs[:-1])) if len(signs) > 1 else 0
    d = recording.direction
    pivot = sum(angle_between_deg(d[i], d[i + 1]) for i in range(len(d) - 1) if inserted[i])
    return reversals, float(pivot)


def score_recording(recording, settings: ScoreSettings | None = None) -> Score:
    """The score and its breakdown (see the module text)."""
    s = settings or ScoreSettings()
    fin = recording.final()
    a = 100 * (0.6 * clip(1 - fin.tip_to_target_mm / s.tol_target_mm)
               + 0.2 * clip(1 - fin.entry_error_mm / s.tol_entry_mm)
               + 0.2 * clip(1 - fin.angle_deg / s.tol_angle_deg))
    ev = recording.events
    n_enter = sum(1 for e in ev if e.kind == "enter")
    n_margin = sum(1 for e in ev if e.kind == "enter_margin")
    dist = recording.distances_mm
    n = len(recording)
    if dist:
        mat = np.vstack([np.where(np.isfinite(v), v, np.inf) for v in dist.values()])
        margins = np.array([recording.margins_mm.get(k, 0.0) for k in dist])[:, None]
        in_margin = np.any(mat < margins, axis=0)
        inside = np.any(mat < 0, axis=0)
        worst = float(max(0.0, -float(mat.min())))
    else:
        in_margin = inside = np.zeros(n, bool)
        worst = 0.0
    t = recording.t_s
    t_margin, t_inside = held_time(t, in_margin), held_time(t, inside)
    safety = 100 * clip(1 - s.per_enter * n_enter - s.per_margin * n_margin - worst / s.penetration_mm
                        - t_margin / s.margin_time_s)
    t_ref = s.reference_time_s if s.reference_time_s is not None else 30.0 + recording.plan.length_mm / 2.0
    dur = recording.duration_s
    time_c = 100.0 if dur <= 0 else 100 * clip(t_ref / dur)
    reversals, pivot = motion_stats(recording)
    smooth = 100 * clip(1 - s.per_reversal * reversals - pivot / s.pivot_deg)
    comps = {"accuracy": a, "safety": safety, "time": time_c, "smoothness": smooth}
    w = s.weights()
    total = sum(w[k] * comps[k] for k in COMPONENTS)
    details = {"tip_to_target_mm": round(fin.tip_to_target_mm, 3), "entry_error_mm": round(fin.entry_error_mm, 3),
               "target_error_mm": round(fin.target_error_mm, 3), "angle_deg": round(fin.angle_deg, 3),
               "n_enter": n_enter, "n_enter_margin": n_margin,
               "structures_entered": sorted({e.structure for e in ev if e.kind == "enter"}),
               "worst_penetration_mm": round(worst, 3), "time_in_margin_s": round(t_margin, 3),
               "time_inside_s": round(t_inside, 3), "duration_s": round(dur, 3),
               "reference_time_s": round(t_ref, 3), "reversals": reversals, "pivot_deg": round(pivot, 3)}
    return Score(float(total), comps, w, details, asdict(s))


def progress_table(attempts: list[dict]) -> dict:
    """A trainee's attempts (records with ``id``, ``started``, ``score``) -> rows and trend."""
    def order(r: dict):
        rid = str(r.get("id") or "")
        return str(r.get("started", "")), int(rid[1:]) if rid[1:].isdigit() else 0

    items = sorted(attempts, key=order)
    rows = []
    for k, r in enumerate(items, start=1):
        sc = r.get("score") or {}
        comps = sc.get("components") or {}
        rows.append({"attempt": k, "id": r.get("id"), "date": str(r.get("started", "")), "total": sc.get("total"),
                     **{c: comps.get(c) for c in COMPONENTS}})
    totals = np.array([row["total"] for row in rows if row["total"] is not None], np.float64)
    trend: dict = {"attempts": len(rows), "slope_per_attempt": None, "change": None, "best_attempt": None,
                   "direction": "n/a"}
    if len(totals):
        trend["best_attempt"] = int(np.argmax(totals)) + 1
        trend["best_total"] = float(totals.max())
    if len(totals) >= 2:
        x = np.arange(1, len(totals) + 1, dtype=np.float64)
        slope = float(np.polyfit(x, totals, 1)[0])
        trend["slope_per_attempt"] = round(slope, 3)
        trend["change"] = round(float(totals[-1] - totals[0]), 3)
        trend["direction"] = "improving" if slope > 1.0 else "declining" if slope < -1.0 else "steady"
    return {"rows": rows, "trend": trend}
