"""Head CT (with contrast) phantom for trajectory rehearsal: scalp, skull with diploe, skull base,
brain grey/white matter with gyri and sulci, ventricles, brain stem, cerebellum, major vessels,
orbits and sinuses, and a rim-enhancing tumour target with surrounding oedema.

Anatomy frame (mm): x patient left, y posterior, z superior; origin near the centre of the brain.
"""

from __future__ import annotations

import numpy as np

from surgtwin.core.phantom.ct import Tissue
from surgtwin.core.phantom.labels import L
from surgtwin.core.phantom.shapes import (
    Canvas,
    Offset,
    Tube,
    Union,
    Warp,
    ellipsoid,
    rotation,
    smooth_noise,
)


def draw_params(rng) -> dict:
    s = rng.uniform(0.92, 1.08)
    side = float(rng.choice([-1.0, 1.0]))
    P = {
        "s": s, "skull_mm": rng.uniform(5.5, 8.0), "brain_atrophy_mm": rng.uniform(0.0, 2.0),
        "tumour_centre": np.array([side * rng.uniform(25, 40), rng.uniform(-25, 25), rng.uniform(10, 40)]) * s,
        "tumour_r": rng.uniform(10, 17) * s,
        "extent_lo": np.array([-82, -112, -78]) * s, "extent_hi": np.array([82, 100, 96]) * s,
        "table_room_mm": 30.0,
        "noise_sd": float(np.round(rng.uniform(8.0, 12.0), 1)),
    }
    return P


def tissues(P, rng) -> dict[int, Tissue]:
    j = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
    return {
        L["skin"]: Tissue(j(20, 40)),
        L["fat"]: Tissue(j(-110, -80), coarse_sd=4),
        L["muscle"]: Tissue(j(40, 55), coarse_sd=3),
        L["skull"]: Tissue(j(500, 800), rim_hu=j(1300, 1700), fine_sd=60),
        L["csf"]: Tissue(j(2, 10)),
        L["ventricles"]: Tissue(j(2, 10)),
        L["brain_grey_matter"]: Tissue(j(36, 42), coarse_sd=1.5),
        L["brain_white_matter"]: Tissue(j(24, 30), zone2_hu=j(12, 18), coarse_sd=1.5),
        L["brain_stem"]: Tissue(j(28, 34), coarse_sd=1.5),
        L["cerebellum"]: Tissue(j(34, 40), rim_hu=j(28, 32), coarse_sd=1.5, fine_sd=2),
        L["vessels"]: Tissue(j(250, 350)),
        L["tumour"]: Tissue(j(20, 30), rim_hu=j(80, 120), coarse_sd=4),
        L["eyes"]: Tissue(j(5, 15), rim_hu=j(40, 60)),
    }


