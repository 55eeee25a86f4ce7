"""Cardiac CT angiography phantom (TAVR planning): chest wall, lungs, left heart with an aortic root
whose annulus is a known ellipse, three sinuses, coronary ostia at known heights, leaflet
calcifications, ascending and descending aorta.

Anatomy frame (mm): x patient left, y posterior, z superior; origin at the annulus centre.
Root frame: (u, v, w) with w along the root axis (w = 0: annulus plane, the virtual basal ring).
"""

from __future__ import annotations

import numpy as np

from surgtwin.core.phantom.ct import Tissue
from surgtwin.core.phantom.labels import L
from surgtwin.core.phantom.shapes import (
    Canvas,
    Implicit,
    Offset,
    Tube,
    Union,
    Warp,
    ellipsoid,
    frame_from_axis,
    rotation,
)

MEDIA = 254  # temporary label: mediastinal fat


def ellipse_perimeter(a: float, b: float) -> float:
    """Ramanujan's second approximation (relative error < 1e-9 for these ellipticities)."""
    h = ((a - b) / (a + b)) ** 2
    return float(np.pi * (a + b) * (1 + 3 * h / (10 + np.sqrt(4 - 3 * h))))


def draw_params(rng) -> dict:
    s = rng.uniform(0.92, 1.08)
    d_mean = rng.uniform(21.0, 27.0)  # mean annulus diameter
    ratio = rng.uniform(0.78, 0.92)  # minor / major
    a = d_mean / (1 + ratio)  # semi-major so that (2a + 2b) / 2 = d_mean
    b = a * ratio
    P = {
        "s": s, "fat_mm": rng.uniform(8, 25), "annulus_a": a, "annulus_b": b,
        "h_left": float(np.round(rng.uniform(10.0, 15.0), 1)),
        "h_right": float(np.round(rng.uniform(12.0, 18.0), 1)),
        "root_axis": np.array([-0.30, -0.42, 0.86]) + rng.normal(0, 0.05, 3),
        "annulus_twist_deg": rng.uniform(-20, 20),
        "table": False,
        "table_room_mm": 0.0,
        "extent_lo": np.array([-100.0, -95.0, -75.0]) * s,
        "extent_hi": np.array([100.0, 105.0, 60.0]) * s,
    }
    P["root_axis"] = P["root_axis"] / np.linalg.norm(P["root_axis"])
    return P


def tissues(P, rng) -> dict[int, Tissue]:
    j = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
    left = j(330, 450)
    right = j(150, 260)
    return {
        L["skin"]: Tissue(j(20, 40)),
        L["fat"]: Tissue(j(-110, -90), coarse_sd=4, fine_sd=6),
        MEDIA: Tissue(j(-110, -90), coarse_sd=4, fine_sd=6),
        L["muscle"]: Tissue(j(40, 60), coarse_sd=3),
        L["lung_left"]: Tissue(j(-880, -840), coarse_sd=15, fine_sd=25),
        L["lung_right"]: Tissue(j(-880, -840), coarse_sd=15, fine_sd=25),
        L["left_ventricle"]: Tissue(left, coarse_sd=6),
        L["left_atrium"]: Tissue(left, coarse_sd=6),
        L["aortic_root"]: Tissue(left),
        L["ascending_aorta"]: Tissue(left),
        L["descending_aorta"]: Tissue(left - 10),
        L["coronary_artery_left"]: Tissue(left - 30),
        L["coronary_artery_right"]: Tissue(left - 30),
        L["myocardium"]: Tissue(j(100, 130), coarse_sd=5),
        L["right_ventricle"]: Tissue(right, coarse_sd=15),
        L["right_atrium"]: Tissue(right, coarse_sd=20),
        L["pulmonary_artery"]: Tissue(right + 30),
        L["vessels"]: Tissue(j(200, 300)),
        L["calcification"]: Tissue(j(700, 1100)),
        L["vertebrae"]: Tissue(j(170, 260), rim_hu=j(700, 900), fine_sd=40),
        L["intervertebral_disc"]: Tissue(j(75, 100)),
        L["spinal_canal"]: Tissue(j(10, 25)),
        L["ribs"]: Tissue(j(200, 300), rim_hu=j(700, 900), fine_sd=30),
        L["sternum"]: Tissue(j(200, 300), rim_hu=j(600, 800), fine_sd=30),
        L["liver"]: Tissue(j(90, 120), coarse_sd=4),
    }


