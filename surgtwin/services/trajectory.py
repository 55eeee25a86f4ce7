"""Trajectory planning over a case: the "trajectory" step, live evaluation for dragging, what-if.

Step ``trajectory`` (inputs: ``labels``). Options:

* ``target``: an LPS point [x, y, z] (mm), a structure name (its centroid) or ``"name:deepest"``;
* the entry, one of: ``entry`` (an LPS point), ``entry_region`` (``"skin"`` or a structure such as
  ``"skull"``; optionally ``patch_centre`` [x, y, z] and ``patch_radius_mm``) with ``suggest`` = k
  (default 3): the safest entry is planned and the k ranked suggestions kept; or ``pedicle``
  (``"L4:left"`` or ``{"vertebra": "L4", "side": "left"}``): entry and target on the pedicle axis
  (``target`` optional: default 80 % of the bone chord deep; ``depth_mm`` sets it);
* ``instrument`` (catalogue name, default ``biopsy-needle-14g``; ``jamshidi-11g`` for a pedicle),
  ``margins`` {structure: mm} (overrides of the defaults; a negative margin drops a structure),
  ``trajectory_name``, ``id`` (default the next free; an existing id is replaced), ``max_candidates`` (10000),
  ``min_separation_mm`` (10), ``max_angle_deg`` (60).

It stores the item ``trajectories`` (kind records; provenance: method "trajectory", the last change
and the labels' content hash, so a label edit marks the plans stale) whose value is a list of
trajectories, each a JSON dict with exactly these fields:

* ``id`` (text), ``name``, ``method`` ("manual" | "suggested" | "pedicle");
* ``entry_lps`` [3], ``target_lps`` [3] (mm), ``target_structure`` (name or null);
* ``instrument``: ``Instrument.to_json()`` {``name``, ``label``, ``diameter_mm``, ``length_mm``,
  ``tip``, ``kind``, ``source``};
* ``margins_mm`` {structure: mm} (the critical structures used);
* ``metrics``: ``TrajectoryMetrics.to_json()``: ``entry_lps``, ``target_lps``, ``instrument``,
  ``diameter_mm``, ``instrument_length_mm``, ``length_mm``, ``instrument_ok``, ``clearances``
  [{``structure``, ``min_distance_mm`` (from the instrument's surface; < 0 overlap), ``margin_mm``,
  ``passed``, ``nearest_lps`` [3], ``depth_mm``, ``entered``}], ``crossed`` [{``structure``,
  ``enter_mm``, ``exit_mm``, ``critical``}] (in order along the path), ``entry_angles`` [{``surface``
  ("body" = skin, or a structure), ``angle_deg`` (0 = perpendicular; null: not entered),
  ``point_lps``, ``depth_mm``}], ``entry_angle_deg`` (the first surface's), ``passed``, ``verdict``
  ("pass" | "fail"), ``reasons`` [text], ``elapsed_ms``;
* ``verdict`` ("pass" | "fail"), ``passed`` (bool);
* ``suggestion``: null, or for a suggested entry {``region``, ``patch_centre_lps``, ``patch_radius_mm``,
  ``candidates``, ``feasible``, ``steps``, ``structures``, ``scoring_ms``, ``elapsed_ms``,
  ``risk_item`` (the arrays item key), ``ranked`` [{``rank``, ``score``, ``risk``, ``metrics``}]
  (the k suggestions, best first; rank 1 is the planned entry)};
* ``notes``: {} or, for a pedicle path, the spine's notes (level, side, pedicle width, bone chord,
  medial angle, levels, level assumption, warnings);
* ``provenance`` {``method``, ``inputs`` {``labels``: hash}, ``surgtwin_version``, ``created``}.

A suggested trajectory also stores the arrays item ``trajectory_risk:<id>`` (the risk map over the
entry surface): ``entries_lps`` (N, 3) float32, ``risk`` (N,) in [0, 1] (1: infeasible), ``score``,
``feasible`` (uint8), ``length_mm``, ``angle_deg``, ``clearance_mm`` (N, J: per structure, in the
order of the record's ``suggestion.structures``) and ``target_lps`` (3,).

Live use (the app, the rehearsal engine): ``planner_maps(case)`` (the case's ``ClearanceMaps``,
shared per label content), ``evaluate(case_or_maps, entry, target, instrument, margins)`` (a few ms),
``what_if(case_or_maps, a, b)`` (two trajectories' metrics side by side; ``a``/``b``: ids, records or
``(entry, target)`` pairs), ``update_trajectory(case, id, entry=, target=, commit=)``,
``remove_trajectory(case, id)``, ``trajectories(case)``, ``trajectory(case, id)``.
"""

