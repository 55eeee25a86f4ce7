"""Finite-element studies over a case: the "fem" pipeline step and the "what if" comparison.

Step ``fem`` (inputs: labels, volume and the case's ``implants``): for a placed implant (option
``implant``: its id, name or family; default the only one placed) the implant is voxelised into a copy
of the label map (``surgtwin.core.plan.voxelise.implant_labels``), its bone (``structure``; default
``femur_<side>`` for a stem's femur target, the target vertebra's level of ``vertebrae`` for a screw)
and the implant are meshed together (``size_mm``, default 2 mm, per-element HU from the CT), and the
bone is solved intact and implanted (``surgtwin.core.sim``: loads, zones and resection by implant
type in ``surgtwin.core.sim.scenarios``). Options: ``load`` (``walking``, ``stairs``, ``"3xBW"`` for
stems; ``pullout`` or ``compression`` for screws), ``body_weight_kg`` (75), ``force_n`` (screws),
``calibration`` ((intercept g/cm^3, slope g/cm^3 per HU), default (0, 0.001)), ``site`` (a Morgan 2003
relation; default by structure), ``floor_mpa`` (5), ``rtol`` (1e-9).

Items it puts into the case (with provenance: method, every parameter, the input hashes of labels,
volume and implants, and the tet mesh's hash):

* ``tet:<structure>,implant_<id>``: the tet mesh (regions: the bone's label value and the implant's);
* ``fem:<id>``: arrays (float32 fields, LPS mm / MPa): ``displacement_{intact,implanted}_mm`` (N, 3),
  ``von_mises_{intact,implanted}_mpa``, ``sed_{intact,implanted}_mpa``, ``modulus_{intact,implanted}_mpa``
  (M,), ``zones`` (M,) int8 (0: none/implant), ``implant_elements`` (M,) uint8,
  ``load_nodes_{intact,implanted}``, ``fixed_nodes``; the zone table ``zone_ids``, ``zone_volume_ml``,
  ``zone_sed_intact_kj_m3``, ``zone_sed_implanted_kj_m3``, ``zone_change_percent``; and scalars
  ``implant_peak_von_mises_mpa``, ``implant_p99_von_mises_mpa``, ``implant_yield_mpa``, ``safety_factor``.
  The zone names are in the provenance (``zone_names``); the tet item key in ``tet_item``.

``what_if(case, implant, size_b=...)`` (or ``pose_b=``) solves the placement as it is and the same
placement with another size or pose, and returns both tables and the difference in a sentence; the
second result is stored as ``fem:<id>:size-<size>`` (or ``fem:<id>:pose-b``) when ``store=True``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np

from surgtwin.core.case import Case, Provenance
from surgtwin.core.case.model import item_content_hash
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import check, report, scaled
from surgtwin.services.pipeline import Step, StepJob, StepOutput, register_step

SLOT = "fem"
DEFAULT_SIZE_MM = 2.0


def _placements(value):
    from surgtwin.core.plan.pose import placements_from_json

    return placements_from_json(value)


def find_placement(placements: list, key=None):
    """The placement named by ``key`` (id, name or family); the only one when ``key`` is None."""
    if not placements:
        raise SurgtwinError("no implant is placed on the case", hint="place one first: surgtwin plan implant")
    if key is None:
        if len(placements) > 1:
            raise SurgtwinError("several implants are placed: which one to simulate?",
                                hint="ids: " + ", ".join(f"{p.id} ({p.name})" for p in placements))
        return placements[0]
    key = str(key)
    for match in (lambda p: p.id == key, lambda p: p.name == key, lambda p: p.implant.family == key):
        found = [p for p in placements if match(p)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise SurgtwinError(f"several implants match {key!r}", hint="give the id: " + ", ".join(p.id for p in found))
    raise SurgtwinError(f"no implant {key!r} on the case", hint="ids: " + ", ".join(f"{p.id} ({p.name})" for p in placements))


def _bone_labels(labels, placed, structure):
    """(label map restricted to the bone to mesh, structure name, level name or None)."""
    target = placed.target or {}
    if structure is None:
        if "femur" in target:
            structure = f"femur_{target['femur']}"
        elif "vertebra" in target:
            structure = "vertebrae"
        else:
            raise SurgtwinError("which bone is the implant in?", hint="give the structure, e.g. femur_left")
    if structure not in labels.labels.names():
        raise SurgtwinError(f"the label map has no structure {structure!r}",
                            hint="known: " + ", ".join(labels.labels.names()))
    level = None
    if structure == "vertebrae" and "vertebra" in target:
        from surgtwin.core.plan.spine import vertebra_levels

        lv = vertebra_levels(labels).level(str(target["vertebra"]))
        value = labels.labels.by_name(structure).value
        arr = labels.array.copy()
        arr[arr == value] = 0
        arr[tuple(lv.voxels.T)] = value
        labels = replace(labels, array=arr)
        level = lv.name
    return labels, structure, level


@dataclass
class FemRun:
    """One finished study: the placement, the mesh and its item key, the set-up, the result, parameters."""

    placed: object
    mesh: object
    tet_key: str
    structures: list
    setup: object
    result: object
    parameters: dict


def simulate_placement(labels, volume, placed, opts: dict, *, progress=None, cancel=None) -> FemRun:
    """Mesh ``placed`` with its bone and solve intact + implanted (the work of the fem step)."""
    from surgtwin.core.mesh.tetra import tet_mesh
    from surgtwin.core.plan.voxelise import implant_labels
    from surgtwin.core.sim.materials import (
        BoneMaterial,
        DensityCalibration,
        density_modulus,
        implant_material,
        site_for_structure,
    )
    from surgtwin.core.sim.scenarios import setup_for
    from surgtwin.core.sim.study import stress_shielding

    size = float(opts.get("size_mm") or DEFAULT_SIZE_MM)
    cal = opts.get("calibration") or (0.0, 0.001)
    bone_labels, structure, level = _bone_labels(labels, placed, opts.get("structure"))
    site = opts.get("site") or site_for_structure(structure)
    bone = BoneMaterial(DensityCalibration(float(cal[0]), float(cal[1])), density_modulus(site),
                        floor_mpa=float(opts.get("floor_mpa") or 5.0))
    material = implant_material(placed.implant.material)
    report(progress, 0.0, "fem: implant into the label map")
    with_implant = implant_labels(bone_labels, [placed])
    implant_name = f"implant_{placed.id}"
    check(cancel)
    mesh = tet_mesh(with_implant, [structure, implant_name], size_mm=size, ct=volume,
                    progress=scaled(progress, 0.02, 0.3), cancel=cancel)
    region = with_implant.labels.by_name(implant_name).value
    setup = setup_for(mesh, placed, region, load=opts.get("load"), body_weight_kg=opts.get("body_weight_kg"),
                      force_n=opts.get("force_n"))
    result = stress_shielding(mesh, implant_regions=[region], bone=bone, implant=material,
                              intact_loading=setup.intact_loading, implanted_loading=setup.implanted_loading,
                              zones=setup.zones, zone_names=setup.zone_names, resected=setup.resected,
                              rtol=float(opts.get("rtol") or 1e-9), progress=scaled(progress, 0.3, 0.99), cancel=cancel)
    params = {
        "implant": {"id": placed.id, "name": placed.name, "family": placed.implant.family, "size": placed.implant.size,
                    "material": material.to_json()},
        "structure": structure, "level": level, "mesh": {"size_mm": size, "nodes": int(len(mesh.nodes)),
                                                          "elements": int(len(mesh.elements))},
        "study": setup.kind, "loads": {"intact": setup.intact_loading.parameters,
                                       "implanted": setup.implanted_loading.parameters,
                                       "intact_text": setup.intact_loading.description,
                                       "implanted_text": setup.implanted_loading.description},
        "bone_material": bone.to_json(), "zone_scheme": setup.zone_scheme, "warnings": list(setup.warnings),
        "zone_names": {str(k): v for k, v in setup.zone_names.items()}, "setup": setup.parameters,
        "solver": {"intact": result.intact.info.as_dict(), "implanted": result.implanted.info.as_dict(),
                   "rtol": float(opts.get("rtol") or 1e-9)},
    }
    return FemRun(placed, mesh, f"tet:{structure},{implant_name}", [structure, implant_name], setup, result, params)


def result_arrays(run: FemRun) -> dict:
    """The ``fem:<id>`` item's arrays (see the module text)."""
    r, f32 = run.result, np.float32
    table = r.table
    out = {}
    for name, res in (("intact", r.intact), ("implanted", r.implanted)):
        out[f"displacement_{name}_mm"] = res.displacement_mm.astype(f32)
        out[f"von_mises_{name}_mpa"] = res.von_mises_mpa.astype(f32)
        out[f"sed_{name}_mpa"] = res.sed_mpa.astype(f32)
        out[f"modulus_{name}_mpa"] = res.modulus_mpa.astype(f32)
        out[f"load_nodes_{name}"] = np.asarray(res.loading.load_nodes, np.int32)
    out["fixed_nodes"] = np.asarray(r.implanted.loading.fixed_nodes, np.int32)
    out["zones"] = r.zones.astype(np.int8)
    out["implant_elements"] = r.implant_mask.astype(np.uint8)
    out["zone_ids"] = np.array([t.zone for t in table], np.int16)
    out["zone_volume_ml"] = np.array([t.volume_ml for t in table])
    out["zone_sed_intact_kj_m3"] = np.array([t.sed_intact_kj_m3 for t in table])
    out["zone_sed_implanted_kj_m3"] = np.array([t.sed_implanted_kj_m3 for t in table])
    out["zone_change_percent"] = np.array([t.change_percent for t in table])
    out["implant_peak_von_mises_mpa"] = np.array(r.implant.peak_von_mises_mpa)
    out["implant_p99_von_mises_mpa"] = np.array(r.implant.p99_von_mises_mpa)
    out["implant_yield_mpa"] = np.array(r.implant.yield_mpa)
    out["safety_factor"] = np.array(r.implant.safety_factor)
    return out


