"""TAVR annulus measurement from CT labels, a binary aorta mask, or three hinge points (LPS mm).

``measure_annulus(labels=None, ct=None, *, hinge_points_lps=None, calcium_hu=850)`` returns a
``TavrMeasurement``. Inputs, in order of preference:

* **a multi-label map with ``aortic_root``** (+ ``left_ventricle``, ``ascending_aorta``, coronary
  arteries, ``calcification`` when present): the annulus plane is the plane fitted (SVD) to the
  interface between the aortic-root and left-ventricle labels (the virtual basal ring is where the
  root label starts); without a left-ventricle label the root's proximal end is used as below;
* **a binary aorta (+ root) mask** (or a label map whose aorta labels are ``aorta``/``aortic_root``/
  ``ascending_aorta``): the mask's connected parts are walked end to end (geodesic distance inside
  the mask, double sweep); an end is the root's proximal end when it is not cut by the scan boundary
  and its cross-sections widen into the sinuses (area ≥ 1.15x the end's) and narrow again (the
  sinotubular junction). The end cap's surface points (0.5 level of the smoothed mask, normals along
  the vessel axis) are fitted with a plane. When the only ends are cut by the scan boundary (the root
  is outside the field of view) or none looks like a root, it refuses (``SurgtwinError``);
* **three hinge points** (the leaflets' basal attachments, clicked by the user): the plane through
  them; the contour from the root/aorta label in that plane when one is given, else from the CT's
  contrast lumen (the half-way level between the lumen at the hinge centroid and the surrounding
  tissue, the connected region around the centroid).

The contour is the 0.5 level (marching squares, ``skimage.measure.find_contours``) of the smoothed
mask (Gaussian, sigma 0.6 mm) resliced on the plane at 0.2 mm by trilinear interpolation, normalised
by the plateau at the centre (at a mask's end cap the smoothed mask is 0.5 x the in-plane profile).
From it: perimeter, area, **min/max diameter as the minimum and maximum caliper (Feret) widths** of
the contour (for an ellipse: the minor and major axes, orthogonal), eccentricity 1 - Dmin/Dmax (the
TAVR convention), D_A = 2 sqrt(A / pi), D_P = P / pi.

Coronary ostium heights: the distance from the annulus plane to the ostium's **lower edge**, the
lowest point of the coronary's 0.5 surface near the root (within 2 mm of the root label; from the CT
without coronary labels: contrast-filled vessels leaving the aorta mask, 1.5-6 mm outside it; the
left is the one toward the patient's left-posterior). Sinus of Valsalva diameter: the largest
diameter through the root axis (annulus centre along the normal) of the sections parallel to the
annulus; sinotubular junction: the narrowest section (area-derived diameter) above the sinus level.

Calcium: voxels of the ``calcification`` label, else CT >= ``calcium_hu`` (default 850 HU on
contrast CT: Jilaihawi et al., Eur Heart J Cardiovasc Imaging 2014;15:1324-32) within 3 mm of the
aorta lumen from 5 mm below the annulus to the STJ, in three 120-degree sectors about the annulus
axis: centred on the right coronary ostium (right-, left-, non-coronary sectors) when the ostia are
known, else on the patient's anterior direction (``anterior``, ``left_posterior``,
``right_posterior``).

Reference for the measurement definitions: Blanke P et al., SCCT expert consensus on CT for TAVI/TAVR,
JACC Cardiovasc Imaging 2019;12:1-24. Planning aid, NOT FOR CLINICAL USE.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.plan import tavr_geometry as geo
from surgtwin.core.progress import check, report

DEFAULT_CALCIUM_HU = 850.0
SIGMA_MM = 0.6
STEP_MM = 0.2

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


def _present(labels) -> dict[str, int]:
    arr = labels.array.ravel()
    counts = np.bincount(arr if arr.dtype.kind == "u" and arr.dtype.itemsize <= 4 else arr.clip(0).astype(np.int64))
    return {lab.name: lab.value for lab in labels.labels if lab.value < len(counts) and counts[lab.value] > 0}


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
    present = _present(labels) if labels is not None else {}
    ctx = _Context(grid.affine, grid.shape, ct, calcium_hu)
    root = aorta = lv = None
    if labels is not None:
        root = _union(labels, ROOT_NAMES, present)
        aorta = _union(labels, AORTA_NAMES, present)
        lv = _union(labels, LV_NAMES, present)
        if aorta is None:
            nonzero = [v for v in present.values() if v > 0]
            if len(nonzero) == 1 or (len(nonzero) == 0 and np.any(labels.array > 0)):
                aorta = labels.array > 0
                ctx.sources["mask"] = "binary mask (every non-zero voxel)"
            elif hinge is None:
                raise SurgtwinError(
                    "the label map has no aortic_root or aorta label", path=labels.metadata.get("path"),
                    hint="give a binary aorta (+ root) mask, a label table naming aortic_root/aorta, or three hinge points")
        else:
            ctx.sources["mask"] = "labels: " + ", ".join(n for n in AORTA_NAMES if n in present)
    if hinge is not None:
        m = _from_hinges(ctx, hinge, aorta, lv, progress=progress, cancel=cancel)
    elif root is not None and lv is not None and (m := _from_labels(ctx, root, aorta, lv, cancel=cancel)) is not None:
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
    if labels is not None:
        for side, names in CORONARY_NAMES.items():
            cmask = _union(labels, names, present)
            if cmask is not None and ctx.lumen is not None:
                found = _ostium_from_label(ctx, cmask, m)
                if found is not None:
                    cor[side] = found
    if len(cor) < 2 and ct is not None and ctx.lumen is not None:
        for side, found in _ostia_from_ct(ctx, m).items():
            cor.setdefault(side, found)
    m.coronary = {s: cor[s] for s in ("left", "right") if s in cor}
    if not m.coronary:
        m.warnings.append("coronary ostia not found (no coronary labels and no CT, or no vessel leaving the root)")
    check(cancel)
    calc = _union(labels, CALCIUM_NAMES, present) if labels is not None else None
    m.calcium = _calcium(ctx, m, calc)
    m.sources.update(ctx.sources)
    report(progress, 1.0, "tavr: measured")
    return m


# -- context: the crop, fields and lumen mask ----------------------------------------------------------


class _Context:
    def __init__(self, affine, shape, ct, calcium_hu):
        self.affine = np.asarray(affine, float)
        self.shape = tuple(shape)
        self.ct = ct
        self.calcium_hu = float(calcium_hu)
        self.sources: dict = {}
        self.crop: tuple | None = None  # slices of the working region
        self.lumen: np.ndarray | None = None  # aorta (+ LV) lumen mask on the crop
        self.aorta_field: geo.Field | None = None  # field for sections above the annulus
        self.level_mode = "mask"  # or "ct"
        self.ct_level: float | None = None
        self._d_out = None

    @property
    def d_out(self) -> np.ndarray:
        """Distance (mm) from the lumen mask, on the crop (computed once)."""
        if self._d_out is None:
            from scipy.ndimage import distance_transform_edt

            self._d_out = distance_transform_edt(~self.lumen, sampling=geo.spacing_of(self.crop_affine))
        return self._d_out

    @property
    def crop_affine(self) -> np.ndarray:
        return geo.crop_affine(self.affine, self.crop)

    def set_crop_around(self, mask: np.ndarray, margin_mm: float) -> None:
        sp = geo.spacing_of(self.affine)
        self.crop = geo.crop_slices(mask, np.ceil(margin_mm / sp).astype(int), self.shape)

    def set_crop_box(self, centre_lps, half_mm: float) -> None:
        inv = np.linalg.inv(self.affine)
        c = inv[:3, :3] @ np.asarray(centre_lps, float) + inv[:3, 3]
        h = half_mm / geo.spacing_of(self.affine)
        lo = np.clip(np.floor(c - h), 0, np.array(self.shape) - 1).astype(int)
        hi = np.clip(np.ceil(c + h) + 1, 1, self.shape).astype(int)
        self.crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=False))

    def points(self, mask_crop: np.ndarray) -> np.ndarray:
        a = self.crop_affine
        return np.argwhere(mask_crop) @ a[:3, :3].T + a[:3, 3]


def _interface_points(a: np.ndarray, b: np.ndarray, affine) -> np.ndarray:
    """Midpoints (LPS) between face-adjacent voxels of masks a and b."""
    pts = []
    for ax in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        for x, y in ((a, b), (b, a)):
            idx = np.argwhere(x[tuple(lo)] & y[tuple(hi)]).astype(float)
            idx[:, ax] += 0.5
            pts.append(idx)
    idx = np.concatenate(pts)
    return idx @ affine[:3, :3].T + affine[:3, 3]


# -- annulus plane and contour -----------------------------------------------------------------------


def _annulus_from_plane(ctx: _Context, fld: geo.Field, centre, normal, method: str, *, level_mode="mask",
                        hint_radius=None) -> TavrMeasurement:
    """Contour, perimeter, area and calipers of ``fld`` on the plane (centre, normal)."""
    u0, v0 = geo.plane_basis(normal)
    img, xs = fld.section(centre, u0, v0, 32.0, STEP_MM)
    r = np.hypot(*np.meshgrid(xs, xs, indexing="ij"))
    core = img[r <= 4.0]
    plateau = float(np.percentile(core, 90)) if core.size else 0.0
    if level_mode == "mask":
        if plateau < 0.2:
            raise SurgtwinError("the annulus plane does not cross the aortic lumen mask",
                                hint="check the hinge points / the mask")
        level = 0.5 * min(plateau, 1.0)
    else:
        rr = hint_radius or 12.0
        ring = img[(r >= 1.35 * rr) & (r <= 1.7 * rr)]
        tissue = float(np.clip(np.median(ring), -100.0, 200.0)) if ring.size else 100.0
        if plateau - tissue < 100.0:
            raise SurgtwinError(f"no contrast-filled lumen at the hinge points (centre {plateau:.0f} HU, "
                                f"surroundings {tissue:.0f} HU)", hint="check the hinge points, or give a root/aorta mask")
        level = 0.5 * (plateau + tissue)
        ctx.ct_level = level
        ctx.sources["ct_lumen_level_hu"] = round(level, 1)
    poly = geo.closed_contour(img, xs, level)
    if poly is None:
        raise SurgtwinError("could not trace a closed annulus contour in the plane",
                            hint="the lumen runs off the 64 mm section or is open: check the input")
    poly = geo.fourier_smooth(poly)
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


def _from_labels(ctx: _Context, root, aorta, lv, *, cancel=None) -> TavrMeasurement | None:
    """The annulus on the root / left-ventricle interface (None when they barely touch)."""
    ctx.set_crop_around(root, 25.0)
    sl = ctx.crop
    pts = _interface_points(root[sl], lv[sl], ctx.crop_affine)
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
    m = _annulus_from_plane(ctx, fld, c, n, "labels")
    ctx.sources["annulus_plane"] = f"aortic_root / left_ventricle interface ({len(pts)} voxel faces, rms {rms:.2f} mm)"
    return m


def _from_hinges(ctx: _Context, hinge, aorta, lv, *, progress=None, cancel=None) -> TavrMeasurement:
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
        ctf = geo.Field(_smooth_ct(ctx.ct.array[sl], ctx.crop_affine), ctx.crop_affine)
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


def _inside_crop(ctx: _Context, p) -> bool:
    inv = np.linalg.inv(ctx.affine)
    k = inv[:3, :3] @ np.asarray(p, float) + inv[:3, 3]
    return all(s.start <= x < s.stop for s, x in zip(ctx.crop, k, strict=False))


def _smooth_ct(arr, affine) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(arr.astype(np.float32), SIGMA_MM / geo.spacing_of(affine), mode="nearest")


def _ct_lumen(ctx: _Context, ctf: geo.Field, m: TavrMeasurement) -> np.ndarray:
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


# -- binary mask: find the root's proximal end ---------------------------------------------------------


@dataclass
class _End:
    point_idx: np.ndarray  # global voxel index of the end
    touches_border: bool
    axis: np.ndarray | None
    widen: float
    narrow: float
    d_end_mm: float
    root_like: bool
    comp: int
    side: str  # "superior"/"inferior"/... of the end for messages


def _describe_side(axis_out) -> str:
    names = (("left", "right"), ("posterior", "anterior"), ("superior", "inferior"))
    k = int(np.argmax(np.abs(axis_out)))
    return names[k][0] if axis_out[k] > 0 else names[k][1]


def _directions(n: int) -> np.ndarray:
    """``n`` nearly uniform unit vectors (Fibonacci sphere)."""
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    phi = np.pi * (1 + 5 ** 0.5) * k
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)


def _cap_axis(sub: np.ndarray, aff: np.ndarray, d: np.ndarray) -> np.ndarray | None:
    """The vessel axis at a mask end, pointing into the vessel: the direction along which the
    end's first 2 mm hold the most voxels (a cut end is a flat cap; found on a sphere of directions,
    then refined)."""
    near = np.isfinite(d) & (d <= 25.0)
    far = np.isfinite(d) & (d >= 20.0) & (d <= 35.0)
    if near.sum() < 10 or far.sum() < 10:
        return None
    pts = np.argwhere(near) @ aff[:3, :3].T
    rough = aff[:3, :3] @ (np.argwhere(far).mean(0) - np.argwhere(d <= 5.0).mean(0))
    rough /= np.linalg.norm(rough)
    pts = pts[:: max(1, len(pts) // 20000)]
    weight = max(1, len(np.argwhere(near)) // max(len(pts), 1))

    def best(dirs):
        t = pts @ dirs.T
        count = (t <= t.min(0) + 2.0).sum(0)
        return dirs[int(np.argmax(count))], int(count.max()) * weight

    dirs = _directions(3000)
    dirs = dirs[dirs @ rough > 0.0]
    n, _ = best(dirs)
    for spread in (0.12, 0.04):
        local = _directions(600)
        local = local[local[:, 2] > 0]
        u, v = geo.plane_basis(n)
        cand = n + spread * (local[:, :1] * u + local[:, 1:2] * v)
        cand = np.vstack([n, cand / np.linalg.norm(cand, axis=1, keepdims=True)])
        n, _ = best(cand)
    return n


def _end_profile(ctx: _Context, sub: np.ndarray, aff: np.ndarray, d: np.ndarray, end_idx) -> tuple:
    """(axis, widen, narrow, end diameter, t0) of a mask end from planar slabs along its axis."""
    n = _cap_axis(sub, aff, d)
    if n is None:
        return None, 0.0, 1.0, 0.0, 0.0
    pts_idx = np.argwhere(np.isfinite(d) & (d <= 70.0))
    dd = d[tuple(pts_idx.T)]
    pts = pts_idx @ aff[:3, :3].T + aff[:3, 3]
    vox = abs(np.linalg.det(aff[:3, :3]))
    t = pts @ n
    t0 = float(t[dd <= 10.0].min())
    edges = np.arange(t0, t0 + 55.0, 1.0)
    counts, _ = np.histogram(t, bins=edges)
    area = counts * vox  # per 1 mm slab
    if np.count_nonzero(area) < 40:
        return n, 0.0, 1.0, 0.0, t0
    a_end = float(np.median(area[1:3]))
    ip = 3 + int(np.argmax(area[3:30]))
    a_peak = float(area[ip])
    a_after = float(area[ip:ip + 20].min())
    return n, a_peak / max(a_end, 1e-6), a_after / max(a_peak, 1e-6), 2 * np.sqrt(a_end / np.pi), t0


def _find_root_end(ctx: _Context, mask: np.ndarray, *, cancel=None):
    from scipy.ndimage import find_objects, label

    sp = geo.spacing_of(ctx.affine)
    vox_ml = abs(np.linalg.det(ctx.affine[:3, :3])) / 1000.0
    lab, ncomp = label(mask, structure=np.ones((3, 3, 3)))
    if ncomp == 0:
        raise SurgtwinError("the aorta mask is empty")
    sizes = np.bincount(lab.ravel())[1:]
    keep = [i + 1 for i in np.argsort(-sizes) if sizes[i] >= max(0.05 * sizes.max(), 1.0 / vox_ml)][:4]
    boxes = find_objects(lab)
    ends: list[_End] = []
    shape = np.array(ctx.shape)
    for c in keep:
        check(cancel)
        box = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, shape[a])) for a, s in enumerate(boxes[c - 1]))
        sub = lab[box] == c
        aff = geo.crop_affine(ctx.affine, box)
        off = np.array([s.start for s in box])
        first = np.argwhere(sub)[0]
        d0 = geo.geodesic_distance(sub, sp, first)
        a_idx = np.unravel_index(int(np.argmax(np.where(np.isfinite(d0), d0, -1))), sub.shape)
        da = geo.geodesic_distance(sub, sp, np.array(a_idx))
        b_idx = np.unravel_index(int(np.argmax(np.where(np.isfinite(da), da, -1))), sub.shape)
        db = geo.geodesic_distance(sub, sp, np.array(b_idx))
        for e_idx, d in ((a_idx, da), (b_idx, db)):
            near = np.argwhere(np.isfinite(d) & (d <= 8.0)) + off
            touches = bool(np.any(near == 0) or np.any(near == shape - 1))
            axis, widen, narrow, d_end, _ = _end_profile(ctx, sub, aff, d, e_idx)
            root_like = (axis is not None and widen >= 1.15 and narrow <= 0.97 and 12.0 <= d_end <= 40.0)
            side = _describe_side(-axis) if axis is not None else "end"
            ends.append(_End(np.array(e_idx) + off, touches, axis, widen, narrow, d_end, root_like, c, side))
    good = [e for e in ends if e.root_like and not e.touches_border]
    if good:
        return max(good, key=lambda e: e.widen), lab
    cut = [e for e in ends if e.touches_border]
    if cut:
        where = ", ".join(sorted({e.side for e in cut}))
        raise SurgtwinError(
            f"the aortic root is not in the field of view: the aorta mask is cut by the scan boundary at its {where} "
            "end, and no other end of it widens into the sinuses of Valsalva like an aortic root",
            hint="use a scan that includes the heart and the aortic valve, or give three hinge points")
    raise SurgtwinError("no end of the aorta mask looks like an aortic root (no widening into the sinuses of Valsalva)",
                        hint="give a label map with aortic_root and left_ventricle, or three hinge points")


def _from_mask(ctx: _Context, mask: np.ndarray, *, cancel=None) -> TavrMeasurement:
    end, lab = _find_root_end(ctx, mask, cancel=cancel)
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


def _root_sections(ctx: _Context, m: TavrMeasurement) -> None:
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


# -- coronary ostia --------------------------------------------------------------------------------------


def _lower_edge(ctx: _Context, indicator: np.ndarray, region: np.ndarray, m: TavrMeasurement, source: str,
                sigma_mm: float = 0.5) -> dict | None:
    """The lowest point (above the annulus plane) of the 0.5 surface of ``indicator`` near ``region``
    (both on the crop)."""
    from scipy.ndimage import binary_dilation

    if region.sum() < 3:
        return None
    box = geo.crop_slices(region, 4, region.shape)
    aff = geo.crop_affine(ctx.crop_affine, box)
    f = geo.smooth_mask(indicator[box], aff, sigma_mm)
    near = binary_dilation(region[box], iterations=1)
    p, _ = geo.iso_points(f, aff, near & (f > 0.1) & (f < 0.9))
    if len(p) < 3:
        return None
    h = m.height_of(p)
    i = int(np.argmin(h))
    centre = ctx.points(region).mean(0)
    return {"height_mm": float(h[i]), "lower_edge_lps": p[i], "centre_lps": centre, "source": source}


def _ostium_from_label(ctx: _Context, cmask: np.ndarray, m: TavrMeasurement) -> dict | None:

    c = cmask[ctx.crop]
    if not c.any():
        return None
    region = c & (ctx.d_out <= 2.0)
    h = m.height_of(ctx.points(region)) if region.any() else np.array([])
    if not region.any() or np.all(h < -2.0):
        return None
    return _lower_edge(ctx, c, region, m, "label")


def _ostia_from_ct(ctx: _Context, m: TavrMeasurement) -> dict:
    """Contrast-filled vessels leaving the aorta mask between the annulus and the STJ."""
    from scipy.ndimage import distance_transform_edt, label

    sl = ctx.crop
    aff = ctx.crop_affine
    sp = geo.spacing_of(aff)
    ct = _smooth_ct(ctx.ct.array[sl], aff)
    lumen = ctx.lumen
    inner = distance_transform_edt(lumen, sampling=sp) >= 2.0
    hts = _plane_heights(aff, lumen.shape, m)
    zone = inner & (hts >= 1.0)
    lumen_hu = float(np.median(ct[zone])) if zone.any() else float(np.median(ct[lumen]))
    level = max(150.0, 0.5 * (lumen_hu + 100.0))
    bright = ct >= level
    d_out = ctx.d_out
    top = (m.stj_height_mm or 20.0) + 5.0
    band = bright & ~lumen & (d_out > 1.5) & (d_out <= 6.0) & (hts > 2.0) & (hts < top)
    lab, n = label(bright & ~lumen & (d_out <= 6.0) & (hts > 2.0) & (hts < top), structure=np.ones((3, 3, 3)))
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
        spread = float(np.abs(np.exp(1j * ang).mean()))
        if spread < 0.6:
            continue
        found.append((nvox, c, far))
    found.sort(key=lambda x: -x[0])
    out = {}
    cand = []
    for _, _c, far in found[:2]:
        region = far & (d_out <= 3.0)
        if region.sum() < 3:
            region = far
        e = _lower_edge(ctx, bright, region, m, f"ct >= {level:.0f} HU")
        if e is not None:
            cand.append(e)
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


def _sector_frame(m: TavrMeasurement, coronary: dict) -> tuple[dict, str]:
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


def _plane_heights(aff: np.ndarray, shape, m: TavrMeasurement, direction=None) -> np.ndarray:
    """(x - centre) . direction (default the normal) at every voxel of a grid, by broadcasting."""
    d = m.normal_lps if direction is None else np.asarray(direction, float)
    step = aff[:3, :3].T @ d  # change per index step along each axis
    base = float((aff[:3, 3] - m.centre_lps) @ d)
    k, j, i = (np.arange(n, dtype=np.float64) for n in shape)
    return base + step[0] * k[:, None, None] + step[1] * j[None, :, None] + step[2] * i[None, None, :]


def _calcium(ctx: _Context, m: TavrMeasurement, calc_label) -> dict:

    sl = ctx.crop
    aff = ctx.crop_affine
    geo.spacing_of(aff)
    vox_mm3 = float(abs(np.linalg.det(aff[:3, :3])))
    shape = tuple(s.stop - s.start for s in sl)
    h = _plane_heights(aff, shape, m)
    top = m.stj_height_mm if m.stj_height_mm is not None else 20.0
    region = (h >= -5.0) & (h <= top)
    if ctx.lumen is not None:
        region &= ctx.d_out <= 3.0
        where = "within 3 mm of the aortic lumen"
    else:
        rad = np.sqrt(np.maximum(_plane_heights(aff, shape, m, m.u_lps) ** 2
                                 + _plane_heights(aff, shape, m, m.v_lps) ** 2, 0.0))
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
    centres, text = _sector_frame(m, m.coronary)
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
