"""The proximal femur for a hip stem: the medullary canal axis, the femoral head, a start pose.

Method (label names ``femur_<side>`` and, when present, ``medullary_canal``; LPS mm throughout):

1. Canal axis: the canal voxels of this femur (``medullary_canal`` voxels within 15 mm of the
   femur label) in its proximal ``proximal_length_mm``, fitted by PCA; the direction points
   distally (inferior). Without a canal label, the axis of the femur's shaft (the slices below
   the proximal 60 mm, by the per-slice centroids) is used and a warning says so.
2. Femoral head: the deepest point of the femur (largest distance to its surface, with the real
   voxel spacing) among the femur voxels at least 20 mm medial of the canal axis; its depth is
   the head radius.
3. Stem pose: +z along the canal axis (distal); the neck (+x) turned toward the head centre (the
   native version); the origin (the resection point on the stem axis) placed so that the implant's
   head centre lies at the native head centre's height along the axis (leg length kept); the
   medial offset then differs by implant offset - native offset, which the notes report.
4. Entry point: where the canal axis, followed proximally, leaves the femur (the trochanteric fossa).
"""

from __future__ import annotations

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.plan.anatomy import Axis, Proposal, fit_axis, inside_along, perpendicular, side_of

INFERIOR = np.array([0.0, 0.0, -1.0])
CANAL_LABEL = "medullary_canal"
#: femur voxels at least this far medial of the canal axis are candidates for the head
HEAD_MIN_MEDIAL_MM = 20.0


def _femur_name(labels, side: str) -> str:
    name = f"femur_{side_of(side, 'the femur side')}"
    if name not in labels.labels.names():
        raise SurgtwinError(f"the label map has no structure {name!r}",
                            hint="segment the femurs first, or name the label femur_left/femur_right")
    return name


def _crop(labels, name: str, margin_mm: float):
    mask = labels.mask(name)
    idx = np.argwhere(mask)
    if len(idx) == 0:
        raise SurgtwinError(f"structure {name!r} has no voxels")
    pad = np.ceil(margin_mm / labels.spacing_mm).astype(int)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + pad + 1, labels.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True)), lo


def _world(labels, idx_kji, lo) -> np.ndarray:
    return labels.index_to_world(np.asarray(idx_kji, float) + lo)


def canal_axis(labels, side: str, *, proximal_length_mm: float = 80.0) -> tuple[Axis, list[str]]:
    """(axis pointing distally, warnings) of the femoral canal of ``side`` (see the module text)."""
    from scipy import ndimage as ndi

    name = _femur_name(labels, side)
    sl, lo = _crop(labels, name, 20.0)
    sub = labels.array[sl]
    femur = sub == labels.labels.by_name(name).value
    warnings = []
    canal = np.zeros_like(femur)
    if CANAL_LABEL in labels.labels.names():
        near = ndi.distance_transform_edt(~femur, sampling=labels.spacing_mm) <= 15.0
        canal = (sub == labels.labels.by_name(CANAL_LABEL).value) & near
    if canal.sum() >= 30:
        pts = _world(labels, np.argwhere(canal), lo)
        axis = fit_axis(pts, toward=INFERIOR)
        h = (pts - axis.point_lps) @ axis.direction_lps
        keep = h <= h.min() + proximal_length_mm  # the proximal part (h grows distally)
        if keep.sum() >= 30:
            axis = fit_axis(pts[keep], toward=INFERIOR)
        return axis, warnings
    warnings.append(f"no {CANAL_LABEL} label in the {side} femur: the stem axis follows the femoral shaft")
    pts = _world(labels, np.argwhere(femur), lo)
    h = pts @ -INFERIOR
    shaft = pts[h < h.max() - 60.0]
    if len(shaft) < 30:
        raise SurgtwinError(f"the {side} femur is too short in the image to find its shaft axis",
                            hint="the image must show at least 10 cm of the proximal femur")
    levels = np.round(shaft[:, 2] / 3.0)
    cents = np.array([shaft[levels == v].mean(axis=0) for v in np.unique(levels)])
    return fit_axis(cents, toward=INFERIOR), warnings


