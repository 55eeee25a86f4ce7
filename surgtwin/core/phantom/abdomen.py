"""Abdomen-pelvis CT angiography phantom: body wall, solid organs, bowel, aorta with renal and
iliac branches and one infrarenal stenosis of known degree, lumbar spine, pelvis and femurs.

Anatomy frame (mm): x to the patient's left, y posterior, z superior; z = 0 at the femoral heads.
"""

from __future__ import annotations

import numpy as np

from surgtwin.core.phantom.ct import Tissue
from surgtwin.core.phantom.labels import L
from surgtwin.core.phantom.shapes import (
    Canvas,
    Implicit,
    Intersect,
    Offset,
    Subtract,
    Tube,
    Union,
    Warp,
    ellipsoid,
    rotation,
    smin,
    smooth_noise,
)

VFAT = 255  # temporary label: fat inside the peritoneal/pleural cavity (becomes "fat")


def draw_params(rng) -> dict:
    s = rng.uniform(0.9, 1.1)  # overall size
    P = {
        "s": s,
        "fat_mm": rng.uniform(12, 32),  # subcutaneous fat thickness
        "half_width": 150 * s,
        "b_ant": 105 * s,
        "b_post": 95 * s,
        "phase": str(rng.choice(["arterial", "portal_venous"], p=[0.6, 0.4])),
        "stenosis_diam_pct": float(np.round(rng.uniform(40, 70), 1)),
        "aorta_r": rng.uniform(8.5, 10.5) * s,
        "z_lo": -140.0 * s,
        "z_hi": 300.0 * s,
    }
    P["half_width"] += 0.8 * (P["fat_mm"] - 20)
    P["b_ant"] += 0.8 * (P["fat_mm"] - 20)
    P["extent_lo"] = np.array([-P["half_width"] - 22, -P["b_ant"] - 15, P["z_lo"]])
    P["extent_hi"] = np.array([P["half_width"] + 22, P["b_post"] + 10, P["z_hi"]])
    P["table_room_mm"] = 40.0
    return P


def tissues(P, rng) -> dict[int, Tissue]:
    art = P["phase"] == "arterial"
    j = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
    blood = j(280, 380) if art else j(160, 200)
    return {
        L["skin"]: Tissue(j(20, 40)),
        L["fat"]: Tissue(j(-110, -90), coarse_sd=4, fine_sd=6),
        L["muscle"]: Tissue(j(45, 60) if not art else j(40, 55), coarse_sd=3),
        L["lung_left"]: Tissue(j(-870, -830), coarse_sd=15, fine_sd=20),
        L["lung_right"]: Tissue(j(-870, -830), coarse_sd=15, fine_sd=20),
        L["liver"]: Tissue(j(70, 90) if art else j(105, 125), coarse_sd=4),
        L["spleen"]: Tissue(j(110, 140) if art else j(110, 125), coarse_sd=8 if art else 3),
        L["kidney_left"]: Tissue(j(90, 120) if art else j(150, 180), rim_hu=j(180, 230) if art else None),
        L["kidney_right"]: Tissue(j(90, 120) if art else j(150, 180), rim_hu=j(180, 230) if art else None),
        L["gallbladder"]: Tissue(j(5, 15), rim_hu=j(40, 60)),
        L["stomach"]: Tissue(j(15, 35), rim_hu=j(70, 100), zone2_hu=-1000, coarse_sd=6),
        L["bowel"]: Tissue(j(15, 35), rim_hu=j(70, 110), zone2_hu=-1000, coarse_sd=8, fine_sd=10),
        L["urinary_bladder"]: Tissue(j(5, 15), rim_hu=j(35, 50)),
        L["aorta"]: Tissue(blood),
        L["inferior_vena_cava"]: Tissue(j(90, 130) if art else j(140, 170)),
        L["renal_artery_left"]: Tissue(blood),
        L["renal_artery_right"]: Tissue(blood),
        L["iliac_artery_left"]: Tissue(blood),
        L["iliac_artery_right"]: Tissue(blood),
        L["vessels"]: Tissue(j(80, 120) if art else j(140, 170)),
        L["vertebrae"]: Tissue(j(170, 260), rim_hu=j(700, 900), fine_sd=40),
        L["intervertebral_disc"]: Tissue(j(75, 100)),
        L["spinal_canal"]: Tissue(j(10, 25)),
        L["pelvis"]: Tissue(j(170, 260), rim_hu=j(750, 950), fine_sd=40),
        L["femur_left"]: Tissue(j(180, 280), rim_hu=j(1100, 1400), fine_sd=40),
        L["femur_right"]: Tissue(j(180, 280), rim_hu=j(1100, 1400), fine_sd=40),
        L["medullary_canal"]: Tissue(j(-60, 0), coarse_sd=8),
        L["ribs"]: Tissue(j(200, 300), rim_hu=j(700, 900), fine_sd=30),
    }


