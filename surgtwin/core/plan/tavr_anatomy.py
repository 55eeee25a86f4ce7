"""Coronary ostium heights and leaflet calcium by sector for a TAVR measurement
(``surgtwin.core.plan.tavr``; ``m`` is its ``TavrMeasurement``, ``ctx`` its ``MeasureContext``)."""

from __future__ import annotations

import numpy as np

from surgtwin.core.plan import tavr_geometry as geo
from surgtwin.core.plan.tavr_context import MeasureContext, plane_heights, smooth_ct

MAX_OSTIUM_CONTACT_MM2 = 100.0
CHAMBER_RADIUS_MM = 3.5  # a coronary ostium is at most ~6 mm wide; a ball this size fits only in chambers
MIN_OSTIUM_SEPARATION_DEG = 60.0

# -- coronary ostia --------------------------------------------------------------------------------------


def lower_edge(ctx: MeasureContext, indicator: np.ndarray, region: np.ndarray, m, source: str,
               sigma_mm: float = 0.5) -> dict | None:
    """The lowest point (above the annulus plane) of the 0.5 surface of ``indicator`` near ``region``
    (both on the crop), smoothed by ``sigma_mm``; on a coarse grid, where so narrow a Gaussian leaves
    the mask a staircase with no 0.5 surface to find, by half a voxel."""
    from scipy.ndimage import binary_dilation

    if region.sum() < 3:
        return None
    box = geo.crop_slices(region, 4, region.shape)
    aff = geo.crop_affine(ctx.crop_affine, box)
    near = binary_dilation(region[box], iterations=1)
    reach = binary_dilation(near, iterations=1)
    inv = np.linalg.inv(aff)
    p = np.zeros((0, 3))
    for sigma in dict.fromkeys((sigma_mm, max(sigma_mm, 0.5 * float(geo.spacing_of(aff).max())))):
        f = geo.smooth_mask(indicator[box], aff, sigma)
        p, _ = geo.iso_points(f, aff, near & (f > 0.1) & (f < 0.9))
        # one Newton step where the field is flat can land far away: keep the points next to ``near``
        k = np.round(p @ inv[:3, :3].T + inv[:3, 3]).astype(int)
        inside = np.all((k >= 0) & (k < np.array(near.shape)), axis=1)
        p = p[inside][reach[tuple(k[inside].T)]]
        if len(p) >= 3:
            break
    if len(p) < 3:
        return None
    h = m.height_of(p)
    i = int(np.argmin(h))
    centre = ctx.points(region).mean(0)
    return {"height_mm": float(h[i]), "lower_edge_lps": p[i], "centre_lps": centre, "source": source}


def ostium_from_label(ctx: MeasureContext, cmask: np.ndarray, m) -> dict | None:

    c = cmask[ctx.crop]
    if not c.any():
        return None
    region = c & (ctx.d_out <= 2.0)
    h = m.height_of(ctx.points(region)) if region.any() else np.array([])
    if not region.any() or np.all(h < -2.0):
        return None
    return lower_edge(ctx, c, region, m, "label")


def chamber_mask(bright: np.ndarray, sp, radius_mm: float = CHAMBER_RADIUS_MM) -> np.ndarray:
    """The parts of ``bright`` that hold a ball of ``radius_mm`` (a morphological opening by EDT
    erosion + dilation): contrast-filled chambers and great vessels, not coronaries (which stay
    narrower than the ball, also where they run beside a chamber)."""
    from scipy.ndimage import distance_transform_edt

    core = distance_transform_edt(bright, sampling=sp) > radius_mm
    if not core.any():
        return core
    return (distance_transform_edt(~core, sampling=sp) <= radius_mm) & bright


