"""Placement checks: cortical breach, distance to critical structures, cortical/cancellous contact.

Fast enough to run on every pose change (a few ms on the abdomen-pelvis sample): a ``CheckContext``
precomputes, once per case (labels, CT) and ``CheckSpec``, fields on a region of interest of the
label grid; ``sample_implant`` gives, once per implant, points in its local frame; a check then only
transforms the points and reads the fields at their nearest voxels (one gather).

Fields (Euclidean distance transforms with the real, anisotropic voxel spacing):

* **bone**: the spec's bone structures plus the marrow (``medullary_canal``: a stem's reamed bed).
  ``outside``: for a voxel outside the bone its distance to the bone surface (mm), 0 inside. The
  surface lies half a voxel beyond the outermost voxel centres, so distances are the EDT less half
  the mean voxel size: accurate to about a voxel;
* **tissue**: 0 not bone, 1 cancellous, 2 cortical, 3 marrow. The rule: a bone voxel is *cortical*
  when the CT is at least ``cortical_hu`` (600 HU; cortical bone is about 800-2000 HU, cancellous
  100-400 HU); without a CT, when it lies within ``shell_mm`` (2 mm) of the bone's outer surface;
  else cancellous;
* **critical structures**: for each (spinal canal, aorta, vena cava, iliac arteries, vessels ...
  whatever the label map has; margins in ``CheckSpec.critical_mm``) the distance to its surface
  (0 inside it).

Checks (``PlacementChecks``, JSON-able, ``passed`` plus details):

* breach: the implant's bone-engaging volume (``Implant.bone_engaging``) outside the bone, in ml,
  its deepest point (mm from the bone surface, and where in LPS) and the breach centroid; pedicle
  screws also get the Gertzbein-Robbins grade (A 0, B < 2, C < 4, D < 6, E >= 6 mm). Passes when
  the depth is at most ``max_breach_depth_mm`` (2 mm: grades A and B). Volume outside the image is
  reported apart (``outside_image_ml``) and not counted;
* distance: per critical structure the smallest distance from the implant's surface, the point
  and the implant volume inside it; passes when at least its margin;
* contact: the fractions of the bone-engaging surface (points ``CONTACT_OFFSET_MM`` = 0.5 mm outside
  it along the normal)
  touching cortical, cancellous, marrow or no bone (informative; passes unless
  ``min_cortical_fraction`` is set).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import check, report

DEFAULT_MARGINS_MM = {"spinal_canal": 2.0, "spinal_cord": 2.0, "aorta": 3.0, "inferior_vena_cava": 3.0}
#: label names containing one of these are critical vessels (default margin below)
VESSEL_WORDS = ("artery", "arteries", "vein", "vena", "aorta", "vessel")
VESSEL_MARGIN_MM = 2.0
ARTERY_MARGIN_MM = 3.0
BONE_WORDS = ("vertebra", "femur", "pelvis", "sacrum", "rib", "skull", "bone", "humerus", "tibia", "fibula",
              "radius", "ulna", "scapula", "clavicle", "sternum", "hip", "patella", "mandible")
MARROW_NAMES = ("medullary_canal",)
TISSUES = ("none", "cancellous", "cortical", "marrow")


@dataclass(frozen=True)
class CheckSpec:
    """What the checks test and their limits: bone and marrow structures, critical structures with
    their margins (mm), the breach limit, the cortical rule, and the region margin (mm)."""

    bone: tuple[str, ...]
    marrow: tuple[str, ...] = ()
    critical_mm: dict = field(default_factory=dict)
    max_breach_depth_mm: float = 2.0
    max_breach_ml: float | None = None
    min_cortical_fraction: float | None = None
    cortical_hu: float = 600.0
    shell_mm: float = 2.0
    region_margin_mm: float = 40.0

    def to_json(self) -> dict:
        d = asdict(self)
        d["bone"], d["marrow"] = list(self.bone), list(self.marrow)
        return d

    @classmethod
    def from_json(cls, d: dict) -> CheckSpec:
        try:
            return cls(**{**d, "bone": tuple(d["bone"]), "marrow": tuple(d.get("marrow") or ()),
                          "critical_mm": {str(k): float(v) for k, v in (d.get("critical_mm") or {}).items()}})
        except (KeyError, TypeError) as exc:
            raise SurgtwinError(f"malformed check settings ({exc})") from None


def default_margins(names) -> dict[str, float]:
    """Default margins (mm) of the critical structures among ``names``."""
    out = {}
    for n in names:
        low = n.lower()
        if n in DEFAULT_MARGINS_MM:
            out[n] = DEFAULT_MARGINS_MM[n]
        elif any(w in low for w in VESSEL_WORDS) and low not in MARROW_NAMES:
            out[n] = ARTERY_MARGIN_MM if ("arter" in low or "aorta" in low) else VESSEL_MARGIN_MM
    return out


def default_spec(labels, target: dict | None = None, **overrides) -> CheckSpec:
    """The spec for a target: ``{"femur": side}`` -> bone ``femur_<side>`` + marrow;
    ``{"vertebra": ...}`` -> bone ``vertebrae``; none -> every bone-like structure. Critical
    structures: every vessel and the spinal canal the label map has, with default margins."""
    names = labels.labels.names()
    marrow = tuple(n for n in MARROW_NAMES if n in names)
    if target and "femur" in target:
        bone = (f"femur_{target['femur']}",)
    elif target and "vertebra" in target:
        bone = ("vertebrae",)
    else:
        bone = tuple(n for n in names if any(w in n.lower() for w in BONE_WORDS) and n not in marrow)
        marrow = marrow if any(n.startswith("femur") for n in bone) else ()
    missing = [n for n in bone if n not in names]
    if missing or not bone:
        raise SurgtwinError(f"the label map has no bone structure {', '.join(map(repr, missing)) or ''}".rstrip(),
                            hint="segment the bones first")
    critical = default_margins(n for n in names if n not in bone and n not in marrow)
    extra = overrides.pop("critical_mm", {}) or {}
    unknown = [n for n in extra if n not in names]
    if unknown:
        raise SurgtwinError(f"no structure {', '.join(map(repr, unknown))} to keep a margin from",
                            hint=f"known: {', '.join(names)}")
    critical.update({str(k): float(v) for k, v in extra.items()})
    return CheckSpec(bone, marrow, critical, **overrides)


def region_around(shape, affine, points_lps, margin_mm: float) -> tuple[slice, ...]:
    """Index slices of the grid box holding ``points_lps`` plus ``margin_mm`` (clipped to the grid)."""
    inv = np.linalg.inv(affine)
    idx = np.asarray(points_lps, float).reshape(-1, 3) @ inv[:3, :3].T + inv[:3, 3]
    pad = np.ceil(margin_mm / np.linalg.norm(affine[:3, :3], axis=0)).astype(int)
    lo = np.clip(np.floor(idx.min(axis=0)).astype(int) - pad, 0, np.array(shape))
    hi = np.clip(np.ceil(idx.max(axis=0)).astype(int) + pad + 1, 0, np.array(shape))
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


# -- results -----------------------------------------------------------------------------------------
def _r(v, n=2):
    if v is None:
        return None
    if isinstance(v, np.ndarray | list | tuple):
        return [round(float(x), n) for x in v]
    return round(float(v), n)


@dataclass
class BreachCheck:
    passed: bool
    volume_ml: float
    max_depth_mm: float | None  # None: part of the breach lies outside the checked region
    deepest_lps: list | None
    centroid_lps: list | None
    engaging_volume_ml: float
    fraction: float
    outside_image_ml: float
    limit_depth_mm: float
    limit_ml: float | None = None
    grade: str | None = None  # Gertzbein-Robbins, pedicle screws


@dataclass
class DistanceCheck:
    structure: str
    passed: bool
    min_distance_mm: float | None  # None: farther than the checked region
    margin_mm: float
    nearest_lps: list | None
    inside_ml: float


@dataclass
class ContactCheck:
    passed: bool
    fractions: dict
    points: int
    limit_cortical_fraction: float | None = None


@dataclass
class PlacementChecks:
    placement_id: str
    passed: bool
    breach: BreachCheck | None
    distances: list
    contact: ContactCheck | None
    warnings: list = field(default_factory=list)
    elapsed_ms: float = 0.0
    outside_region_ml: float = 0.0  # implant volume in the image but outside the checked region

    def to_json(self) -> dict:
        d = asdict(self)
        for k in ("volume_ml", "engaging_volume_ml", "outside_image_ml", "fraction"):
            if d["breach"] is not None:
                d["breach"][k] = _r(d["breach"][k], 4)
        if d["breach"] is not None:
            d["breach"]["max_depth_mm"] = _r(d["breach"]["max_depth_mm"])
        for dc in d["distances"]:
            dc["min_distance_mm"] = _r(dc["min_distance_mm"])
            dc["inside_ml"] = _r(dc["inside_ml"], 4)
        if d["contact"] is not None:
            d["contact"]["fractions"] = {k: _r(v, 4) for k, v in d["contact"]["fractions"].items()}
        d["elapsed_ms"] = _r(self.elapsed_ms, 3)
        d["outside_region_ml"] = _r(self.outside_region_ml, 4)
        return d

    @classmethod
    def from_json(cls, d: dict) -> PlacementChecks:
        """The checks as ``to_json`` stored them in the case."""
        return cls(placement_id=str(d["placement_id"]), passed=bool(d["passed"]),
                   breach=BreachCheck(**d["breach"]) if d.get("breach") else None,
                   distances=[DistanceCheck(**dc) for dc in d.get("distances", [])],
                   contact=ContactCheck(**d["contact"]) if d.get("contact") else None,
                   warnings=list(d.get("warnings", [])), elapsed_ms=float(d.get("elapsed_ms", 0.0)),
                   outside_region_ml=float(d.get("outside_region_ml", 0.0)))

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(check, value, limit, PASS/FAIL) rows for a table."""
        ok = lambda b: "PASS" if b else "FAIL"  # noqa: E731
        out = []
        b = self.breach
        if b is not None:
            grade = f" (grade {b.grade})" if b.grade else ""
            depth = "not measured" if b.max_depth_mm is None else f"{b.max_depth_mm:.1f} mm{grade}"
            out.append(("breach depth", depth, f"<= {b.limit_depth_mm:g} mm", ok(b.passed)))
            out.append(("breach volume", f"{b.volume_ml:.3f} ml ({100 * b.fraction:.1f} %)",
                        "-" if b.limit_ml is None else f"<= {b.limit_ml:g} ml", ok(b.passed)))
            if b.outside_image_ml > 0:
                out.append(("outside the image", f"{b.outside_image_ml:.3f} ml", "not checked", "WARN"))
        far = [dc.structure for dc in self.distances if dc.min_distance_mm is None]
        for dc in self.distances:
            if dc.min_distance_mm is not None:
                out.append((f"distance to {dc.structure}", f"{dc.min_distance_mm:.1f} mm", f">= {dc.margin_mm:g} mm",
                            ok(dc.passed)))
        if far:
            out.append(("beyond the checked region", ", ".join(far), "-", "PASS"))
        c = self.contact
        if c is not None:
            f = c.fractions
            out.append(("contact cortical/cancellous", f"{100 * f['cortical']:.0f} % / {100 * f['cancellous']:.0f} %"
                        f" (marrow {100 * f['marrow']:.0f} %, none {100 * f['none']:.0f} %)",
                        "-" if c.limit_cortical_fraction is None else f">= {100 * c.limit_cortical_fraction:g} %",
                        ok(c.passed)))
        return out