# -- body and wall ---------------------------------------------------------------------------------
def _ellipse2d(dx, dy, a, b):
    u, v = dx / a, dy / b
    k0 = np.sqrt(u * u + v * v)
    k1 = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)


def _body(P) -> Implicit:
    s, hw = P["s"], P["half_width"]
    zs = np.array([-400, -60, -10, 40, 110, 170, 240, 400]) * s
    wk = np.array([0.60, 0.95, 1.10, 1.07, 0.95, 0.93, 1.00, 1.02])
    ak = np.array([0.85, 0.88, 0.92, 0.95, 1.00, 0.98, 0.95, 0.95])
    pk = np.array([0.85, 0.95, 1.05, 1.02, 0.98, 0.97, 0.96, 0.96])
    fat = P["fat_mm"]

    def fn(X, Y, Z):
        a = hw * np.interp(Z, zs, wk)
        bant = P["b_ant"] * np.interp(Z, zs, ak)
        bpost = P["b_post"] * np.interp(Z, zs, pk)
        b = np.where(Y < 0, bant, bpost)
        trunk = _ellipse2d(X, Y, a, b)
        trunk = np.maximum(trunk, -40 * s - Z)  # perineum
        # thighs below the groin
        tx = (0.48 + 0.002 * fat) * hw
        tr = (62 + 0.9 * fat) * s
        thigh = np.minimum(_ellipse2d(X - tx, Y + 5, tr, tr * 0.95), _ellipse2d(X + tx, Y + 5, tr, tr * 0.95))
        thigh = np.maximum(thigh, Z - 20 * s)
        return smin(trunk, thigh, 40.0)

    lo = np.array([-hw * 1.2, -P["b_ant"] * 1.1, P["z_lo"] - 50])
    hi = np.array([hw * 1.2, P["b_post"] * 1.1, P["z_hi"] + 50])
    return Implicit(fn, lo, hi)


def _spine_line(P):
    """Vertebral body centre (x, y) as a function of z (lumbar lordosis)."""
    s = P["s"]
    y_back = P["b_post"]
    y_canal0 = y_back - P["fat_mm"] - 48 * s

    def centre(z):
        lord = 14 * s * np.exp(-(((z - 150 * s) / (90 * s)) ** 2))  # lumbar lordosis, most anterior at L3
        yc = y_canal0 - lord
        return yc - 28 * s, yc  # (vertebral body centre y, canal centre y)

    return centre


