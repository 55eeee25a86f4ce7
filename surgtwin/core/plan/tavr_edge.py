"""The annulus contour at the CT's contrast-lumen edge (``surgtwin.core.plan.tavr``): the half-way level
between the lumen and the surrounding tissue on a section (``ct_lumen_level``, also used for hinge
points without labels), and a label contour moved to that edge (``ct_edge``)."""

from __future__ import annotations

import numpy as np

from surgtwin.core.plan import tavr_geometry as geo
from surgtwin.core.plan.tavr_context import STEP_MM, MeasureContext, smooth_ct

CT_MIN_CONTRAST_HU = 100.0  # lumen minus tissue: less is no contrast-filled lumen edge
CT_EDGE_SEARCH_MM = 2.0  # the CT edge is looked for this far in and out of the label contour
CT_EDGE_MIN_FRACTION = 0.5  # fewer rays with a clear edge: the label contour is kept whole
CT_EDGE_AGREE_MM = 0.1  # a label contour this close to the CT edge (mean) is kept as it is


def ct_lumen_level(img: np.ndarray, r: np.ndarray, radius: float,
                    lumen_px=None) -> tuple[float, float, float]:
    """(lumen, tissue, level) HU on a CT section centred in the lumen (``r``: each pixel's distance
    from the centre, mm): the lumen is the 90th percentile within 4 mm of the centre (or the median of
    ``lumen_px``, pixels known to be lumen), the tissue the median of the ring at 1.35-1.7 ``radius``
    (clipped to -100..200 HU), the level half-way."""
    if lumen_px is not None and np.count_nonzero(lumen_px) >= 20:
        lumen = float(np.median(img[lumen_px]))
    else:
        core = img[r <= 4.0]
        lumen = float(np.percentile(core, 90)) if core.size else 0.0
    ring = img[(r >= 1.35 * radius) & (r <= 1.7 * radius)]
    tissue = float(np.clip(np.median(ring), -100.0, 200.0)) if ring.size else 100.0
    return lumen, tissue, 0.5 * (lumen + tissue)


def ct_edge(ctx: MeasureContext, poly: np.ndarray, centre, u0, v0, calc=None) -> dict:
    """The label contour ``poly`` (plane mm about ``centre``) moved to the CT's contrast lumen edge:
    {"method": "labels+ct-edge" or "labels", "poly": the new contour or None, "text": what was done}.

    The edge is the CT level half-way between the lumen and the surrounding tissue, as for hinge points
    without labels (``ct_lumen_level``; the lumen here the median of the section more than 2 mm inside
    the label contour, calcium left out), on the smoothed CT, found along the ray from the contour's
    centroid through each contour point within ``CT_EDGE_SEARCH_MM`` of it. A ray keeps the label's
    point where the edge is not clear: calcium within the search window (CT >= ``calcium_hu`` or the
    calcification label: calcium stays outside the lumen, as the label has it), not exactly one fall
    through the level in the window, or no drop of a quarter of the lumen-tissue contrast on each side
    within 1 mm (a thin wall with a bright chamber behind it). The label contour is kept whole when
    the lumen-tissue contrast is under ``CT_MIN_CONTRAST_HU``, when fewer than ``CT_EDGE_MIN_FRACTION``
    of the rays are clear, or when the label contour already lies on the CT edge (mean shift within
    ``CT_EDGE_AGREE_MM``, the CT edge's own uncertainty)."""
    from skimage.measure import points_in_poly

    sl, aff = ctx.crop, ctx.crop_affine
    ctf = geo.Field(smooth_ct(ctx.ct.array[sl], aff), aff)
    raw = geo.Field(ctx.ct.array[sl], aff)
    img, xs = ctf.section(centre, u0, v0, 32.0, STEP_MM)
    raw_img, _ = raw.section(centre, u0, v0, 32.0, STEP_MM)
    cen = geo.polygon_centroid(poly)
    d = poly - cen
    r_lab = np.linalg.norm(d, axis=1)
    dirs = d / np.maximum(r_lab, 1e-6)[:, None]
    a, b = np.meshgrid(xs, xs, indexing="ij")
    inner = cen + d * np.maximum(1.0 - 2.0 / np.maximum(r_lab, 1e-6), 0.0)[:, None]
    inside = points_in_poly(np.stack([a.ravel(), b.ravel()], 1), inner).reshape(a.shape)
    inside &= raw_img < ctx.calcium_hu
    lumen, tissue, level = ct_lumen_level(img, np.hypot(a - cen[0], b - cen[1]), float(r_lab.mean()), inside)
    contrast = lumen - tissue
    head = (f"CT lumen edge: level {level:.0f} HU, half-way between lumen {lumen:.0f} and tissue "
            f"{tissue:.0f} HU")
    if contrast < CT_MIN_CONTRAST_HU:
        return {"method": "labels", "poly": None,
                "text": f"label contour kept: no contrast-filled lumen edge ({head})"}
    step = 0.1
    ts = np.arange(-CT_EDGE_SEARCH_MM - 1.0, CT_EDGE_SEARCH_MM + 1.0 + step / 2, step)
    p2 = poly[:, None, :] + ts[None, :, None] * dirs[:, None, :]
    p3 = (np.asarray(centre, float) + p2[..., :1] * u0 + p2[..., 1:] * v0).reshape(-1, 3)
    prof = ctf.values_at(p3).reshape(p2.shape[:2])
    win = np.abs(ts) <= CT_EDGE_SEARCH_MM
    calcified = (raw.values_at(p3).reshape(p2.shape[:2])[:, win] >= ctx.calcium_hu).any(1)
    if calc is not None and calc.any():
        cf = geo.Field(calc.astype(np.float32), aff).values_at(p3).reshape(p2.shape[:2])
        calcified |= (cf[:, win] > 0.25).any(1)
    above = prof >= level
    falls = above[:, :-1] & ~above[:, 1:] & win[:-1]
    single = falls.sum(1) == 1
    j = np.argmax(falls, axis=1)
    rows = np.arange(len(poly))
    p0, p1 = prof[rows, j], prof[rows, j + 1]
    shift = ts[j] + step * (p0 - level) / np.where(p0 > p1, p0 - p1, 1.0)
    n1 = int(round(1.0 / step))
    clear = (prof[rows, np.clip(j - n1, 0, len(ts) - 1)] >= level + 0.25 * contrast) & (
        prof[rows, np.clip(j + 1 + n1, 0, len(ts) - 1)] <= level - 0.25 * contrast)
    ok = single & clear & ~calcified
    shift = np.where(ok, shift, 0.0)
    frac = float(ok.mean())
    mean_shift = float(shift[ok].mean()) if ok.any() else 0.0
    detail = (f"{head}; on {100 * frac:.0f} % of {len(poly)} rays (mean outward shift {mean_shift:+.2f} mm), "
              f"label kept on {100 * float(calcified.mean()):.0f} % at calcium and "
              f"{100 * float((~ok & ~calcified).mean()):.0f} % without a clear edge")
    if frac < CT_EDGE_MIN_FRACTION:
        return {"method": "labels", "poly": None,
                "text": f"label contour kept: too few clear edges ({detail})"}
    if abs(mean_shift) <= CT_EDGE_AGREE_MM:
        return {"method": "labels", "poly": None,
                "text": f"label contour kept: it lies on the CT edge ({detail})"}
    return {"method": "labels+ct-edge", "poly": geo.fourier_smooth(poly + shift[:, None] * dirs),
            "text": f"label contour moved to the {detail}"}