def run_items(run: FemRun, hashes: dict, key: str) -> dict:
    """``{tet key: (TetMesh, Provenance), key: (arrays, Provenance)}`` for a finished run."""
    inputs = {k: v for k, v in hashes.items() if v is not None}
    tet_prov = Provenance("tetrahedra", {"structures": list(run.structures), "size_mm": run.mesh.size_mm,
                                         "implant": run.placed.id, "implant_size": run.placed.implant.size},
                          dict(inputs))
    tet_hash = item_content_hash("tetmesh", run.mesh)
    fem_prov = Provenance("fem:linear-elastic-p1", {**run.parameters, "tet_item": run.tet_key},
                          {**inputs, run.tet_key: tet_hash})
    return {run.tet_key: (run.mesh, tet_prov), key: (result_arrays(run), fem_prov)}


def run_summary(run: FemRun) -> dict:
    s = run.result.summary()
    s.update({"implant": {**s["implant"], "id": run.placed.id, "name": run.placed.name,
                          "family": run.placed.implant.family, "size": run.placed.implant.size},
              "structure": run.parameters["structure"], "mesh": run.parameters["mesh"],
              "study": run.setup.kind, "zone_scheme": run.setup.zone_scheme, "warnings": list(run.setup.warnings),
              "table": run.result.table_text()})
    return s