def build(canvas: Canvas, P, rng) -> dict:
    s = P["s"]
    known: dict = {"contrast_phase": P["phase"]}
    body = _body(P)
    fat = P["fat_mm"]
    wall = fat + 11 * s
    sl, d = canvas.field(body, levels=(0.0, -2.0, -fat, -wall))  # the depths thresholded below
    canvas.paint_field(sl, d, L["fat"], rim_mm=2.0)
    canvas.labels[(canvas.zone == 1) & (canvas.labels == L["fat"])] = L["skin"]
    canvas.zone[:] = 0
    canvas.paint_field(sl, d, L["muscle"], offset_mm=fat, only={L["fat"]})
    z_floor = -25 * s
    canvas.paint_field(sl, d, VFAT, offset_mm=wall, only={L["muscle"]}, where=lambda X, Y, Z: Z > z_floor)
    del d

    spine = _spine_line(P)
    # paraspinal, psoas, gluteal and iliacus muscles
    for side in (-1, 1):
        zz = np.linspace(-10 * s, P["z_hi"] + 30, 8)
        yb, yc = spine(zz)
        pts = np.stack([np.full_like(zz, side * 38 * s), yc + 32 * s, zz], 1)
        canvas.paint(Warp(Tube.along(pts, 30 * s), rng, 4, 120), L["muscle"], only={L["fat"], VFAT})
        zp = np.array([250, 200, 150, 100, 55, 15, -25, -60]) * s
        ybp, _ = spine(np.clip(zp, 60 * s, None))
        xp = side * np.array([28, 36, 44, 52, 62, 72, 82, 92]) * s
        yp = np.array([ybp[0], ybp[1], ybp[2], ybp[3], 30 * s, 5 * s, -10 * s, 5 * s])
        rp = np.array([8, 13, 18, 21, 20, 18, 15, 12]) * s
        canvas.paint(Tube.along(np.stack([xp, yp, zp], 1), rp), L["muscle"], only={L["fat"], VFAT})
        canvas.paint(Warp(ellipsoid([side * 95 * s, 70 * s, -5 * s], [55 * s, 45 * s, 75 * s],
                                    rotation(0, side * 15, 0)), rng, 5, 150), L["muscle"],
                     only={L["fat"], VFAT})
    # lungs above the diaphragm domes
    dome_r, dome_l = 262 * s + rng.uniform(-8, 8), 250 * s + rng.uniform(-8, 8)

    def dome_z(X, Y):
        zr = (dome_r - 0.0022 * ((X + 80 * s) ** 2) / s - 0.0012 * (Y + 20 * s) ** 2 / s - 0.25 * np.maximum(Y, 0))
        zl = (dome_l - 0.0022 * ((X - 80 * s) ** 2) / s - 0.0012 * (Y + 20 * s) ** 2 / s - 0.25 * np.maximum(Y, 0))
        return np.maximum(zr, zl)

    def lung_fn(side, dome):
        def fn(X, Y, Z):
            return np.maximum(dome_z(X, Y) - Z, -(side * X) + 15 * s)
        return fn

    for side, dome, name in ((-1, dome_r, "lung_right"), (1, dome_l, "lung_left")):
        lung = Implicit(lung_fn(side, dome), [-200, -200, 180 * s], [200, 200, 500])
        canvas.paint(lung, L[name], only={VFAT})

    organ_space = {VFAT}
    # kidneys (bean: ellipsoid minus hilum), cortex as rim
    for side, name, zk in ((1, "kidney_left", 165), (-1, "kidney_right", 150)):
        yb, _ = spine(zk * s)
        c = np.array([side * 72 * s, yb + 8 * s, zk * s + rng.uniform(-8, 8)])
        R = rotation(-12, side * 10, side * 30)
        kid = Subtract(ellipsoid(c, [30 * s, 24 * s, 55 * s], R),
                       ellipsoid(c + R @ np.array([-side * 30 * s, 0, 0]), [14 * s, 10 * s, 20 * s], R), k=6)
        canvas.paint(Warp(kid, rng, 3, 90), L[name], rim_mm=6.0 * s, only=organ_space | {L["muscle"]})
    # liver: right lobe + left lobe, touching the wall and the right dome
    liver = Union([
        ellipsoid([-70 * s, 5 * s, 215 * s], [85 * s, 80 * s, 80 * s], rotation(0, 0, 10)),
        ellipsoid([-20 * s, -30 * s, 230 * s], [75 * s, 45 * s, 45 * s], rotation(0, -10, -15)),
        ellipsoid([-95 * s, 10 * s, 160 * s], [40 * s, 50 * s, 50 * s]),
    ], k=30)
    def below_dome(X, Y, Z):
        return Z < dome_z(X, Y) - 3
    canvas.paint(Warp(liver, rng, 8 * s, 160), L["liver"], only=organ_space, where=below_dome)
    # gallbladder on the liver's underside
    gb = ellipsoid([-50 * s, -35 * s, 175 * s], [16 * s, 18 * s, 38 * s], rotation(30, 0, 20))
    canvas.paint(Warp(gb, rng, 3, 60), L["gallbladder"], rim_mm=2.0, only={L["liver"], VFAT})
    # spleen, posterior left
    spl = ellipsoid([95 * s, 45 * s, 220 * s], [30 * s, 60 * s, 50 * s], rotation(0, 10, 35))
    canvas.paint(Warp(spl, rng, 6, 120), L["spleen"], only=organ_space,
                 where=below_dome)
    # stomach with gas anteriorly
    st = Union([ellipsoid([55 * s, -25 * s, 225 * s], [45 * s, 40 * s, 50 * s], rotation(0, 0, -20)),
                ellipsoid([25 * s, -50 * s, 180 * s], [40 * s, 25 * s, 30 * s], rotation(0, 30, -40))], k=25)
    st = Warp(st, rng, 6, 100)
    canvas.paint(st, L["stomach"], rim_mm=4.0, only=organ_space)
    gas_y = -45 * s + rng.uniform(-10, 10)
    _mark_zone(canvas, Offset(st, -4.0), L["stomach"], 2, lambda X, Y, Z: Y < gas_y)
    # bladder
    canvas.paint(Warp(ellipsoid([0, -45 * s, 5 * s], [45 * s, 35 * s, 35 * s]), rng, 5, 90),
                 L["urinary_bladder"], rim_mm=2.5, only=organ_space | {L["muscle"]})

    known.update(_vessels(canvas, P, rng, spine))
    _bowel(canvas, P, rng)
    canvas.labels[canvas.labels == VFAT] = L["fat"]
    _skeleton(canvas, P, rng, spine)
    return known