def _ellipse2d(dx, dy, a, b):
    u, v = dx / a, dy / b
    k0 = np.sqrt(u * u + v * v)
    k1 = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)


def _root_shape(P, F, r_stj, H, bulge, theta_sinus):
    """Aortic root lumen in the root frame F (columns u, v, w), origin at the annulus centre."""
    a, b = P["annulus_a"], P["annulus_b"]

    def radius(th, w):
        r_e = a * b / np.sqrt((b * np.cos(th)) ** 2 + (a * np.sin(th)) ** 2)
        t = np.clip(w / H, 0.0, 1.0)
        beta = t * t * (3 - 2 * t)
        lobe = np.maximum(np.cos(3 * (th - theta_sinus)), -0.2) + 0.2
        return (1 - beta) * r_e + beta * r_stj + bulge * np.sin(np.pi * t) ** 1.2 * lobe / 1.2

    def fn(X, Y, Z):
        u = F[0, 0] * X + F[1, 0] * Y + F[2, 0] * Z
        v = F[0, 1] * X + F[1, 1] * Y + F[2, 1] * Z
        w = F[0, 2] * X + F[1, 2] * Y + F[2, 2] * Z
        rho = np.sqrt(u * u + v * v)
        th = np.arctan2(v, u)
        d = rho - radius(th, w)
        return np.maximum(d, np.maximum(-18.0 - w, w - H - 1.0))

    ext = max(a, r_stj) + bulge + 2
    corners = np.array([[x, y, z] for x in (-ext, ext) for y in (-ext, ext) for z in (-18, H + 1)]) @ F.T
    return Implicit(fn, corners.min(0), corners.max(0)), radius


def build(canvas: Canvas, P, rng) -> dict:
    s = P["s"]
    fat = P["fat_mm"]
    x_mid, y_c = -8 * s, 15 * s
    hw, hb = 150 * s + 0.8 * fat, 110 * s + 0.6 * fat

    def chest(X, Y, Z):
        return _ellipse2d(X - x_mid, Y - y_c, hw, np.where(Y < y_c, hb, hb * 0.95))

    body = Implicit(chest, [-400, -400, -200], [400, 400, 200])
    sl, d = canvas.field(body, inner_mm=fat + 20)
    canvas.paint_field(sl, d, L["fat"], rim_mm=2.0)
    canvas.labels[(canvas.zone == 1) & (canvas.labels == L["fat"])] = L["skin"]
    canvas.zone[:] = 0
    canvas.paint_field(sl, d, L["muscle"], offset_mm=fat, only={L["fat"]})
    canvas.paint_field(sl, d, L["lung_right"], offset_mm=fat + 14 * s, only={L["muscle"]})
    del d
    canvas.labels[(canvas.labels == L["lung_right"])] = L["lung_right"]
    # split lungs at the midline; mediastinum between them
    sl2 = canvas.slices_for([-400, -400, -400], [400, 400, 400])
    X, Y, Z = np.broadcast_arrays(*canvas.coords(sl2))
    lab = canvas.labels[sl2]
    lab[(lab == L["lung_right"]) & (X > x_mid)] = L["lung_left"]
    y_sp = y_c + hb * 0.95 - fat - 62 * s  # front of the vertebral body
    y_st0 = y_c - hb + fat + 12 * s
    yc_m = 0.5 * (y_st0 + y_sp + 30 * s)
    med = _ellipse2d(X - x_mid - 0.1 * (Y - yc_m), Y - yc_m, (24 + 0.08 * (40 - Z).clip(0, 100)) * s,
                     0.5 * (y_sp + 30 * s - y_st0)) < 0
    lab[med & np.isin(lab, [L["lung_left"], L["lung_right"]])] = MEDIA
    # diaphragm / liver dome at the bottom of the field, on the right
    dome = -55 * s - 0.003 * (X + 60 * s) ** 2 - 0.002 * (Y - 10 * s) ** 2
    lab[(Z < dome) & np.isin(lab, [L["lung_left"], L["lung_right"], MEDIA]) & (X < x_mid + 40 * s)] = L["liver"]
    del X, Y, Z
    # spine, descending aorta, sternum, ribs
    for zc in np.arange(-110, 120, 27) * s:
        c = np.array([x_mid, y_sp + 16 * s, zc])
        canvas.paint(Warp(ellipsoid(c, [20 * s, 16 * s, 11 * s]), rng, 1, 60), L["vertebrae"], rim_mm=1.2)
        canvas.paint(ellipsoid(c + [0, 0, 13.5 * s], [19 * s, 15 * s, 3 * s]), L["intervertebral_disc"])
    canal = Tube([[x_mid, y_sp + 45 * s, -200], [x_mid, y_sp + 45 * s, 200]], 8 * s)
    arch = Union([Tube([[x_mid + p * 14 * s, y_sp + 40 * s, -200], [x_mid + p * 16 * s, y_sp + 56 * s, 200]], 5 * s)
                  for p in (-1, 1)] + [Tube([[x_mid, y_sp + 60 * s, -200], [x_mid, y_sp + 75 * s, 200]], 5 * s)])
    canvas.paint(arch, L["vertebrae"], rim_mm=1.2)
    canvas.paint(canal, L["spinal_canal"])
    dao = Tube([[x_mid + 24 * s, y_sp - 6 * s, -200], [x_mid + 22 * s, y_sp - 8 * s, 200]], 12 * s)
    canvas.paint(dao, L["descending_aorta"])
    y_st = y_c - hb - 0.0 + fat + 12 * s
    canvas.paint(Tube([[x_mid, y_st, -200], [x_mid, y_st - 4 * s, 200]], np.array([9, 10]) * s) , L["sternum"],
                 rim_mm=1.5, only={L["muscle"], MEDIA, L["fat"], L["lung_left"], L["lung_right"]})
    for zr in np.arange(-150, 160, 26) * s:
        for side in (-1, 1):
            t = np.linspace(0, 1, 9)
            ang = np.pi * (0.08 + 0.85 * t)
            rx = hw - fat - 9 * s
            ry = hb - fat - 9 * s
            pts = np.stack([x_mid + side * rx * np.sin(ang), y_c + ry * np.cos(ang) * np.where(np.cos(ang) > 0, 0.95, 1),
                            zr - 70 * s * t], 1)
            pts[0] = [x_mid + side * 28 * s, y_sp + 25 * s, zr + 5 * s]
            canvas.paint(Tube.along(pts, 5.5 * s), L["ribs"], rim_mm=1.5,
                         only={L["muscle"], L["lung_left"], L["lung_right"], L["fat"], MEDIA})
    known = _heart(canvas, P, rng)
    canvas.labels[canvas.labels == MEDIA] = L["fat"]
    return known


