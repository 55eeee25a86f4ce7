"""The lumbar/thoracic spine for pedicle screws: levels, pedicles and a start pose.

Levels (``vertebra_levels``): the ``vertebrae`` label (all levels in one) is split into connected
pieces; the ``intervertebral_disc`` pieces give the disc heights along the spine's axis (the
vertebrae's principal axis, pointing superior); a piece that spans a disc is cut at it, and the
pieces between two discs form one level. Levels are named from the bottom **assuming the lowest
one in the image is L5** (the sacrum belongs to the pelvis label, as in the sample cases and
TotalSegmentator-style label sets): L5, L4, ... L1, T12, ... T1, C7 ... C1. A level that touches the
image border is marked partial (cut by the field of view); a warning says when the lowest level is.

Pedicle (``pedicle_trajectory``), for one level and side, in the level's own frame: up ``u`` (the
spinal canal's local axis), posterior ``a`` (vertebral body centre -> canal centre) and lateral
``l = a x u`` (toward the patient's left). The pedicle is the level's bone lateral of the canal
(from 0.9 canal radius to the canal radius + 14 mm) between the body's posterior wall and just behind
the canal's centre, cut in 1.5 mm slabs across the posterior axis: the slab with the fewest voxels
is the isthmus (its equivalent diameter is the pedicle width), the run of slabs at most 1.6 times
as full is the pedicle proper, and the line through their centroids its axis. The trajectory runs
through the isthmus centre, parallel to the endplates (perpendicular to ``u``), converging medially
by the pedicle axis's angle (kept within 0-30 degrees; 15 when the pedicle is too short to show
it). The entry is where it leaves the bone posteriorly (the screw's head sits there), the bone
chord how far it stays in the level's bone anteriorly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.plan.anatomy import Proposal, fit_axis, inside_along, side_of

LEVEL_NAMES = ["L5", "L4", "L3", "L2", "L1"] + [f"T{n}" for n in range(12, 0, -1)] + \
    [f"C{n}" for n in range(7, 0, -1)]
LEVEL_ASSUMPTION = "the lowest vertebra in the image is L5 (the sacrum is not in the vertebrae label)"
SUPERIOR = np.array([0.0, 0.0, 1.0])
POSTERIOR = np.array([0.0, 1.0, 0.0])
#: pieces of the vertebrae label smaller than this are ignored (ml)
MIN_PIECE_ML = 0.3
#: disc pieces whose heights are this close belong to one disc (mm)
DISC_MERGE_MM = 8.0
#: the trajectory's medial (convergence) angle is kept in this range; used when the pedicle is too
#: short to show its own axis (lumbar pedicles converge about 5-30 degrees)
MEDIAL_RANGE_DEG = (0.0, 30.0)
DEFAULT_MEDIAL_DEG = 15.0


@dataclass(frozen=True, eq=False)
class VertebraLevel:
    """One vertebra: its name, its voxels (array indices, (N, 3)), centroid, volume, the height range
    along the spine axis and whether the image border cuts it."""

    name: str
    index: int
    voxels: np.ndarray
    centroid_lps: np.ndarray
    volume_ml: float
    height_mm: tuple[float, float]
    partial: bool

    def describe(self) -> dict:
        return {"name": self.name, "volume_ml": round(self.volume_ml, 2), "partial": self.partial,
                "centroid_lps": [round(float(v), 2) for v in self.centroid_lps]}


@dataclass(frozen=True, eq=False)
class SpineLevels:
    levels: list
    up_lps: np.ndarray
    disc_heights_mm: list
    warnings: tuple[str, ...]
    assumption: str = LEVEL_ASSUMPTION

    def names(self) -> list[str]:
        return [lv.name for lv in self.levels]

    def level(self, name: str) -> VertebraLevel:
        for lv in self.levels:
            if lv.name.upper() == str(name).upper():
                return lv
        raise SurgtwinError(f"no vertebra {name!r} in the image", hint=f"levels found: {', '.join(self.names())} "
                            f"(named assuming {self.assumption})")


def _require(labels, name: str) -> int:
    if name not in labels.labels.names():
        raise SurgtwinError(f"the label map has no structure {name!r}", hint="segment the spine first")
    return labels.labels.by_name(name).value


def vertebra_levels(labels, *, vertebrae: str = "vertebrae", disc: str = "intervertebral_disc") -> SpineLevels:
    """The vertebra levels of the label map, bottom to top (see the module text)."""
    from scipy import ndimage as ndi

    v_val = _require(labels, vertebrae)
    mask = labels.array == v_val
    idx_all = np.argwhere(mask)
    if len(idx_all) == 0:
        raise SurgtwinError(f"structure {vertebrae!r} has no voxels")
    world = labels.index_to_world(idx_all)
    up = fit_axis(world, toward=SUPERIOR).direction_lps
    h_all = world @ up
    pieces, n = ndi.label(mask)
    piece_of = pieces[tuple(idx_all.T)]
    discs: list[float] = []
    if disc in labels.labels.names():
        dmask = labels.array == labels.labels.by_name(disc).value
        dlab, nd = ndi.label(dmask)
        if nd:
            didx = np.argwhere(dmask)
            dh = labels.index_to_world(didx) @ up
            which = dlab[tuple(didx.T)]
            cnt = np.bincount(which, minlength=nd + 1)[1:]
            hs = np.bincount(which, weights=dh, minlength=nd + 1)[1:] / np.maximum(cnt, 1)
            order = np.argsort(hs)
            groups: list[list[int]] = []
            for o in order:  # merge fragments of one disc (painted around other structures)
                if groups and hs[o] - hs[groups[-1][-1]] < DISC_MERGE_MM:
                    groups[-1].append(o)
                else:
                    groups.append([o])
            vox_ml = labels.voxel_volume_ml
            discs = [float(np.average(hs[g], weights=cnt[g])) for g in groups if cnt[g].sum() * vox_ml >= 0.3]
    vox_ml = labels.voxel_volume_ml
    counts = np.bincount(piece_of, minlength=n + 1)
    bounds = np.array([-np.inf, *discs, np.inf])
    slot = np.searchsorted(bounds, h_all) - 1  # the disc interval of each voxel
    level_of = np.full(len(idx_all), -1)
    for p in range(1, n + 1):
        if counts[p] * vox_ml < MIN_PIECE_ML:
            continue
        sel = piece_of == p
        s = slot[sel]
        share = np.bincount(s, minlength=len(bounds)) / s.size
        if np.sort(share)[-2] >= 0.2:  # the piece spans a disc: cut it there (fused labels)
            level_of[sel] = s
        else:  # one vertebra: its bulk's interval (posterior elements may overhang a disc)
            level_of[sel] = int(np.argmax(share))
    levels = []
    K = np.array(labels.shape) - 1
    warnings = []
    for k, slot_id in enumerate(sorted(set(level_of[level_of >= 0].tolist()))):
        sel = level_of == slot_id
        vox = idx_all[sel]
        name = LEVEL_NAMES[k] if k < len(LEVEL_NAMES) else f"level_{k + 1}"
        partial = bool(np.any(vox == 0) or np.any(vox == K))
        hs = h_all[sel]
        levels.append(VertebraLevel(name, k, vox, world[sel].mean(axis=0), float(sel.sum() * vox_ml),
                                    (float(hs.min()), float(hs.max())), partial))
    if not levels:
        raise SurgtwinError(f"structure {vertebrae!r} has no piece larger than {MIN_PIECE_ML} ml")
    if levels[0].partial:
        warnings.append(f"the lowest vertebra is cut by the image border: calling it L5 assumes {LEVEL_ASSUMPTION}")
    if not discs:
        warnings.append(f"no {disc} label: levels are the connected pieces of {vertebrae!r}")
    return SpineLevels(levels, up, discs, tuple(warnings))


@dataclass(frozen=True, eq=False)
class PedicleTrajectory:
    level: str
    side: str
    entry_lps: np.ndarray
    direction_lps: np.ndarray
    isthmus_centre_lps: np.ndarray
    pedicle_width_mm: float
    bone_chord_mm: float
    canal_centre_lps: np.ndarray
    canal_radius_mm: float
    medial_angle_deg: float
    up_lps: np.ndarray

    def to_json(self) -> dict:
        r = lambda v: [round(float(x), 2) for x in v]  # noqa: E731
        return {"level": self.level, "side": self.side, "entry_lps": r(self.entry_lps),
                "direction_lps": [round(float(x), 4) for x in self.direction_lps],
                "isthmus_centre_lps": r(self.isthmus_centre_lps), "pedicle_width_mm": round(self.pedicle_width_mm, 2),
                "bone_chord_mm": round(self.bone_chord_mm, 2), "canal_radius_mm": round(self.canal_radius_mm, 2),
                "medial_angle_deg": round(self.medial_angle_deg, 1)}


def pedicle_trajectory(labels, level: str, side: str, *, spine: SpineLevels | None = None,
                       canal: str = "spinal_canal", vertebrae: str = "vertebrae") -> PedicleTrajectory:
    """The pedicle screw trajectory of ``level`` (e.g. "L4") on ``side`` (see the module text)."""
    side = side_of(side, "the pedicle side")
    spine = spine or vertebra_levels(labels, vertebrae=vertebrae)
    lv = spine.level(level)
    if lv.partial:
        raise SurgtwinError(f"vertebra {lv.name} is cut by the image border", hint="choose a level fully in the image")
    c_val = _require(labels, canal)
    X = labels.index_to_world(lv.voxels)
    vox = labels.voxel_volume_ml * 1000.0
    cidx = np.argwhere(labels.array == c_val)
    cw = labels.index_to_world(cidx)
    ch = cw @ spine.up_lps
    near = (ch >= lv.height_mm[0]) & (ch <= lv.height_mm[1])
    if near.sum() < 20:
        raise SurgtwinError(f"no {canal} behind vertebra {lv.name}", hint=f"the pedicles are found beside the {canal}")
    cax = fit_axis(cw[near], toward=spine.up_lps)
    u, c = cax.direction_lps, cax.point_lps
    length = float(np.ptp((cw[near] - c) @ u))
    r_c = float(np.sqrt(near.sum() * vox / (np.pi * max(length, 1.0))))
    a0 = POSTERIOR - (POSTERIOR @ u) * u
    a0 /= np.linalg.norm(a0)
    body = X[(X - c) @ a0 < -(r_c + 3.0)]
    if len(body) < 20:
        raise SurgtwinError(f"vertebra {lv.name} has no body in front of the {canal}")
    b = body.mean(axis=0)
    a = (c - b) - ((c - b) @ u) * u
    a /= np.linalg.norm(a)
    lat = np.cross(a, u)
    s = 1.0 if side == "left" else -1.0
    t, q, h = (X - c) @ a, s * ((X - c) @ lat), (X - c) @ u
    tb, hb = (body - c) @ a, (body - c) @ u
    t_wall = float(np.percentile(tb[np.abs((body - c) @ lat) < r_c], 95))
    zone = (t >= t_wall - 3.0) & (t <= 0.5 * r_c) & (q >= 0.9 * r_c) & (q <= r_c + 14.0) & \
        (h >= np.percentile(hb, 5)) & (h <= np.percentile(hb, 95))
    if zone.sum() < 10:
        raise SurgtwinError(f"no {side} pedicle found on vertebra {lv.name}")
    P, tz = X[zone], t[zone]
    bins = np.floor((tz - tz.min()) / 1.5).astype(int)
    cnt = np.bincount(bins)
    inner = np.arange(len(cnt))[1:-1] if len(cnt) > 2 else np.arange(len(cnt))
    inner = inner[cnt[inner] > 0]
    k = int(inner[np.argmin(cnt[inner])])
    isth = P[bins == k].mean(axis=0)
    width = float(2.0 * np.sqrt(cnt[k] * vox / 1.5 / np.pi))
    lo_k = hi_k = k  # the narrow stretch around the isthmus: the pedicle proper
    while lo_k - 1 >= 0 and 0 < cnt[lo_k - 1] <= 1.6 * cnt[k]:
        lo_k -= 1
    while hi_k + 1 < len(cnt) and 0 < cnt[hi_k + 1] <= 1.6 * cnt[k]:
        hi_k += 1
    if hi_k - lo_k >= 2:  # the pedicle's own axis through its slab centroids, in the transverse plane
        cents = np.array([P[bins == n].mean(axis=0) for n in range(lo_k, hi_k + 1)])
        d = fit_axis(cents, toward=-a).direction_lps
        medial = float(np.degrees(np.arctan2(-s * (d @ lat), -(d @ a))))
    else:
        medial = DEFAULT_MEDIAL_DEG
    medial = float(np.clip(medial, *MEDIAL_RANGE_DEG))
    d = -np.cos(np.radians(medial)) * a - s * np.sin(np.radians(medial)) * lat  # parallel to the endplates
    mask = np.zeros(labels.shape, bool)
    mask[tuple(lv.voxels.T)] = True
    back_mm = inside_along(mask, labels.affine, isth, -d, max_mm=80.0)
    entry = isth - back_mm * d
    chord = inside_along(mask, labels.affine, entry, d, max_mm=150.0)
    return PedicleTrajectory(lv.name, side, entry, d, isth, width, chord, c, r_c, medial, u)


def propose_screw_pose(labels, implant, level: str, side: str) -> Proposal:
    """A pedicle screw's start pose on ``level``/``side``: head at the entry, +z along the pedicle."""
    from surgtwin.core.plan.pose import Pose

    if implant.generator != "screw":
        raise SurgtwinError(f"an automatic pedicle pose is for screws, not {implant.label}",
                            hint="choose the pedicle-screw family, or give a pose")
    spine = vertebra_levels(labels)
    tr = pedicle_trajectory(labels, level, side, spine=spine)
    pose = Pose.from_axis(tr.entry_lps, tr.direction_lps, x_hint_lps=tr.up_lps)
    warnings = list(spine.warnings)
    length, dia = implant.params["length_mm"], implant.params["diameter_mm"]
    max_len = tr.bone_chord_mm - 5.0
    if length > max_len:
        warnings.append(f"the screw ({length:g} mm) is longer than the bone chord less 5 mm ({max_len:.0f} mm): "
                        "its tip may breach the anterior cortex")
    if dia > 0.8 * tr.pedicle_width_mm:
        warnings.append(f"the screw diameter ({dia:g} mm) exceeds 80 % of the pedicle width "
                        f"({tr.pedicle_width_mm:.1f} mm)")
    notes = {**tr.to_json(), "levels": spine.names(), "level_assumption": spine.assumption,
             "max_length_mm": round(max_len, 1), "max_diameter_mm": round(0.8 * tr.pedicle_width_mm, 1)}
    return Proposal(pose, {"vertebra": tr.level, "side": tr.side}, notes, tuple(warnings))