def _mark_zone(canvas, shape, label, zone, where):
    sl, d = canvas.field(shape)
    if sl is None:
        return
    m = (d < 0) & (canvas.labels[sl] == label) & where(*np.broadcast_arrays(*canvas.coords(sl)))
    canvas.zone[sl][m] = zone


def _vessels(canvas, P, rng, spine) -> dict:
    s = P["s"]
    r0 = P["aorta_r"]
    known = {}
    # aorta: anterior to the vertebral bodies, slightly left; bifurcation at L4
    z_bif = 115 * s
    zz = np.array([P["z_hi"] + 20, 260 * s, 210 * s, 175 * s])
    yb, _ = spine(zz)
    upper = np.stack([np.array([12, 14, 12, 10]) * s, yb - 24 * s - r0, zz], 1)
    # straight infrarenal segment with the stenosis at its middle
    yb_s, _ = spine(np.array([z_bif]))
    y_low = yb_s[0] - 24 * s - r0
    top = upper[-1]
    bot = np.array([9 * s, y_low, z_bif])
    axis = (bot - top) / np.linalg.norm(bot - top)
    length = np.linalg.norm(bot - top)
    ts = np.linspace(0, 1, 31)
    r_top, r_bot = 1.05 * r0, 0.9 * r0
    rads = r_top + (r_bot - r_top) * ts
    t_c = 0.5 + rng.uniform(-0.08, 0.08)
    pct = P["stenosis_diam_pct"] / 100.0
    sig = 7.0 / length
    rads = rads * (1 - pct * np.exp(-0.5 * ((ts - t_c) / sig) ** 2))
    # make the stenosis centre an exact vertex
    i_c = int(np.argmin(np.abs(ts - t_c)))
    ts[i_c] = t_c
    r_ref_c = r_top + (r_bot - r_top) * t_c
    rads[i_c] = r_ref_c * (1 - pct)
    seg_pts = top + ts[:, None] * (bot - top)
    up_pts, up_frac = _dense(upper)
    up_r = np.interp(up_frac, [0, 1], [1.25 * r0, 1.05 * r0])
    aorta = Tube(np.vstack([up_pts[:-1], seg_pts]), np.concatenate([up_r[:-1], rads]))
    canvas.paint(aorta, L["aorta"], keep={L["skin"]})
    c_sten = seg_pts[i_c]
    c_ref = top + (t_c - 22.0 / length) * (bot - top)
    r_ref = r_top + (r_bot - r_top) * (t_c - 22.0 / length)
    known.update({
        "stenosis_vessel": "aorta",
        "stenosis_percent": float(P["stenosis_diam_pct"]),
        "stenosis_area_percent": float(100 * (1 - (1 - pct) ** 2)),
        "stenosis_min_diameter_mm": float(2 * rads[i_c]),
        "stenosis_reference_diameter_mm": float(2 * r_ref_c),
        "_stenosis_centre": c_sten, "_stenosis_axis": axis, "_stenosis_ref_centre": c_ref,
        "_stenosis_ref_radius": r_ref,
    })
    # renal arteries from the aorta at ~z 178 to the kidney hila
    kc = {}
    for side, name, kname in ((1, "renal_artery_left", "kidney_left"), (-1, "renal_artery_right", "kidney_right")):
        zr = 180 * s + rng.uniform(-5, 5) - (6 * s if side < 0 else 0)
        ya = float(np.interp(zr, [top[2], upper[-2][2]], [top[1], upper[-2][1]]))
        start = np.array([top[0], ya, zr])
        yb, _ = spine(np.array([zr]))
        end = np.array([side * 52 * s, yb[0] + 2 * s, zr - 12 * s])
        mid = 0.5 * (start + end) + np.array([0, -4 * s, 3 * s])
        canvas.paint(Tube.along([start, mid, end], [3.2 * s, 3.0 * s, 2.6 * s]), L[name],
                     only={L["fat"], VFAT, L["muscle"], L[kname]})
        kc[side] = zr
    # iliac arteries: common -> external -> common femoral
    for side, name in ((1, "iliac_artery_left"), (-1, "iliac_artery_right")):
        pts = np.array([[bot[0], bot[1] - 1, bot[2] + 4],
                        [side * 30 * s, bot[1] + 12 * s, 75 * s],
                        [side * 55 * s, 10 * s, 35 * s],
                        [side * 75 * s, -30 * s, -5 * s],
                        [side * 88 * s, -38 * s, -60 * s],
                        [side * 95 * s, -30 * s, -135 * s]])
        rr = np.array([0.62 * r0, 0.6 * r0, 0.5 * r0, 0.45 * r0, 0.42 * r0, 0.38 * r0])
        canvas.paint(Tube.along(pts, rr), L[name], keep={L["skin"], L["aorta"]})
        # internal iliac branch
        canvas.paint(Tube.along([pts[1] + [side * 8 * s, 5 * s, -15 * s], [side * 50 * s, 45 * s, 20 * s],
                                 [side * 45 * s, 60 * s, -10 * s]], [3.0 * s, 2.5 * s, 2.0 * s]), L[name],
                     only={L["fat"], VFAT, L["muscle"]})
    # IVC (right of the aorta) and iliac/renal veins as "vessels"
    zz = np.array([P["z_hi"] + 20, 250 * s, 200 * s, 150 * s, 105 * s])
    yb, _ = spine(zz)
    ivc = np.stack([np.array([-28, -22, -20, -18, -12]) * s, yb - 22 * s - 11 * s, zz], 1)
    canvas.paint(Warp(Tube.along(ivc, [13 * s, 12 * s, 11 * s, 10.5 * s, 10 * s]), rng, 2, 80),
                 L["inferior_vena_cava"], keep={L["aorta"], L["skin"]})
    for side in (1, -1):
        pts = np.array([ivc[-1] + [side * 8 * s, 4 * s, -5 * s], [side * 40 * s, 30 * s, 70 * s],
                        [side * 62 * s, 18 * s, 30 * s], [side * 78 * s, -22 * s, -8 * s],
                        [side * 78 * s, -28 * s, -60 * s], [side * 82 * s, -22 * s, -135 * s]])
        canvas.paint(Tube.along(pts, np.array([8, 7.5, 7, 6.5, 6, 5.5]) * s), L["vessels"],
                     only={L["fat"], VFAT, L["muscle"]})
        # renal veins: the left one passes in front of the aorta
        zr = kc[side] - 4 * s
        if side > 0:
            rv = [[ivc[2][0], ivc[2][1], zr], [5 * s, top[1] - r0 - 6 * s, zr], [50 * s, spine(zr)[0] - 5 * s, zr - 10 * s]]
        else:
            rv = [[ivc[2][0], ivc[2][1], zr], [-50 * s, spine(zr)[0] - 5 * s, zr - 10 * s]]
        canvas.paint(Tube.along(rv, 4.5 * s), L["vessels"], only={L["fat"], VFAT, L["muscle"]})
    # portal / splenic vein
    pv = [[-40 * s, -5 * s, 195 * s], [-5 * s, 0 * s, 185 * s], [40 * s, 15 * s, 195 * s], [80 * s, 35 * s, 210 * s]]
    canvas.paint(Tube.along(pv, [7 * s, 6 * s, 5 * s, 4.5 * s]), L["vessels"], only={VFAT, L["liver"]})
    return known