def gertzbein_robbins(depth_mm: float) -> str:
    return "A" if depth_mm <= 0 else "B" if depth_mm < 2 else "C" if depth_mm < 4 else "D" if depth_mm < 6 else "E"


# -- the context -------------------------------------------------------------------------------------
class CheckContext:
    """Fields on ``region`` (index slices of the label grid, e.g. ``region_around`` the implant;
    default: the spec's bone structures' box plus ``spec.region_margin_mm``) for fast checks. ``ct``: a CT ``Volume`` on the same
    grid for the cortical rule (HU); without it the shell rule is used."""

    def __init__(self, labels, spec: CheckSpec, *, ct=None, region=None, progress=None, cancel=None):
        from scipy import ndimage as ndi

        t0 = time.perf_counter()
        self.spec = spec
        self.image_shape = labels.shape
        names = labels.labels.names()
        for n in (*spec.bone, *spec.marrow):
            if n not in names:
                raise SurgtwinError(f"the label map has no structure {n!r} for the checks",
                                    hint=f"known: {', '.join(names)}")
        if ct is not None and ct.shape != labels.shape:
            raise SurgtwinError("the CT for the checks is not on the label map's grid")
        bone_vals = [labels.labels.by_name(n).value for n in spec.bone]
        marrow_vals = [labels.labels.by_name(n).value for n in spec.marrow]
        if region is None:
            idx = np.argwhere(np.isin(labels.array, bone_vals))
            if len(idx) == 0:
                raise SurgtwinError(f"the bone structures {list(spec.bone)} have no voxels")
            lo = idx.min(axis=0)
            hi = idx.max(axis=0)
            region = region_around(labels.shape, labels.affine,
                                   labels.index_to_world(np.array([lo, hi], float)), spec.region_margin_mm)
        self.region = tuple(region)
        self.lo = np.array([s.start for s in self.region])
        sub = labels.array[self.region]
        self.shape = sub.shape
        spacing = labels.spacing_mm
        half = 0.5 * float(np.mean(spacing))
        self.voxel_ml = labels.voxel_volume_ml
        inv = np.linalg.inv(labels.affine)
        self.inv_linear = inv[:3, :3]
        self.inv_offset = inv[:3, 3] - self.lo
        self.affine = labels.affine.copy()
        report(progress, 0.05, "checks: bone")
        bone = np.isin(sub, bone_vals + marrow_vals)
        outside = np.maximum(ndi.distance_transform_edt(~bone, sampling=spacing) - half, 0.0)
        outside[bone] = 0.0
        marrow = np.isin(sub, marrow_vals)
        hard = bone & ~marrow
        if ct is not None:
            cortical = hard & (np.asarray(ct.array[self.region]) >= spec.cortical_hu)
        else:
            cortical = hard & (ndi.distance_transform_edt(bone, sampling=spacing) <= spec.shell_mm + half)
        tissue = np.where(marrow, 3, np.where(cortical, 2, np.where(hard, 1, 0))).astype(np.float32)
        check(cancel)
        self.critical: list[tuple[str, float]] = []
        crit_fields = []
        items = [(n, m) for n, m in spec.critical_mm.items() if n in names]
        for k, (name, margin) in enumerate(items):
            report(progress, 0.2 + 0.75 * k / max(1, len(items)), f"checks: distance to {name}")
            m = sub == labels.labels.by_name(name).value
            if not m.any():
                continue
            d = np.maximum(ndi.distance_transform_edt(~m, sampling=spacing) - half, 0.0)
            d[m] = 0.0
            crit_fields.append(d.astype(np.float32))
            self.critical.append((name, float(margin)))
            check(cancel)
        self.absent = [(n, float(m)) for n, m in items if n not in {c for c, _ in self.critical}]
        # one (voxels, fields) table: a check is one gather per point set
        self.fields = np.stack([outside.astype(np.float32), tissue, *crit_fields], axis=-1).reshape(
            -1, 2 + len(crit_fields))
        self.setup_s = time.perf_counter() - t0
        report(progress, 1.0, "checks ready")

    # -- look-ups ----------------------------------------------------------------------------------
    def _lookup(self, cols: np.ndarray, pose_matrix: np.ndarray):
        """Field values at the nearest voxels of local points ``cols`` (3, N) under a pose:
        (values (N, F), NaN outside the region; in-region mask; in-image mask)."""
        m = (self.inv_linear @ pose_matrix[:3, :3]).astype(np.float32)
        b = (self.inv_linear @ pose_matrix[:3, 3] + self.inv_offset).astype(np.float32)
        sh = self.shape
        ijk = []
        inside = np.ones(cols.shape[1], bool)
        for a in range(3):  # row by row: no BLAS call for a 3x3 product (it dominated with threads)
            v = cols[0] * m[a, 0]
            v += cols[1] * m[a, 1]
            v += cols[2] * m[a, 2]
            v += b[a] + 0.5
            n = np.floor(v).astype(np.int64)
            inside &= (n >= 0) & (n < sh[a])
            ijk.append(n)
        flat = (ijk[0] * sh[1] + ijk[1]) * sh[2] + ijk[2]
        vals = np.take(self.fields, np.where(inside, flat, 0), axis=0)
        if inside.all():
            return vals, inside, inside
        vals[~inside] = np.nan
        in_image = np.ones(len(flat), bool)
        for a in range(3):
            full = ijk[a] + self.lo[a]
            in_image &= (full >= 0) & (full < self.image_shape[a])
        return vals, inside, in_image

    def check(self, placed, samples) -> PlacementChecks:
        """The checks of ``placed`` (with ``samples = sample_implant(placed.implant)``)."""
        t0 = time.perf_counter()
        spec = self.spec
        warnings = []
        vals, in_region, in_image = self._lookup(samples.lookup_points, placed.pose.matrix)
        n_v, n_s = len(samples.volume_points), len(samples.surface_points)
        vol_vals, vol_in, vol_img = vals[:n_v], in_region[:n_v], in_image[:n_v]
        srf_vals, srf_in = vals[n_v:], in_region[n_v:]
        pv_ml = samples.point_volume_mm3 / 1000.0
        outside_region = ~vol_in & vol_img
        if outside_region.any():
            warnings.append(f"{outside_region.sum() * pv_ml:.3f} ml of the implant lies outside the checked region "
                            "(counted as breach, distances there not checked): check again with a larger region")
        breach = None
        eng = samples.engaging
        if eng.any():
            depth = vol_vals[:, 0]
            out = eng & vol_img & (~vol_in | (depth > 0))
            d_out = np.where(vol_in, depth, np.inf)[out]
            n_img = eng & ~vol_img
            vol_ml = float(out.sum() * pv_ml)
            maxd = float(d_out.max()) if out.any() else 0.0
            deepest = centroid = None
            if out.any():
                pts = samples.volume_points[out]
                deepest = _r(placed.pose.apply(pts[int(np.argmax(d_out))]))
                centroid = _r(placed.pose.apply(pts.mean(axis=0)))
            if not np.isfinite(maxd):  # part of it lies outside the region: depth unknown, not passed
                warnings.append("the breach depth could not be measured outside the checked region")
            passed = maxd <= spec.max_breach_depth_mm and (spec.max_breach_ml is None or vol_ml <= spec.max_breach_ml)
            if n_img.any():
                warnings.append(f"{n_img.sum() * pv_ml:.3f} ml of the implant lies outside the image (not checked)")
            grade = gertzbein_robbins(maxd) if placed.implant.generator == "screw" and np.isfinite(maxd) else None
            breach = BreachCheck(bool(passed), vol_ml, maxd if np.isfinite(maxd) else None, deepest, centroid,
                                 float(eng.sum() * pv_ml), vol_ml / max(float(eng.sum() * pv_ml), 1e-12),
                                 float(n_img.sum() * pv_ml), spec.max_breach_depth_mm, spec.max_breach_ml, grade)
        distances = []
        for k, (name, margin) in enumerate(self.critical):
            col = srf_vals[:n_s, 2 + k]
            ok = np.isfinite(col)
            inside_ml = float(np.sum(vol_vals[:, 2 + k] == 0) * pv_ml)
            if not ok.any():
                distances.append(DistanceCheck(name, True, None, margin, None, 0.0))
                continue
            j = int(np.nanargmin(col))
            dmin = 0.0 if inside_ml > 0 else float(col[j])
            distances.append(DistanceCheck(name, dmin >= margin, dmin, margin,
                                           _r(placed.pose.apply(samples.surface_points[j])), inside_ml))
        for name, margin in self.absent:
            distances.append(DistanceCheck(name, True, None, margin, None, 0.0))
        contact = None
        use = samples.surface_engaging if samples.surface_engaging.any() else np.ones(n_s, bool)
        tis = srf_vals[n_s:, 1][use & srf_in[n_s:]]  # at the contact points
        if len(tis):
            counts = np.bincount(tis.astype(np.int64), minlength=4)
            fr = {name: float(counts[n] / len(tis)) for n, name in enumerate(TISSUES)}
            ok_c = spec.min_cortical_fraction is None or fr["cortical"] >= spec.min_cortical_fraction
            contact = ContactCheck(bool(ok_c), fr, int(len(tis)), spec.min_cortical_fraction)
        passed = all(x.passed for x in [breach, contact, *distances] if x is not None)
        return PlacementChecks(placed.id, bool(passed), breach, distances, contact, warnings,
                               (time.perf_counter() - t0) * 1000.0, float(outside_region.sum() * pv_ml))

    def check_voxelised(self, placed) -> PlacementChecks:
        """The same checks the slow way: the posed implant voxelised on the region every time (the
        baseline of ``scripts/bench/implant_bench.py``; voxel-accurate, no point samples)."""
        from scipy import ndimage as ndi

        from surgtwin.core.plan.voxelise import engaging_mask, mesh_in_grid

        t0 = time.perf_counter()
        aff = self.affine.copy()
        aff[:3, 3] = self.affine[:3, :3] @ self.lo + self.affine[:3, 3]
        m = placed.world_mesh()
        sub, sl = mesh_in_grid(m.vertices, m.faces, aff, self.shape)
        mask = np.zeros(self.shape, bool)
        mask[sl] = sub
        idx = np.argwhere(mask)
        if len(idx) == 0:
            raise SurgtwinError(f"implant {placed.id} lies outside the checked region")
        world = idx @ aff[:3, :3].T + aff[:3, 3]
        eng = engaging_mask(placed.pose.inverse().apply(world), placed.implant.bone_engaging)
        sh = self.shape
        vals = self.fields[(idx[:, 0] * sh[1] + idx[:, 1]) * sh[2] + idx[:, 2]]
        out = eng & (vals[:, 0] > 0)
        maxd = float(vals[out, 0].max()) if out.any() else 0.0
        vol_ml = float(out.sum() * self.voxel_ml)
        eng_ml = float(eng.sum() * self.voxel_ml)
        breach = BreachCheck(maxd <= self.spec.max_breach_depth_mm, vol_ml, maxd,
                             _r(world[out][int(np.argmax(vals[out, 0]))]) if out.any() else None,
                             _r(world[out].mean(axis=0)) if out.any() else None, eng_ml, vol_ml / max(eng_ml, 1e-12),
                             0.0, self.spec.max_breach_depth_mm) if eng.any() else None
        distances = []
        for k, (name, margin) in enumerate(self.critical):
            col = vals[:, 2 + k]
            j = int(np.argmin(col))
            distances.append(DistanceCheck(name, bool(col[j] >= margin), float(col[j]), margin, _r(world[j]),
                                           float(np.sum(col == 0) * self.voxel_ml)))
        shell = ndi.binary_dilation(mask) & ~mask
        tis = self.fields.reshape(*sh, -1)[shell, 1].astype(np.int64)
        counts = np.bincount(tis, minlength=4)
        fr = {name: float(counts[n] / max(len(tis), 1)) for n, name in enumerate(TISSUES)}
        contact = ContactCheck(True, fr, int(len(tis)))
        passed = all(x.passed for x in [breach, *distances] if x is not None)
        return PlacementChecks(placed.id, bool(passed), breach, distances, contact, [],
                               (time.perf_counter() - t0) * 1000.0)


def check_placement(labels, placed, *, spec: CheckSpec | None = None, ct=None) -> PlacementChecks:
    """One-off checks of ``placed`` (builds the context and samples; use ``CheckContext`` for many)."""
    from surgtwin.core.plan.voxelise import sample_implant

    spec = spec or default_spec(labels, placed.target or None)
    samples = sample_implant(placed.implant)
    region = region_around(labels.shape, labels.affine, placed.world_mesh().vertices, spec.region_margin_mm)
    ctx = CheckContext(labels, spec, ct=ct, region=region)
    return ctx.check(placed, samples)
