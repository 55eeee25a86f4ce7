"""Study set-ups for a placed implant: which loads, supports, zones and resected bone.

A placed implant (``surgtwin.core.plan.pose.PlacedImplant``: an ``implant`` with ``generator`` and
``params`` and a ``pose``, local -> LPS) meshed with its bone (``TetMesh``, the implant as region
``implant_region``) gets:

* **hip stem** (generator ``stem``; local frame: origin on the stem axis at the neck-resection level,
  +z distally along the stem, the neck toward +x, i.e. medially): intact femur loaded on its head,
  implanted femur on the prosthetic head (``stem_head_centre``), the distal femur's bone fixed (the
  same nodes in both; ``surgtwin.core.sim.loads.hip_loading``); **resected** in the implanted model:
  the femoral head and neck, i.e. bone beyond the neck cut (the plane through the local origin
  perpendicular to the neck axis, which runs from the origin to the head centre) on the medial side of
  the stem axis (local x > 0), given the floor modulus; zones: Gruen 1-7 (``gruen_zones``) from the
  resection level to the stem tip (``stem_length_mm``), lateral = -x (away from the neck). A warning
  says when the bone in the image ends less than a third of the stem length below its tip (the
  support is then so close that the distal zones and the overall shielding are not meaningful).
* **pedicle screw** (generator ``screw``; origin where the shank meets the head, +z toward the tip):
  ``load="pullout"`` (default): ``force_n`` (default 500 N) along the axis out of the bone on the head
  (local z <= 0), bone farther than 15 mm from the screw fixed; zones: thirds of the bone within 5 mm
  of the screw's surface, head -> tip. ``load="compression"``: ``force_n`` (default 1000 N) on the
  vertebra's superior endplate, inferior endplate fixed; zones: the vertebra's inferior, middle and
  superior thirds along ``up_lps``. The same loads act on the intact model (bone where the screw is).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.sim.loads import Loading, hip_loading, screw_pullout, vertebral_compression
from surgtwin.core.sim.zones import GRUEN_NAMES, SCREW_NAMES, VERTEBRA_NAMES, axial_thirds, gruen_zones

#: generators of the implant library this module can set up a study for
SUPPORTED = ("stem", "screw")
DEFAULT_PULLOUT_N = 500.0
DEFAULT_COMPRESSION_N = 1000.0


@dataclass
class StudySetup:
    """Loads of both models, zones (M,) with their names, resected bone (M,) and a description."""

    kind: str
    intact_loading: Loading
    implanted_loading: Loading
    zones: np.ndarray
    zone_names: dict
    zone_scheme: str
    resected: np.ndarray | None = None
    parameters: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)


def local_coordinates(pose, points: np.ndarray) -> np.ndarray:
    """Points (LPS) in the implant's local frame."""
    m = np.asarray(pose.matrix, float)
    return (np.asarray(points, float) - m[:3, 3]) @ m[:3, :3]