def _fem(labels, volume, implants_value, hashes, opts, *, progress=None, cancel=None) -> StepOutput:
    placed = find_placement(_placements(implants_value), opts.get("implant"))
    run = simulate_placement(labels, volume, placed, opts, progress=progress, cancel=cancel)
    key = f"{SLOT}:{placed.id}"
    report(progress, 1.0, f"fem: {key} done")
    return StepOutput("fem", items=run_items(run, hashes, key), summary={key: run_summary(run)}, result=run)


def _prepare(case: Case, **options) -> StepJob:
    it = case.item("implants")
    if it is None or not it.value:
        raise SurgtwinError("the fem step needs a placed implant, and the case has none",
                            hint="place one first: surgtwin plan implant CASE --family hip-stem --size 3 --femur left")
    lab = case.labels
    hashes = {"labels": case.current_hash("labels"), "volume": case.volume_hash, "implants": case.current_hash("implants")}
    return StepJob("fem", _fem, (replace(lab, array=lab.array.copy()), case.volume, copy.deepcopy(it.value), hashes,
                                 dict(options)))


register_step(Step("fem", "finite elements: bone with the placed implant, intact vs implanted (stress shielding, "
                   "implant safety factor)", ("labels", "volume", "implants"), _prepare))


def prepare_what_if(case: Case, implant=None, *, size_b: str | None = None, pose_b=None, **options) -> StepJob:
    """A what-if as a job (prepared on the case's thread, computed anywhere): the placement
    ``implant`` as placed (A) and with another size ``size_b`` or pose ``pose_b`` (B). Its output
    holds both results' items and, as its summary, ``{"a", "b", "labels", "comparison", "sentence",
    "keys"}``."""
    from surgtwin.services.pipeline import prepare_step

    if (size_b is None) == (pose_b is None):
        raise SurgtwinError("a what-if needs another size or another pose (one of them)")
    job = prepare_step(case, "fem", **{**options, "implant": implant})
    return StepJob("fem-what-if", _what_if, (*job.args, size_b, pose_b))


