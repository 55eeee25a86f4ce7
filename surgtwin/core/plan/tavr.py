"""TAVR annulus measurement from CT labels, a binary aorta mask, or three hinge points (LPS mm).

``measure_annulus(labels=None, ct=None, *, hinge_points_lps=None, calcium_hu=850)`` returns a
``TavrMeasurement``. Inputs, in order of preference:

* **a multi-label map with ``aortic_root``** (+ ``left_ventricle``, ``ascending_aorta``, coronary
  arteries, ``calcification`` when present): the annulus plane is the plane fitted (SVD) to the
  interface between the aortic-root and left-ventricle labels (the virtual basal ring is where the
  root label starts); without a left-ventricle label the root's proximal end is used as below;
* **a binary aorta (+ root) mask** (or a label map whose aorta labels are ``aorta``/``aortic_root``/
  ``ascending_aorta``): the mask's connected parts are walked end to end (geodesic distance inside
  the mask, double sweep); an end is the root's proximal end when it is not cut by the scan boundary,
  is a flat cap (its axis: the direction along which the end's first 2 mm hold the most voxels) and
  its cross-sections along that axis widen into the sinuses (area 1.15x to 2.2x the end's) and narrow
  again (the sinotubular junction). The end cap's surface points (0.5 level of the smoothed mask, normals along
  the vessel axis) are fitted with a plane. When the only ends are cut by the scan boundary (the root
  is outside the field of view) or none looks like a root, it refuses (``SurgtwinError``);
* **three hinge points** (the leaflets' basal attachments, clicked by the user): the plane through
  them; the contour from the root/aorta label in that plane when one is given, else from the CT's
  contrast lumen (the half-way level between the lumen at the hinge centroid and the surrounding
  tissue, the connected region around the centroid).

The contour is the 0.5 level (marching squares, ``skimage.measure.find_contours``) of the smoothed
mask (Gaussian, sigma 0.6 mm) resliced on the plane at 0.2 mm by trilinear interpolation, normalised
by the plateau at the centre (at a mask's end cap the smoothed mask is 0.5 x the in-plane profile).
With labels and the CT (method ``labels``), that contour is then moved to the contrast lumen's edge in
the CT (a segmentation's root label may sit inside it: the bundled model's by ~0.3 mm, 4-5 % of the
area): the level half-way between the lumen (median CT more than 2 mm inside the label contour,
calcium left out) and the surrounding tissue (as for hinge points without labels), found on the
smoothed CT along rays from the contour's centroid within 2 mm of the label's contour. The label's
point is kept on rays with calcium in that window (calcium stays excluded), or without one clear fall
through the level; the label contour is kept whole without lumen contrast (< 100 HU over the tissue),
when under half of the rays are clear, or when it lies on the CT edge already (mean shift within
0.1 mm). ``sources["annulus_contour_method"]`` says which (``labels+ct-edge`` or ``labels``) and
``sources["annulus_contour"]`` the levels, the share of rays moved and the mean shift.
From it: perimeter, area, **min/max diameter as the minimum and maximum caliper (Feret) widths** of
the contour (for an ellipse: the minor and major axes, orthogonal), eccentricity 1 - Dmin/Dmax (the
TAVR convention), D_A = 2 sqrt(A / pi), D_P = P / pi.

Coronary ostium heights: the distance from the annulus plane to the ostium's **lower edge**, the
lowest point of the coronary's 0.5 surface near the root (within 2 mm of the root label; from the CT
without coronary labels: contrast-filled vessels leaving the aorta mask, 1.5-6 mm outside it, not
counting bright structures thick enough to hold a 3.5 mm ball, i.e. the chambers and great vessels
beside the root, whatever the label map calls them; the two on different sides of the root, the left
the one toward the patient's left-posterior). Sinus of Valsalva diameter: the largest
diameter through the root axis (annulus centre along the normal) of the sections parallel to the
annulus; sinotubular junction: the narrowest section (area-derived diameter) above the sinus level.

Calcium: voxels of the ``calcification`` label, else CT >= ``calcium_hu`` (default 850 HU on
contrast CT: Jilaihawi et al., Eur Heart J Cardiovasc Imaging 2014;15:1324-32) within 3 mm of the
aorta lumen from 5 mm below the annulus to the STJ, in three 120-degree sectors about the annulus
axis: centred on the right coronary ostium (right-, left-, non-coronary sectors) when the ostia are
known, else on the patient's anterior direction (``anterior``, ``left_posterior``,
``right_posterior``).

Modules: this one (the record, the annulus plane and contour, the root sections), ``tavr_ends`` (the
root's end in a binary mask), ``tavr_anatomy`` (coronary ostia, calcium sectors), ``tavr_context`` (the
crop and fields), ``tavr_geometry`` (reslices, contours, calipers, plane fits, geodesics) and
``tavr_devices`` (charts, valve, gradient). The hinge-point path without labels (``hinge-ct``) takes the
coronaries from a CT lumen opened by a 3 mm ball; an ostium beside another bright chamber may then go
unfound (it is left out rather than guessed).

Reference for the measurement definitions: Blanke P et al., SCCT expert consensus on CT for TAVI/TAVR,
JACC Cardiovasc Imaging 2019;12:1-24. Planning aid, NOT FOR CLINICAL USE.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.plan import tavr_geometry as geo
from surgtwin.core.plan.tavr_anatomy import calcium_by_sector, ostia_from_ct, ostium_from_label
from surgtwin.core.plan.tavr_context import SIGMA_MM, STEP_MM, MeasureContext, interface_points, smooth_ct
from surgtwin.core.plan.tavr_edge import CT_MIN_CONTRAST_HU, ct_edge, ct_lumen_level
from surgtwin.core.plan.tavr_ends import find_root_end
from surgtwin.core.progress import check, report

DEFAULT_CALCIUM_HU = 850.0

ROOT_NAMES = ("aortic_root",)
AORTA_NAMES = ("aortic_root", "ascending_aorta", "aorta", "aortic_arch")
LV_NAMES = ("left_ventricle", "heart_ventricle_left")
CORONARY_NAMES = {"left": ("coronary_artery_left", "left_coronary_artery"),
                  "right": ("coronary_artery_right", "right_coronary_artery")}
CALCIUM_NAMES = ("calcification", "aortic_valve_calcification")


def _vec(v) -> list | None:
    return None if v is None else [float(x) for x in np.asarray(v, float).ravel()]


@dataclass
class TavrMeasurement:
    """The aortic annulus and root, in LPS mm (see the module text for the methods)."""

    method: str  # "labels", "mask", "hinge-labels", "hinge-mask", "hinge-ct"
    centre_lps: np.ndarray
    normal_lps: np.ndarray  # unit, from the left ventricle toward the aorta
    u_lps: np.ndarray  # in-plane unit axis along the maximum diameter
    v_lps: np.ndarray  # normal x u
    contour_lps: np.ndarray  # (N, 3) closed (last point not repeated)
    perimeter_mm: float
    area_mm2: float
    diameter_min_mm: float
    diameter_max_mm: float
    coronary: dict = field(default_factory=dict)  # side -> {"height_mm", "lower_edge_lps", "centre_lps", "source"}
    sinus_diameter_mm: float | None = None
    sinus_height_mm: float | None = None
    stj_diameter_mm: float | None = None
    stj_height_mm: float | None = None
    calcium: dict = field(default_factory=dict)
    hinge_points_lps: np.ndarray | None = None
    sources: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    @property
    def eccentricity(self) -> float:
        return 1.0 - self.diameter_min_mm / self.diameter_max_mm

    @property
    def area_derived_diameter_mm(self) -> float:
        return 2.0 * float(np.sqrt(self.area_mm2 / np.pi))

    @property
    def perimeter_derived_diameter_mm(self) -> float:
        return self.perimeter_mm / np.pi

    def coronary_height_mm(self, side: str) -> float | None:
        c = self.coronary.get(side)
        return None if c is None else float(c["height_mm"])

    def to_record(self) -> dict:
        """A JSON-safe dict (``from_record`` reads it back)."""
        return {
            "method": self.method,
            "centre_lps": _vec(self.centre_lps), "normal_lps": _vec(self.normal_lps),
            "u_lps": _vec(self.u_lps), "v_lps": _vec(self.v_lps),
            "contour_lps": [[round(float(x), 4) for x in p] for p in np.asarray(self.contour_lps)],
            "perimeter_mm": float(self.perimeter_mm), "area_mm2": float(self.area_mm2),
            "diameter_min_mm": float(self.diameter_min_mm), "diameter_max_mm": float(self.diameter_max_mm),
            "diameter_method": "caliper (Feret) min/max of the annulus contour",
            "eccentricity": float(self.eccentricity),
            "area_derived_diameter_mm": self.area_derived_diameter_mm,
            "perimeter_derived_diameter_mm": float(self.perimeter_derived_diameter_mm),
            "coronary": {s: {k: (_vec(v) if k.endswith("_lps") else v) for k, v in c.items()}
                         for s, c in self.coronary.items()},
            "coronary_height_left_mm": self.coronary_height_mm("left"),
            "coronary_height_right_mm": self.coronary_height_mm("right"),
            "sinus_diameter_mm": self.sinus_diameter_mm, "sinus_height_mm": self.sinus_height_mm,
            "stj_diameter_mm": self.stj_diameter_mm, "stj_height_mm": self.stj_height_mm,
            "calcium": dict(self.calcium),
            "hinge_points_lps": None if self.hinge_points_lps is None else [_vec(p) for p in self.hinge_points_lps],
            "sources": dict(self.sources), "warnings": list(self.warnings),
        }

    @classmethod
    def from_record(cls, rec: dict) -> TavrMeasurement:
        try:
            arr = lambda k: np.asarray(rec[k], float)  # noqa: E731
            return cls(
                method=str(rec["method"]), centre_lps=arr("centre_lps"), normal_lps=arr("normal_lps"),
                u_lps=arr("u_lps"), v_lps=arr("v_lps"), contour_lps=arr("contour_lps").reshape(-1, 3),
                perimeter_mm=float(rec["perimeter_mm"]), area_mm2=float(rec["area_mm2"]),
                diameter_min_mm=float(rec["diameter_min_mm"]), diameter_max_mm=float(rec["diameter_max_mm"]),
                coronary={s: {k: (np.asarray(v, float) if k.endswith("_lps") and v is not None else v)
                              for k, v in c.items()} for s, c in (rec.get("coronary") or {}).items()},
                sinus_diameter_mm=rec.get("sinus_diameter_mm"), sinus_height_mm=rec.get("sinus_height_mm"),
                stj_diameter_mm=rec.get("stj_diameter_mm"), stj_height_mm=rec.get("stj_height_mm"),
                calcium=dict(rec.get("calcium") or {}),
                hinge_points_lps=None if rec.get("hinge_points_lps") is None else np.asarray(rec["hinge_points_lps"], float),
                sources=dict(rec.get("sources") or {}), warnings=list(rec.get("warnings") or []))
        except (KeyError, TypeError, ValueError) as exc:
            raise SurgtwinError(f"the TAVR measurement record is malformed ({exc})") from None

    def height_of(self, points_lps) -> np.ndarray:
        """Signed distance (mm) of points above the annulus plane."""
        return (np.asarray(points_lps, float) - self.centre_lps) @ self.normal_lps


# -- label roles -------------------------------------------------------------------------------------


def _present(labels) -> tuple[dict[str, int], list[int]]:
    """({name: value} of the table's labels present, every non-zero value present)."""
    arr = labels.array.ravel()
    counts = np.bincount(arr if arr.dtype.kind == "u" and arr.dtype.itemsize <= 4 else arr.clip(0).astype(np.int64))
    values = [int(v) for v in np.flatnonzero(counts) if v > 0]
    return {lab.name: lab.value for lab in labels.labels if lab.value < len(counts) and counts[lab.value] > 0}, values


def _union(labels, names, present) -> np.ndarray | None:
    vals = [present[n] for n in names if n in present]
    if not vals:
        return None
    return np.isin(labels.array, vals)


# -- public entry ------------------------------------------------------------------------------------


def measure_annulus(labels=None, ct=None, *, hinge_points_lps=None, calcium_hu: float = DEFAULT_CALCIUM_HU,
                    progress=None, cancel=None) -> TavrMeasurement:
    """Measure the aortic annulus and root (see the module text). ``labels``: a ``LabelMap``
    (multi-label with ``aortic_root``, or a binary aorta mask); ``ct``: the CT ``Volume`` (HU) on
    the same grid, for calcium and for coronaries/hinge contours without labels;
    ``hinge_points_lps``: three (x, y, z) points."""
    report(progress, 0.0, "tavr: annulus")
    if labels is None and ct is None:
        raise SurgtwinError("TAVR measurement needs a label map (aortic root or aorta mask) or a CT with hinge points")
    if ct is not None and labels is not None and not ct.same_geometry(labels, atol_mm=0.05):
        raise SurgtwinError("the CT and the label map are on different grids", hint="resample the labels onto the CT")
    grid = labels if labels is not None else ct
    hinge = None
    if hinge_points_lps is not None:
        hinge = np.asarray(hinge_points_lps, float)
        if hinge.shape != (3, 3) or not np.all(np.isfinite(hinge)):
            raise SurgtwinError("hinge points must be three (x, y, z) points in LPS mm",
                                hint="e.g. --hinge 10,2,-3 -8,5,1 0,-12,2")
        if np.linalg.norm(np.cross(hinge[1] - hinge[0], hinge[2] - hinge[0])) < 1.0:
            raise SurgtwinError("the three hinge points are (nearly) on one line: they define no plane")
    present, values = _present(labels) if labels is not None else ({}, [])
    calc = _union(labels, CALCIUM_NAMES, present) if labels is not None else None
    ctx = MeasureContext(grid.affine, grid.shape, ct, calcium_hu)
    root = aorta = lv = None
    if labels is not None:
        root = _union(labels, ROOT_NAMES, present)
        aorta = _union(labels, AORTA_NAMES, present)
        lv = _union(labels, LV_NAMES, present)
        if aorta is None:
            if len(values) == 1:
                aorta = labels.array > 0
                ctx.sources["mask"] = "binary mask (every non-zero voxel)"
            elif hinge is None:
                raise SurgtwinError(
                    f"the label map has no aortic_root or aorta label ({len(values)} unnamed or other labels)",
                    path=labels.metadata.get("path"),
                    hint="give a binary aorta (+ root) mask, a label table naming aortic_root/aorta, or three hinge points")
        else:
            ctx.sources["mask"] = "labels: " + ", ".join(n for n in AORTA_NAMES if n in present)
    if hinge is not None:
        m = _from_hinges(ctx, hinge, aorta, lv, progress=progress, cancel=cancel)
    elif root is not None and lv is not None and (
            m := _from_labels(ctx, root, aorta, lv, calc, cancel=cancel)) is not None:
        pass
    elif aorta is not None:
        m = _from_mask(ctx, aorta, cancel=cancel)
    else:
        raise SurgtwinError("no aortic root label and no aorta mask: nothing to measure the annulus on",
                            hint="give a label map with aortic_root, a binary aorta mask, or three hinge points")
    check(cancel)
    report(progress, 0.5, "tavr: root, coronaries, calcium")
    _root_sections(ctx, m)
    check(cancel)
    cor = {}
    has_cor_labels = False
    if labels is not None:
        for side, names in CORONARY_NAMES.items():
            cmask = _union(labels, names, present)
            has_cor_labels |= cmask is not None
            if cmask is not None and ctx.lumen is not None:
                found = ostium_from_label(ctx, cmask, m)
                if found is not None:
                    cor[side] = found
    if len(cor) < 2 and ct is not None and ctx.lumen is not None:
        for side, found in ostia_from_ct(ctx, m).items():
            cor.setdefault(side, found)
    m.coronary = {s: cor[s] for s in ("left", "right") if s in cor}
    if not m.coronary:
        m.warnings.append("coronary ostia not found (" + _no_ostia_reason(has_cor_labels, ct is not None, ctx) + ")")
    check(cancel)
    m.calcium = calcium_by_sector(ctx, m, calc)
    m.sources.update(ctx.sources)
    report(progress, 1.0, "tavr: measured")
    return m


def _no_ostia_reason(has_cor_labels: bool, has_ct: bool, ctx: MeasureContext) -> str:
    lab = ("the coronary labels do not reach the aortic root" if has_cor_labels
           else "no coronary labels")
    if not has_ct:
        return f"{lab} and no CT"
    if ctx.lumen is None:
        return f"{lab}, and no aortic lumen to find vessels leaving it in the CT"
    return f"{lab}, and no contrast-filled vessel found leaving the aortic root in the CT"


# -- annulus plane and contour -----------------------------------------------------------------------


def _plane_contour(ctx: MeasureContext, fld: geo.Field, centre, normal, *, level_mode="mask",
                   hint_radius=None):
    """(contour (N, 2) in the plane's (u0, v0) mm about ``centre``, u0, v0) of ``fld`` on the plane."""
    u0, v0 = geo.plane_basis(normal)
    img, xs = fld.section(centre, u0, v0, 32.0, STEP_MM)
    r = np.hypot(*np.meshgrid(xs, xs, indexing="ij"))
    if level_mode == "mask":
        core = img[r <= 4.0]
        plateau = float(np.percentile(core, 90)) if core.size else 0.0
        if plateau < 0.2:
            raise SurgtwinError("the annulus plane does not cross the aortic lumen mask",
                                hint="check the hinge points / the mask")
        level = 0.5 * min(plateau, 1.0)
    else:
        plateau, tissue, level = ct_lumen_level(img, r, hint_radius or 12.0)
        if plateau - tissue < CT_MIN_CONTRAST_HU:
            raise SurgtwinError(f"no contrast-filled lumen at the hinge points (centre {plateau:.0f} HU, "
                                f"surroundings {tissue:.0f} HU)", hint="check the hinge points, or give a root/aorta mask")
        ctx.ct_level = level
        ctx.sources["ct_lumen_level_hu"] = round(level, 1)
    poly = geo.closed_contour(img, xs, level)
    if poly is None:
        raise SurgtwinError("could not trace a closed annulus contour in the plane",
                            hint="the lumen runs off the 64 mm section or is open: check the input")
    return geo.fourier_smooth(poly), u0, v0


def _measurement(centre, normal, u0, v0, poly: np.ndarray, method: str) -> TavrMeasurement:
    """Perimeter, area and calipers of the plane contour ``poly`` (plane mm about ``centre``)."""
    cal = geo.calipers(poly)
    centroid = geo.polygon_centroid(poly)
    u = cal["max_dir"][0] * u0 + cal["max_dir"][1] * v0
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    c3 = np.asarray(centre, float) + centroid[0] * u0 + centroid[1] * v0
    contour = np.asarray(centre, float) + poly[:, :1] * u0 + poly[:, 1:2] * v0
    return TavrMeasurement(method=method, centre_lps=c3, normal_lps=np.asarray(normal, float), u_lps=u, v_lps=v,
                           contour_lps=contour, perimeter_mm=geo.polygon_perimeter(poly),
                           area_mm2=abs(geo.polygon_area(poly)), diameter_min_mm=cal["min"], diameter_max_mm=cal["max"])


def _annulus_from_plane(ctx: MeasureContext, fld: geo.Field, centre, normal, method: str, *, level_mode="mask",
                        hint_radius=None) -> TavrMeasurement:
    """Contour, perimeter, area and calipers of ``fld`` on the plane (centre, normal)."""
    poly, u0, v0 = _plane_contour(ctx, fld, centre, normal, level_mode=level_mode, hint_radius=hint_radius)
    return _measurement(centre, normal, u0, v0, poly, method)


def _from_labels(ctx: MeasureContext, root, aorta, lv, calc=None, *, cancel=None) -> TavrMeasurement | None:
    """The annulus on the root / left-ventricle interface (None when they barely touch); with the CT,
    its contour moved to the contrast lumen's edge (``tavr_edge.ct_edge``)."""
    ctx.set_crop_around(root, 25.0)
    sl = ctx.crop
    pts = interface_points(root[sl], lv[sl], ctx.crop_affine)
    if len(pts) < 30:
        ctx.crop = None
        return None
    c, n, rms = geo.fit_plane(pts)
    if np.dot(ctx.points(root[sl]).mean(0) - c, n) < 0:
        n = -n
    lumen = (aorta[sl] if aorta is not None else root[sl]) | lv[sl]
    ctx.lumen = lumen
    ctx.aorta_field = geo.Field(geo.smooth_mask(aorta[sl] if aorta is not None else root[sl], ctx.crop_affine,
                                                SIGMA_MM), ctx.crop_affine)
    check(cancel)
    fld = geo.Field(geo.smooth_mask(lumen, ctx.crop_affine, SIGMA_MM), ctx.crop_affine)
    poly, u0, v0 = _plane_contour(ctx, fld, c, n)
    contour = "labels"
    if ctx.ct is not None:
        check(cancel)
        edge = ct_edge(ctx, poly, c, u0, v0, None if calc is None else calc[sl])
        contour = edge["method"]
        if edge["poly"] is not None:
            poly = edge["poly"]
        ctx.sources["annulus_contour"] = edge["text"]
    ctx.sources["annulus_contour_method"] = contour
    m = _measurement(c, n, u0, v0, poly, "labels")
    ctx.sources["annulus_plane"] = f"aortic_root / left_ventricle interface ({len(pts)} voxel faces, rms {rms:.2f} mm)"
    return m


def _from_hinges(ctx: MeasureContext, hinge, aorta, lv, *, progress=None, cancel=None) -> TavrMeasurement:
    c = hinge.mean(0)
    n = np.cross(hinge[1] - hinge[0], hinge[2] - hinge[0])
    n /= np.linalg.norm(n)
    radius = float(np.mean(np.linalg.norm(hinge - c, axis=1)))
    if aorta is not None:
        ctx.set_crop_around(aorta, 25.0)
        if not _inside_crop(ctx, c):
            raise SurgtwinError("the hinge points are far from the aorta mask", hint="check the clicked points")
        sl = ctx.crop
        a = aorta[sl]
        if a.any() and np.dot(ctx.points(a).mean(0) - c, n) < 0:
            n = -n
        lumen = a | lv[sl] if lv is not None else a
        ctx.lumen = lumen
        ctx.aorta_field = geo.Field(geo.smooth_mask(a, ctx.crop_affine, SIGMA_MM), ctx.crop_affine)
        fld = geo.Field(geo.smooth_mask(lumen, ctx.crop_affine, SIGMA_MM), ctx.crop_affine)
        method = "hinge-labels" if lv is not None or "labels" in ctx.sources.get("mask", "") else "hinge-mask"
        m = _annulus_from_plane(ctx, fld, c, n, method)
    else:
        if ctx.ct is None:
            raise SurgtwinError("hinge points need a root/aorta mask or the CT to trace the annulus contour")
        if n[2] < 0:  # the root axis points superior (from the ventricle to the aorta)
            n = -n
        ctx.set_crop_box(c, 60.0)
        sl = ctx.crop
        ctf = geo.Field(smooth_ct(ctx.ct.array[sl], ctx.crop_affine), ctx.crop_affine)
        m = _annulus_from_plane(ctx, ctf, c, n, "hinge-ct", level_mode="ct", hint_radius=radius)
        ctx.lumen = _ct_lumen(ctx, ctf, m)
        ctx.aorta_field = geo.Field(geo.smooth_mask(ctx.lumen, ctx.crop_affine, SIGMA_MM), ctx.crop_affine)
        ctx.sources["mask"] = f"CT lumen >= {ctx.ct_level:.0f} HU around the annulus (no label)"
    m.hinge_points_lps = hinge
    ctx.sources["annulus_plane"] = "plane through the three hinge points"
    off = np.linalg.norm(hinge - m.centre_lps, axis=1)
    if np.any(off > 0.75 * m.diameter_max_mm) or np.any(off < 0.25 * m.diameter_min_mm):
        m.warnings.append("a hinge point lies far from the traced annulus contour: check the clicked points")
    return m


def _inside_crop(ctx: MeasureContext, p) -> bool:
    inv = np.linalg.inv(ctx.affine)
    k = inv[:3, :3] @ np.asarray(p, float) + inv[:3, 3]
    return all(s.start <= x < s.stop for s, x in zip(ctx.crop, k, strict=False))


def _ct_lumen(ctx: MeasureContext, ctf: geo.Field, m: TavrMeasurement) -> np.ndarray:
    """The aortic lumen from the CT (no label): above-level voxels connected to the annulus centre,
    opened by a 3 mm ball (EDT erosion + dilation) so that the coronaries are cut off."""
    from scipy.ndimage import distance_transform_edt, label

    sp = geo.spacing_of(ctx.crop_affine)
    bright = ctf.array >= ctx.ct_level
    lab, _ = label(bright, structure=np.ones((3, 3, 3)))
    inv = np.linalg.inv(ctx.crop_affine)
    seed = np.round(inv[:3, :3] @ (m.centre_lps + 5.0 * m.normal_lps) + inv[:3, 3]).astype(int)
    seed = np.clip(seed, 0, np.array(bright.shape) - 1)
    if lab[tuple(seed)] == 0:
        return bright
    comp = lab == lab[tuple(seed)]
    pts = np.argwhere(np.ones(comp.shape, bool)) @ ctx.crop_affine[:3, :3].T + ctx.crop_affine[:3, 3] - m.centre_lps
    h = pts @ m.normal_lps
    rad = np.linalg.norm(pts - np.outer(h, m.normal_lps), axis=1)
    comp &= ((rad <= 0.85 * m.diameter_max_mm + 6.0) & (h >= -10.0) & (h <= 45.0)).reshape(comp.shape)
    core = distance_transform_edt(comp, sampling=sp) > 3.0
    opened = distance_transform_edt(~core, sampling=sp) <= 3.0
    return opened & comp


def _from_mask(ctx: MeasureContext, mask: np.ndarray, *, cancel=None) -> TavrMeasurement:
    end, lab = find_root_end(ctx, mask, cancel=cancel)
    comp = lab == end.comp
    n = end.axis
    # crop: the component's voxels within ~60 mm of the end (plus margin)
    p_end = ctx.affine[:3, :3] @ end.point_idx + ctx.affine[:3, 3]
    ctx.set_crop_box(p_end + 25.0 * n, 50.0)
    sl = ctx.crop
    sub = comp[sl]
    aff = ctx.crop_affine
    fld_arr = geo.smooth_mask(sub, aff, SIGMA_MM)
    pts = ctx.points(sub)
    t = (pts - p_end) @ n
    t0 = float(t[np.linalg.norm(pts - p_end, axis=1) <= 15.0].min())
    # end-cap surface points: the 0.5 surface near the end whose outward normal is along -axis
    tt = ((np.argwhere(np.ones(sub.shape, bool)) @ aff[:3, :3].T + aff[:3, 3]) - p_end) @ n
    tt = tt.reshape(sub.shape)
    sel = (fld_arr > 0.15) & (fld_arr < 0.85) & (tt >= t0 - 3.0) & (tt <= t0 + 6.0)
    p, g = geo.iso_points(fld_arr, aff, sel)
    cap = (g @ n) > 0.9  # the gradient points inward (along +axis) on the cap
    check(cancel)
    if cap.sum() >= 30:
        c, nn, rms = geo.fit_plane(p[cap])
        if np.dot(nn, n) < 0:
            nn = -nn
        ctx.sources["annulus_plane"] = (f"plane fitted to the proximal end cap of the aorta mask ({int(cap.sum())} "
                                        f"surface points, rms {rms:.2f} mm)")
    else:
        nn = n
        c = p_end + (t0 + 0.5) * n
        ctx.sources["annulus_plane"] = "plane across the proximal end of the aorta mask, normal to its axis"
    ctx.lumen = sub
    ctx.aorta_field = geo.Field(fld_arr, aff)
    m = _annulus_from_plane(ctx, ctx.aorta_field, c, nn, "mask")
    m.sources["root_end"] = {"widening": round(end.widen, 3), "narrowing": round(end.narrow, 3),
                             "end_diameter_mm": round(end.d_end_mm, 2)}
    return m


# -- root sections: sinus and STJ ------------------------------------------------------------------------


def _root_sections(ctx: MeasureContext, m: TavrMeasurement) -> None:
    fld = ctx.aorta_field
    if fld is None:
        return
    level = 0.5 if ctx.level_mode == "mask" else ctx.ct_level
    rows = []
    for w in np.arange(1.0, 41.0, 1.0):
        c = m.centre_lps + w * m.normal_lps
        img, xs = fld.section(c, m.u_lps, m.v_lps, 30.0, 0.5)
        poly = geo.closed_contour(img, xs, level)
        if poly is None:
            break
        if ctx.level_mode == "ct" and abs(geo.polygon_area(poly)) > 4.0 * m.area_mm2:
            break
        rows.append((w, abs(geo.polygon_area(poly)), float(geo.radial_diameters(poly, (0.0, 0.0)).max())))
    if len(rows) < 6:
        m.warnings.append("the aorta above the annulus is too short in the image to measure the sinus and STJ")
        return
    w, area, dmax = (np.array(x) for x in zip(*rows, strict=False))
    sel = w <= 30.0
    i_s = int(np.argmax(np.where(sel, dmax, -1)))
    # refine the sinus level at 0.25 mm
    best = (dmax[i_s], w[i_s])
    for ww in np.arange(w[i_s] - 0.75, w[i_s] + 0.76, 0.25):
        img, xs = fld.section(m.centre_lps + ww * m.normal_lps, m.u_lps, m.v_lps, 30.0, 0.3)
        poly = geo.closed_contour(img, xs, level)
        if poly is not None:
            d = float(geo.radial_diameters(poly, (0.0, 0.0)).max())
            if d > best[0]:
                best = (d, float(ww))
    m.sinus_diameter_mm, m.sinus_height_mm = float(best[0]), float(best[1])
    after = (w > w[i_s]) & (w <= w[i_s] + 20.0)
    if after.sum() >= 2:
        d_a = 2 * np.sqrt(area / np.pi)
        j = int(np.argmin(np.where(after, d_a, np.inf)))
        if j == int(np.flatnonzero(after)[-1]) or d_a[j] >= 0.99 * d_a[i_s]:
            m.warnings.append("no clear sinotubular junction (no narrowing above the sinuses)")
        m.stj_diameter_mm, m.stj_height_mm = float(d_a[j]), float(w[j])