def femoral_head(labels, side: str, axis: Axis) -> tuple[np.ndarray, float]:
    """(centre LPS, radius mm) of the femoral head of ``side`` (the deepest medial femur point)."""
    from scipy import ndimage as ndi

    name = _femur_name(labels, side)
    sl, lo = _crop(labels, name, 3.0)
    bone = np.isin(labels.array[sl], [labels.labels.by_name(n).value for n in (name, CANAL_LABEL)
                                      if n in labels.labels.names()])
    depth = ndi.distance_transform_edt(bone, sampling=labels.spacing_mm)
    femur = labels.array[sl] == labels.labels.by_name(name).value
    idx = np.argwhere(femur)
    pts = _world(labels, idx, lo)
    midline = np.array([-1.0, 0.0, 0.0]) if side_of(side) == "left" else np.array([1.0, 0.0, 0.0])
    medial_dir = perpendicular(midline, axis.direction_lps)
    medial_dir /= np.linalg.norm(medial_dir)
    medial = (pts - axis.point_lps) @ medial_dir
    cand = medial >= HEAD_MIN_MEDIAL_MM
    if not cand.any():
        raise SurgtwinError(f"no femoral head found medial of the {side} femoral canal",
                            hint="the image must include the hip joint")
    d = depth[tuple(idx[cand].T)]
    best = int(np.argmax(d))
    return pts[cand][best], float(d[best])


def propose_stem_pose(labels, implant, side: str) -> Proposal:
    """A start pose of a hip stem in the ``side`` femur (see the module text for the method)."""
    from surgtwin.core.plan.generators import stem_head_centre
    from surgtwin.core.plan.pose import Pose

    side = side_of(side, "the femur side")
    if implant.generator != "stem":
        raise SurgtwinError(f"an automatic femoral pose is for hip stems, not {implant.label}",
                            hint="choose the hip-stem family, or give a pose")
    axis, warnings = canal_axis(labels, side)
    head, head_r = femoral_head(labels, side, axis)
    d = axis.direction_lps
    rel = head - axis.point_lps
    toward_head = perpendicular(rel, d)
    native_offset = float(np.linalg.norm(toward_head))
    local_head = stem_head_centre(implant.params)  # (offset, 0, -height)
    origin = axis.point_lps + (np.dot(rel, d) - local_head[2]) * d
    pose = Pose.from_axis(origin, d, x_hint_lps=toward_head)
    name = _femur_name(labels, side)
    bone = labels.mask(name)
    if CANAL_LABEL in labels.labels.names():
        bone = bone | labels.mask(CANAL_LABEL)
    top = axis.point_lps + np.dot(rel, d) * d  # the head's level on the axis
    up = inside_along(bone, labels.affine, axis.point_lps, -d, max_mm=300.0)
    entry = axis.point_lps - up * d
    tilt = float(np.degrees(np.arccos(min(1.0, abs(float(d @ INFERIOR))))))
    notes = {
        "canal_axis": axis.to_json(),
        "axis_tilt_from_inferior_deg": round(tilt, 2),
        "head_centre_lps": [round(float(v), 2) for v in head],
        "head_radius_mm": round(head_r, 2),
        "native_offset_mm": round(native_offset, 2),
        "implant_offset_mm": round(float(local_head[0]), 2),
        "offset_change_mm": round(float(local_head[0]) - native_offset, 2),
        "resection_point_lps": [round(float(v), 2) for v in origin],
        "resection_below_head_mm": round(float(np.dot(origin - top, d)), 2),
        "entry_point_lps": [round(float(v), 2) for v in entry],
        "stem_tip_lps": [round(float(v), 2) for v in origin + implant.params["stem_length_mm"] * d],
    }
    if abs(notes["offset_change_mm"]) > 6.0:
        warnings.append(f"the implant's offset differs from the native offset by {notes['offset_change_mm']:+.1f} mm: "
                        "consider another size")
    return Proposal(pose, {"femur": side}, notes, tuple(warnings))
