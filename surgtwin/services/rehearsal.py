"""Rehearsals of a case's planned trajectories: build, drive, record, store, score, replay (issue 15).

The engine is ``surgtwin.core.plan.rehearsal`` (``Rehearsal``: commands, readouts, collision events);
this module gives it the case's geometry and keeps its recordings in the case.

* ``start(case, trajectory, *, trainee="", clock=None, margins_mm=None) -> RehearsalRun``: a
  ``Rehearsal`` of one of the case's trajectories (by id or name) over the case's clearance maps
  (``surgtwin.core.plan.clearance.ClearanceMaps``, made once per label content), with the
  trajectory's instrument and margins. Drive ``run.rehearsal`` (``advance``, ``pivot``, ...; its
  ``changed``/``collision`` signals feed the app), then ``finish(case, run)`` scores it and stores it.
* ``rehearse_script(case, trajectory, script, *, trainee="") -> dict``: the same headless from a
  script (``surgtwin.core.plan.rehearsal.run_script``), stored; returns the record.
* Step ``rehearsal`` (inputs: ``labels``, ``trajectories``; options ``trajectory``, ``script``,
  ``trainee``): a scripted rehearsal as a pipeline step (the CLI runs it).
* ``rehearsals(case, trajectory=None, trainee=None)``, ``rehearsal(case, id)``, ``progress(case,
  trajectory, trainee=None)`` (``surgtwin.core.plan.rehearsal_score.progress_table`` over the stored
  attempts: rows and trend), ``replay(case, id, exact=False) -> Replay`` (``exact``: clearances
  recomputed from the maps rather than interpolated), ``remove_rehearsal(case, id)``.

The case item ``rehearsals`` (kind records; provenance: method "rehearsal", parameters of the last
change, the input hash of ``labels``: a recording stays valid when other trajectories are planned) is a list of dicts with exactly these
fields:

* ``schema``: 1; ``id``: "R1", "R2", ... (unique in the case)
* ``trajectory_id``, ``trajectory_name``: the trajectory rehearsed; ``trainee``: a name (may be "")
* ``started``: ISO 8601 UTC; ``duration_s``; ``source``: "script" | "interactive"
* ``instrument``: ``Instrument.to_json()`` ({"name", "label", "diameter_mm", "length_mm", "tip", "kind",
  "source"}); ``plan`` {"entry_lps", "target_lps"};
  ``margins_mm`` {structure: mm}
* ``final``: ``Readouts.to_record()`` of the last pose (``t_s``, ``entry_lps``, ``direction``,
  ``depth_mm``, ``tip_lps``, ``tip_to_target_mm``, ``depth_to_target_mm``, ``distances_mm``,
  ``violations``, ``collisions``, ``entry_error_mm``, ``target_error_mm``, ``angle_deg``, ``elapsed_ms``)
* ``recording``: ``Recording.to_record()`` (``schema``, ``plan``, ``instrument``, ``margins_mm``,
  ``samples`` {t_s, cmd, entry_lps, direction, depth_mm, distances_mm}, ``events`` [{t_s, kind,
  structure, depth_mm, tip_lps, distance_mm}])
* ``score``: ``Score.to_record()`` (``total``, ``components`` {accuracy, safety, time, smoothness},
  ``weights``, ``details``, ``settings``, ``note``)
* ``timing``: {"pose_update_ms_median", "pose_update_ms_max"} (readout time per command)
* ``provenance``: ``Provenance.to_json()`` of this attempt (method "rehearsal", parameters
  trajectory_id/trainee/source/clearance/trajectory_hash (the content hash of the trajectory record
  rehearsed), inputs: the labels' hash)

Trajectory records (the ``trajectories`` item, written by ``surgtwin.services.trajectory``) are read
for ``id``, ``name``, ``entry_lps``, ``target_lps``, ``instrument`` (a catalogue name or
``Instrument.to_json()``), ``margins_mm`` and ``target_structure``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from surgtwin.core.case import Case, Provenance
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import report
from surgtwin.services.pipeline import Step, StepJob, StepOutput, register_step
from surgtwin.services.trajectory import trajectory

ITEM = "rehearsals"
TRAJECTORIES = "trajectories"
SCHEMA = 1
#: sampling step (mm) of the instrument's axis when clearances are read from the maps
AXIS_STEP_MM = 0.5


# -- the case's geometry -----------------------------------------------------------------------------
class MapsClearance:
    """``segment_clearance`` over the case's clearance maps (``ClearanceMaps``): per critical
    structure the minimum signed distance along the inserted segment (the axis sampled every
    ``step_mm``, trilinear) less the instrument's radius, i.e. the surface clearance."""

    def __init__(self, maps, structures, *, step_mm: float = AXIS_STEP_MM) -> None:
        self.maps = maps
        self.structures = list(structures)
        self.step_mm = float(step_mm)
        for n in self.structures:
            maps.map(n)  # built now, not during the first command

    def segment_clearance(self, start_lps, end_lps, radius_mm: float) -> dict[str, float]:
        if not self.structures:
            return {}
        a, b = np.asarray(start_lps, np.float64), np.asarray(end_lps, np.float64)
        steps = max(2, int(math.ceil(float(np.linalg.norm(b - a)) / self.step_mm)) + 1)
        pts = a + np.linspace(0.0, 1.0, steps)[:, None] * (b - a)
        d = self.maps.distances(self.structures, pts).min(axis=0)
        return {n: float(v) - radius_mm for n, v in zip(self.structures, d, strict=True)}