def stem_setup(mesh, placed, implant_region: int, *, load="walking", body_weight_kg: float = 75.0,
               side: str | None = None) -> StudySetup:
    from surgtwin.core.plan.generators import stem_head_centre

    side = side or str(placed.target.get("femur") or "")
    if side not in ("left", "right"):
        raise SurgtwinError("which femur is the stem in?", hint="give the side (left or right)")
    pose, params = placed.pose, placed.implant.params
    head = pose.apply(stem_head_centre(params)[None, :])[0]
    centroids = mesh.nodes[mesh.elements].mean(axis=1)
    implant = mesh.regions == implant_region
    local = local_coordinates(pose, centroids)
    neck = stem_head_centre(params) / np.linalg.norm(stem_head_centre(params))
    resected = (local @ neck > 0) & (local[:, 0] > 0) & ~implant
    m = np.asarray(pose.matrix, float)
    top, axis, lateral = m[:3, 3], m[:3, 2], -m[:3, 0]
    length = float(params["stem_length_mm"])
    tip = top + length * axis
    zones = gruen_zones(centroids, top, tip, lateral, exclude=resected | implant)
    common = {"load": load, "body_weight_kg": body_weight_kg, "side": side, "unsupported_regions": [implant_region]}
    intact = hip_loading(mesh, **common)
    implanted = hip_loading(mesh, implant_regions=[implant_region], head_centre_lps=head, **common)
    below_tip = float(np.max((mesh.nodes[~np.isin(np.arange(len(mesh.nodes)), mesh.elements[implant])] - tip) @ axis,
                             initial=-np.inf))
    warnings = []
    if below_tip < length / 3.0:
        where = (f"ends {below_tip:.0f} mm below the stem tip" if below_tip >= 0 else
                 f"ends {-below_tip:.0f} mm above the stem tip (the stem reaches into the support)")
        warnings.append(f"the femur in the image {where}, less than a third of the {length:.0f} mm stem: the support "
                        "is too close for the distal zones and the overall shielding to mean much; use an image with "
                        "more of the femur")
    params_out = {"head_centre_lps": np.round(head, 2).tolist(), "stem_top_lps": np.round(top, 2).tolist(),
                  "stem_tip_lps": np.round(tip, 2).tolist(), "bone_below_tip_mm": round(below_tip, 1),
                  "resected_elements": int(resected.sum()),
                  "resection": "bone beyond the neck cut (plane through the resection point perpendicular to the neck "
                               "axis) medial of the stem axis"}
    return StudySetup("hip_stem", intact, implanted, zones, dict(GRUEN_NAMES), "gruen", resected, params_out,
                      warnings)


def screw_setup(mesh, placed, implant_region: int, *, load: str = "pullout", force_n: float | None = None,
                up_lps=(0.0, 0.0, 1.0), fixed_beyond_mm: float = 15.0, zone_radius_mm: float = 5.0) -> StudySetup:
    pose, params = placed.pose, placed.implant.params
    m = np.asarray(pose.matrix, float)
    head, axis = m[:3, 3], m[:3, 2]
    length = float(params["length_mm"])
    centroids = mesh.nodes[mesh.elements].mean(axis=1)
    implant = mesh.regions == implant_region
    if load == "pullout":
        f = DEFAULT_PULLOUT_N if force_n is None else float(force_n)
        loading = screw_pullout(mesh, [implant_region], head, axis, force_n=f, length_mm=length,
                                fixed_beyond_mm=fixed_beyond_mm)
        radius = 0.5 * float(params["diameter_mm"]) + zone_radius_mm
        zones = axial_thirds(centroids, head, head + length * axis, radius_mm=radius, exclude=implant)
        names, scheme = dict(SCREW_NAMES), "screw thirds"
    elif load == "compression":
        f = DEFAULT_COMPRESSION_N if force_n is None else float(force_n)
        loading = vertebral_compression(mesh, force_n=f, up_lps=up_lps)
        up = np.asarray(up_lps, float) / np.linalg.norm(up_lps)
        h = mesh.nodes @ up  # thirds of the vertebra's height along up
        zones = axial_thirds(centroids, h.min() * up, h.max() * up, exclude=implant)
        names, scheme = dict(VERTEBRA_NAMES), "vertebra thirds"
    else:
        raise SurgtwinError(f"unknown screw load {load!r}", hint="use pullout or compression")
    return StudySetup("pedicle_screw_" + load, loading, loading, np.asarray(zones, np.int8), names, scheme, None,
                      {"screw_head_lps": np.round(head, 2).tolist(), "screw_axis_lps": np.round(axis, 5).tolist(),
                       "screw_length_mm": length})


def setup_for(mesh, placed, implant_region: int, **options) -> StudySetup:
    """The study set-up for ``placed`` by its implant's generator (see the module text)."""
    gen = placed.implant.generator
    if gen == "stem":
        keys = ("load", "body_weight_kg", "side")
        return stem_setup(mesh, placed, implant_region, **{k: options[k] for k in keys if options.get(k) is not None})
    if gen == "screw":
        keys = ("load", "force_n", "up_lps", "fixed_beyond_mm")
        opts = {k: options[k] for k in keys if options.get(k) is not None}
        if opts.get("load") in (None, "walking"):
            opts["load"] = "pullout"
        return screw_setup(mesh, placed, implant_region, **opts)
    raise SurgtwinError(f"no finite-element study is set up for {placed.implant.label} ({gen})",
                        hint="FE studies cover hip stems and pedicle screws")