def _what_if(labels, volume, value, hashes, opts, size_b, pose_b, *, progress=None, cancel=None) -> StepOutput:
    from surgtwin.core.plan.pose import Pose
    from surgtwin.core.sim.study import compare

    placed = find_placement(_placements(value), opts.get("implant"))
    if size_b is not None:
        from surgtwin.core.plan.implants import family

        other = replace(placed, implant=family(placed.implant.family).implant(str(size_b),
                                                                              material_key=placed.implant.material.key))
        label_a, label_b = f"size {placed.implant.size}", f"size {other.implant.size}"
        key_b = f"{SLOT}:{placed.id}:size-{other.implant.size}"
    else:
        other = placed.with_pose(pose_b if isinstance(pose_b, Pose) else Pose.from_json(pose_b))
        label_a, label_b, key_b = "as placed", "pose B", f"{SLOT}:{placed.id}:pose-b"
    run_a = simulate_placement(labels, volume, placed, opts, progress=scaled(progress, 0.0, 0.5), cancel=cancel)
    run_b = simulate_placement(labels, volume, other, opts, progress=scaled(progress, 0.5, 1.0), cancel=cancel)
    run_b.tet_key += f":size-{other.implant.size}" if size_b is not None else ":pose-b"
    cmp = compare(run_a.result, run_b.result, label_a, label_b,
                  proximal_zones=(1, 7) if run_a.setup.zone_scheme == "gruen" else (1,))
    key_a = f"{SLOT}:{placed.id}"
    summary = {"a": run_summary(run_a), "b": run_summary(run_b), "labels": [label_a, label_b], "comparison": cmp,
               "sentence": cmp["sentence"], "keys": [key_a, key_b]}
    return StepOutput("fem", items={**run_items(run_a, hashes, key_a), **run_items(run_b, hashes, key_b)},
                      summary=summary)


def what_if(case: Case, implant=None, *, size_b: str | None = None, pose_b=None, store: bool = True,
            progress=None, cancel=None, **options) -> dict:
    """Solve the placement ``implant`` as placed (A) and with another size ``size_b`` or pose
    ``pose_b`` (B); returns ``{"a": summary, "b": summary, "comparison": {...}, "sentence": str}``
    (and stores both results in the case when ``store``)."""
    out = prepare_what_if(case, implant, size_b=size_b, pose_b=pose_b, **options).compute(progress=progress,
                                                                                          cancel=cancel)
    if store:
        out.apply_to(case)
    return out.summary