# -- trajectories (the case's plans: surgtwin.services.trajectory) ----------------------------------


def plan_of(traj: dict):
    from surgtwin.core.plan.rehearsal import PlannedPath

    try:
        return PlannedPath(tuple(traj.get("entry_lps") or traj["entry"]), tuple(traj.get("target_lps") or traj["target"]))
    except KeyError:
        raise SurgtwinError(f"trajectory {traj.get('id')!r} has no entry/target") from None


# -- running -----------------------------------------------------------------------------------------
@dataclass
class RehearsalRun:
    """A rehearsal in progress: the engine and what ``finish`` stores with it."""

    rehearsal: object  # surgtwin.core.plan.rehearsal.Rehearsal
    trajectory: dict
    trainee: str
    started: str
    source: str = "interactive"
    inputs: dict = field(default_factory=dict)
    clearance: str = "maps"


def case_maps(case: Case):
    from surgtwin.core.plan.clearance import ClearanceMaps

    return ClearanceMaps.for_labels(case.labels, labels_hash=case.current_hash("labels"))


def margins_for(maps, traj: dict, margins_mm: dict | None = None) -> dict[str, float]:
    """{structure: margin mm} a rehearsal of ``traj`` watches: the defaults of the label map's
    structures (``surgtwin.core.plan.trajectory.critical_margins``), the trajectory's own margins,
    then ``margins_mm``; never the target's structure."""
    from surgtwin.core.plan.trajectory import critical_margins

    given = {**(traj.get("margins_mm") or {}), **(margins_mm or {})}
    return critical_margins(maps, given, traj.get("target_structure"))


def start(case: Case, trajectory_key, *, trainee: str = "", clock=None, margins_mm: dict | None = None,
          source: str = "interactive") -> RehearsalRun:
    """A rehearsal of trajectory ``trajectory_key`` over the case's clearance maps (see the module text)."""
    from surgtwin.core.plan.rehearsal import Rehearsal

    if case.labels is None:
        raise SurgtwinError("a rehearsal needs the case's label map", hint="segment the case first")
    traj = trajectory(case, trajectory_key)
    plan = plan_of(traj)
    maps = case_maps(case)
    margins = margins_for(maps, traj, margins_mm)
    reh = Rehearsal(plan, MapsClearance(maps, list(margins)), instrument=traj.get("instrument"), margins_mm=margins,
                    clock=clock)
    from surgtwin.core.case import content_hash

    inputs = {"labels": case.current_hash("labels"), "trajectory": content_hash(traj)}
    started = datetime.now(UTC).isoformat(timespec="seconds")
    return RehearsalRun(reh, copy.deepcopy(traj), str(trainee or ""), started, source,
                        {k: v for k, v in inputs.items() if v is not None})


