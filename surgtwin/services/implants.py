"""Implant planning over a case: the "implant" pipeline step and live checks for the app.

* Step ``implant`` (inputs: labels): places a library implant (``family``, ``size``) or a custom mesh
  (``custom=PATH``), named ``placement_name``, with id ``id`` (default: the next free), with a pose (a ``Pose``, a pose JSON dict) or ``"auto"`` from the anatomy named
  by the target (``femur="left"``, or ``vertebra="L4", side="left"``), checks it, and stores it in
  the case's ``implants`` item: a list of placements (``PlacedImplant.to_json()`` plus ``checks``,
  the anatomy ``notes`` of an automatic pose, ``warnings`` and the placement's own provenance).
  The item's provenance names the last change (method, family, size, pose, target) and the labels'
  content hash, so editing the labels marks the placements (and their checks) stale.
* ``ImplantPlanner(case)``: checks of a pose in a few ms for live dragging; the per-case fields and
  the per-implant point samples are computed once and cached (a new region is prepared when an
  implant leaves the checked one). ``update_pose(case, id, pose, planner=..., commit=...)``: check a
  new pose and, with ``commit=True``, write it to the case (on the thread that owns the case).
* ``check_all(case)``: fresh checks of every placed implant (``surgtwin plan checks``).
"""

from __future__ import annotations

import copy
from pathlib import Path

from surgtwin.core.case import Case, Provenance
from surgtwin.core.case.model import labels_content_hash
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import check, report
from surgtwin.services.pipeline import Step, StepJob, StepOutput, register_step

ITEM = "implants"


def placements(case: Case) -> list:
    """The case's placed implants (``PlacedImplant``), in order."""
    from surgtwin.core.plan.pose import placements_from_json

    it = case.item(ITEM)
    return placements_from_json(None if it is None else it.value)


def placement(case: Case, placement_id: str):
    for p in placements(case):
        if p.id == str(placement_id):
            return p
    raise SurgtwinError(f"no implant with id {placement_id!r} in the case",
                        hint="ids: " + (", ".join(p.id for p in placements(case)) or "none placed yet"))


def _spec(labels, placed, margins: dict | None = None):
    from surgtwin.core.plan.checks import default_spec

    return default_spec(labels, placed.target or None, critical_mm=dict(margins or {}))


class ImplantPlanner:
    """Live placement checks over one case: caches the check fields (per labels and spec) and the
    implant samples (per implant). Use from the thread that owns the case, or give it snapshots
    (``labels=``, ``ct=``). The cortical rule reads HU only when the image's modality is CT."""

    def __init__(self, case: Case | None = None, *, labels=None, ct=None, labels_hash: str | None = None):
        self._case = case
        self._labels, self._ct, self._hash = labels, ct, labels_hash
        self._contexts: dict = {}
        self._samples: dict = {}
        self._placed: dict = {}
        self._placed_item = None

    def _grid(self):
        if self._case is not None:
            if self._case.labels is None:
                raise SurgtwinError("the case has no label map", hint="segment it first")
            labels, ct, h = self._case.labels, self._case.volume, self._case.current_hash("labels")
        else:
            labels, ct, h = self._labels, self._ct, self._hash or labels_content_hash(self._labels)
        if ct is not None and (ct.modality or "").upper() != "CT":
            ct = None  # HU only from a CT: other images use the shell rule for cortical bone
        return labels, ct, h

    def samples(self, implant):
        """The implant's point samples (made once per implant geometry)."""
        from surgtwin.core.plan.voxelise import sample_implant

        if implant.custom_mesh is None:
            key = (implant.family, implant.size, implant.generator, repr(sorted(implant.params.items())))
        else:
            key = ("custom", id(implant))
        if key not in self._samples:
            self._samples[key] = (implant, sample_implant(implant))  # the implant kept: its id stays unique
        return self._samples[key][1]

    def _new_context(self, placed, spec, key, progress=None, cancel=None):
        from surgtwin.core.plan.checks import CheckContext, region_around

        labels, ct, _ = self._grid()
        region = region_around(labels.shape, labels.affine, placed.world_mesh().vertices, spec.region_margin_mm)
        ctx = CheckContext(labels, spec, ct=ct if ct is not None and ct.shape == labels.shape else None,
                           region=region, progress=progress, cancel=cancel)
        if any(k[0] != key[0] for k in self._contexts):
            self._contexts.clear()  # the labels changed: the old fields are useless
        self._contexts[key] = ctx
        return ctx

    def check(self, placed, *, margins: dict | None = None, progress=None, cancel=None):
        """``PlacementChecks`` of ``placed`` (a few ms once the fields exist; the first check of a
        case, or of an implant moved out of the checked region, prepares them: about a second)."""
        labels, _, h = self._grid()
        spec = _spec(labels, placed, margins)
        key = (h, repr(spec.to_json()))
        samples = self.samples(placed.implant)
        ctx = self._contexts.get(key)
        result = None if ctx is None else ctx.check(placed, samples)
        if result is None or result.outside_region_ml > 0:
            ctx = self._new_context(placed, spec, key, progress, cancel)
            result = ctx.check(placed, samples)
        return result

    def placed(self, case: Case, placement_id: str):
        """The case's placement ``placement_id`` (parsed once per version of the case's item)."""
        it = case.item(ITEM)
        if it is None or self._placed_item is not it:
            self._placed = {p.id: p for p in placements(case)}
            self._placed_item = it
        if str(placement_id) not in self._placed:
            placement(case, placement_id)  # raises naming the known ids
        return self._placed[str(placement_id)]