def _dense(points, step=2.0):
    from surgtwin.core.phantom.shapes import catmull_rom
    return catmull_rom(points, step)


def _bowel(canvas, P, rng):
    """Small bowel loops filling the free peritoneal fat, colon framing it; gas in some loops."""
    s = P["s"]
    fat = VFAT
    spacing = np.linalg.norm(canvas.affine[:3, :3], axis=0)
    # colon: ascending, transverse, descending, sigmoid
    colon = [[-95 * s, -5 * s, 60 * s], [-105 * s, 0, 130 * s], [-95 * s, -35 * s, 185 * s],
             [-30 * s, -75 * s, 165 * s], [40 * s, -70 * s, 175 * s], [100 * s, -10 * s, 195 * s],
             [105 * s, 15 * s, 130 * s], [90 * s, 0, 60 * s], [40 * s, -30 * s, 40 * s],
             [-10 * s, -10 * s, 45 * s], [0, 40 * s, 30 * s]]
    radii = np.array([24, 22, 20, 18, 18, 19, 18, 17, 15, 14, 14]) * s
    ctube = Warp(Tube.along(colon, radii), rng, 6, 90)
    canvas.paint(ctube, L["bowel"], rim_mm=2.0, only={fat})
    sl, d = canvas.field(ctube)
    if sl is not None:
        gas = smooth_noise(d.shape, 5.0 / spacing, rng) > -0.2
        m = (d < -2.0) & (canvas.labels[sl] == L["bowel"]) & gas
        canvas.zone[sl][m] = 2
    # small bowel: band-limited noise inside the free fat of the peritoneal cavity
    lo = np.array([-110 * s, -110 * s, -10 * s])
    hi = np.array([110 * s, 30 * s, 190 * s])
    sl = canvas.slices_for(lo, hi, margin_mm=0)
    if sl is None:
        return
    sub = canvas.labels[sl]
    X, Y, Z = canvas.coords(sl)
    free = (sub == fat) & np.broadcast_to((Y < 25 * s) & (Z > 0) & (Z < 190 * s), sub.shape)
    free &= np.broadcast_to(((X / (100 * s)) ** 2 + ((Y + 40 * s) / (75 * s)) ** 2) < 1.0, sub.shape)
    n = smooth_noise(sub.shape, 7.0 / spacing, rng, dtype=np.float32)
    loops = free & (n > -0.55)
    wall = loops & (n < -0.25)
    gasn = smooth_noise(sub.shape, 6.0 / spacing, rng) > 1.3
    sub[loops] = L["bowel"]
    zone = canvas.zone[sl]
    zone[loops] = 0
    zone[wall] = 1
    zone[loops & ~wall & gasn] = 2