def make_record(run: RehearsalRun, rid: str, settings=None) -> dict:
    """The stored record of a finished run (see the module text)."""
    from surgtwin.core.plan.rehearsal_score import score_recording

    rec = run.rehearsal.recording()
    score = score_recording(rec, settings)
    times = list(run.rehearsal.timings_ms) or [0.0]
    prov = Provenance("rehearsal", {"trajectory_id": str(run.trajectory.get("id")), "trainee": run.trainee,
                                    "source": run.source, "clearance": run.clearance,
                                    "trajectory_hash": run.inputs.get("trajectory")},
                      {k: v for k, v in run.inputs.items() if k != "trajectory"})
    return {
        "schema": SCHEMA, "id": rid, "trajectory_id": str(run.trajectory.get("id")),
        "trajectory_name": str(run.trajectory.get("name") or run.trajectory.get("id")), "trainee": run.trainee,
        "started": run.started, "duration_s": round(rec.duration_s, 4), "source": run.source,
        "instrument": rec.instrument.to_json(), "plan": rec.plan.to_record(),
        "margins_mm": dict(rec.margins_mm), "final": rec.final().to_record(), "recording": rec.to_record(),
        "score": score.to_record(),
        "timing": {"pose_update_ms_median": round(float(np.median(times)), 4),
                   "pose_update_ms_max": round(float(np.max(times)), 4)},
        "provenance": prov.to_json(),
    }


def next_id(records: list[dict]) -> str:
    nums = [int(r["id"][1:]) for r in records if str(r.get("id", "")).startswith("R") and r["id"][1:].isdigit()]
    return f"R{max(nums, default=0) + 1}"


def store(case: Case, record: dict) -> dict:
    """Append a finished rehearsal's record to the case's ``rehearsals`` item (case's thread)."""
    records = [*rehearsals(case), record]
    prov = Provenance("rehearsal", {"last": record["id"], "trajectory_id": record["trajectory_id"],
                                    "trainee": record["trainee"]}, dict(record["provenance"]["inputs"]))
    case.set_item(ITEM, records, prov)
    return record


def finish(case: Case, run: RehearsalRun, *, settings=None) -> dict:
    """Score the run, store it in the case, return its record."""
    return store(case, make_record(run, next_id(rehearsals(case)), settings))


def rehearse_script(case: Case, trajectory_key, script, *, trainee: str = "", clock=None) -> dict:
    """A scripted rehearsal of a trajectory, stored in the case; its record."""
    from surgtwin.core.plan.rehearsal import run_script

    run = start(case, trajectory_key, trainee=trainee, clock=clock, source="script")
    run_script(run.rehearsal, script)
    return finish(case, run)


# -- stored rehearsals -------------------------------------------------------------------------------
def rehearsals(case: Case, trajectory=None, trainee: str | None = None) -> list[dict]:
    """Stored rehearsal records, optionally of one trajectory (id or name) and/or trainee."""
    it = case.item(ITEM)
    out = list(it.value) if it is not None else []
    if trajectory is not None:
        out = [r for r in out if str(trajectory) in (r.get("trajectory_id"), r.get("trajectory_name"))]
    if trainee is not None:
        out = [r for r in out if r.get("trainee", "") == trainee]
    return out


def rehearsal(case: Case, rid: str) -> dict:
    for r in rehearsals(case):
        if r.get("id") == str(rid):
            return r
    raise SurgtwinError(f"no rehearsal {rid!r} in the case",
                        hint="ids: " + (", ".join(r["id"] for r in rehearsals(case)) or "none recorded yet"))