def _record(placed, result, notes=None, warnings=(), labels_hash="", method="manual") -> dict:
    from surgtwin.core.case.provenance import now_iso, surgtwin_version

    rec = placed.to_json()
    rec["checks"] = result.to_json()
    rec["notes"] = dict(notes or {})
    rec["warnings"] = list(warnings) + list(result.warnings)
    rec["provenance"] = {"method": f"implant:{method}", "inputs": {"labels": labels_hash},
                         "surgtwin_version": surgtwin_version(), "created": now_iso()}
    return rec


def _pose_brief(pose) -> dict:
    """The pose for a provenance line (the exact matrix is in the placement record)."""
    return {"translation_mm": [round(float(v), 2) for v in pose.translation_mm],
            "rotation_vector_deg": [round(float(v), 2) for v in pose.rotation_vector_deg]}


def _target(opts: dict) -> dict:
    if opts.get("target"):
        return dict(opts["target"])
    if opts.get("femur"):
        return {"femur": str(opts["femur"]).lower()}
    if opts.get("vertebra"):
        if not opts.get("side"):
            raise SurgtwinError("a vertebra target needs a side", hint="--side left or --side right")
        return {"vertebra": str(opts["vertebra"]).upper(), "side": str(opts["side"]).lower()}
    return {}


def _implant_from(opts: dict):
    from surgtwin.core.plan import implants

    if opts.get("custom"):
        return implants.custom_implant(Path(opts["custom"]), name=opts.get("placement_name"),
                                       material_key=opts.get("material") or "ti6al4v")
    if not opts.get("family") or opts.get("size") is None:
        raise SurgtwinError("placing an implant needs a family and a size (or a custom mesh file)",
                            hint="families: " + ", ".join(implants.families()))
    return implants.family(str(opts["family"])).implant(str(opts["size"]), material_key=opts.get("material"))