def build(canvas: Canvas, P, rng) -> dict:
    s = P["s"]
    soft = {L["fat"], L["muscle"], L["skin"]}
    cranium = Warp(Union([
        ellipsoid([0, 5 * s, 12 * s], [70 * s, 92 * s, 80 * s]),
        ellipsoid([0, -48 * s, -40 * s], [58 * s, 45 * s, 42 * s]),
        Tube([[0, 25 * s, -40 * s], [0, 25 * s, -200]], 52 * s),
    ], k=25), rng, 3, 200)
    sl, d = canvas.field(cranium, inner_mm=P["skull_mm"] + 25)
    canvas.paint_field(sl, d, L["fat"], rim_mm=2.0)
    canvas.labels[(canvas.zone == 1) & (canvas.labels == L["fat"])] = L["skin"]
    canvas.zone[:] = 0
    # temporalis / neck muscles
    for side in (-1, 1):
        canvas.paint(ellipsoid([side * 62 * s, -5 * s, 0], [12 * s, 40 * s, 45 * s], rotation(0, side * 8, 0)),
                     L["muscle"], only={L["fat"]})
    canvas.paint(Tube([[0, 40 * s, -75 * s], [0, 40 * s, -200]], 45 * s), L["muscle"], only={L["fat"]})
    X, Y, Z = np.broadcast_arrays(*canvas.coords(sl))

    def zbase(X, Y):
        """Skull base height: anterior fossa high, middle fossae lateral dips, posterior fossa low."""
        zb = -18 * s - 0.33 * np.clip(Y + 45 * s, 0, None) * (1 - 0.35 * np.exp(-((Y - 55 * s) / (30 * s)) ** 2))
        zb -= 16 * s * np.exp(-((Y + 5 * s) / (22 * s)) ** 2) * np.clip(np.abs(X) / (45 * s), 0, 1) ** 2
        return zb

    zb = zbase(X, Y)
    t = P["skull_mm"]
    lab, zone = canvas.labels[sl], canvas.zone[sl]
    in_vault = (d < -5.0) & (Z > zb - 14 * s)
    lab[in_vault] = L["skull"]
    zone[in_vault] = ((d[in_vault] > -5.0 - 1.8) | (d[in_vault] < -5.0 - t + 1.8)).astype(np.uint8)
    inner = (d < -5.0 - t) & (Z > zb)
    lab[inner] = L["csf"]
    zone[inner] = 0
    # brain: grey matter band with gyri; sulci as CSF clefts; white matter core
    atro = P["brain_atrophy_mm"]
    spacing = np.linalg.norm(canvas.affine[:3, :3], axis=0)
    n = smooth_noise(d.shape, 3.2 / spacing, rng, dtype=np.float64)
    db = np.maximum(d + 5.0 + t + 1.5 + atro, zb + 2.5 - Z)  # brain surface distance (<0 inside)
    brain = (db < 0)
    sulcus = brain & (db > -14) & (np.abs(n) < 0.09 + 0.02 * atro)
    fissure = brain & (np.abs(X) < 1.2 + 0.4 * atro) & (Z > -5 * s)
    lab[brain] = L["brain_grey_matter"]
    lab[sulcus | fissure] = L["csf"]
    wm = brain & (db < -3.0 - 9.0 * np.exp(-(n / 0.45) ** 2)) & ~fissure & (np.abs(X) > 5 * s)
    lab[wm] = L["brain_white_matter"]
    # skull base bone below the brain and the foramen magnum
    base = (d < -4.0) & (Z <= zb) & (Z > zb - 16 * s) & ~brain
    lab[base] = L["skull"]
    zone[base] = ((Z[base] > zb[base] - 2.0) | (Z[base] < zb[base] - 16 * s + 2.0)).astype(np.uint8)
    del X, Y, Z, d, zb, n, db
    known = {}
    # deep grey nuclei: caudate, lentiform, thalamus
    for side in (-1, 1):
        for c, r, R in (([side * 14, -18, 12], [7, 12, 9], None), ([side * 24, -5, 2], [8, 16, 10], rotation(0, 0, -side * 15)),
                        ([side * 11, 10, 3], [9, 13, 9], None)):
            canvas.paint(Warp(ellipsoid(np.array(c) * s, np.array(r) * s, R), rng, 1.5, 40),
                         L["brain_grey_matter"], only={L["brain_white_matter"]})
    # ventricles: lateral (C-shaped, frontal/occipital/temporal horns), third, fourth
    vr = 1.0 + 0.25 * atro
    for side in (-1, 1):
        body = [np.array([side * 11, -32, 14]) * s, np.array([side * 13, -10, 20]) * s,
                np.array([side * 16, 15, 16]) * s, np.array([side * 22, 32, 6]) * s, np.array([side * 18, 48, 4]) * s]
        canvas.paint(Tube.along(body, np.array([5.5, 4.5, 4.5, 6.0, 3.5]) * s * vr), L["ventricles"],
                     only={L["brain_white_matter"], L["brain_grey_matter"]})
        horn = [np.array([side * 22, 32, 6]) * s, np.array([side * 30, 20, -8]) * s,
                np.array([side * 32, -5, -18]) * s]
        canvas.paint(Tube.along(horn, np.array([4.5, 3.0, 2.0]) * s * vr), L["ventricles"],
                     only={L["brain_white_matter"], L["brain_grey_matter"]})
    canvas.paint(ellipsoid([0, 4 * s, 0], [2.2 * s * vr, 14 * s, 10 * s]), L["ventricles"],
                 only={L["brain_white_matter"], L["brain_grey_matter"]})
    # cerebellum (below the tentorium) and brain stem
    cb = Warp(Union([ellipsoid([side * 24 * s, 48 * s, -40 * s], [30 * s, 28 * s, 22 * s]) for side in (-1, 1)], k=12),
              rng, 2, 60)
    canvas.paint(cb, L["cerebellum"], rim_mm=3.0, only={L["brain_grey_matter"], L["brain_white_matter"], L["csf"]})
    stem = Tube.along([np.array([0, 8, 2]) * s, np.array([0, 16, -22]) * s, np.array([0, 20, -40]) * s,
                       np.array([0, 28, -70]) * s, np.array([0, 30, -200]) * s], np.array([13, 14, 11, 8.5, 8]) * s)
    canvas.paint(stem, L["brain_stem"], keep={L["skin"]})
    canvas.paint(ellipsoid([0, 32 * s, -32 * s], [5 * s, 4 * s, 7 * s]), L["ventricles"], only={L["cerebellum"], L["brain_stem"]})
    # orbits, eyes, sinuses
    for side in (-1, 1):
        c = np.array([side * 32, -68, -22]) * s
        canvas.paint(ellipsoid(c + [0, 8 * s, 0], [20 * s, 24 * s, 17 * s]), L["skull"], rim_mm=30,
                     only=soft)
        canvas.paint(ellipsoid(c + [0, 6 * s, 0], [17 * s, 22 * s, 14 * s]), L["fat"], only={L["skull"]} | soft)
        canvas.paint(ellipsoid(c, [12 * s] * 3), L["eyes"], rim_mm=1.2, keep={L["skin"]})
        canvas.paint(Warp(ellipsoid(np.array([side * 30, -62, -58]) * s, [16 * s, 18 * s, 16 * s]), rng, 2, 40),
                     0, only={L["fat"], L["muscle"], L["skull"]})
    canvas.paint(ellipsoid([0, -68 * s, -50 * s], [10 * s, 22 * s, 24 * s]), 0, only={L["fat"], L["muscle"], L["skull"]})
    # vessels: ICAs, basilar, circle of Willis, MCAs, ACAs, PCAs, sagittal and transverse sinuses
    vess = []
    for side in (-1, 1):
        vess.append(Tube.along([np.array([side * 22, 5, -200]), np.array([side * 20, 0, -60]) * s,
                                np.array([side * 16, -8, -40]) * s, np.array([side * 14, -6, -24]) * s], 2.6 * s))
        vess.append(Tube.along([np.array([side * 14, -6, -24]) * s, np.array([side * 30, -4, -22]) * s,
                                np.array([side * 45, 0, -12]) * s, np.array([side * 55, 10, 5]) * s,
                                np.array([side * 58, 30, 20]) * s], np.array([2.0, 1.8, 1.6, 1.3, 1.0]) * s))
        vess.append(Tube.along([np.array([side * 14, -6, -24]) * s, np.array([side * 3, -18, -20]) * s,
                                np.array([side * 3, -40, 5]) * s, np.array([side * 3, -20, 40]) * s,
                                np.array([side * 3, 20, 50]) * s], np.array([1.7, 1.5, 1.4, 1.2, 1.0]) * s))
        vess.append(Tube.along([np.array([0, 8, -26]) * s, np.array([side * 12, 14, -22]) * s,
                                np.array([side * 20, 35, -10]) * s, np.array([side * 18, 60, 0]) * s],
                               np.array([1.6, 1.5, 1.3, 1.0]) * s))
        vess.append(Tube.along([np.array([side * 12, 28, -200]), np.array([side * 10, 28, -70]) * s,
                                np.array([side * 3, 14, -50]) * s], 1.8 * s))
        vess.append(Tube.along([np.array([0, 88, 20]) * s, np.array([side * 35, 80, -8]) * s,
                                np.array([side * 60, 55, -25]) * s, np.array([side * 50, 40, -50]) * s], 3.5 * s))
    vess.append(Tube.along([np.array([0, 14, -52]) * s, np.array([0, 10, -35]) * s, np.array([0, 8, -26]) * s], 2.0 * s))
    for v in vess:
        canvas.paint(v, L["vessels"], keep={L["skull"], L["skin"], L["eyes"]})
    sss = Tube.along([np.array([0, -80, 40]) * s, np.array([0, -55, 80]) * s, np.array([0, 10, 96]) * s,
                      np.array([0, 70, 70]) * s, np.array([0, 92, 20]) * s], np.array([2.5, 3.5, 4.5, 5, 5]) * s)
    canvas.paint(sss, L["vessels"], only={L["csf"], L["brain_grey_matter"], L["skull"]},
                 where=None)
    # tumour target with oedema in the surrounding white matter
    c, r = P["tumour_centre"], P["tumour_r"]
    tum = Warp(Union([ellipsoid(c, [r, r * 0.85, r * 0.9], rotation(*rng.uniform(-40, 40, 3))),
                      ellipsoid(c + rng.normal(0, r * 0.4, 3), [r * 0.6] * 3)], k=6), rng, r * 0.15, 3 * r)
    canvas.paint(Offset(tum, 12 * s), L["brain_white_matter"], only={L["brain_white_matter"]}, zone_value=2)
    canvas.paint(tum, L["tumour"], rim_mm=3.5, only={L["brain_white_matter"], L["brain_grey_matter"],
                                                     L["ventricles"], L["csf"]})
    m = canvas.labels == L["tumour"]
    idx = np.argwhere(m).mean(axis=0) if m.any() else np.zeros(3)
    known["tumour_centroid_lps"] = canvas.affine[:3, :3] @ idx + canvas.affine[:3, 3]
    known["_tumour_design_centre"] = c
    known["tumour_design_radius_mm"] = float(r)
    return known