def remove_rehearsal(case: Case, rid: str) -> None:
    rehearsal(case, rid)
    rest = [r for r in rehearsals(case) if r.get("id") != str(rid)]
    it = case.item(ITEM)
    prov = Provenance("rehearsal", {"removed": str(rid)}, dict(it.provenance.inputs))
    if rest:
        case.set_item(ITEM, rest, prov)
    else:
        case.remove_item(ITEM)


def progress(case: Case, trajectory_key=None, trainee: str | None = None) -> dict:
    """Attempts (of ``trainee``, or everyone's) on a trajectory: ``progress_table`` rows and trend,
    plus ``trajectory_id`` and ``trainee``. With no trajectory: the most rehearsed one."""
    from surgtwin.core.plan.rehearsal_score import progress_table

    recs = rehearsals(case, trainee=trainee)
    if trajectory_key is None:
        ids = [r["trajectory_id"] for r in recs]
        trajectory_key = max(set(ids), key=ids.count) if ids else None
    recs = [r for r in recs if trajectory_key is not None and str(trajectory_key) in
            (r.get("trajectory_id"), r.get("trajectory_name"))]
    table = progress_table(recs)
    table.update({"trajectory_id": None if trajectory_key is None else str(trajectory_key), "trainee": trainee})
    return table


def replay(case: Case, rid: str, *, exact: bool = False):
    """A ``Replay`` of a stored rehearsal (``exact``: clearances recomputed from the case's maps)."""
    from surgtwin.core.plan.rehearsal_record import Recording, Replay

    rec = Recording.from_record(rehearsal(case, rid)["recording"])
    clearance = None
    if exact:
        if case.labels is None:
            raise SurgtwinError("an exact replay needs the case's label map")
        clearance = MapsClearance(case_maps(case), list(rec.margins_mm))
    return Replay(rec, clearance)


# -- the pipeline step -------------------------------------------------------------------------------
def _rehearse(case_snapshot: Case, opts: dict, *, progress=None, cancel=None) -> StepOutput:
    report(progress, 0.1, "rehearsal: building the clearance maps")
    rec = rehearse_script(case_snapshot, opts["trajectory"], opts["script"], trainee=opts.get("trainee") or "")
    report(progress, 1.0, f"rehearsal {rec['id']}: score {rec['score']['total']:.0f}")
    it = case_snapshot.item(ITEM)
    summary = {"id": rec["id"], "score": rec["score"]["total"], "components": rec["score"]["components"],
               "events": len(rec["recording"]["events"])}
    return StepOutput("rehearsal", items={ITEM: (it.value, it.provenance)}, summary=summary, result=rec)


def _prepare(case: Case, **options) -> StepJob:
    from surgtwin.core.plan.rehearsal import parse_script

    if options.get("trajectory") is None or options.get("script") is None:
        raise SurgtwinError("the rehearsal step needs a trajectory (id or name) and a script")
    opts = {**options, "script": parse_script(options["script"])}
    trajectory(case, opts["trajectory"])  # fails now when unknown
    snap = Case(case.volume, case.source, name=case.name, case_id=case.case_id, volume_hash=case.volume_hash)
    lab = case.item("labels")
    snap.set_labels(replace(lab.value, array=lab.value.array.copy()), lab.provenance, item_hash=case.current_hash("labels"), produced_hash=lab.produced_hash)
    for key in (TRAJECTORIES, ITEM):
        it = case.item(key)
        if it is not None:
            snap.set_item(key, copy.deepcopy(it.value), it.provenance, item_hash=it.hash, produced_hash=it.produced_hash)
    return StepJob("rehearsal", _rehearse, (snap, opts))


register_step(Step("rehearsal", "rehearse a planned trajectory from a script: events, score, stored in the case",
                   ("labels", TRAJECTORIES), _prepare))