def _skeleton(canvas, P, rng, spine):
    s = P["s"]
    soft = {L["fat"], L["muscle"], L["vessels"], L["bowel"], L["skin"]}
    # vertebral bodies T10..L5 and discs
    z_l5 = 85 * s
    step = 37 * s
    levels = [z_l5 + n * step for n in range(0, 8)]
    canvas_known = []
    for n, zc in enumerate(levels):
        yb, yc = spine(zc)
        rx, ry = (24 + 2.0 * (7 - n) * 0.4) * s, (17 + 0.6 * (7 - n) * 0.4) * s
        h = 13.5 * s
        c = np.array([0, yb, zc])
        cyl = Implicit(_ecyl(c, rx, ry, h), c - [rx, ry, h], c + [rx, ry, h])
        pieces = [cyl]
        yp = yb + ry - 3 * s
        for side in (-1, 1):
            ped_end = np.array([side * 15 * s, yc + 4 * s, zc + 3 * s])
            pieces.append(Tube([[side * 13 * s, yp, zc + 3 * s], ped_end], 5 * s))
            lam_end = np.array([0, yc + 19 * s, zc - 2 * s])
            pieces.append(Tube([ped_end, lam_end], 4.5 * s))
            tp = np.array([side * (48 if n < 5 else 30) * s, yc + (2 if n < 5 else 10) * s, zc + 3 * s])
            pieces.append(Tube([ped_end, tp], np.array([4.5, 3.0]) * s))
            pieces.append(ellipsoid(ped_end + [side * 2 * s, 8 * s, 0], [7 * s, 7 * s, 15 * s]))
        pieces.append(Tube([[0, yc + 19 * s, zc - 2 * s], [0, yc + 45 * s, zc - 12 * s]], np.array([5, 6]) * s))
        canvas.paint(Union(pieces, k=4 * s), L["vertebrae"], rim_mm=1.5, keep={L["aorta"], L["inferior_vena_cava"]})
        if n < len(levels) - 1:
            zd = zc + step / 2
            ybd, _ = spine(zd)
            cd = np.array([0, ybd, zd])
            canvas.paint(Implicit(_ecyl(cd, rx, ry, step / 2 - h + 1.0), cd - [rx, ry, 8], cd + [rx, ry, 8]),
                         L["intervertebral_disc"], only=soft)
        canvas_known.append(zc)
    # spinal canal (thecal sac) all along
    zz = np.linspace(20 * s, P["z_hi"] + 30, 12)
    _, yc = spine(zz)
    canal = Tube.along(np.stack([np.zeros_like(zz), yc, zz], 1), np.interp(zz, [20 * s, 400], [7 * s, 10 * s]))
    canvas.paint(canal, L["spinal_canal"], keep={L["intervertebral_disc"]},
                 where=lambda X, Y, Z: np.ones(X.shape, bool))
    _pelvis(canvas, P, rng, spine)
    _ribs(canvas, P, rng, spine)