def ostia_from_ct(ctx: MeasureContext, m) -> dict:
    """Contrast-filled vessels leaving the aorta mask between the annulus and the STJ: bright (half-way
    between the lumen and 100 HU) voxels outside the mask and outside any bright structure thick
    enough to hold a ball of ``CHAMBER_RADIUS_MM`` (an adjacent chamber or great vessel, whatever
    the label map calls it), in components that touch the mask, reach 1.5-6 mm out, lie on one side of
    the root and meet it over at most ``MAX_OSTIUM_CONTACT_MM2``; the two largest, on different sides
    of the root (more than ``MIN_OSTIUM_SEPARATION_DEG`` apart about its axis), left = toward the
    patient's left-posterior."""
    from scipy.ndimage import distance_transform_edt, label

    sl = ctx.crop
    aff = ctx.crop_affine
    sp = geo.spacing_of(aff)
    ct = smooth_ct(ctx.ct.array[sl], aff)
    lumen = ctx.lumen
    inner = distance_transform_edt(lumen, sampling=sp) >= 2.0
    hts = plane_heights(aff, lumen.shape, m)
    zone = inner & (hts >= 1.0)
    lumen_hu = float(np.median(ct[zone])) if zone.any() else float(np.median(ct[lumen]))
    level = max(150.0, 0.5 * (lumen_hu + 100.0))
    bright = ct >= level
    # a chamber or great vessel touching the root (left atrium, pulmonary artery, ...) is bright too:
    # leave out what is too thick to be a coronary (the opening runs on the root lumen as well, so that
    # a chamber cut by the lumen mask leaves no thin remnant beside it)
    vessels = bright & ~lumen & ~chamber_mask(bright, sp)
    d_out = ctx.d_out
    top = (m.stj_height_mm or 20.0) + 5.0
    band = vessels & (d_out > 1.5) & (d_out <= 6.0) & (hts > 2.0) & (hts < top)
    lab, n = label(vessels & (d_out <= 6.0) & (hts > 2.0) & (hts < top), structure=np.ones((3, 3, 3)))
    found = []
    touching = set(np.unique(lab[(d_out > 0) & (d_out <= 1.0 * sp.max())]).tolist()) - {0}
    for c in touching:
        far = band & (lab == c)
        nvox = int(far.sum())
        if nvox * float(np.prod(sp)) < 4.0:
            continue
        # a thin shell around the whole root (partial volume) is not a vessel: it spans all directions
        pts = ctx.points(far)
        rel = pts - m.centre_lps
        ang = np.arctan2(rel @ m.v_lps, rel @ m.u_lps)
        mean_dir = np.exp(1j * ang).mean()
        spread = float(np.abs(mean_dir))
        # the contact with the lumen (mm^2, from the one-voxel shell): an ostium, not a neighbouring chamber
        contact_mm2 = float(((lab == c) & (d_out <= 1.0 * sp.max())).sum() * np.prod(sp) / sp.max())
        if spread < 0.6 or contact_mm2 > MAX_OSTIUM_CONTACT_MM2:
            continue
        found.append((nvox, float(np.angle(mean_dir)), far, c))
    found.sort(key=lambda x: -x[0])
    out = {}
    cand = []
    for _, a, far, c in found:
        # the two ostia leave different sinuses: a second component beside the first is a branch or a remnant
        if any(abs(np.angle(np.exp(1j * (a - b)))) < np.radians(MIN_OSTIUM_SEPARATION_DEG) for b, _e in cand):
            continue
        region = far & (d_out <= 3.0)
        if region.sum() < 3:
            region = far
        # the surface of this vessel (and the lumen it leaves), not of a chamber or vessel beside it
        e = lower_edge(ctx, (lab == c) | lumen, region, m, f"ct >= {level:.0f} HU")
        if e is not None:
            cand.append((a, e))
        if len(cand) == 2:
            break
    cand = [e for _a, e in cand]
    if not cand:
        return out
    lp = np.array([1.0, 1.0, 0.0]) / np.sqrt(2.0)  # toward the patient's left-posterior
    score = [float((e["centre_lps"] - m.centre_lps) @ lp) for e in cand]
    order = np.argsort(score)
    if len(cand) == 2:
        out["right"], out["left"] = cand[order[0]], cand[order[1]]
    else:
        out["left" if score[0] > 0 else "right"] = cand[0]
    return out


# -- calcium ---------------------------------------------------------------------------------------------