from __future__ import annotations

import copy

import numpy as np

from surgtwin.core.case import Case, Provenance
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import check, report
from surgtwin.services.pipeline import Step, StepJob, StepOutput, register_step

ITEM = "trajectories"
RISK_SLOT = "trajectory_risk"
PEDICLE_INSTRUMENT = "jamshidi-11g"


def trajectories(case: Case) -> list[dict]:
    """The case's planned trajectories (records), in order."""
    it = case.item(ITEM)
    return [] if it is None else list(it.value)


def trajectory(case: Case, trajectory_id: str) -> dict:
    """A trajectory record by id (or, failing that, by name)."""
    items = trajectories(case)
    for match in (lambda r: str(r.get("id")) == str(trajectory_id), lambda r: r.get("name") == trajectory_id):
        for r in items:
            if match(r):
                return r
    raise SurgtwinError(f"no trajectory {trajectory_id!r} in the case",
                        hint="ids: " + (", ".join(str(r.get("id")) for r in items) or
                                        "none planned yet (surgtwin plan trajectory CASE ...)"))


def planner_maps(case_or_maps, *, labels_hash: str | None = None):
    """The ``ClearanceMaps`` of a case (or a label map, or maps as given), shared per label content."""
    from surgtwin.core.plan.clearance import ClearanceMaps

    if isinstance(case_or_maps, ClearanceMaps):
        return case_or_maps
    if isinstance(case_or_maps, Case):
        if case_or_maps.labels is None:
            raise SurgtwinError("the case has no label map", hint="segment it first")
        return ClearanceMaps.for_labels(case_or_maps.labels, labels_hash=case_or_maps.current_hash("labels"))
    return ClearanceMaps.for_labels(case_or_maps, labels_hash=labels_hash)


def evaluate(case_or_maps, entry_lps, target_lps, instrument=None, margins: dict | None = None, *,
             target_structure: str | None = None, surfaces=None):
    """``TrajectoryMetrics`` of a path on the case's cached maps (a few ms once they exist)."""
    from surgtwin.core.plan.trajectory import evaluate as core_evaluate

    return core_evaluate(planner_maps(case_or_maps), entry_lps, target_lps, instrument, margins,
                         target_structure=target_structure, surfaces=surfaces)


def _as_metrics(case_or_maps, t, instrument=None, margins=None):
    from surgtwin.core.plan.trajectory import TrajectoryMetrics

    if isinstance(t, TrajectoryMetrics):
        return t, "metrics"
    if isinstance(t, str | int):
        if not isinstance(case_or_maps, Case):
            raise SurgtwinError("a trajectory id needs the case")
        t = trajectory(case_or_maps, str(t))
    if isinstance(t, dict):
        return evaluate(case_or_maps, t["entry_lps"], t["target_lps"], t.get("instrument") or instrument,
                        t.get("margins_mm") if margins is None else margins,
                        target_structure=t.get("target_structure")), t.get("name") or t.get("id", "")
    entry, target = t
    return evaluate(case_or_maps, entry, target, instrument, margins), "path"


def what_if(case_or_maps, a, b, *, instrument=None, margins: dict | None = None) -> dict:
    """Two trajectories compared on the current labels: ``{"a": metrics JSON, "b": ..., "rows":
    [(item, a, b, better)]}``. ``a``/``b``: trajectory ids, records, ``TrajectoryMetrics`` or
    ``(entry, target)`` pairs (with ``instrument``/``margins``)."""
    from surgtwin.core.plan.trajectory import compare

    ma, na = _as_metrics(case_or_maps, a, instrument, margins)
    mb, nb = _as_metrics(case_or_maps, b, instrument, margins)
    return {"a": ma.to_json(), "b": mb.to_json(), "names": [na, nb], "rows": [list(r) for r in compare(ma, mb)]}