def _ecyl(c, rx, ry, h):
    def fn(X, Y, Z):
        e = _ellipse2d(X - c[0], Y - c[1], rx, ry)
        v = np.abs(Z - c[2]) - h
        return np.maximum(e, v)
    return fn


def _pelvis(canvas, P, rng, spine):
    s = P["s"]
    hip_x = 92 * s
    head_r = 23 * s
    pieces = []
    # sacrum + coccyx: tilted wedge
    y1, _ = spine(60 * s)
    sac = [[0, y1 + 5 * s, 62 * s], [0, y1 + 22 * s, 25 * s], [0, y1 + 40 * s, -10 * s], [0, y1 + 45 * s, -35 * s]]
    pieces.append(Tube.along(sac, np.array([22, 17, 11, 6]) * s))
    for side in (-1, 1):
        ala = [[side * 5 * s, y1 + 8 * s, 55 * s], [side * 40 * s, y1 + 12 * s, 50 * s], [side * 55 * s, y1 + 18 * s, 40 * s]]
        pieces.append(Tube.along(ala, np.array([18, 16, 13]) * s))
    bone = Union(pieces, k=8 * s)
    hips = []
    for side in (-1, 1):
        head = np.array([side * hip_x, -8 * s, 0.0])
        # iliac wing: shell of a bowl, lateral and posterior only
        bowl_c = np.array([side * 20 * s, 15 * s, 95 * s])
        bowl = ellipsoid(bowl_c, [95 * s, 70 * s, 75 * s], rotation(0, side * -10, 0))
        wing = Implicit(_shell(bowl, 3.5 * s), bowl.lo, bowl.hi)
        wing = Intersect(wing, Implicit(lambda X, Y, Z, sd=side: np.maximum(
            np.maximum(40 * s - sd * X, Z - (120 * s - 0.004 * (Y - 20 * s) ** 2)),
            np.maximum(30 * s - Z, -Y - 35 * s)), bowl.lo, bowl.hi), k=6 * s)
        acet = ellipsoid(head + [-side * 6 * s, 4 * s, 8 * s], [34 * s, 34 * s, 38 * s])
        body = Tube.along([head + [-side * 8 * s, 10 * s, 15 * s], [side * 60 * s, 30 * s, 50 * s],
                           [side * 48 * s, y1 + 10 * s, 50 * s]], np.array([18, 13, 12]) * s)
        pubis = Tube.along([head + [-side * 15 * s, -20 * s, -5 * s], [side * 40 * s, -55 * s, -20 * s],
                            [side * 4 * s, -62 * s, -30 * s]], np.array([11, 9, 9]) * s)
        isch = Tube.along([head + [-side * 10 * s, 20 * s, -15 * s], [side * 62 * s, 35 * s, -45 * s],
                           [side * 45 * s, 5 * s, -60 * s], [side * 15 * s, -45 * s, -40 * s]],
                          np.array([16, 15, 9, 8]) * s)
        hip = Union([wing, acet, body, pubis, isch], k=8 * s)
        socket = ellipsoid(head, [head_r + 2.0, head_r + 2.0, head_r + 2.0])
        hips.append(Subtract(hip, socket))
    bone = Union([bone, *hips], k=5 * s)
    soft = {L["fat"], L["muscle"], L["bowel"], L["skin"], L["vessels"], L["spinal_canal"],
            L["urinary_bladder"]}
    canvas.paint(Warp(bone, rng, 2.5, 150), L["pelvis"], rim_mm=2.0, only=soft)
    # femurs: head, neck, trochanters, bowed shaft
    for side, name in ((1, "femur_left"), (-1, "femur_right")):
        head = np.array([side * hip_x, -8 * s, 0.0])
        neck_end = np.array([side * (hip_x + 33 * s), 2 * s, -30 * s])
        shaft = [neck_end + [0, 0, -5 * s], [side * (hip_x + 30 * s), -2 * s, -100 * s],
                 [side * (hip_x + 22 * s), -6 * s, -200 * s], [side * (hip_x + 14 * s), -2 * s, -320 * s]]
        femur = Union([
            ellipsoid(head, [head_r] * 3),
            Tube([head, neck_end], np.array([15, 17]) * s),
            ellipsoid(neck_end + [side * 10 * s, 8 * s, 5 * s], [17 * s, 20 * s, 28 * s]),
            ellipsoid([side * (hip_x + 15 * s), 14 * s, -62 * s], [10 * s, 10 * s, 14 * s]),
            Tube.along(shaft, np.array([19, 15, 13.5, 14]) * s),
        ], k=10 * s)
        canvas.paint(femur, L[name], rim_mm=1.8, only=soft | {L["pelvis"]},
                     keep={L["iliac_artery_left"], L["iliac_artery_right"]})
        sh = Tube.along(shaft, np.array([19, 15, 13.5, 14]) * s)
        canvas.paint(sh, L[name], rim_mm=5.5 * s, only={L[name]}, where=lambda X, Y, Z: Z < -70 * s)
        canal = Tube.along(shaft[1:], np.array([8, 7.5, 8]) * s)
        canvas.paint(canal, L["medullary_canal"], only={L[name]}, where=lambda X, Y, Z: Z < -75 * s)