def _heart(canvas, P, rng):
    s = P["s"]
    u_ao = P["root_axis"]
    F = frame_from_axis(u_ao, hint=rotation(0, 0, P["annulus_twist_deg"]) @ np.array([1.0, 0.0, 0.0]))
    a, b = P["annulus_a"], P["annulus_b"]
    r_mean = 0.5 * (a + b)
    H = rng.uniform(17, 22) * s
    r_stj = r_mean * rng.uniform(1.05, 1.15)
    bulge = r_mean * rng.uniform(0.28, 0.38)
    # sinus directions: right coronary sinus points anterior
    ant = np.array([0.0, -1.0, 0.0]) @ F
    theta_r = float(np.arctan2(ant[1], ant[0]))
    # left coronary sinus: the one of the other two that faces the patient's left (+x)
    cands = [theta_r - 2 * np.pi / 3, theta_r + 2 * np.pi / 3]
    theta_l = max(cands, key=lambda t: float((F @ np.array([np.cos(t), np.sin(t), 0.0]))[0]))
    root, radius = _root_shape(P, F, r_stj, H, bulge, theta_r)
    lumen_labels = {L["left_ventricle"], L["aortic_root"], L["ascending_aorta"]}
    soft = {L["lung_left"], L["lung_right"], MEDIA, L["fat"], L["muscle"], L["liver"]}

    # chambers: LV long axis towards the apex (anterior, left, inferior)
    u_lv = np.array([0.55, -0.5, -0.67])
    u_lv /= np.linalg.norm(u_lv)
    R_lv = frame_from_axis(u_lv, hint=[1, 0, 0])
    c_lv = u_lv * 42 * s + np.array([12, 12, 0]) * s
    lv = ellipsoid(c_lv, [24 * s, 22 * s, 48 * s], R_lv)
    myo = Offset(ellipsoid(c_lv + u_lv * 2, [24 * s, 22 * s, 50 * s], R_lv), rng.uniform(9, 12) * s)
    rv = ellipsoid(c_lv + np.array([-32, -18, -8]) * s, [26 * s, 20 * s, 44 * s], R_lv @ rotation(0, 0, -20))
    la = ellipsoid(np.array([18, 45, 8]) * s, [32 * s, 22 * s, 22 * s], rotation(0, 0, 15))
    ra = ellipsoid(np.array([-48, 15, -8]) * s, [26 * s, 30 * s, 32 * s])
    heart = Union([myo, rv, la, ra, Offset(root, 2.5)], k=10)
    canvas.paint(Warp(Offset(heart, 7 * s), rng, 3, 120), MEDIA, only=soft)  # pericardial fat
    canvas.paint(Warp(Offset(rv, 3.5), rng, 2, 120), L["myocardium"], only=soft)
    canvas.paint(Offset(la, 2.0), L["myocardium"], only=soft)
    canvas.paint(Offset(ra, 2.0), L["myocardium"], only=soft)
    canvas.paint(myo, L["myocardium"], only=soft | {L["myocardium"]})
    canvas.paint(Warp(rv, rng, 2, 120), L["right_ventricle"], only=soft | {L["myocardium"]},
                 keep=None, where=None)
    canvas.paint(Offset(myo, -0.0), L["myocardium"], only={L["right_ventricle"]})
    canvas.paint(la, L["left_atrium"], only=soft | {L["myocardium"]})
    canvas.paint(ra, L["right_atrium"], only=soft | {L["myocardium"]})
    # pulmonary veins into the LA, pulmonary artery from the RV outflow
    for side in (-1, 1):
        for dz in (-12, 12):
            canvas.paint(Tube.along([np.array([18 + side * 20, 48, 8 + dz]) * s,
                                     np.array([18 + side * 55, 55, 8 + dz * 1.6]) * s,
                                     np.array([18 + side * 85, 60, 8 + dz * 2.5]) * s], 6 * s),
                         L["vessels"], only=soft)
    pa = [np.array([-12, -40, 0]) * s, np.array([5, -45, 25]) * s, np.array([18, -25, 45]) * s,
          np.array([20, 5, 52]) * s]
    canvas.paint(Tube.along(pa, 13 * s), L["pulmonary_artery"], only=soft | {L["myocardium"]})
    for side in (-1, 1):
        canvas.paint(Tube.along([pa[-1], np.array([20 + side * 40, 20, 50]) * s,
                                 np.array([20 + side * 85, 35, 40]) * s], np.array([10, 8, 6]) * s),
                     L["pulmonary_artery"], only=soft)
    _pulmonary_vessels(canvas, rng, s)
    # SVC (right of the ascending aorta)
    canvas.paint(Tube.along([np.array([-45, 10, 0]) * s, np.array([-42, 5, 80]) * s], 10 * s), L["vessels"],
                 only=soft)
    wdir0 = F[:, 2]
    # the LV cavity ends below the annulus plane (the LVOT, painted with the root, joins them)
    canvas.paint(lv, L["left_ventricle"], only={L["myocardium"]} | soft,
                 where=lambda X, Y, Z: X * wdir0[0] + Y * wdir0[1] + Z * wdir0[2] < -3.0)
    # coronaries first (the root lumen is painted over their start)
    known = {}
    stubs = []
    for name, th, h in (("coronary_artery_left", theta_l, P["h_left"]),
                        ("coronary_artery_right", theta_r, P["h_right"])):
        rc = 2.2 if name.endswith("left") else 1.9
        w0 = h + rc
        dirv = F @ np.array([np.cos(th), np.sin(th), 0.0])
        r_wall = float(radius(th, w0))
        start = F @ np.array([0, 0, w0]) + dirv * (r_wall - 3.0)
        p1 = start + dirv * 12.0
        known[f"coronary_height_{name.split('_')[-1]}_mm"] = float(h)
        known[f"_coronary_ostium_{name.split('_')[-1]}_centre"] = F @ np.array([0, 0, w0]) + dirv * r_wall
        if name.endswith("left"):
            path = [start, p1, p1 + np.array([15, -10, -4]) * s, p1 + np.array([35, -30, -25]) * s,
                    p1 + np.array([50, -45, -70]) * s, p1 + np.array([60, -40, -105]) * s]
            away = dirv * np.array([1.0, 1.0, 0.0])
            lcx = [p1 + away * 6 + np.array([4, 2, -2]) * s, p1 + away * 18 + np.array([12, 14, -12]) * s,
                   p1 + away * 25 + np.array([25, 35, -38]) * s]
            canvas.paint(Tube.along(lcx, np.array([1.8, 1.6, 1.3]) * s), L[name], only=soft | {L["myocardium"]})
        else:
            path = [start, p1, p1 + np.array([-15, -5, -10]) * s, p1 + np.array([-35, 5, -35]) * s,
                    p1 + np.array([-45, 20, -60]) * s, p1 + np.array([-30, 45, -85]) * s]
        canvas.paint(Tube.along(path[1:], np.linspace(rc, 1.2, 5) * s), L[name], only=soft | {L["myocardium"]})
        stubs.append((Tube([start, p1], rc), L[name]))
    # root (w >= 0: aortic_root; w < 0: LVOT, part of the left ventricle), ascending aorta
    wdir = F[:, 2]
    canvas.paint(Offset(root, 2.0), L["myocardium"], only=soft | {L["right_ventricle"], L["left_atrium"]})
    canvas.paint(root, L["left_ventricle"], where=lambda X, Y, Z: X * wdir[0] + Y * wdir[1] + Z * wdir[2] < 0)
    canvas.paint(root, L["aortic_root"], where=lambda X, Y, Z: X * wdir[0] + Y * wdir[1] + Z * wdir[2] >= 0)
    for stub, value in stubs:  # ostia: the coronaries leave the sinus wall horizontally (lower edge at h)
        canvas.paint(stub, value, only=soft | {L["myocardium"], L["aortic_root"]})
    stj = F @ np.array([0, 0, H - 2.0])
    asc = [stj, stj + wdir * 25 + np.array([0, 0, 10]) * s, stj + np.array([5, 10, 60]) * s,
           stj + np.array([20, 35, 85]) * s]
    canvas.paint(Tube.along(asc, np.array([r_stj, r_stj * 1.12, r_stj * 1.15, r_stj * 1.1])), L["ascending_aorta"],
                 keep=lumen_labels | {L["coronary_artery_left"], L["coronary_artery_right"]})
    # leaflet calcifications: nodules on the leaflets just above the annulus
    n_calc = int(rng.integers(3, 7))
    for _ in range(n_calc):
        th = theta_r + 2 * np.pi / 3 * int(rng.integers(0, 3)) + rng.uniform(-0.5, 0.5)
        w = rng.uniform(3.0, 9.0)
        rr = float(radius(th, w)) * rng.uniform(0.55, 0.85)
        c = F @ np.array([rr * np.cos(th), rr * np.sin(th), w])
        canvas.paint(Warp(ellipsoid(c, rng.uniform(1.0, 2.6, 3)), rng, 0.6, 8), L["calcification"],
                     only={L["aortic_root"]})
    known.update({
        "annulus_perimeter_mm": ellipse_perimeter(a, b),
        "annulus_area_mm2": float(np.pi * a * b),
        "annulus_diameter_max_mm": float(2 * a), "annulus_diameter_min_mm": float(2 * b),
        "annulus_area_derived_diameter_mm": float(2 * np.sqrt(a * b)),
        "sinus_of_valsalva_max_diameter_mm": _sinus_diameter(radius, H),
        "stj_height_mm": float(H), "stj_diameter_mm": float(2 * r_stj),
        "leaflet_calcification_nodules": n_calc,
        "_annulus_centre": np.zeros(3), "_annulus_normal": wdir.copy(), "_annulus_major_axis": F[:, 0].copy(),
    })
    return known


def _sinus_diameter(radius, H) -> float:
    th = np.linspace(0, np.pi, 721)
    best = 0.0
    for w in np.linspace(0.2 * H, 0.8 * H, 25):
        best = max(best, float(np.max(radius(th, w) + radius(th + np.pi, w))))
    return best


def _pulmonary_vessels(canvas, rng, s):
    soft = {L["lung_left"], L["lung_right"]}
    for side in (-1, 1):
        hilum = np.array([18 + side * 60, 30, 20]) * s
        for _ in range(9):
            d = rng.normal(size=3)
            d[0] = side * abs(d[0]) + side * 0.6
            d /= np.linalg.norm(d)
            bend = rng.normal(size=3) * 15
            pts = [hilum, hilum + d * 35 + bend * 0.3, hilum + d * 75 + bend, hilum + d * 120 + bend * 1.5]
            canvas.paint(Tube.along(pts, np.array([4.0, 3.0, 2.0, 1.2]) * s), L["vessels"], only=soft)