# -- the step ----------------------------------------------------------------------------------------
def _next_id(existing: list) -> str:
    nums = [int(r["id"]) for r in existing if str(r.get("id", "")).isdigit()]
    return str(max(nums, default=0) + 1)


def _pedicle_opt(p):
    if isinstance(p, dict):
        return str(p["vertebra"]), str(p["side"])
    level, _, side = str(p).partition(":")
    if not side:
        raise SurgtwinError(f"pedicle {p!r} is not LEVEL:SIDE", hint="e.g. L4:left")
    return level, side


def _point_or_none(v):
    return None if v is None else [float(x) for x in np.asarray(v, float).reshape(3)]


def _plan(labels, labels_hash: str, existing: list, opts: dict, *, progress=None, cancel=None) -> StepOutput:
    from surgtwin.core.case.provenance import now_iso, surgtwin_version
    from surgtwin.core.plan.clearance import BODY, ClearanceMaps
    from surgtwin.core.plan.trajectory import (
        critical_margins,
        evaluate,
        instrument,
        pedicle_path,
        resolve_target,
    )
    from surgtwin.core.plan.trajectory_suggest import suggest

    maps = ClearanceMaps.for_labels(labels, labels_hash=labels_hash)
    margins = dict(opts.get("margins") or {})
    tid = str(opts.get("id") or _next_id(existing))
    notes, suggestion, arrays, method = {}, None, None, "manual"
    target_opt = opts.get("target")
    if opts.get("pedicle"):
        level, side = _pedicle_opt(opts["pedicle"])
        ins = instrument(opts.get("instrument") or PEDICLE_INSTRUMENT)
        report(progress, 0.05, f"trajectory: pedicle {level} {side}")
        pp = pedicle_path(labels, level, side, depth_mm=opts.get("depth_mm"))
        entry = pp.entry_lps
        target, tname = (pp.target_lps, None) if target_opt is None else resolve_target(maps, target_opt)
        notes, method = pp.notes, "pedicle"
        surfaces = (BODY, "vertebrae") if maps.has("vertebrae") else (BODY,)
        default_name = f"pedicle {pp.level} {pp.side}"
    else:
        if target_opt is None:
            raise SurgtwinError("a trajectory needs a target", hint="a point x,y,z (LPS mm) or a structure name")
        ins = instrument(opts.get("instrument"))
        target, tname = resolve_target(maps, target_opt)
        region = opts.get("entry_region")
        surfaces = None
        if opts.get("entry") is not None:
            entry = np.asarray(opts["entry"], float)
        elif region:
            k = int(opts.get("suggest") or 3)
            sug = suggest(maps, tname or target, str(region), k=k, instrument_=ins, margins=margins,
                          patch_centre_lps=opts.get("patch_centre"), patch_radius_mm=opts.get("patch_radius_mm"),
                          max_candidates=int(opts.get("max_candidates") or 10_000),
                          min_separation_mm=float(opts.get("min_separation_mm") or 10.0),
                          max_angle_deg=float(opts.get("max_angle_deg") or 60.0), progress=progress, cancel=cancel)
            if not sug.top:
                raise SurgtwinError(f"no candidate entry on the {region} surface")
            entry = np.asarray(sug.top[0].entry_lps, float)
            method = "suggested"
            surfaces = (BODY,) if str(region) in ("skin", BODY) else (BODY, str(region))
            sj = sug.to_json()
            suggestion = {"region": str(region), "patch_centre_lps": _point_or_none(opts.get("patch_centre")),
                          "patch_radius_mm": opts.get("patch_radius_mm"),
                          **{k2: sj[k2] for k2 in ("candidates", "feasible", "steps", "structures", "scoring_ms",
                                                   "elapsed_ms")},
                          "risk_item": f"{RISK_SLOT}:{tid}", "ranked": sj["top"]}
            arrays = {k2: v for k2, v in sug.arrays().items() if k2 != "clearance_names"}
        else:
            raise SurgtwinError("a trajectory needs an entry point, an entry region or a pedicle",
                                hint="--entry x,y,z, --entry-region skin|skull[:x,y,z:radius] or --pedicle L4:left")
        default_name = f"{ins.label} to {tname or 'target'}"
    check(cancel)
    report(progress, 0.9, "trajectory: metrics")
    m = evaluate(maps, entry, target, ins, margins, target_structure=tname, surfaces=surfaces)
    crit = critical_margins(maps, margins, tname)
    rec = {"id": tid, "name": opts.get("trajectory_name") or default_name, "method": method,
           "entry_lps": np.round(np.asarray(entry, float), 3).tolist(),
           "target_lps": np.round(np.asarray(target, float), 3).tolist(), "target_structure": tname,
           "instrument": ins.to_json(), "margins_mm": crit, "metrics": m.to_json(), "verdict": m.verdict,
           "passed": bool(m.passed), "suggestion": suggestion, "notes": notes,
           "provenance": {"method": f"trajectory:{method}", "inputs": {"labels": labels_hash},
                          "surgtwin_version": surgtwin_version(), "created": now_iso()}}
    value = [r for r in copy.deepcopy(existing) if r.get("id") != tid]
    index = next((n for n, r in enumerate(existing) if r.get("id") == tid), len(value))
    value.insert(index, rec)
    prov = Provenance("trajectory", {"id": tid, "method": method, "instrument": ins.name,
                                     "target": target_opt if isinstance(target_opt, str) else _point_or_none(target),
                                     "margins": margins, "trajectories": [r["id"] for r in value]},
                      {"labels": labels_hash})
    items = {ITEM: (value, prov)}
    if arrays is not None:
        items[f"{RISK_SLOT}:{tid}"] = (arrays, Provenance("trajectory-risk", {"id": tid, "region": suggestion["region"]},
                                                          {"labels": labels_hash}))
    report(progress, 1.0, f"trajectory {tid}: {m.verdict.upper()}")
    return StepOutput("trajectory", items=items, summary={"trajectory": rec, "passed": bool(m.passed)}, result=m)