def _shell(shape, half):
    def fn(X, Y, Z):
        return np.abs(shape.fn(X, Y, Z)) - half
    return fn


def _ribs(canvas, P, rng, spine):
    s = P["s"]
    fat = P["fat_mm"]
    hw, ba = P["half_width"], P["b_ant"]
    for n, z0 in enumerate([300 * s, 262 * s, 226 * s, 192 * s]):
        yb, yc = spine(z0)
        for side in (-1, 1):
            ang = np.linspace(0.0, 1.0, 7)
            reach = [0.95, 0.85, 0.7, 0.45][n]
            th = np.pi * (0.5 - ang * reach) * -1 + np.pi / 2  # from posterior (0) towards anterior
            a = hw * 0.93 - fat - 14 * s
            b = ba * 0.95 - fat - 14 * s
            xs = side * a * np.sin(np.clip(th, 0.25, np.pi))
            ys = np.cos(np.clip(th, 0.25, np.pi)) * P["b_post"] * 0.55 + 0 * th
            ys = np.where(ys < 0, ys * b / (P["b_post"] * 0.55), ys)
            zs = z0 - 60 * s * ang ** 1.3
            pts = np.stack([xs, ys, zs], 1)
            pts[0] = [side * 20 * s, yc, z0 + 4 * s]
            canvas.paint(Tube.along(pts, np.linspace(6, 5, 7) * s), L["ribs"], rim_mm=1.5,
                         only={L["fat"], VFAT, L["muscle"]})
