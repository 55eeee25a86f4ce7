"""Planning on the patient's twin: implants, their poses, placement checks (no case, no Qt, no VTK).

Everything is in patient LPS millimetres. Heavy work is precomputed once per case and per implant
so that a pose change is checked in milliseconds (the app drags implants live).

Public API
----------
* implant library (``implants``): ``families()``, ``family(name) -> Family`` (``.implant(size)``),
  ``Implant`` (``family``, ``size``, ``params``, ``material``, ``mesh()`` in its local frame),
  ``custom_implant(path)``, ``materials()``, ``material(key)``, ``Material``
* poses (``pose``): ``Pose`` (4x4 local -> LPS; ``from_axis``, ``from_rotvec``, ``to_json``/``from_json``),
  ``PlacedImplant`` (id, name, implant, pose; ``world_mesh()``, ``to_json``/``from_json``),
  ``placements_from_json``, ``placements_to_json``
* voxels (``voxelise``): ``voxelise(placed, reference) -> bool mask``, ``implant_labels(labels,
  placements) -> LabelMap`` (implants as ``implant_<id>`` structures for ``tet_mesh``),
  ``sample_implant(implant) -> ImplantSamples``
* start poses (``anatomy``, ``femur``, ``spine``): ``propose_pose(labels, implant, target) -> Proposal``
  with ``target`` ``{"femur": "left"}`` or ``{"vertebra": "L4", "side": "left"}``;
  ``femur.canal_axis``, ``femur.femoral_head``, ``spine.vertebra_levels``, ``spine.pedicle_trajectory``
* checks (``checks``): ``CheckSpec``, ``default_spec(labels, target)``, ``CheckContext(labels, spec,
  ct=, region=)`` (``.check(placed, samples) -> PlacementChecks``, ms per pose),
  ``check_placement(labels, placed)`` (one-off)
* TAVR (``tavr``, ``tavr_devices``): ``measure_annulus(labels, ct, hinge_points_lps=) -> TavrMeasurement``
  (``to_record``/``from_record``); ``sizing_charts()``, ``size_valves(m) -> {family: SizingResult}``,
  ``size_family``, ``oversizing_percent``, ``anatomy_warnings``, ``place_valve(m, family, size, depth_mm)
  -> ValvePlacement``, ``default_depth_mm``, ``eoa_cm2``, ``mean_gradient``, ``prosthesis_mismatch``,
  ``pvl_risk``
* trajectories (``clearance``, ``trajectory``, ``trajectory_suggest``): ``ClearanceMaps.for_labels(labels)``
  (signed distance maps in mm per structure, cached per label content; ``distance(name, points)``),
  ``instruments()``, ``instrument(name) -> Instrument``, ``default_margins(names)``, ``evaluate(maps, entry,
  target, instrument, margins) -> TrajectoryMetrics`` (ms per pose), ``compare(a, b)``, ``resolve_target``,
  ``pedicle_path(labels, level, side)``, ``suggest(maps, target, region, ...) -> Suggestions``
* rehearsal (``rehearsal``, ``rehearsal_record``, ``rehearsal_score``): ``Rehearsal(plan, clearance, instrument=)``
  (``advance``, ``retract``, ``pivot``, ``set_pose``, ``insert_at`` -> ``Readouts``; ``changed``/``collision``
  signals), ``PlannedPath``, ``CollisionEvent``, ``AnalyticClearance``, ``run_script``, ``parse_script``,
  ``Recording``, ``Replay``, ``score_recording -> Score``, ``ScoreSettings``, ``progress_table``
"""

from __future__ import annotations

__all__ = [
    "families", "family", "Family", "Implant", "Material", "custom_implant", "materials", "material",
    "Pose", "PlacedImplant", "placements_from_json", "placements_to_json",
    "voxelise", "implant_labels", "sample_implant", "ImplantSamples",
    "propose_pose", "Proposal", "CheckSpec", "CheckContext", "PlacementChecks", "default_spec", "check_placement",
    "measure_annulus", "TavrMeasurement", "sizing_charts", "size_valves", "size_family", "SizingResult",
    "oversizing_percent", "anatomy_warnings", "place_valve", "ValvePlacement", "default_depth_mm", "eoa_cm2",
    "mean_gradient", "prosthesis_mismatch", "pvl_risk",
    "ClearanceMaps", "ClearanceMap", "Instrument", "instruments", "instrument", "default_margins", "evaluate",
    "compare", "resolve_target", "pedicle_path", "PediclePath", "TrajectoryMetrics", "StructureClearance",
    "suggest", "Suggestions", "entry_candidates",
    "Rehearsal", "PlannedPath", "Readouts", "CollisionEvent", "AnalyticClearance", "run_script", "parse_script",
    "Recording", "Replay", "score_recording", "Score", "ScoreSettings", "progress_table",
]

_LAZY = {
    **dict.fromkeys(("families", "family", "Family", "Implant", "Material", "custom_implant", "materials",
                     "material"), "surgtwin.core.plan.implants"),
    **dict.fromkeys(("Pose", "PlacedImplant", "placements_from_json", "placements_to_json"),
                    "surgtwin.core.plan.pose"),
    **dict.fromkeys(("voxelise", "implant_labels", "sample_implant", "ImplantSamples"),
                    "surgtwin.core.plan.voxelise"),
    **dict.fromkeys(("propose_pose", "Proposal"), "surgtwin.core.plan.anatomy"),
    **dict.fromkeys(("CheckSpec", "CheckContext", "PlacementChecks", "default_spec", "check_placement"),
                    "surgtwin.core.plan.checks"),
    **dict.fromkeys(("measure_annulus", "TavrMeasurement"), "surgtwin.core.plan.tavr"),
    **dict.fromkeys(("sizing_charts", "size_valves", "size_family", "SizingResult", "oversizing_percent",
                     "anatomy_warnings", "place_valve", "ValvePlacement", "default_depth_mm", "eoa_cm2", "mean_gradient",
                     "prosthesis_mismatch", "pvl_risk"), "surgtwin.core.plan.tavr_devices"),
    **dict.fromkeys(("ClearanceMaps", "ClearanceMap"), "surgtwin.core.plan.clearance"),
    **dict.fromkeys(("Instrument", "instruments", "instrument", "default_margins", "evaluate", "compare",
                     "resolve_target", "pedicle_path", "PediclePath", "TrajectoryMetrics", "StructureClearance"),
                    "surgtwin.core.plan.trajectory"),
    **dict.fromkeys(("suggest", "Suggestions", "entry_candidates"), "surgtwin.core.plan.trajectory_suggest"),
    **dict.fromkeys(("Rehearsal", "PlannedPath", "Readouts", "CollisionEvent", "AnalyticClearance", "run_script",
                     "parse_script"), "surgtwin.core.plan.rehearsal"),
    **dict.fromkeys(("Recording", "Replay"), "surgtwin.core.plan.rehearsal_record"),
    **dict.fromkeys(("score_recording", "Score", "ScoreSettings", "progress_table"), "surgtwin.core.plan.rehearsal_score"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'surgtwin.core.plan' has no attribute {name!r}")