def _place(labels, volume, existing: list, labels_hash: str, opts: dict, *, progress=None,
           cancel=None) -> StepOutput:
    from surgtwin.core.plan.anatomy import propose_pose
    from surgtwin.core.plan.pose import PlacedImplant, Pose, next_id, placements_from_json

    report(progress, 0.02, "implant: library")
    implant = _implant_from(opts)
    target = _target(opts)
    pose_opt = opts.get("pose", "auto" if target else None)
    notes, warnings, method = {}, (), "manual"
    if isinstance(pose_opt, Pose):
        pose = pose_opt
    elif isinstance(pose_opt, dict):
        pose = Pose.from_json(pose_opt, source="--pose")
    elif pose_opt == "auto":
        if not target:
            raise SurgtwinError("an automatic pose needs a target", hint="--femur left, or --vertebra L4 --side left")
        report(progress, 0.1, "implant: proposing a pose from the anatomy")
        prop = propose_pose(labels, implant, target)
        pose, notes, warnings, method, target = prop.pose, prop.notes, prop.warnings, "auto", prop.target
    else:
        raise SurgtwinError("placing an implant needs a pose or a target for an automatic pose",
                            hint="--pose JSON, or --femur / --vertebra with --side")
    check(cancel)
    current = placements_from_json(existing)
    pid = str(opts.get("id") or next_id(current))
    name = opts.get("placement_name") or (f"{implant.label} " + " ".join(str(v) for v in target.values())).strip()
    placed = PlacedImplant(pid, name, implant, pose, target, method)
    report(progress, 0.4, "implant: checks")
    planner = ImplantPlanner(labels=labels, ct=volume, labels_hash=labels_hash)
    result = planner.check(placed, margins=opts.get("margins"), cancel=cancel)
    rec = _record(placed, result, notes, warnings, labels_hash, method)
    value = [r for r in copy.deepcopy(existing) if r.get("id") != pid]
    index = next((n for n, r in enumerate(existing) if r.get("id") == pid), len(value))
    value.insert(index, rec)
    prov = Provenance("implant-placement", {"id": pid, "family": implant.family, "size": implant.size,
                                            "pose": _pose_brief(pose), "pose_method": method, "target": target,
                                            "placements": [r["id"] for r in value]},
                      {"labels": labels_hash})
    report(progress, 1.0, f"implant {pid}: {'passed' if result.passed else 'FAILED'} checks")
    return StepOutput("implant", items={ITEM: (value, prov)},
                      summary={"placement": rec, "passed": result.passed}, result=result)


def _prepare(case: Case, **options) -> StepJob:
    from dataclasses import replace

    it = case.item(ITEM)
    existing = copy.deepcopy(it.value) if it is not None else []
    lab = case.labels
    return StepJob("implant", _place, (replace(lab, array=lab.array.copy()), case.volume, existing,
                                       case.current_hash("labels"), dict(options)))


register_step(Step("implant", "place an implant (library family and size, or a custom mesh) with a pose or "
                   "automatically on a femur/vertebra, and check it", ("labels",), _prepare))


def update_pose(case: Case, placement_id: str, pose, *, planner: ImplantPlanner | None = None,
                commit: bool = True, margins: dict | None = None):
    """Check ``placement_id`` at ``pose`` (a ``Pose`` or pose JSON); with ``commit`` also store the
    pose and its checks in the case. Returns the ``PlacementChecks``."""
    from surgtwin.core.plan.pose import Pose

    pose = pose if isinstance(pose, Pose) else Pose.from_json(pose)
    planner = planner or ImplantPlanner(case)
    placed = planner.placed(case, placement_id).with_pose(pose)
    result = planner.check(placed, margins=margins)
    if commit:
        h = case.current_hash("labels")
        value = copy.deepcopy(case.item(ITEM).value)
        for n, rec in enumerate(value):
            if rec.get("id") == placed.id:
                value[n] = _record(placed, result, rec.get("notes"), [], h, "manual")
        prov = Provenance("implant-placement", {"id": placed.id, "family": placed.implant.family,
                                                "size": placed.implant.size, "pose": _pose_brief(pose),
                                                "pose_method": "manual", "target": placed.target,
                                                "placements": [r["id"] for r in value]}, {"labels": h})
        case.set_item(ITEM, value, prov)
    return result


def remove_implant(case: Case, placement_id: str) -> None:
    """Take an implant out of the plan."""
    placement(case, placement_id)
    it = case.item(ITEM)
    value = [r for r in copy.deepcopy(it.value) if r.get("id") != str(placement_id)]
    if not value:
        case.remove_item(ITEM)
        return
    prov = Provenance("implant-placement", {**it.provenance.parameters, "removed": str(placement_id),
                                            "placements": [r["id"] for r in value]},
                      {"labels": case.current_hash("labels")})
    case.set_item(ITEM, value, prov)


def check_all(case: Case, *, planner: ImplantPlanner | None = None, progress=None, cancel=None) -> dict:
    """Fresh ``PlacementChecks`` of every placed implant, by id (on the case's current labels)."""
    planner = planner or ImplantPlanner(case)
    out = {}
    items = placements(case)
    for n, p in enumerate(items):
        check(cancel)
        report(progress, n / max(1, len(items)), f"checking implant {p.id}")
        out[p.id] = planner.check(p, cancel=cancel)
    report(progress, 1.0, f"{len(out)} implant(s) checked")
    return out