def sector_frame(m, coronary: dict) -> tuple[dict, str]:
    """Centre angles (radians, in the (u, v) plane) of the three 120-degree sectors and a text."""

    def ang(p):
        d = np.asarray(p, float) - m.centre_lps
        return float(np.arctan2(d @ m.v_lps, d @ m.u_lps))

    left_dir = ang(m.centre_lps + np.array([1.0, 0.0, 0.0]))
    two = 2 * np.pi / 3
    if "right" in coronary:
        r = ang(coronary["right"]["centre_lps"])
        target = ang(coronary["left"]["centre_lps"]) if "left" in coronary else left_dir
        cands = [r + two, r - two]
        lft = min(cands, key=lambda a: abs(np.angle(np.exp(1j * (a - target)))))
        non = r - two if lft == r + two else r + two
        return ({"right_coronary": r, "left_coronary": lft, "non_coronary": non},
                "sectors of 120 degrees centred on the right coronary ostium direction (then left, non-coronary)")
    if "left" in coronary:
        lft = ang(coronary["left"]["centre_lps"])
        ant = ang(m.centre_lps + np.array([0.0, -1.0, 0.0]))
        cands = [lft + two, lft - two]
        r = min(cands, key=lambda a: abs(np.angle(np.exp(1j * (a - ant)))))
        non = lft - two if r == lft + two else lft + two
        return ({"right_coronary": r, "left_coronary": lft, "non_coronary": non},
                "sectors of 120 degrees centred on the left coronary ostium direction (then right, non-coronary)")
    a = ang(m.centre_lps + np.array([0.0, -1.0, 0.0]))
    cands = [a + two, a - two]
    lp = min(cands, key=lambda x: abs(np.angle(np.exp(1j * (x - left_dir)))))
    rp = a - two if lp == a + two else a + two
    return ({"anterior": a, "left_posterior": lp, "right_posterior": rp},
            "sectors of 120 degrees centred on the patient's anterior direction projected on the annulus plane "
            "(coronary ostia unknown)")


def calcium_by_sector(ctx: MeasureContext, m, calc_label) -> dict:

    sl = ctx.crop
    aff = ctx.crop_affine
    geo.spacing_of(aff)
    vox_mm3 = float(abs(np.linalg.det(aff[:3, :3])))
    shape = tuple(s.stop - s.start for s in sl)
    h = plane_heights(aff, shape, m)
    top = m.stj_height_mm if m.stj_height_mm is not None else 20.0
    region = (h >= -5.0) & (h <= top)
    if ctx.lumen is not None:
        region &= ctx.d_out <= 3.0
        where = "within 3 mm of the aortic lumen"
    else:
        rad = np.sqrt(np.maximum(plane_heights(aff, shape, m, m.u_lps) ** 2
                                 + plane_heights(aff, shape, m, m.v_lps) ** 2, 0.0))
        region &= rad <= 0.5 * m.diameter_max_mm + 3.0
        where = "within the annulus radius + 3 mm of the axis"
    if calc_label is not None and calc_label[sl].any():
        cal = calc_label[sl] & region
        source, thr = "label: calcification", None
    elif ctx.ct is not None:
        thr = ctx.calcium_hu
        cal = (ctx.ct.array[sl] >= thr) & region
        source = f"CT >= {thr:.0f} HU (contrast CT threshold: Jilaihawi et al. 2014)"
    else:
        return {"source": "none (no calcification label and no CT)", "total_mm3": None, "sectors": {}}
    centres, text = sector_frame(m, m.coronary)
    sec = {name: 0.0 for name in centres}
    if cal.any():
        r = ctx.points(cal) - m.centre_lps
        a = np.arctan2(r @ m.v_lps, r @ m.u_lps)
        names = list(centres)
        diff = np.stack([np.abs(np.angle(np.exp(1j * (a - centres[nm])))) for nm in names], 1)
        pick = np.argmin(diff, 1)
        for i, nm in enumerate(names):
            sec[nm] = float((pick == i).sum() * vox_mm3)
    return {"source": source, "threshold_hu": thr, "region": f"{where}, from 5 mm below the annulus to "
            f"{top:.1f} mm above it", "total_mm3": float(cal.sum() * vox_mm3), "sectors": sec,
            "sector_centres_deg": {nm: float(np.degrees(v)) for nm, v in centres.items()},
            "sector_reference": text}