def _prepare(case: Case, **options) -> StepJob:
    from dataclasses import replace

    it = case.item(ITEM)
    existing = copy.deepcopy(it.value) if it is not None else []
    lab = case.labels
    return StepJob("trajectory", _plan, (replace(lab, array=lab.array.copy()), case.current_hash("labels"),
                                         existing, dict(options)))


register_step(Step("trajectory", "plan a straight instrument trajectory (entry given, auto-suggested from a "
                   "skin/skull region, or on a pedicle) and measure its clearances", ("labels",), _prepare))


def _store(case: Case, value: list, params: dict) -> None:
    h = case.current_hash("labels")
    case.set_item(ITEM, value, Provenance("trajectory", {**params, "trajectories": [r["id"] for r in value]},
                                          {"labels": h}))


def update_trajectory(case: Case, trajectory_id: str, *, entry=None, target=None, commit: bool = True):
    """Re-measure trajectory ``trajectory_id`` with a moved ``entry``/``target`` (LPS mm); with
    ``commit`` store it (method becomes "manual"). Returns the ``TrajectoryMetrics``."""
    from surgtwin.core.case.provenance import now_iso, surgtwin_version

    rec = trajectory(case, trajectory_id)
    entry = rec["entry_lps"] if entry is None else _point_or_none(entry)
    target = rec["target_lps"] if target is None else _point_or_none(target)
    m = evaluate(case, entry, target, rec["instrument"], rec["margins_mm"], target_structure=rec.get("target_structure"))
    if commit:
        value = copy.deepcopy(trajectories(case))
        for n, r in enumerate(value):
            if r["id"] == rec["id"]:
                value[n] = {**r, "method": "manual", "entry_lps": list(entry), "target_lps": list(target),
                            "metrics": m.to_json(), "verdict": m.verdict, "passed": bool(m.passed),
                            "provenance": {"method": "trajectory:manual",
                                           "inputs": {"labels": case.current_hash("labels")},
                                           "surgtwin_version": surgtwin_version(), "created": now_iso()}}
        _store(case, value, {"id": rec["id"], "method": "manual"})
    return m


def remove_trajectory(case: Case, trajectory_id: str) -> None:
    """Take a trajectory (and its risk map) out of the plan."""
    trajectory(case, trajectory_id)
    value = [r for r in trajectories(case) if r["id"] != str(trajectory_id)]
    if case.item(f"{RISK_SLOT}:{trajectory_id}") is not None:
        case.remove_item(f"{RISK_SLOT}:{trajectory_id}")
    if not value:
        case.remove_item(ITEM)
        return
    _store(case, value, {"removed": str(trajectory_id)})
